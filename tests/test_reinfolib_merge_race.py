"""Two answers merging one API feature at once (a polygon crossing the edge between the
tiles each fetched) must leave the whole polygon in the collection, on both backends."""

from __future__ import annotations

import threading

from shapely.geometry import box

from geoservice.config import Settings
from geoservice.reinfolib.cache import Ledger, write_merged
from geoservice.reinfolib.merge import Piece, feature_id
from geoservice.reinfolib.tiles import Tile
from geoservice.store import open_store
from tests.test_reinfolib import store_settings  # noqa: F401 - the shared fixture

PROPS = {"use_area_ja": "第一種低層住居専用地域", "u_floor_area_ratio_ja": "100%",
         "u_building_coverage_ratio_ja": "50%", "city_code": "13111"}
LEFT, RIGHT = box(139.700, 35.570, 139.705, 35.575), box(139.705, 35.570, 139.710, 35.575)


def test_interleaved_merges_keep_every_piece(
        store_settings: Settings,  # noqa: F811 - the fixture imported above
) -> None:
    """On each backend (``store_settings``: two empty API layers and the demo boundaries)."""
    store = open_store(store_settings)
    spec = store.spec("rf-use")
    first, second = Ledger.of(store), Ledger.of(store)
    first.put(spec, Tile(15, 1, 1), "2026-12-06T00:00:00+00:00", "u1",
              [Piece("k", PROPS, LEFT)])
    read, go = threading.Event(), threading.Event()
    pieces = first.pieces

    def slow_pieces(layer: str, identities: list[str]) -> list[Piece]:
        found = pieces(layer, identities)  # what this answer knows: the left half
        read.set()
        go.wait(3)
        return found

    first.pieces = slow_pieces  # type: ignore[method-assign]
    merging = threading.Thread(target=write_merged, args=(store, spec, first))
    merging.start()
    assert read.wait(10)

    def other_answer() -> None:  # its tile brings the right half, then it merges
        second.put(spec, Tile(15, 2, 1), "2026-12-06T00:00:01+00:00", "u2",
                   [Piece("k", PROPS, RIGHT)])
        write_merged(store, spec, second)

    other = threading.Thread(target=other_answer)
    other.start()
    other.join(1.0)  # without a lock it finishes here, before the first merge writes
    go.set()
    merging.join(10)
    other.join(10)
    assert not merging.is_alive() and not other.is_alive()
    try:
        merged = store.get("rf-use", feature_id(spec, "k")).geometry
        assert merged is not None
        assert merged.covers(LEFT) and merged.covers(RIGHT), merged.bounds
        assert second.dirty("rf-use") == []
    finally:
        first.close()
        second.close()
        store.close()
