"""Generated pygeoapi configuration + OpenAPI document, written once and shared by workers.

``geoservice serve --workers N`` calls ``geoservice.app.prepare_generated`` before uvicorn
forks: it generates the configuration from the store and writes it with the OpenAPI document under
``<work_dir>/generated/``.  Each worker's ``build_runtime`` calls :func:`load_or_build`,
which regenerates the configuration (cheap: specs and store metadata) and reuses the
written OpenAPI document when the configuration is byte-for-byte the one it was built from
(its SHA-256 names the file) - so all workers serve the same document, and a store rebuilt
since (new specs, extents) is never answered with a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from geoservice.config import Settings

DIRNAME = "generated"


def _digest(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _write(path: Path, doc: Any) -> None:
    """Atomic write (rename), so a worker never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, default=str)
    os.replace(tmp, path)


def load_or_build(
    settings: Settings, config: dict[str, Any], served: Sequence[BaseRoute]
) -> dict[str, Any]:
    """The OpenAPI document of ``config``: read if written for this config, else built+written
    (``served``: the OGC routes; operations none of them answers are left out)."""
    from geoservice.ogc.pygeoapi_adapter import build_openapi

    folder = Path(settings.work_dir) / DIRNAME
    digest = _digest(config)
    path = folder / f"openapi-{digest}.json"
    if path.exists():
        try:
            return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]
        except (OSError, ValueError):
            pass
    doc = build_openapi(config, served)
    try:
        _write(path, doc)
        _write(folder / f"pygeoapi-{digest}.json", config)
        for old in folder.glob("*.json"):
            if digest not in old.name:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only work_dir: serve the generated document without caching it
    return doc

