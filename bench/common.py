"""Helpers every benchmark script shares (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_uvicorn(settings: Any, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """Serve ``settings``' GeoPackage store with uvicorn (one worker, no access log) on
    127.0.0.1:``port``, through a config file written to ``tmp``; the caller stops it."""
    cfg = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"backend": "gpkg", "path": str(settings.store.path)},
        "layers_dir": str(settings.layers_dir), "data_dir": str(settings.data_dir),
        "demo_dir": str(settings.demo_dir), "work_dir": str(tmp), "tiles_dir": str(tmp),
    }
    path = tmp / "bench-config.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    env = {**os.environ, "GEOSERVICE_CONFIG": str(path)}
    with (tmp / "uvicorn.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "geoservice.asgi:app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
