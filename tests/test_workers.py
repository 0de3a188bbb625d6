"""``geoservice serve --workers 2``: two processes, one answer.

The server runs in a subprocess over a copy of the real store (config file in tmp).  Each
request opens a new connection, so the kernel spreads them over both workers; every answer
must be identical, and a feature created through one request must be visible to all later
reads (the store and auth database are shared files, nothing is per-process).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mapbox_vector_tile
import pytest
import yaml

from tests.conftest import ROOT, free_port

LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
CLI = [sys.executable, "-c", "from geoservice.cli import main; main()"]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(d.name))
    return out


@pytest.fixture(scope="module")
def served(
    real_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("workers")
    shutil.copy(real_store / "store.gpkg", tmp / "store.gpkg")
    port = free_port()
    cfg = tmp / "config.yml"
    cfg.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"backend": "gpkg", "path": str(tmp / "store.gpkg")},
        "layers_dir": str(ROOT / "layers"),
        "enabled_layers": LAYERS,
        "work_dir": str(tmp),
        "tiles_dir": str(tmp / "tiles"),
        "sightings": {"reports_per_minute": 1000},
    }), "utf-8")
    env = {**os.environ, "GEOSERVICE_CONFIG": str(cfg)}
    proc = subprocess.Popen(
        [*CLI, "serve", "-c", str(cfg), "--workers", "2"], cwd=tmp, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ogc/conformance", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"server did not start:\n{out[-4000:]}")
            time.sleep(0.3)
        # Both workers up (uvicorn's supervisor has two worker children).
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(_children(proc.pid)) >= 2, "uvicorn did not start two workers"
        yield url, cfg
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _fresh_get(url: str, **params: str) -> httpx.Response:
    with httpx.Client(timeout=30) as c:  # a new connection per request: any worker answers
        return c.get(url, params=params)


def test_two_workers_start_and_share_the_generated_config(served: tuple[str, Path]) -> None:
    url, cfg = served
    generated = list((cfg.parent / "generated").glob("openapi-*.json"))
    assert len(generated) == 1, generated
    docs = {json.dumps(_fresh_get(f"{url}/ogc/openapi").json(), sort_keys=True)
            for _ in range(10)}
    assert len(docs) == 1
    assert json.loads(docs.pop()) == json.loads(generated[0].read_text("utf-8"))


def _tile_with_a_sighting(url: str, z: int = 10) -> str:
    """The path of the z-level vector tile holding the first sighting (so it is not empty)."""
    first = _fresh_get(url + ITEMS, limit="1", sortby="id").json()["features"][0]
    lon, lat = first["geometry"]["coordinates"][:2]
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/ogc/collections/wildlife-sightings/tiles/WebMercatorQuad/{z}/{y}/{x}"


def test_fifty_requests_give_identical_answers(served: tuple[str, Path]) -> None:
    url, _ = served
    tile = _tile_with_a_sighting(url)
    r = _fresh_get(url + tile)
    assert r.status_code == 200, r.text
    decoded = mapbox_vector_tile.decode(r.content)
    assert decoded["wildlife-sightings"]["features"], "the compared tile holds sightings"
    paths = [
        ("/ogc/collections", {}),
        (ITEMS, {"limit": "5", "sortby": "id"}),
        (ITEMS, {"bbox": "139.0,35.7,139.3,35.9", "limit": "3"}),
        (tile, {}),
        ("/ogc/conformance", {}),
    ]
    for path, params in paths:
        answers = set()
        for _ in range(10):
            r = _fresh_get(url + path, **params)
            assert r.status_code == 200, (path, r.text)
            body = r.content
            if r.headers.get("content-type", "").endswith("json"):
                doc = r.json()
                doc.pop("timeStamp", None)  # items pages are stamped with the time of answer
                body = json.dumps(doc, sort_keys=True).encode()
            answers.add(body)
        assert len(answers) == 1, f"{path}: {len(answers)} different answers"


def test_create_through_one_request_is_visible_to_every_read(served: tuple[str, Path]) -> None:
    url, cfg = served
    res = subprocess.run([*CLI, "tokens", "create", "--admin", "--name", "workers test",
                          "-c", str(cfg)], capture_output=True, text=True, timeout=120,
                         cwd=cfg.parent, check=False)
    assert res.returncode == 0, res.stderr
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("gt_")
    before = _fresh_get(url + ITEMS, limit="1").json()["numberMatched"]
    # every worker counts (and caches the count per data version) before the writes
    counted = {_item_count(url) for _ in range(10)}
    assert len(counted) == 1, counted
    (count_before,) = counted
    made = []
    for i in range(5):  # several writes, each on a new connection (so on either worker)
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [139.1 + i / 1000, 35.8]},
            "properties": {"species": "asian-black-bear", "kind": "witness",
                           "reliability": "high", "observed_at": "2025-10-01T06:30:00+09:00",
                           "count": 1, "municipality_code": "13308", "status": "published"},
        }
        with httpx.Client(timeout=30) as c:
            r = c.post(url + ITEMS, content=json.dumps(body), headers={
                "Content-Type": "application/geo+json", "Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        made.append(r.headers["Location"].rsplit("/", 1)[-1])
        for _ in range(4):
            assert _fresh_get(f"{url}{ITEMS}/{made[-1]}").status_code == 200
    for _ in range(10):
        assert _fresh_get(url + ITEMS, limit="1").json()["numberMatched"] == before + 5
        assert _item_count(url) == count_before + 5, "a worker served a stale itemCount"


def _item_count(url: str) -> int:
    """``itemCount`` of the sightings in ``/ogc/collections`` (``Store.info``'s count)."""
    doc = _fresh_get(url + "/ogc/collections").json()
    (coll,) = [c for c in doc["collections"] if c["id"] == "wildlife-sightings"]
    return int(coll["itemCount"])
