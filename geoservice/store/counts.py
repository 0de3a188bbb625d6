"""Exact ``numberMatched`` without counting the table again for every page.

Why: at city size (hundreds of thousands of buildings) ``count(*)`` of a filter is the
dearest part of a page - a client paging through 30 pages of one query paid for 30
identical counts.  Both stores keep

- the **unfiltered count** of each collection in their metadata, maintained by every
  write in the write's own transaction (so it is exact in the snapshot that reads it);
- **filtered counts** here, per (collection, query without paging and sorting), under the
  collection's *data version* at the moment they were counted.  A page reads the version
  in the same snapshot as its rows; when it equals the cached one, the cached count is
  that snapshot's count, else the page counts again (and replaces the entry).

The cache is per process, bounded (least recently used out first) and needs no
invalidation messages: a write anywhere changes the version every reader compares with.
A filter value never seen before is still counted - except on static layers, where
``value_index`` answers comparisons of a declared numeric index from sorted values.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from geoservice.store.base import Query

#: Distinct filtered queries remembered per process (an entry is a few hundred bytes).
MAX_ENTRIES = 4096


def query_key(collection: str, query: Query) -> str:
    """What a count depends on: the collection and the query less paging and sorting.

    ``repr`` of the frozen query (filter trees included) is deterministic and keeps
    queries that differ in any constraint apart."""
    return f"{collection}\x00{dataclasses.replace(query, limit=0, offset=0, sortby=())!r}"


class CountCache:
    """Thread-safe LRU of ``key -> (data version, count)``."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, version: str | None) -> int | None:
        """The count of ``key`` counted at ``version``, or ``None``."""
        if version is None:
            return None
        with self._lock:
            entry = self._items.get(key)
            if entry is None or entry[0] != version:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return entry[1]

    def candidate(self, key: str) -> tuple[str, int] | None:
        """The last ``(version, count)`` of ``key``, to be checked against the version a
        page reads in its own snapshot."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, version: str | None, count: int) -> None:
        """Remember ``count`` for ``key`` at ``version`` (nothing when unversioned)."""
        if version is None:
            return
        with self._lock:
            self._items[key] = (version, count)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
