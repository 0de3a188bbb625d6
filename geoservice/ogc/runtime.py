"""What the app builds once at start-up and every request reads: store, specs, pygeoapi."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from geoservice.catalogue import LayerSpec
from geoservice.config import Settings
from geoservice.errors import NotFound
from geoservice.ogc.pygeoapi_adapter import Pygeoapi
from geoservice.store import Store

if TYPE_CHECKING:
    from geoservice.reinfolib.source import ReinfolibSource
    from geoservice.web.html import HtmlRenderer


@dataclass
class Runtime:
    """The state of one app instance (nothing here differs between worker processes)."""

    settings: Settings
    store: Store
    specs: dict[str, LayerSpec]
    pygeoapi: Pygeoapi
    html: HtmlRenderer
    extra_conformance: list[str] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    #: the store the public read paths use (a read-replica view of ``store``, or ``store``)
    read_store: Store | None = None
    #: the 不動産情報ライブラリ API layers (site queries, prefetch); off without a key
    reinfolib: ReinfolibSource | None = None

    @property
    def reader(self) -> Store:
        """The store for public reads: the replica when one is configured."""
        return self.read_store or self.store

    @property
    def base(self) -> str:
        """Public URL of ``/ogc``."""
        return f"{self.settings.server.base_url}/ogc"

    @property
    def collections(self) -> set[str]:
        """Ids of the collections served."""
        return set(self.specs)

    def spec_of(self, cid: str) -> LayerSpec:
        """The spec of a served collection (``NotFound``, with a link to the list, if not)."""
        spec = self.specs.get(cid)
        if spec is None:
            raise NotFound(f"collection {cid!r} does not exist; see {self.base}/collections")
        return spec

    @property
    def limit_default(self) -> int:
        """Default page size."""
        return self.settings.server.limit_default

    @property
    def limit_max(self) -> int:
        """Largest page size (larger requests are clamped)."""
        return self.settings.server.limit_max


def runtime_of(request: Request) -> Runtime:
    """The runtime built by the lifespan (for plain Starlette endpoints)."""
    return request.app.state.runtime  # type: ignore[no-any-return]


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: :func:`runtime_of`.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool,
    one thread hop per request for a dictionary lookup."""
    return runtime_of(request)


#: A route parameter receiving the runtime.
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def read_store(rt: Runtime, request: Request, cid: str) -> Store:
    """The store as this request may read ``cid``: the read replica when configured, seen
    through a room's read policy when one is installed (``policy(request, cid, base)``)."""
    policy = rt.services.get("ogc.read_policy")
    base = rt.reader
    return base if policy is None else policy(request, cid, base)  # type: ignore[no-any-return]
