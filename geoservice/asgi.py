"""Module-level app for uvicorn workers: ``uvicorn geoservice.asgi:app``.

Reads the config named by ``GEOSERVICE_CONFIG`` (default ``config.yml``) when imported by
the server process; library code never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from geoservice.app import create_app
from geoservice.config import load_settings

settings = load_settings(Path(os.environ.get("GEOSERVICE_CONFIG", "config.yml")))
if os.environ.get("GEOSERVICE_LISTEN"):  # set by `geoservice serve --host/--port`
    settings = settings.listening_on(os.environ["GEOSERVICE_LISTEN"])
app = create_app(settings)
