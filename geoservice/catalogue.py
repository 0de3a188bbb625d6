"""The layer catalogue: one declarative YAML spec per layer, validated by pydantic.

Adding a layer is adding a file under ``layers/``; code changes only for a new format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PropertyType = Literal["string", "integer", "number", "boolean", "date", "datetime"]


class Licence(BaseModel):
    """The licence a layer's data is published under."""

    model_config = ConfigDict(extra="forbid")
    name: str
    url: str


class PropertySpec(BaseModel):
    """One attribute of the layer: its stored name, type and where it comes from."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: PropertyType = "string"
    title: str | None = None
    description: str | None = None
    source: str | None = Field(None, description="Field name in the source; defaults to name")
    enum: list[Any] | None = None

    @property
    def source_field(self) -> str:
        """The source attribute this property is read from."""
        return self.source or self.name


class SourceSpec(BaseModel):
    """Where the layer's data comes from and which loader reads it.

    ``kind: file`` (the default) is loaded by ``geoservice build`` from ``paths`` with the
    ``format`` loader.  ``kind: reinfolib`` is fetched per tile from MLIT's 不動産情報ライブラリ
    API (``geoservice.reinfolib``): ``api`` at ``zoom`` with the fixed ``params``; the build
    only creates its (empty) collection, prefetch and site queries fill it.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["file", "reinfolib"] = "file"
    format: str = Field(
        "reinfolib", description="Loader name, e.g. geojson, csv-points, plateau-urf"
    )
    paths: list[str] = Field(
        default_factory=list, description="Source files, relative to the mirror directory"
    )
    api: str | None = Field(None, description="reinfolib: the API id, e.g. XKT002")
    zoom: int | None = Field(None, description="reinfolib: the zoom tiles are fetched at")
    params: dict[str, str | int] = Field(
        default_factory=dict, description="reinfolib: fixed query parameters (year, from, to…)"
    )
    identity: list[str] = Field(
        default_factory=list,
        description="reinfolib: API properties that identify one feature across tiles "
        "(empty: all of them, plus the coordinates of points)",
    )
    bundled: bool = Field(
        False, description="Files ship with the project (data/), not with a mirror"
    )
    url: str | None = Field(None, description="The official download URL")
    crs: str = "EPSG:4326"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceSpec:
        if self.kind == "file":
            if not self.paths or self.format == "reinfolib":
                raise ValueError("a file source needs `format` and at least one of `paths`")
            return self
        from geoservice.reinfolib.apis import api  # lazy: the catalogue is imported first

        if self.api is None or self.zoom is None:
            raise ValueError("a reinfolib source needs `api` (e.g. XKT002) and `zoom`")
        from geoservice.reinfolib.errors import ReinfolibError

        try:
            documented = api(self.api)
            documented.check_zoom(self.zoom)
            documented.check_params(dict(self.params))
        except ReinfolibError as exc:
            raise ValueError(exc.description) from None
        self.format = "reinfolib"
        return self


class Coverage(BaseModel):
    """The area where the layer is complete; outside it the layer is unknown, not empty."""

    model_config = ConfigDict(extra="forbid")
    description: str
    bbox: tuple[float, float, float, float] | None = None
    municipalities: list[str] | None = None
    extent_of_data: bool = Field(
        False, description="Coverage is the union of the data's own extent"
    )


class TileSpec(BaseModel):
    """How the layer's vector tiles are made (``geoservice.store.tiling``).

    Below ``maxzoom`` geometries are simplified to the tile's resolution and polygons
    smaller than a pixel are coalesced; every tile is kept under ``max_bytes`` by the
    documented strategy (coarser coalescing, drop-densest for points, attribute
    thinning), never by cutting at a feature count.  Outside ``minzoom..maxzoom`` a tile
    is empty (204)."""

    model_config = ConfigDict(extra="forbid")
    minzoom: int = Field(0, ge=0, le=22)
    maxzoom: int = Field(22, ge=0, le=22, description="Full detail here; empty above")
    max_bytes: int = Field(500_000, ge=4096, description="Per-tile byte budget")
    detail_zoom: int = Field(
        0, ge=0, le=22, description="Below this zoom only `low_zoom_properties` are kept"
    )
    low_zoom_properties: list[str] = Field(
        default_factory=list, description="Properties kept when attributes are thinned"
    )
    prebuild: bool = Field(
        False, description="Make every tile up to maxzoom at build time (GeoPackage store; "
        "layers that only a build changes)"
    )

    @model_validator(mode="after")
    def _range(self) -> TileSpec:
        if self.minzoom > self.maxzoom:
            raise ValueError(f"tiles: minzoom {self.minzoom} > maxzoom {self.maxzoom}")
        return self


