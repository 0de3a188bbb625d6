"""Sightings: the write rules of ``wildlife-sightings``, citizen reports and moderation."""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Any

from geoservice.auth.errors import Forbidden
from geoservice.auth.http import AuthServices
from geoservice.auth.ratelimit import RateLimiter
from geoservice.auth.tokens import Principal
from geoservice.config import SightingsSettings
from geoservice.errors import InvalidParameter, NotFound, PayloadTooLarge, Unprocessable
from geoservice.features import Feature
from geoservice.geometry import parse_geometry
from geoservice.sightings.photos import PHOTO_TYPES, FilePhotos, PhotoStore
from geoservice.sightings.policy import COLLECTION, PUBLISHED, SensitiveConfig
from geoservice.store import Query
from geoservice.store.values import parse_datetime

log = logging.getLogger("geoservice.sightings")

PENDING, REJECTED = "pending", "rejected"
REQUIRED = ("species", "kind", "observed_at")
MAX_DESCRIPTION = 4000
CITIZEN = Principal("-", "citizen-report", None, False)
CITIZEN_SOURCE = "citizen-report"
REPORT_FIELDS = {
    "point",
    "species",
    "kind",
    "observed_at",
    "count",
    "description",
    "photo",
    "photo_content_type",
}


def sniff_image(data: bytes) -> str | None:
    """The media type of an image by its magic bytes (JPEG, PNG, WebP), else ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def prepare_sighting(who: Principal, f: Feature, before: Feature | None) -> Feature:
    """Defaults and required fields of a sighting write (``municipality_code`` is derived
    by the writer from the point; a client's value is ignored)."""
    props = dict(f.properties)
    if before is None:
        props.setdefault("status", PUBLISHED)
        props.setdefault("source", who.name)
        props.setdefault("count", 1)
    missing = [k for k in REQUIRED if props.get(k) in (None, "")]
    if missing:
        raise Unprocessable(f"wildlife-sightings: missing required properties {missing}")
    desc = props.get("description")
    if isinstance(desc, str) and len(desc) > MAX_DESCRIPTION:
        raise Unprocessable(f"description: at most {MAX_DESCRIPTION} characters")
    count = props.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count < 1:
        raise Unprocessable("count: must be at least 1")
    return Feature(f.id, props, f.geometry)


class SightingsService:
    """Reports, moderation and imports of ``wildlife-sightings`` over the auth services."""

    def __init__(
        self,
        auth: AuthServices,
        work_dir: Path,
        settings: SightingsSettings,
        photos: PhotoStore | None = None,
    ) -> None:
        self.auth = auth
        self.writer = auth.writer
        self.store = auth.writer.store
        self.limits = settings
        self.sensitive = SensitiveConfig.load(settings)
        self.limiter = RateLimiter(auth.db, self.limits.reports_per_minute, 60.0)
        self.photos = photos or FilePhotos(work_dir / "photos")
        self.writer.hooks[COLLECTION] = prepare_sighting
        self.writer.id_prefix[COLLECTION] = "ws-"

    # -- citizen reports -------------------------------------------------------------

    def report(self, body: Any) -> Feature:
        """A citizen report → a ``pending`` sighting (not public until approved)."""
        if not isinstance(body, dict):
            raise InvalidParameter("body: expected a JSON object")
        unknown = sorted(set(body) - REPORT_FIELDS)
        if unknown:
            raise Unprocessable(f"unknown fields {unknown}; accepted: {sorted(REPORT_FIELDS)}")
        point = body.get("point")
        if isinstance(point, list | tuple) and len(point) == 2:
            point = {"type": "Point", "coordinates": list(point)}
        if not isinstance(point, dict) or point.get("type") != "Point":
            raise InvalidParameter("point: expected a GeoJSON Point or [lon, lat] in CRS84")
        geom = parse_geometry(point)
        if self.writer.index.code_at(geom) is None:
            raise Unprocessable("point: lies outside Tokyo's municipalities")
        photo = self._photo(body.get("photo"), body.get("photo_content_type"))
        props: dict[str, Any] = {
            "species": body.get("species"),
            "kind": body.get("kind"),
            "observed_at": body.get("observed_at"),
            "count": body.get("count", 1),
            "description": body.get("description"),
            "reliability": "low",
            "source": CITIZEN_SOURCE,
            "status": PENDING,
        }
        if props["observed_at"] is not None:
            try:
                parse_datetime(props["observed_at"])
            except (TypeError, ValueError):
                raise Unprocessable(
                    f"observed_at: not an ISO 8601 date-time: {props['observed_at']!r}"
                ) from None
        with self.store.unit():  # PostGIS: the report and its photo commit together
            f = self.writer.create(
                CITIZEN, COLLECTION, Feature("", props, geom), action="report.create",
                scoped=False,
            )
            if photo is not None:
                self.photos.put(f.id, *photo)
        return f

    def _photo(self, raw: Any, declared: Any) -> tuple[bytes, str] | None:
        """(bytes, media type) of a report's photo, checked: size, base64, magic bytes."""
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise InvalidParameter("photo: expected base64 text")
        text = raw.split(",", 1)[1] if raw.startswith("data:") and "," in raw else raw
        if len(text) * 3 // 4 > self.limits.max_photo:
            raise PayloadTooLarge(f"photo: larger than {self.limits.max_photo} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameter("photo: not valid base64") from None
        if len(data) > self.limits.max_photo:
            raise PayloadTooLarge(f"photo: larger than {self.limits.max_photo} bytes")
        kind = sniff_image(data)
        if kind is None:
            raise Unprocessable(f"photo: not an image of an accepted type {sorted(PHOTO_TYPES)}")
        if declared is not None and declared != kind:
            raise Unprocessable(f"photo: declared {declared!r} but the bytes are {kind}")
        return data, kind

    # -- moderation --------------------------------------------------------------------

    def queue(self, who: Principal, limit: int = 100) -> list[Feature]:
        """Pending reports the caller may moderate (its municipality; admins: all)."""
        props: dict[str, Any] = {"status": PENDING}
        if not who.admin:
            props["municipality_code"] = who.municipality or ""
        q = Query(properties=props, sortby=(("observed_at", False),), limit=limit)
        return self.store.query(COLLECTION, q).features

    def moderate(self, who: Principal, fid: str, decision: str) -> Feature:
        """Approve (→ published) or reject (→ rejected) a pending report."""
        status = {"approve": PUBLISHED, "reject": REJECTED}.get(decision)
        if status is None:
            raise NotFound(f"unknown moderation action {decision!r}; accepted: approve, reject")
        current = self.store.get(COLLECTION, fid)
        if not who.may_access(current.properties.get("municipality_code")):
            raise Forbidden("this report lies outside the token's municipality")
        if current.properties.get("status") != PENDING:
            raise Unprocessable(
                f"report {fid!r} is {current.properties.get('status')!r}, not pending"
            )
        return self.writer.update(
            who, COLLECTION, fid, {"status": status}, None, None, action=f"moderation.{decision}"
        )
