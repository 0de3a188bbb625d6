"""Helpers every benchmark script shares (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
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


def write_config(tmp: Path, port: int, layers: list[str] | None, *, name: str = "config.yml",
                 server: dict[str, Any] | None = None, store: dict[str, Any] | None = None,
                 **extra: Any) -> Path:
    """A service config for a benchmark: ``layers`` (None: all) from the repository's specs, a
    GeoPackage store in ``tmp`` unless ``store`` says otherwise, work and tiles in ``tmp``;
    ``server``/``store`` entries and top-level ``extra`` sections are merged in."""
    stem = Path(name).stem
    cfg = {
        "server": {"host": "127.0.0.1", "port": port, **(server or {})},
        "store": {"backend": "gpkg", "path": str(tmp / "store.gpkg"), **(store or {})},
        "layers_dir": str(ROOT / "layers"),
        "enabled_layers": layers,
        "data_dir": str(ROOT / "data"),
        "demo_dir": str(ROOT / "data" / "demo"),
        "work_dir": str(tmp / f"work-{stem}"),
        "tiles_dir": str(tmp / "tiles"),
        **extra,
    }
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    return path


@contextmanager
def serving(settings: Any, tmp: Path, probe: str) -> Iterator[str]:
    """Serve ``settings``' GeoPackage store (a :class:`Server`, uvicorn, one worker, no
    access log) on a free port; yields its base URL once ``GET probe`` answers 200."""
    port = free_port()
    path = write_config(tmp, port, settings.enabled_layers, name="bench-config.yml",
                        store={"path": str(settings.store.path)},
                        layers_dir=str(settings.layers_dir), data_dir=str(settings.data_dir),
                        demo_dir=str(settings.demo_dir))
    with Server("ours", uvicorn_cmd("geoservice.asgi:app", port), port,
                {"GEOSERVICE_CONFIG": str(path)}, probe, tmp / "uvicorn.log") as srv:
        yield srv.base


def uvicorn_cmd(app: str, port: int, python: str = sys.executable) -> list[str]:
    """``python -m uvicorn app`` on 127.0.0.1:port, one worker, no access log."""
    return [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]


class Server:
    """A server subprocess on 127.0.0.1 (output to ``log``), ready when ``probe`` answers
    200; ``start``/``stop`` or ``with``.  Every benchmark starts its servers through it."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], probe: str,
                 log: Path, api_prefix: str = "", start_timeout: float = 90.0) -> None:
        self.name, self.cmd, self.probe, self.log = name, cmd, probe, log
        self.base = f"http://127.0.0.1:{port}"
        self.api = self.base + api_prefix  # OGC API root; row paths are relative to it
        self.env = {**os.environ, **env}
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, stdout=self._fh,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.base + self.probe, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self.log.read_text("utf-8", "replace")[-2000:]
        state = ("exited" if self.proc.poll() is not None
                 else f"not ready after {self.start_timeout:.0f} s")
        self.stop()
        raise RuntimeError(f"{self.name} server did not start ({state}); log tail:\n{tail}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_fh", None):
            self._fh.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pygeoapi_config(port: int, resources: dict[str, Any]) -> dict[str, Any]:
    """A minimal pygeoapi configuration serving ``resources`` on 127.0.0.1:``port``
    (plain JSON, no gzip, default page 10 - as our service)."""
    contact = {k: "bench" for k in ("name", "position", "address", "city", "stateorprovince",
                                    "postalcode", "country", "phone", "fax", "hours",
                                    "instructions")}
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port}, "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8",
            "language": "en-US", "cors": False, "gzip": False, "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "bench", "description": "bench", "keywords": ["bench"],
                               "keywords_type": "theme",
                               "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                               "url": "https://example.invalid"},
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "bench", "url": "https://example.invalid"},
            "contact": {**contact, "email": "bench@example.invalid",
                        "url": "https://example.invalid", "role": "pointOfContact"},
        },
        "resources": resources,
    }
