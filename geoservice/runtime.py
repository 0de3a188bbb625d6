"""What the app builds once at start-up and every request reads, and the seams rooms plug into.

Shared floor: this module imports no room and not the OGC adapter, so a room reaches the
runtime without pulling in pygeoapi.  A room (``geoservice.rooms.Room``) adds to the
runtime in its ``attach``, through typed slots only:

* its service objects: ``rt.services.put(obj)``, read back as ``rt.services.get(Type)``
  (one slot per class; no string keys, no casts);
* a read policy of a collection: ``rt.read_policies[cid] = policy``;
* extra ``/ogc/collections`` entries and collection links: ``rt.extra_collections``,
  ``rt.collection_links``;
* conformance classes: ``rt.conform(uris)``;
* portal links of its pages: ``rt.pages``;
* shutdown hooks (run last first by the app lifespan): ``rt.shutdown_hooks``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Protocol, TypedDict, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.applications import Starlette

from geoservice.catalogue import LayerSpec
from geoservice.config import Settings
from geoservice.errors import NotFound, ServiceError
from geoservice.loaders.sources import BuildReport, Mirror
from geoservice.store import Store
from geoservice.web.html import HtmlRenderer

if TYPE_CHECKING:
    from geoservice.reinfolib.source import ReinfolibSource

T = TypeVar("T")

#: ``policy(request, store)`` -> the store as this request may read one collection.
ReadPolicy = Callable[[Request, Store], Store]
#: A non-feature collection document for the ``/ogc/collections`` listing.
CollectionDoc = Callable[[], dict[str, object]]
#: Links a room adds to the document of a collection (``[]`` for collections it ignores).
CollectionLinks = Callable[[str], list[dict[str, str]]]
#: A room's step after a build swapped the new store in: ``step(settings, specs, mirror,
#: report)`` (derived files such as rasters or 3D Tiles; failures go to ``report.skipped``).
AfterBuild = Callable[[Settings, dict[str, LayerSpec], Mirror | None, BuildReport], None]
#: Called once when the app stops; an awaitable result is awaited.
ShutdownHook = Callable[[], Awaitable[None] | None]


class PageLink(TypedDict):
    """A page's entry on the portal."""

    href: str
    title: str
    description: str


class Services:
    """One typed slot per service class: ``put(obj)``, then ``get(Type)`` gives it back typed.

    The key is the class, so a reader names what it needs by type and the type checker
    knows what it gets; two rooms cannot collide on a string.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, object] = {}

    def put(self, service: T) -> T:
        """Fill the slot of ``type(service)`` (replacing what was there); return ``service``."""
        self._by_type[type(service)] = service
        return service

    def get(self, kind: type[T]) -> T | None:
        """The service of class ``kind``, or ``None`` when no room put one."""
        found = self._by_type.get(kind)
        return found if isinstance(found, kind) else None

    def require(self, kind: type[T], missing: ServiceError | None = None) -> T:
        """The service of class ``kind``; raises ``missing`` (default: a 500 OGC exception)
        when its room did not attach."""
        found = self.get(kind)
        if found is None:
            raise missing or ServiceError(f"{kind.__name__} is not available on this server")
        return found


@dataclass
class Runtime:
    """The state of one app instance (nothing here differs between worker processes)."""

    settings: Settings
    store: Store
    specs: dict[str, LayerSpec]
    html: HtmlRenderer
    #: the store the public read paths use (a read-replica view of ``store``, or ``store``)
    read_store: Store | None = None
    #: the 不動産情報ライブラリ API layers (site queries, prefetch); off without a key
    reinfolib: ReinfolibSource | None = None
    #: collections the rooms use but OGC API does not list: an API layer that is empty and
    #: cannot be filled (no key) - id -> why, said in the 404 of a direct request
    unlisted: dict[str, str] = field(default_factory=dict)
    services: Services = field(default_factory=Services)
    extra_conformance: list[str] = field(default_factory=list)
    read_policies: dict[str, ReadPolicy] = field(default_factory=dict)
    extra_collections: list[CollectionDoc] = field(default_factory=list)
    collection_links: list[CollectionLinks] = field(default_factory=list)
    pages: list[PageLink] = field(default_factory=list)
    shutdown_hooks: list[ShutdownHook] = field(default_factory=list)

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
        """Ids of the collections served (``unlisted`` ones are not)."""
        return set(self.specs) - set(self.unlisted)

    def spec_of(self, cid: str) -> LayerSpec:
        """The spec of a served collection (``NotFound``, with a link to the list, if not)."""
        spec = self.specs.get(cid)
        if cid in self.unlisted:
            raise NotFound(f"collection {cid!r} is not served here: {self.unlisted[cid]};"
                           f" see {self.base}/collections")
        if spec is None:
            raise NotFound(f"collection {cid!r} does not exist; see {self.base}/collections")
        return spec

    def conform(self, uris: Iterable[str]) -> None:
        """Declare conformance classes (each listed once, in the order first declared)."""
        self.extra_conformance.extend(u for u in uris if u not in self.extra_conformance)

    @property
    def limit_default(self) -> int:
        """Default page size."""
        return self.settings.server.limit_default

    @property
    def limit_max(self) -> int:
        """Largest page size (larger requests are clamped)."""
        return self.settings.server.limit_max


def runtime_of_app(app: Starlette) -> Runtime:
    """The runtime the app's lifespan built (tests and tools reach services this way)."""
    rt = app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


