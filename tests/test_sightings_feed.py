"""Atom feeds of published sightings (RFC 4287 + GeoRSS), read with ``feedparser``.

Per municipality and per bbox, the entries are exactly the public OGC API's published
records (newest first); a pending citizen report never appears; a sensitive record appears
at the centre of its grid cell, saying so; bad parameters are 400s that say what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from shapely.geometry import Point, box

from geoservice.sightings.policy import generalise
from tests import test_sightings_api as sa
from tests.test_sightings_api import ITEMS, OKUTAMA, Env, feature, post, report

FEED = "/api/sightings/feed.atom"
built = sa.built  # the module-scoped store of admin-boundaries + wildlife-sightings


@pytest.fixture
def env(built: Path, tmp_path: Path) -> Iterator[Env]:
    """A fresh writable copy of that store with tokens, as in test_sightings_api."""
    yield from sa._env(built, tmp_path)


def parse(env: Env, **params: Any) -> Any:
    r = env.client.get(FEED, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/atom+xml")
    doc = feedparser.parse(r.content)
    assert not doc.bozo, doc.bozo_exception
    return doc


def point(entry: Any) -> Point:
    """The entry's GeoRSS-Simple point (feedparser reads "lat lon" into GeoJSON order)."""
    assert entry.where["type"] == "Point"
    lon, lat = entry.where["coordinates"]
    return Point(lon, lat)


def public_ids(env: Env, **params: Any) -> list[str]:
    q = {"limit": 500, "sortby": "-observed_at", **params}
    return [f["id"] for f in env.client.get(ITEMS, params=q).json()["features"]]


def test_municipality_feed_is_the_published_records(env: Env) -> None:
    pt = env.inside[OKUTAMA]
    plain = post(env, env.okutama, feature(pt, description="沢沿いで目撃")).json()["id"]
    flagged = post(env, env.okutama, feature(pt, sensitive=True)).json()["id"]
    pending = report(env, pt).json()["id"]
    doc = parse(env, municipality=OKUTAMA, limit=500)
    assert doc.version == "atom10"
    assert "奥多摩町" in doc.feed.title
    ids = [e.id.rsplit("/", 1)[1] for e in doc.entries]
    assert ids and set(ids) == set(public_ids(env, municipality_code=OKUTAMA))
    assert plain in ids and flagged in ids and pending not in ids
    times = [e.updated_parsed for e in doc.entries]
    assert times == sorted(times, reverse=True)
    by_id = {e.id.rsplit("/", 1)[1]: e for e in doc.entries}
    assert point(by_id[plain]).equals_exact(pt, 1e-6)
    assert by_id[plain].summary == "沢沿いで目撃"
    assert "ツキノワグマ（目撃）— 奥多摩町 2025-10-01" == by_id[plain].title
    assert point(by_id[flagged]).equals_exact(generalise(pt, 1000), 1e-6)
    assert not point(by_id[flagged]).equals_exact(pt, 1e-5)
    assert "一般化" in by_id[flagged].summary
    assert by_id[plain].link.endswith(f"/items/{plain}?f=html")
    assert any(link.rel == "self" for link in doc.feed.links)
    # moderation: once approved, the report goes out
    r = env.client.post(f"/api/moderation/{pending}/approve", headers=env.auth(env.okutama))
    assert r.status_code == 200, r.text
    assert pending in {e.id.rsplit("/", 1)[1] for e in parse(env, municipality=OKUTAMA).entries}


def test_bbox_feed_holds_only_points_inside(env: Env) -> None:
    area = (139.0, 35.7, 139.3, 35.9)
    doc = parse(env, bbox=",".join(map(str, area)), limit=20)
    assert 0 < len(doc.entries) <= 20
    assert all(box(*area).buffer(1e-9).contains(point(e)) for e in doc.entries)
    ids = [e.id.rsplit("/", 1)[1] for e in doc.entries]
    assert ids == public_ids(env, bbox=",".join(map(str, area)), limit=20)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"municipality": "okutama"}, "5-digit municipality code"),
        ({"municipality": "99999"}, "not a municipality"),
        ({"limit": "0"}, "from 1 to 500"),
        ({"limit": "²"}, "from 1 to 500"),  # str.isdigit() says yes, int() says no
        ({"bbox": "1,2,3"}, "4 or 6 comma-separated numbers"),
        ({"since": "2025"}, "accepted: bbox, limit, municipality"),
    ],
)
def test_bad_parameters_are_400(env: Env, params: dict[str, str], says: str) -> None:
    r = env.client.get(FEED, params=params)
    assert r.status_code == 400
    assert says in r.json()["description"] and r.json()["code"]


def test_feed_is_linked_from_metadata_and_map(env: Env) -> None:
    meta = env.client.get("/ogc/collections/wildlife-sightings?f=json").json()
    atom = [link for link in meta["links"] if link["type"] == "application/atom+xml"]
    assert atom and atom[0]["href"].endswith(FEED)
    page = env.client.get("/map/").text
    assert 'type="application/atom+xml"' in page and FEED in page
    other = env.client.get("/ogc/collections/admin-boundaries?f=json").json()
    assert not [link for link in other["links"] if link["type"] == "application/atom+xml"]


@pytest.mark.parametrize(("observed_at", "day"), [
    ("2025-11-20T20:00:00+09:00", "2025-11-20"),  # evening in Japan, stored with its offset
    ("2025-11-20T00:30:00+09:00", "2025-11-20"),
    ("2025-11-20T14:59:00Z", "2025-11-20"),  # 23:59 JST
    ("2025-11-20T15:00:00Z", "2025-11-21"),  # 00:00 JST the next day
])
def test_entry_title_names_the_day_in_japan(observed_at: str, day: str) -> None:
    """The title's day is the Japan-time day of the sighting, whatever offset it was
    stored with (a +09:00 time was shifted by another nine hours before)."""
    from geoservice.features import Feature
    from geoservice.sightings.feed import entry_title

    props = {"observed_at": observed_at, "species": "asian-black-bear", "kind": "witness",
             "municipality_code": "13308"}
    assert entry_title(Feature("x", props, None), {"13308": "奥多摩町"}).endswith(f"奥多摩町 {day}")
