"""Issue 4: tokens, OGC API Features Part 4, audit, CSV import, citizen reports, moderation,
rate limits and sensitive locations — over a fresh, writable store per test."""

from __future__ import annotations

import base64
import json
import math
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import Point, shape
from typer.testing import CliRunner

from geoservice.app import create_app
from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.scope import MunicipalityIndex
from geoservice.auth.tokens import TokenStore
from geoservice.config import Settings, SightingsSettings
from geoservice.sightings.policy import generalise
from geoservice.store.gpkg import GpkgStore
from tests.conftest import DATA, ROOT, build_layers, settings_for

LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
OKUTAMA, HACHIOJI = "13308", "13201"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SPECIES = [
    "asian-black-bear",
    "brown-bear",
    "wild-boar",
    "sika-deer",
    "japanese-macaque",
    "japanese-serow",
    "other",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """admin-boundaries + wildlife-sightings built once; each test copies the store."""
    tmp = tmp_path_factory.mktemp("sightings-built")
    return build_layers(settings_for(tmp, ROOT / "layers"), LAYERS).store.path


@dataclass
class Env:
    client: TestClient
    settings: Settings
    admin: str
    okutama: str
    hachioji: str
    inside: dict[str, Point]

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def store(self) -> GpkgStore:
        return GpkgStore(self.settings.store.path)


def _settings(tmp: Path, **sightings: Any) -> Settings:
    s = settings_for(tmp, ROOT / "layers")
    limits = SightingsSettings.model_validate({"reports_per_minute": 1000, **sightings})
    return s.model_copy(update={"enabled_layers": LAYERS, "sightings": limits})


def _inside(store_path: Path) -> dict[str, Point]:
    st = GpkgStore(store_path)
    idx = MunicipalityIndex.from_store(st)
    st.close()
    out = {}
    for code in (OKUTAMA, HACHIOJI):
        polys = [g for c, g in zip(idx.codes, idx.geoms, strict=True) if c == code]
        biggest = max(polys, key=lambda g: g.area)
        pt = biggest.representative_point()
        out[code] = Point(round(pt.x, 6), round(pt.y, 6))
    return out


def _env(built: Path, tmp: Path, **sightings: Any) -> Iterator[Env]:
    shutil.copy(built, tmp / "store.gpkg")
    settings = _settings(tmp, **sightings)
    tokens = TokenStore(AuthDB(auth_db_path(tmp)))
    admin, _ = tokens.create("都 管理者", admin=True)
    oku, _ = tokens.create("奥多摩町 環境整備課", OKUTAMA)
    hachi, _ = tokens.create("八王子市 環境政策課", HACHIOJI)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield Env(c, settings, admin, oku, hachi, _inside(tmp / "store.gpkg"))


@pytest.fixture
def env(built: Path, tmp_path: Path) -> Iterator[Env]:
    yield from _env(built, tmp_path)


def feature(pt: Point, **props: Any) -> dict[str, Any]:
    base = {
        "species": "asian-black-bear",
        "kind": "witness",
        "reliability": "high",
        "observed_at": "2025-10-01T06:30:00+09:00",
        "count": 1,
    }
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [pt.x, pt.y]},
        "properties": {**base, **props},
    }


def post(env: Env, token: str | None, body: Any, **headers: str) -> Any:
    h = {"Content-Type": "application/geo+json", **headers}
    if token:
        h.update(env.auth(token))
    return env.client.post(ITEMS, content=json.dumps(body), headers=h)


def count(env: Env) -> int:
    return int(
        env.client.get(ITEMS, params={"limit": 1}, headers=env.auth(env.admin)).json()[
            "numberMatched"
        ]
    )


# -- tokens ---------------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    db = AuthDB(auth_db_path(tmp_path))
    store = TokenStore(db, pepper="pepper")
    token, info = store.create("奥多摩町", OKUTAMA)
    raw = (tmp_path / "auth.sqlite").read_bytes() + (tmp_path / "auth.sqlite-wal").read_bytes()
    secret = token.split("_", 2)[-1]  # gt_<id>_<secret>; the secret itself may hold "_"
    assert secret.encode() not in raw and token.encode() not in raw
    assert store.verify(token).municipality == OKUTAMA  # type: ignore[union-attr]
    assert TokenStore(db, pepper="other").verify(token) is None  # the pepper matters
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.revoke(info.id) == 1
    assert store.verify(token) is None
    with pytest.raises(ValueError):
        store.create("no scope")