def runtime_of(request: Request) -> Runtime:
    """The runtime built by the lifespan (for plain Starlette endpoints)."""
    return runtime_of_app(request.app)


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: :func:`runtime_of`.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool,
    one thread hop per request for a dictionary lookup."""
    return runtime_of(request)


#: A route parameter receiving the runtime.
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def service_dependency(
    kind: type[T], missing: ServiceError | None = None
) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency giving the service of class ``kind`` (see ``Services.require``).

    Rooms name theirs, e.g. ``HazardsDep = Annotated[HazardService, Depends(
    service_dependency(HazardService))]``."""

    async def dependency(request: Request) -> T:
        return runtime_of(request).services.require(kind, missing)

    dependency.__name__ = f"{kind.__name__.lower()}_of"
    return dependency


def read_store(rt: Runtime, request: Request, cid: str) -> Store:
    """The store as this request may read ``cid``: the read replica when configured, seen
    through the collection's read policy when a room installed one."""
    policy = rt.read_policies.get(cid)
    return rt.reader if policy is None else policy(request, rt.reader)


class Room(Protocol):
    """A domain room as the composition root (``geoservice.app.rooms``) sees it.

    ``router`` is included before the ``/ogc`` routes (a room may serve a more specific
    OGC path); ``pages`` (HTML routes) before it, ``page`` is the portal's link to them;
    ``attach(rt)`` builds the room's services once at start-up, in the order rooms are
    listed; ``after_build`` runs after a ``geoservice build`` that built the room's layers
    (those whose ``domain`` is the room's name).  A room needing another's service gets it
    from the composition root as a constructor argument, never by reaching into the other
    room.
    """

    @property
    def name(self) -> str: ...

    @property
    def router(self) -> APIRouter: ...

    @property
    def pages(self) -> APIRouter | None: ...

    @property
    def page(self) -> PageLink | None: ...

    @property
    def after_build(self) -> AfterBuild | None: ...

    def attach(self, rt: Runtime) -> None:
        """Build the room's services and plug them into ``rt`` (see the module docstring)."""


@dataclass(frozen=True)
class RoomParts:
    """The plain ``Room``: its parts given as values (what every room here needs)."""

    name: str
    router: APIRouter
    attach_fn: Callable[[Runtime], None]
    pages: APIRouter | None = None
    page: PageLink | None = None
    after_build: AfterBuild | None = None

    def attach(self, rt: Runtime) -> None:
        """Run the room's start-up function."""
        self.attach_fn(rt)