class LayerSpec(BaseModel):
    """A layer as declared in ``layers/<id>.yml``."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    title_en: str | None = None
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    domain: str = Field("general", description="The domain room that owns the layer")
    licence: Licence
    attribution: str
    synthetic: bool = False
    source: SourceSpec
    coverage: Coverage
    geometry_type: str = "Geometry"
    geometry_name: str = Field("geometry", description="Name of the geometry in queryables")
    id_property: str | None = Field(None, description="Source field giving a stable id")
    properties: list[PropertySpec] = Field(default_factory=list)
    temporal_property: str | None = None
    indexes: list[str] = Field(
        default_factory=list,
        description="Properties commonly filtered on (CQL2, property=value): each gets a "
        "b-tree index in both stores, so a filter's exact count is an index(-only) scan",
    )
    editable: bool = False
    style: dict[str, Any] = Field(default_factory=dict)
    tiles: TileSpec = Field(default_factory=TileSpec)

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v.replace("-", "").replace("_", "").isalnum() or not v.isascii():
            raise ValueError("layer id must be ASCII letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _tile_properties(self) -> LayerSpec:
        unknown = [n for n in self.tiles.low_zoom_properties if self.property(n) is None]
        if unknown:
            raise ValueError(f"tiles.low_zoom_properties: unknown properties {unknown}")
        unknown = [n for n in self.indexes if self.property(n) is None]
        if unknown:
            raise ValueError(
                f"indexes: unknown properties {unknown}; declared: "
                f"{', '.join(p.name for p in self.properties) or '(none)'}"
            )
        if self.editable and self.tiles.prebuild:
            raise ValueError("tiles.prebuild: an editable layer's tiles are made on demand")
        return self

    def indexed_properties(self) -> list[str]:
        """The properties both stores keep a b-tree index on: the temporal property, the
        short coded (``enum``) ones and those the spec declares in ``indexes``.

        Why: every filtered page counts its matches exactly (``numberMatched``); without
        an index each new filter value is a scan of the whole table."""
        wanted = {self.temporal_property, *self.indexes} | {
            p.name for p in self.properties if p.enum
        }
        return sorted(n for n in wanted if n and self.property(n) is not None)

    def property(self, name: str) -> PropertySpec | None:
        """Return the declared property called ``name``, if any."""
        return next((p for p in self.properties if p.name == name), None)


#: libyaml's safe loader when PyYAML has it (same documents, ~8x faster: every store open
#: reads the specs for their declared indexes), else the pure-Python one.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_layer(path: Path) -> LayerSpec:
    """Read and validate one layer spec file."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_LOADER)
    try:
        return LayerSpec.model_validate(data)
    except Exception as exc:  # pydantic error: name the file
        raise ValueError(f"{path}: invalid layer spec: {exc}") from exc


def load_catalogue(directory: Path, enabled: list[str] | None = None) -> dict[str, LayerSpec]:
    """Read every ``*.yml`` spec in ``directory``; keep only ``enabled`` ids when given."""
    specs: dict[str, LayerSpec] = {}
    for path in sorted(directory.glob("*.yml")):
        spec = load_layer(path)
        if spec.id in specs:
            raise ValueError(f"{path}: duplicate layer id {spec.id!r}")
        specs[spec.id] = spec
    if enabled is not None:
        missing = [i for i in enabled if i not in specs]
        if missing:
            raise ValueError(f"enabled layers without a spec in {directory}: {missing}")
        specs = {i: specs[i] for i in enabled}
    return specs