def test_tokens_cli_prints_once_lists_and_revokes(tmp_path: Path) -> None:
    from geoservice.cli import app

    cfg = tmp_path / "config.yml"
    cfg.write_text(f"work_dir: {tmp_path}\nstore: {{path: {tmp_path}/store.gpkg}}\n", "utf-8")
    runner = CliRunner()
    res = runner.invoke(
        app, ["tokens", "create", "--municipality", OKUTAMA, "--name", "奥多摩", "-c", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    token = res.output.strip().splitlines()[-1]
    assert token.startswith("gt_")
    listed = runner.invoke(app, ["tokens", "list", "-c", str(cfg)])
    assert "奥多摩" in listed.output and token not in listed.output
    tid = token.split("_")[1]
    assert runner.invoke(app, ["tokens", "revoke", tid, "-c", str(cfg)]).exit_code == 0
    assert TokenStore(AuthDB(auth_db_path(tmp_path))).verify(token) is None


# -- Part 4 ---------------------------------------------------------------------------


def test_conformance_declares_part4(env: Env) -> None:
    classes = env.client.get("/ogc/conformance").json()["conformsTo"]
    for suffix in ("create-replace-delete", "update", "features"):
        assert f"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/{suffix}" in classes


def test_write_without_or_with_bad_token_is_401(env: Env) -> None:
    n = count(env)
    r = post(env, None, feature(env.inside[OKUTAMA]))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = post(env, "gt_000000000000_notarealtokennotarealtoken", feature(env.inside[OKUTAMA]))
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    r = env.client.delete(f"{ITEMS}/tokyo-kumap-1")
    assert r.status_code == 401
    assert count(env) == n


def test_create_derives_municipality_and_etag_round_trips(env: Env) -> None:
    r = post(env, env.okutama, feature(env.inside[OKUTAMA], municipality_code="13101"))
    assert r.status_code == 201, r.text
    loc, etag = r.headers["Location"], r.headers["ETag"]
    assert loc.endswith(f"/items/{r.json()['id']}") and etag.startswith('"')
    assert r.json()["properties"]["municipality_code"] == OKUTAMA  # the client cannot lie
    path = loc.split("8000", 1)[1]
    got = env.client.get(path, headers=env.auth(env.okutama))
    assert got.status_code == 200 and got.headers["ETag"] == etag
    r2 = env.client.patch(
        path,
        content=json.dumps({"properties": {"count": 3}}),
        headers={
            **env.auth(env.okutama),
            "If-Match": etag,
            "Content-Type": "application/merge-patch+json",
        },
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["properties"]["count"] == 3 and r2.headers["ETag"] != etag
    assert env.client.get(path, headers=env.auth(env.okutama)).headers["ETag"] == r2.headers["ETag"]
    body = feature(env.inside[OKUTAMA], kind="trace")
    r3 = env.client.put(
        path,
        content=json.dumps(body),
        headers={
            **env.auth(env.okutama),
            "If-Match": r2.headers["ETag"],
            "Content-Type": "application/geo+json",
        },
    )
    assert r3.status_code == 200 and r3.json()["properties"]["kind"] == "trace"
    r4 = env.client.delete(path, headers={**env.auth(env.okutama), "If-Match": r3.headers["ETag"]})
    assert r4.status_code == 204
    assert env.client.get(path, headers=env.auth(env.admin)).status_code == 404


def test_other_municipality_is_403_and_nothing_written(env: Env) -> None:
    n = count(env)
    r = post(env, env.okutama, feature(env.inside[HACHIOJI]))
    assert r.status_code == 403
    assert count(env) == n
    # an existing feature of 八王子市 cannot be changed or deleted by 奥多摩町
    st = env.store()
    theirs = next(
        f
        for f in st.iter_features("wildlife-sightings")
        if f.properties.get("municipality_code") == HACHIOJI
    )
    path = f"{ITEMS}/{theirs.id}"
    r = env.client.patch(
        path,
        content=json.dumps({"properties": {"count": 9}}),
        headers={**env.auth(env.okutama), "Content-Type": "application/json"},
    )
    assert r.status_code == 403
    assert env.client.delete(path, headers=env.auth(env.okutama)).status_code == 403
    assert st.get("wildlife-sightings", theirs.id) == theirs
    # moving an own feature into another municipality is refused too
    mine = post(env, env.okutama, feature(env.inside[OKUTAMA])).json()["id"]
    pt = env.inside[HACHIOJI]
    r = env.client.patch(
        f"{ITEMS}/{mine}",
        content=json.dumps({"geometry": {"type": "Point", "coordinates": [pt.x, pt.y]}}),
        headers={**env.auth(env.okutama), "Content-Type": "application/json"},
    )
    assert r.status_code == 403
    assert st.get("wildlife-sightings", mine).properties["municipality_code"] == OKUTAMA
    # an admin writes anywhere
    assert post(env, env.admin, feature(env.inside[HACHIOJI])).status_code == 201
    st.close()


def test_stale_if_match_is_412_and_nothing_written(env: Env) -> None:
    r = post(env, env.okutama, feature(env.inside[OKUTAMA]))
    path, etag = f"{ITEMS}/{r.json()['id']}", r.headers["ETag"]
    ok = env.client.patch(
        path,
        content=json.dumps({"properties": {"count": 2}}),
        headers={**env.auth(env.okutama), "If-Match": etag, "Content-Type": "application/json"},
    )
    assert ok.status_code == 200
    stale = env.client.patch(
        path,
        content=json.dumps({"properties": {"count": 5}}),
        headers={**env.auth(env.okutama), "If-Match": etag, "Content-Type": "application/json"},
    )
    assert stale.status_code == 412
    assert (
        env.client.delete(path, headers={**env.auth(env.okutama), "If-Match": etag}).status_code
        == 412
    )
    got = env.client.get(path, headers=env.auth(env.okutama))
    assert got.json()["properties"]["count"] == 2 and got.headers["ETag"] == ok.headers["ETag"]


def test_body_over_limit_is_413(env: Env) -> None:
    body = feature(env.inside[OKUTAMA], description="x" * (300 * 1024))
    n = count(env)
    assert post(env, env.okutama, body).status_code == 413
    assert count(env) == n


def test_bad_values_are_422_listing_accepted_and_bad_geometry_400(env: Env) -> None:
    r = post(env, env.okutama, feature(env.inside[OKUTAMA], species="panda"))
    assert r.status_code == 422
    assert all(s in r.json()["description"] for s in SPECIES)
    r = post(env, env.okutama, feature(env.inside[OKUTAMA], kind="dream"))
    assert r.status_code == 422 and "photographing" in r.json()["description"]
    r = post(env, env.okutama, feature(env.inside[OKUTAMA], colour="brown"))
    assert r.status_code == 422 and "species" in r.json()["description"]
    bad = feature(env.inside[OKUTAMA])
    bad["geometry"] = {"type": "Point", "coordinates": [500, 35]}
    assert post(env, env.okutama, bad).status_code == 400
    bad["geometry"] = {"type": "LineString", "coordinates": [[139, 35], [139.1, 35.1]]}
    assert post(env, env.okutama, bad).status_code == 400
    bad["geometry"] = {"type": "Point", "coordinates": "nope"}
    assert post(env, env.okutama, bad).status_code == 400
    assert post(env, env.okutama, {"type": "FeatureCollection"}).status_code == 400
    r = env.client.post(
        ITEMS, content="a,b", headers={**env.auth(env.okutama), "Content-Type": "text/csv"}
    )
    assert r.status_code == 415


# -- audit ----------------------------------------------------------------------------


def test_audit_records_who_before_after_and_is_admin_only(env: Env) -> None:
    r = post(env, env.okutama, feature(env.inside[OKUTAMA]))
    fid = r.json()["id"]
    env.client.patch(
        f"{ITEMS}/{fid}",
        content=json.dumps({"properties": {"count": 4}}),
        headers={**env.auth(env.okutama), "Content-Type": "application/json"},
    )
    assert env.client.get("/api/audit").status_code == 401
    assert env.client.get("/api/audit", headers=env.auth(env.okutama)).status_code == 403
    doc = env.client.get(
        "/api/audit",
        params={"collection": "wildlife-sightings", "feature": fid},
        headers=env.auth(env.admin),
    )
    assert doc.status_code == 200
    entries = doc.json()["entries"]
    assert [e["action"] for e in entries] == ["update", "create"]
    upd = entries[0]
    assert upd["who"] == {"name": "奥多摩町 環境整備課", "municipality": OKUTAMA, "admin": False}
    assert upd["before"]["properties"]["count"] == 1 and upd["after"]["properties"]["count"] == 4
    assert upd["at"].endswith("Z") and upd["state"] == "committed"
    assert entries[1]["before"] is None
    # a refused write leaves no committed record
    post(env, env.okutama, feature(env.inside[HACHIOJI]))
    all_entries = env.client.get("/api/audit", headers=env.auth(env.admin)).json()["entries"]
    assert len(all_entries) == 2
    # the CLI reads the same journal
    cfg = env.settings.work_dir / "config.yml"
    cfg.write_text(f"work_dir: {env.settings.work_dir}\n", "utf-8")
    from geoservice.cli import app

    out = CliRunner().invoke(app, ["audit", "list", "--json", "--feature", fid, "-c", str(cfg)])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == 2


def test_interrupted_write_is_detected_and_resolved(env: Env) -> None:
    from geoservice.auth.audit import AuditLog
    from geoservice.auth.tokens import Principal
    from geoservice.features import Feature

    st = env.store()
    log = AuditLog(AuthDB(auth_db_path(env.settings.work_dir)))
    who = Principal("x", "t", OKUTAMA, False)
    before = st.get("wildlife-sightings", "tokyo-kumap-1")
    after = Feature(before.id, {**before.properties, "count": 7}, before.geometry)
    seq_done = log.begin(who, "update", "wildlife-sightings", before.id, before, after)
    st.replace("wildlife-sightings", before.id, after)  # ... and the process "crashes"
    other = st.get("wildlife-sightings", "tokyo-kumap-2")
    seq_lost = log.begin(who, "update", "wildlife-sightings", other.id, other, after)
    assert log.reconcile(st, min_age_s=0) == {"recovered": 1, "aborted": 1, "unknown": 0}
    states = {e.seq: e.state for e in log.list(states=("recovered", "aborted"))}
    assert states == {seq_done: "recovered", seq_lost: "aborted"}
    st.close()


# -- CSV import -----------------------------------------------------------------------


def _csv(env: Env, rows: list[str]) -> str:
    oku, hachi = env.inside[OKUTAMA], env.inside[HACHIOJI]
    text = "\n".join(
        ["source_id,species,kind,reliability,observed_at,lon,lat,count,description", *rows]
    )
    return text.format(ox=oku.x, oy=oku.y, hx=hachi.x, hy=hachi.y) + "\n"


def _import(env: Env, token: str, text: str, mode: str) -> Any:
    return env.client.post(
        "/api/sightings/import",
        params={"mode": mode},
        content=text.encode(),
        headers={**env.auth(token), "Content-Type": "text/csv"},
    )


def test_csv_import_reports_by_line_and_reimport_changes_nothing(env: Env) -> None:
    text = _csv(
        env,
        [
            "A1,asian-black-bear,witness,high,2025-10-01,{ox},{oy},1,林道",
            "A2,panda,witness,high,2025-10-01,{ox},{oy},1,",
            'A3,wild-boar,trace,low,2025/10/03,{ox},{oy},2,"two\nlines"',
            "A4,sika-deer,witness,low,2025-10-04,{hx},{hy},1,八王子",
            "A5,sika-deer,witness,low,not-a-date,{ox},{oy},1,",
        ],
    )
    n = count(env)
    r = _import(env, env.okutama, text, "per-row")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["created"] == 2 and rep["accepted"] == 2 and rep["updated"] == 0
    assert [x["line"] for x in rep["rejected"]] == [3, 6, 7]
    assert "asian-black-bear" in rep["rejected"][0]["errors"][0]
    assert "outside" in rep["rejected"][1]["errors"][0]
    assert count(env) == n + 2
    again = _import(env, env.okutama, text, "per-row").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert count(env) == n + 2
    changed = text.replace("A1,asian-black-bear,witness,high", "A1,asian-black-bear,trace,high")
    third = _import(env, env.okutama, changed, "per-row").json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 1)
    audit = env.client.get("/api/audit", headers=env.auth(env.admin)).json()["entries"]
    assert {e["action"] for e in audit} == {"import.create", "import.update"}


def test_csv_all_or_nothing_writes_nothing_when_a_row_fails(env: Env) -> None:
    text = _csv(
        env,
        [
            "B1,asian-black-bear,witness,high,2025-10-01,{ox},{oy},1,",
            "B2,asian-black-bear,flying,high,2025-10-01,{ox},{oy},1,",
        ],
    )
    n = count(env)
    r = _import(env, env.okutama, text, "all-or-nothing")
    assert r.status_code == 422
    assert r.json()["rejected"][0]["line"] == 3 and r.json()["created"] == 0
    assert count(env) == n
    good = text.replace("flying", "trace")
    ok = _import(env, env.okutama, good, "all-or-nothing").json()
    assert ok["created"] == 2 and count(env) == n + 2
    assert _import(env, None or env.okutama, good, "bogus").status_code == 400
    assert env.client.post("/api/sightings/import", content=good).status_code == 401


def test_kumap_csv_reimport_of_built_records_is_unchanged(env: Env) -> None:
    src = json.loads((DATA / "bear" / "tokyo_bear_sightings_2023-2025.geojson").read_text("utf-8"))[
        "features"
    ][:20]
    lines = ["number,date,accuracy,sightings,lat,lon"]
    for f in src:
        p, (lon, lat) = f["properties"], f["geometry"]["coordinates"]
        lines.append(f"{p['number']},{p['date']},{p['accuracy']},{p['sightings']},{lat},{lon}")
    rep = _import(env, env.admin, "\n".join(lines) + "\n", "all-or-nothing").json()
    assert rep["unchanged"] == 20 and rep["created"] == 0 and rep["updated"] == 0


def test_kumap_csv_in_japanese_reads_the_feed_words_back_as_codes(env: Env) -> None:
    """くまっぷ exports write 高/中/低 and 目撃/痕跡/…/事故: the import stores our codes."""
    oku = env.inside[OKUTAMA]
    rows = [("ja-1", "高", "目撃"), ("ja-2", "低", "事故"), ("ja-3", "中", "捕獲")]
    text = "number,date,accuracy,sightings,lat,lon\n" + "".join(
        f"{n},2025/10/5,{rel},{kind},{oku.y},{oku.x}\n" for n, rel, kind in rows)
    rep = _import(env, env.okutama, text, "all-or-nothing").json()
    assert rep["created"] == 3, rep
    got = env.client.get(ITEMS, params={"limit": 1000}, headers=env.auth(env.admin)).json()
    stored = {f["properties"]["source_id"]: f["properties"] for f in got["features"]
              if f["properties"].get("source_id", "").startswith("ja-")}
    assert {k: (p["reliability"], p["kind"]) for k, p in stored.items()} == {
        "ja-1": ("high", "witness"), "ja-2": ("low", "injury"), "ja-3": ("middle", "capture")}


def test_csv_import_cli_with_progress(env: Env, tmp_path: Path) -> None:
    from geoservice.cli import app

    cfg = tmp_path / "config.yml"
    cfg.write_text(f"work_dir: {tmp_path}\nstore: {{path: {tmp_path}/store.gpkg}}\n", "utf-8")
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(_csv(env, ["C1,other,witness,low,2025-10-05,{ox},{oy},1,"]), "utf-8")
    res = CliRunner().invoke(
        app,
        [
            "sightings",
            "import",
            str(csv_file),
            "--token",
            env.okutama,
            "--mode",
            "per-row",
            "-c",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    assert '"created": 1' in res.output


def test_template_in_docs_imports(env: Env) -> None:
    text = (ROOT / "docs" / "sightings_import_template.csv").read_text("utf-8")
    rep = _import(env, env.okutama, text, "per-row").json()
    assert rep["rejected"] == [] and rep["created"] == 3


# -- citizen reports and moderation ------------------------------------------------------


def report(env: Env, pt: Point, **extra: Any) -> Any:
    body = {
        "point": [pt.x, pt.y],
        "species": "asian-black-bear",
        "kind": "witness",
        "observed_at": "2025-11-01T07:00:00+09:00",
        "count": 1,
        "description": "見た",
        **extra,
    }
    return env.client.post("/api/reports", json=body)


def test_citizen_report_is_pending_until_approved(env: Env) -> None:
    r = report(env, env.inside[OKUTAMA])
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.json()["status"] == "pending"
    assert env.client.get(f"{ITEMS}/{fid}").status_code == 404
    ids = {f["id"] for f in env.client.get(ITEMS, params={"limit": 10000}).json()["features"]}
    assert fid not in ids
    assert env.client.get(ITEMS, params={"status": "pending"}).json()["numberMatched"] == 0
    assert env.client.get(f"{ITEMS}/{fid}", headers=env.auth(env.okutama)).status_code == 200
    assert env.client.get(f"{ITEMS}/{fid}", headers=env.auth(env.hachioji)).status_code == 404
    mine = env.client.get(
        ITEMS, params={"limit": 10000, "status": "pending"}, headers=env.auth(env.okutama)
    ).json()
    assert [f["id"] for f in mine["features"]] == [fid]
    q = env.client.get("/api/moderation/queue", headers=env.auth(env.okutama)).json()
    assert [f["id"] for f in q["features"]] == [fid]
    assert (
        env.client.get("/api/moderation/queue", headers=env.auth(env.hachioji)).json()["features"]
        == []
    )
    assert (
        env.client.post(
            f"/api/moderation/{fid}/approve", headers=env.auth(env.hachioji)
        ).status_code
        == 403
    )
    ok = env.client.post(f"/api/moderation/{fid}/approve", headers=env.auth(env.okutama))
    assert ok.status_code == 200 and ok.json()["properties"]["status"] == "published"
    assert env.client.get(f"{ITEMS}/{fid}").status_code == 200
    acts = [
        e["action"]
        for e in env.client.get(
            "/api/audit", params={"feature": fid}, headers=env.auth(env.admin)
        ).json()["entries"]
    ]
    assert acts == ["moderation.approve", "report.create"]
    r2 = report(env, env.inside[OKUTAMA]).json()["id"]
    rej = env.client.post(f"/api/moderation/{r2}/reject", headers=env.auth(env.okutama))
    assert rej.json()["properties"]["status"] == "rejected"
    assert env.client.get(f"{ITEMS}/{r2}").status_code == 404


def test_citizen_report_validation(env: Env) -> None:
    assert report(env, env.inside[OKUTAMA], species="dragon").status_code == 422
    assert report(env, Point(150.0, 10.0)).status_code == 422  # outside Tokyo
    assert (
        env.client.post(
            "/api/reports",
            content=b"x" * (5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        ).status_code
        == 413
    )


def test_reports_are_rate_limited_per_client(built: Path, tmp_path: Path) -> None:
    for e in _env(built, tmp_path, reports_per_minute=3):
        codes = [report(e, e.inside[OKUTAMA]).status_code for _ in range(4)]
        assert codes == [201, 201, 201, 429]
        last = report(e, e.inside[OKUTAMA])
        assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    # the state is in SQLite: a second app over the same work dir agrees
    with TestClient(create_app(_settings(tmp_path, reports_per_minute=3))) as c2:
        r = c2.post("/api/reports", json={})
        assert r.status_code == 429


def test_report_photo_type_is_checked_by_magic_bytes(env: Env) -> None:
    png = base64.b64encode(PNG).decode()
    r = report(env, env.inside[OKUTAMA], photo=png, photo_content_type="image/png")
    assert r.status_code == 201
    fid = r.json()["id"]
    photo = env.client.get(f"/api/moderation/{fid}/photo", headers=env.auth(env.okutama))
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    assert photo.content == PNG
    fake = base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
    assert report(env, env.inside[OKUTAMA], photo=fake).status_code == 422
    assert (
        report(env, env.inside[OKUTAMA], photo=png, photo_content_type="image/jpeg").status_code
        == 422
    )
    big = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024)).decode()
    assert report(env, env.inside[OKUTAMA], photo=big).status_code == 413


def test_html_in_description_is_stored_verbatim(env: Env) -> None:
    text = '<script>alert("x")</script><b>熊</b> & more'
    fid = report(env, env.inside[OKUTAMA], description=text).json()["id"]
    got = env.client.get(f"{ITEMS}/{fid}", headers=env.auth(env.okutama)).json()
    assert got["properties"]["description"] == text
    page = env.client.get(f"{ITEMS}/{fid}", params={"f": "html"}, headers=env.auth(env.okutama))
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text


# -- sensitive locations --------------------------------------------------------------


def test_sensitive_locations_are_generalised_for_the_public(env: Env) -> None:
    pt = env.inside[OKUTAMA]
    serow = post(env, env.okutama, feature(pt, species="japanese-serow")).json()["id"]
    flagged = post(env, env.okutama, feature(pt, sensitive=True)).json()["id"]
    plain = post(env, env.okutama, feature(pt)).json()["id"]
    centre = generalise(pt, 1000)
    for fid in (serow, flagged):
        pub = env.client.get(f"{ITEMS}/{fid}").json()
        assert shape(pub["geometry"]).equals_exact(centre, 1e-7)
        assert not shape(pub["geometry"]).equals_exact(pt, 1e-6)
        assert pub["properties"]["location_generalised_m"] == 1000
        other = env.client.get(f"{ITEMS}/{fid}", headers=env.auth(env.hachioji)).json()
        assert shape(other["geometry"]).equals_exact(centre, 1e-7)
        for token in (env.okutama, env.admin):
            exact = env.client.get(f"{ITEMS}/{fid}", headers=env.auth(token)).json()
            assert shape(exact["geometry"]).equals_exact(pt, 1e-9)
            assert "location_generalised_m" not in exact["properties"]
    listed = {f["id"]: f for f in env.client.get(ITEMS, params={"limit": 10000}).json()["features"]}
    assert shape(listed[serow]["geometry"]).equals_exact(centre, 1e-7)
    assert shape(listed[plain]["geometry"]).equals_exact(pt, 1e-9)


def test_store_and_audit_are_in_separate_durable_files(env: Env) -> None:
    post(env, env.okutama, feature(env.inside[OKUTAMA]))
    con = sqlite3.connect(auth_db_path(env.settings.work_dir))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1
    con.close()
    # separate: the store file (GeoPackage) holds no audit journal
    assert auth_db_path(env.settings.work_dir).resolve() != Path(env.settings.store.path).resolve()
    gpkg = sqlite3.connect(env.settings.store.path)
    tables = {r[0] for r in gpkg.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    gpkg.close()
    assert "audit" not in tables and "tokens" not in tables


def _off_centre(pt: Point, cell: int = 1000, offset: float = 350.0) -> Point:
    """A point in the same ``cell`` m grid cell as ``pt``, ``offset`` m east and north of
    the cell's centre (so about 500 m from where the record is generalised to)."""
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:6677", always_xy=True)
    x, y = to_m.transform(pt.x, pt.y)
    cx, cy = ((math.floor(v / cell) + 0.5) * cell + offset for v in (x, y))
    lon, lat = to_m.transform(cx, cy, direction="INVERSE")
    return Point(round(lon, 7), round(lat, 7))


def test_spatial_queries_cannot_locate_a_generalised_record(env: Env) -> None:
    pt = _off_centre(env.inside[OKUTAMA])
    r = post(env, env.okutama, feature(pt, species="japanese-serow"))
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    centre = generalise(pt, 1000)
    d = 0.0005
    assert not Point(pt.x, pt.y).buffer(d).contains(centre)  # the record is moved ~500 m
    tiny = f"{pt.x - d},{pt.y - d},{pt.x + d},{pt.y + d}"
    around_centre = f"{centre.x - d},{centre.y - d},{centre.x + d},{centre.y + d}"

    def ids(params: dict[str, str], token: str | None = None) -> set[str]:
        h = env.auth(token) if token else {}
        doc = env.client.get(ITEMS, params={"limit": "1000", **params}, headers=h).json()
        return {f["id"] for f in doc["features"]}

    assert fid not in ids({"bbox": tiny})
    flt = f"S_INTERSECTS(geometry, POINT({pt.x} {pt.y}))"
    assert fid not in ids({"filter": flt, "filter-lang": "cql2-text"})
    assert fid in ids({"bbox": around_centre})
    assert fid in ids({"bbox": tiny}, env.okutama)


def _tile_ids(env: Env, pt: Point, **headers: str) -> set[str]:
    """Feature ids in the z14 vector tile holding ``pt``."""
    import math

    import mapbox_vector_tile

    z = 14
    n = 2**z
    x = int((pt.x + 180) / 360 * n)
    lat = math.radians(pt.y)
    y = int((1 - math.asinh(math.tan(lat)) / math.pi) / 2 * n)
    r = env.client.get(
        f"/ogc/collections/wildlife-sightings/tiles/WebMercatorQuad/{z}/{y}/{x}", headers=headers
    )
    if r.status_code == 204:
        return set()
    assert r.status_code == 200, r.text
    layer = mapbox_vector_tile.decode(r.content).get("wildlife-sightings", {"features": []})
    return {str(f["properties"]["id"]) for f in layer["features"]}


def test_vector_tiles_apply_the_read_policy(env: Env) -> None:
    """A pending report is absent from public tiles and present for its municipality."""
    fid = report(env, env.inside[OKUTAMA]).json()["id"]
    assert fid not in _tile_ids(env, env.inside[OKUTAMA])
    assert fid in _tile_ids(env, env.inside[OKUTAMA], **env.auth(env.okutama))
    env.client.post(f"/api/moderation/{fid}/approve", headers=env.auth(env.okutama))
    assert fid in _tile_ids(env, env.inside[OKUTAMA])


def test_public_tiles_are_cached_revalidated_and_invalidated_by_writes(env: Env) -> None:
    """A public tile carries a strong ETag (304 on If-None-Match); an approved report
    changes the ETag and appears at once (the cache is keyed by the data version); token
    holders' tiles are never shared (no ETag)."""
    import math

    pt = env.inside[OKUTAMA]
    z, n = 14, 2**14
    x = int((pt.x + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(pt.y))) / math.pi) / 2 * n)
    url = f"/ogc/collections/wildlife-sightings/tiles/WebMercatorQuad/{z}/{y}/{x}"
    first = env.client.get(url)
    assert first.status_code in (200, 204)
    tag = first.headers["etag"]
    again = env.client.get(url)
    assert again.headers["etag"] == tag and again.content == first.content
    assert env.client.get(url, headers={"If-None-Match": tag}).status_code == 304
    assert "etag" not in env.client.get(url, headers=env.auth(env.okutama)).headers
    fid = report(env, pt).json()["id"]
    env.client.post(f"/api/moderation/{fid}/approve", headers=env.auth(env.okutama))
    after = env.client.get(url, headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    assert fid in _tile_ids(env, pt)


def test_tile_etag_changes_with_the_generalisation_rules(
    built: Path, tmp_path: Path
) -> None:
    """Same rows, a species newly marked sensitive: the public tile's ETag must change, or
    a CDN revalidating with If-None-Match would keep the exact positions (304)."""
    import math

    def etag(tmp: Path, **sightings: Any) -> str:
        tmp.mkdir()
        gen = _env(built, tmp, **sightings)
        env = next(gen)
        pt = env.inside[OKUTAMA]
        n = 2**12
        x = int((pt.x + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(pt.y))) / math.pi) / 2 * n)
        r = env.client.get(f"/ogc/collections/wildlife-sightings/tiles/WebMercatorQuad/12/{y}/{x}")
        gen.close()
        return str(r.headers["etag"])

    plain = etag(tmp_path / "a")
    assert etag(tmp_path / "b") == plain  # same data, same rules: same tag
    assert etag(tmp_path / "c", sensitive_species={"asian-black-bear": 1000}) != plain
