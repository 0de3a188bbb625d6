"""OGC API Features Part 4 (create, replace, update, delete) — placeholder until it lands."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/ogc", include_in_schema=False)
