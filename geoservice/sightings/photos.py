"""Photos of citizen reports: files under ``<work_dir>/photos`` (embedded store) or a
``bytea`` table in the PostGIS store's database (every host serves every photo).

Sizes and types are checked before either is written (``SightingsService._photo``).  On
PostGIS the photo row is written in the report's own transaction, so a report never
points at a photo that is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from geoservice.config import Settings
from geoservice.state import StateDB, open_db
from geoservice.store import Store

#: Accepted media types and the file extension each is stored under.
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_PG_DDL = """
CREATE TABLE IF NOT EXISTS photos (
    feature_id text PRIMARY KEY,
    media_type text NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


class PhotoStore(Protocol):
    """Where report photos are kept."""

    def put(self, fid: str, data: bytes, media_type: str) -> None:
        """Keep the photo of report ``fid`` (checked already)."""
        ...

    def get(self, fid: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of the photo of ``fid``, if any."""
        ...

    def has(self, fid: str) -> bool:
        """Whether ``fid`` has a photo."""
        ...


class FilePhotos:
    """``<dir>/<fid>.<ext>``, written to a temporary name and renamed (never half a file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _find(self, fid: str) -> tuple[Path, str] | None:
        for kind, ext in PHOTO_TYPES.items():
            p = self.folder / f"{fid}.{ext}"
            if p.exists():
                return p, kind
        return None

    def put(self, fid: str, data: bytes, media_type: str) -> None:
        ext = PHOTO_TYPES[media_type]
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{fid}.{ext}.part"
        tmp.write_bytes(data)
        tmp.replace(self.folder / f"{fid}.{ext}")

    def get(self, fid: str) -> tuple[bytes, str] | None:
        found = self._find(fid)
        return None if found is None else (found[0].read_bytes(), found[1])

    def has(self, fid: str) -> bool:
        return self._find(fid) is not None


class DbPhotos:
    """The ``photos`` table of the ``geoservice_photos`` schema (PostgreSQL ``bytea``)."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def put(self, fid: str, data: bytes, media_type: str) -> None:
        self.db.execute(
            "INSERT INTO photos (feature_id, media_type, data) VALUES (?, ?, ?)"
            " ON CONFLICT (feature_id) DO UPDATE SET media_type = excluded.media_type,"
            " data = excluded.data",
            (fid, media_type, data),
        )

    def get(self, fid: str) -> tuple[bytes, str] | None:
        row = self.db.execute(
            "SELECT data, media_type FROM photos WHERE feature_id = ?", (fid,)
        ).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]))

    def has(self, fid: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM photos WHERE feature_id = ?", (fid,)
        ).fetchone() is not None


def open_photos(settings: Settings, store: Store | None) -> PhotoStore:
    """Files under ``<work_dir>/photos``, or the photo table on PostGIS."""
    if settings.store.backend == "postgis" and store is not None:
        return DbPhotos(open_db(settings, store, "photos", {"postgresql": _PG_DDL, "sqlite": ""}))
    return FilePhotos(settings.work_dir / "photos")
