"""``/3dtiles/…``: built tilesets served as static files from ``settings.tiles_dir``.

Content types: ``.json`` -> ``application/json``, ``.glb`` -> ``model/gltf-binary``,
``.b3dm``/``.subtree`` -> ``application/octet-stream``.  A missing ``tiles_dir`` (nothing
built yet) gives 404s, not a start-up failure.  A tileset's name (``buildings``) is a
symlink swapped atomically when a build completes: each request resolves it afresh, so it
gets the previous complete tileset or the new one, never a half-written one.  Content URLs
are relative to ``tileset.json`` through that name, so a viewer that loaded the previous
``tileset.json`` before a swap gets the new release's tiles (or 404s) until it reloads
(``resume.publish``).
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from geoservice.config import Settings

MEDIA_TYPES = {
    ".json": "application/json",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".b3dm": "application/octet-stream",
    ".subtree": "application/octet-stream",
}


class TilesFiles(StaticFiles):
    """StaticFiles with 3D Tiles media types and a tolerated missing directory; names that
    start with a dot are the builder's (staging, releases, locks: ``city3d/resume.py``) and
    are never served - a tileset is reached by its published name only."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """404 for any dot-name component; else the normal lookup (symlinks resolved: the
        published name points at its release)."""
        if any(part.startswith(".") for part in path.replace("\\", "/").split("/")):
            return "", None
        return super().lookup_path(path)

    async def check_config(self) -> None:
        """Accept a directory that does not exist yet (tiles not built)."""
        if self.directory is not None and not os.path.isdir(self.directory):
            return
        await super().check_config()

    def file_response(
        self, full_path: Any, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media = MEDIA_TYPES.get(os.path.splitext(str(full_path))[1].lower())
        if media is not None:
            response.headers["content-type"] = media
            response.media_type = media
        return response


def mount_tiles(app: Starlette, settings: Settings) -> None:
    """Mount ``settings.tiles_dir`` at ``/3dtiles`` on ``app``."""
    app.mount("/3dtiles", TilesFiles(directory=settings.tiles_dir, check_dir=False), name="3dtiles")


def tileset_links(settings: Settings, collection_id: str) -> list[dict[str, str]]:
    """Collection links to the collection's built 3D Tiles tileset (none if not built)."""
    if not (settings.tiles_dir / collection_id / "tileset.json").is_file():
        return []
    return [
        {
            "href": f"{settings.server.base_url}/3dtiles/{collection_id}/tileset.json",
            "rel": "alternate",
            "type": "application/json",
            "title": "3D Tiles 1.1 tileset (glb, EXT_structural_metadata)",
        }
    ]
