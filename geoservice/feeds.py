"""Reading another OGC API Features collection page by page (``rel=next``).

The harvest of a neighbour's sightings and the incidents ingest both follow a remote
collection's ``next`` links; they share this pager, so both treat a remote the same way:
pages are yielded one at a time (the caller writes each before the next is fetched), and an
unreachable remote, an HTTP error or a page that is not JSON is a ``SourceError`` naming the
source and the URL - never a traceback.  A ``next`` link seen before ends the walk (a remote
that loops), and so does ``MAX_PAGES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx

from geoservice.errors import SourceError

#: The most pages one walk follows.
MAX_PAGES = 100_000
Page = list[dict[str, Any]]


def items_url(url: str, collection: str) -> str:
    """``{landing page}/collections/{collection}/items``."""
    return f"{url.rstrip('/')}/collections/{collection}/items"


def _get(client: httpx.Client, url: str, params: dict[str, Any] | None, source: str
         ) -> tuple[dict[str, Any], str]:
    """One page as JSON and the URL it came from; any failure is a ``SourceError``."""
    try:
        r = client.get(url, params=params, headers={"Accept": "application/geo+json"})
    except httpx.HTTPError as exc:
        raise SourceError(f"feed {source}: GET {url} failed ({exc})") from None
    if r.status_code >= 400:
        raise SourceError(f"feed {source}: GET {r.url} -> HTTP {r.status_code}")
    try:
        doc = r.json()
    except ValueError:
        raise SourceError(f"feed {source}: GET {r.url} did not return JSON") from None
    if not isinstance(doc, dict):
        raise SourceError(f"feed {source}: GET {r.url} did not return a FeatureCollection")
    return doc, str(r.url)


def _next(doc: dict[str, Any], base: str) -> str | None:
    href = next((lk.get("href") for lk in doc.get("links") or []
                 if isinstance(lk, dict) and lk.get("rel") == "next" and lk.get("href")), None)
    return None if href is None else urljoin(base, str(href))


def pages(
    client: httpx.Client, url: str, params: dict[str, Any] | None, source: str,
    max_pages: int = MAX_PAGES,
) -> Iterator[Page]:
    """The features of ``url`` (an items URL, first asked with ``params``), one page at a
    time, until a page is empty, has no ``next`` link, or ``max_pages`` were read."""
    seen: set[str] = set()
    nxt: str | None = url
    for _ in range(max_pages):
        if nxt is None:
            return
        doc, at = _get(client, nxt, params, source)
        feats = doc.get("features") or []
        if not feats:
            return
        yield list(feats)
        nxt, params = _next(doc, at), None
        if nxt in seen:
            return
        if nxt is not None:
            seen.add(nxt)
