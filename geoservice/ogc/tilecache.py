"""An in-process cache of public vector tiles, keyed by the store's data version.

Why: a map view asks for the same tiles again and again, and encoding one costs a
PostgreSQL query plus the encoder (``store.tiling``) or, on the embedded store, a bbox query
plus the Python MVT encoder (~15 ms).  The key carries ``Store.data_version`` - which
changes with every committed write, in this process or another worker - so a cached tile
is never served after the data under it changed.  Only public requests (no
``Authorization``) are cached: what a token holder sees depends on the token.

Bounded by bytes (least recently used out first); per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from geoservice import __version__
from geoservice.runtime import Services

#: Default budget per process (``server.tile_cache_mb``).  A busy z10-z14 map touches a
#: few thousand tiles of 1-40 KB.
MAX_BYTES = 64 * 1024 * 1024

Key = tuple[str, int, int, int, str]


class TileCache:
    """Thread-safe LRU of tile bytes with a total-size bound."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Key, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Key, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


def etag(key: Key) -> str:
    """A strong ETag for a public tile: same data version (rules included), address and
    encoder (the package version), same bytes."""
    text = "/".join(map(str, (__version__, *key)))
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 ``If-None-Match`` (a list of tags, weak ones compared weakly, or ``*``)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or tag in tags or f"W/{tag}" in tags


def of(services: Services, max_mb: int) -> TileCache | None:
    """The cache of one app (its runtime's services), or ``None`` when configured off
    (``server.tile_cache_mb: 0``).  Per app, not per module: data versions are only
    comparable within one store."""
    if max_mb <= 0:
        return None
    cache = services.get(TileCache)
    return cache if cache is not None else services.put(TileCache(max_mb * 1024 * 1024))
