"""Helpers every loader shares: property mapping, type coercion, ids, CRS, file look-up.

Why one module: each loader only knows how to *read* its format into a flat ``raw``
mapping of source field -> value plus a geometry; turning that into the layer's declared
schema (renaming, fixed values, vocabularies, types) is the same for every format, so it
lives here and behaves identically everywhere.

Conventions
-----------
* Types follow ``PropertySpec.type``.  ``date`` values are stored as ISO 8601 strings
  ``YYYY-MM-DD``; ``datetime`` values as ISO 8601 strings with an explicit offset.  A
  source value that carries only a date (``2023/4/1``) becomes midnight Japan time
  (``2023-04-01T00:00:00+09:00``): the sources are Japanese public records whose dates are
  local calendar days.  ISO strings keep the values JSON- and SQLite-friendly and sort
  correctly as text when they share the offset.
* Options read from ``spec.source.options`` (all optional):

  ``_root``
      Set by the builder: the mirror directory that ``source.paths`` are relative to.
      Auxiliary files named in options (admin boundaries, code lists) are resolved
      against it; without it they are searched for upwards from the first source file.
  ``constants``
      ``{property: value}`` fixed values, e.g. ``species: asian-black-bear``.
  ``value_maps``
      ``{property: {source value: stored value}}`` to translate vocabularies; values
      missing from a map pass through unchanged (and are then checked against ``enum``).
  ``id_prefix``
      Prefix put before ``spec.id_property`` values to form feature ids.
* Ids: ``<id_prefix><value of id_property>`` when the spec names one, else
  ``<file stem>-<index in file>``, which is stable as long as the file is unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiLineString, MultiPoint, MultiPolygon
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec, PropertySpec
from geoservice.errors import SourceError

JST = dt.timezone(dt.timedelta(hours=9))

TRUE_VALUES = frozenset({"1", "true", "t", "yes", "y", "○", "◯", "〇", "●", "有", "あり", "可"})
FALSE_VALUES = frozenset({"0", "false", "f", "no", "n", "×", "✕", "-", "無", "なし", "不可"})

CRS84 = "OGC:CRS84"
_LONLAT_CRS = frozenset({"OGC:CRS84", "EPSG:4326", "CRS84"})


# --------------------------------------------------------------------------- coercion


def coerce(value: Any, type_: str, naive_tz: dt.tzinfo = JST) -> Any:
    """Convert a source value to the declared property type.

    Empty strings and ``None`` become ``None``: the sources use blanks for "no value",
    and an empty string is never a meaningful integer, date or flag.  Timestamps without
    an offset are taken in ``naive_tz`` (Japan time by default: the sources are Japanese
    public records; a layer sets option ``timezone: UTC`` where its source means UTC).

    Raises
    ------
    ValueError
        When the value cannot be read as ``type_``; callers add file/line context.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
    if type_ == "string":
        return value if isinstance(value, str) else str(value)
    if type_ == "boolean":
        return _to_bool(value)
    if type_ == "integer":
        return _to_int(value)
    if type_ == "number":
        return float(value)
    if type_ == "date":
        return _to_date(value).isoformat()
    if type_ == "datetime":
        return _to_datetime(value, naive_tz).isoformat()
    raise ValueError(f"unknown property type {type_!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError(f"{value!r} is not a recognised flag (accepted: ○ ◯ 1 TRUE / 0 FALSE ×)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a flag, not an integer")
    if isinstance(value, int):
        return value
    number = float(str(value).replace(",", ""))
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


_DATE_RE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    match = _DATE_RE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return dt.date(year, month, day)
    return dt.datetime.fromisoformat(text).date()


def _to_datetime(value: Any, naive_tz: dt.tzinfo = JST) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if _DATE_RE.match(text):
            day = _to_date(text)
            moment = dt.datetime(day.year, day.month, day.day)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_tz)
    return moment


# --------------------------------------------------------------------------- mapping


class PropertyMapper:
    """Maps a raw source record to the spec's typed properties.

    Built once per layer so the option look-ups are not repeated per feature.
    """

    def __init__(self, spec: LayerSpec) -> None:
        options = spec.source.options
        self.spec = spec
        self.constants: dict[str, Any] = dict(options.get("constants") or {})
        tz = options.get("timezone")
        self.naive_tz: dt.tzinfo = dt.UTC if tz in ("UTC", "Z") else JST
        self.value_maps: dict[str, dict[str, Any]] = {
            name: {str(k): v for k, v in (mapping or {}).items()}
            for name, mapping in (options.get("value_maps") or {}).items()
        }

    def map(self, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Return ``{property name: typed value}`` for every declared property.

        Parameters
        ----------
        raw
            Source field -> value for one record.
        where
            ``"file.csv: line 12"``-style context used in error messages.
        """
        out: dict[str, Any] = {}
        for prop in self.spec.properties:
            out[prop.name] = self._value(prop, raw, where)
        return out

    def _value(self, prop: PropertySpec, raw: Mapping[str, Any], where: str) -> Any:
        if prop.name in self.constants:
            value = self.constants[prop.name]
        else:
            value = raw.get(prop.source_field)
        mapping = self.value_maps.get(prop.name)
        if mapping is not None and value is not None and str(value) in mapping:
            value = mapping[str(value)]
        try:
            typed = coerce(value, prop.type, self.naive_tz)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SourceError(
                f"{where}: property {prop.name!r} (source field {prop.source_field!r}): "
                f"cannot read {value!r} as {prop.type}: {exc}"
            ) from None
        if prop.enum is not None and typed is not None and typed not in prop.enum:
            raise SourceError(
                f"{where}: property {prop.name!r} has value {typed!r}, "
                f"not one of {prop.enum} (add a value_maps entry?)"
            )
        return typed


def feature_id(spec: LayerSpec, raw: Mapping[str, Any], file: Path, index: int) -> str:
    """Stable feature id: from ``spec.id_property`` when set, else file stem + index."""
    if spec.id_property:
        value = raw.get(spec.id_property)
        if value is None or str(value).strip() == "":
            raise SourceError(
                f"{file.name}: feature {index} has no value for id property {spec.id_property!r}"
            )
        return f"{spec.source.options.get('id_prefix', '')}{str(value).strip()}"
    return f"{file.stem}-{index}"


# --------------------------------------------------------------------------- CRS


_SRS_PATTERNS = (
    re.compile(r"EPSG/\d+(?:\.\d+)?/(\d+)$", re.I),  # http://www.opengis.net/def/crs/EPSG/0/6697
    re.compile(r"EPSG:+(?:[\d.]*:)?(\d+)$", re.I),  # EPSG:6668, urn:ogc:def:crs:EPSG::6668
)


def normalise_crs(name: str) -> str:
    """Return ``EPSG:<code>`` or ``OGC:CRS84`` for the many spellings found in sources."""
    text = name.strip()
    if text.upper().endswith("CRS84"):
        return CRS84
    for pattern in _SRS_PATTERNS:
        match = pattern.search(text)
        if match:
            return f"EPSG:{match.group(1)}"
    return text


def horizontal_crs(name: str) -> str:
    """The 2D CRS of a possibly compound CRS (EPSG:6697 -> EPSG:6668)."""
    crs = CRS.from_user_input(normalise_crs(name))
    if crs.is_compound and crs.sub_crs_list:
        code = crs.sub_crs_list[0].to_epsg()
        if code:
            return f"EPSG:{code}"
    return normalise_crs(name)


@lru_cache(maxsize=64)
def is_lat_lon(name: str) -> bool:
    """Whether the CRS's authority axis order is latitude first (JGD2011 6668/6697, 4326).

    GML writes coordinates in the authority order, so for these CRSs ``posList`` holds
    ``lat lon [h]`` and must be swapped before use with ``always_xy`` transformers.
    """
    crs = CRS.from_user_input(horizontal_crs(name))
    axes = crs.axis_info
    return bool(axes) and axes[0].direction.lower() == "north" and crs.is_geographic


@lru_cache(maxsize=64)
def transformer_to_crs84(source: str) -> Transformer | None:
    """Cached ``always_xy`` transformer from ``source`` to CRS84; ``None`` if identity."""
    src = horizontal_crs(source)
    if src in _LONLAT_CRS:
        return None
    return Transformer.from_crs(src, CRS84, always_xy=True)


def to_crs84(geom: BaseGeometry, source_crs: str) -> BaseGeometry:
    """Transform an (x=lon/easting, y=lat/northing) geometry to CRS84, dropping Z."""
    transformer = transformer_to_crs84(source_crs)
    geom = shapely.force_2d(geom)
    if transformer is None:
        return geom
    return shapely.transform(geom, _vectorised(transformer))


def _vectorised(transformer: Transformer) -> Callable[[Any], Any]:
    import numpy as np

    def apply(coords: Any) -> Any:
        xs, ys = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    return apply


def promote(geom: BaseGeometry, geometry_type: str) -> BaseGeometry:
    """Wrap a single geometry in its multi type when the spec declares the multi type.

    Sources mix ``Polygon`` and ``MultiPolygon`` (one debris-flow zone of 1,688 is multi);
    a collection with one declared type is simpler for clients and stores.
    """
    if geometry_type == "MultiPolygon" and geom.geom_type == "Polygon":
        return MultiPolygon([geom])
    if geometry_type == "MultiLineString" and geom.geom_type == "LineString":
        return MultiLineString([geom])
    if geometry_type == "MultiPoint" and geom.geom_type == "Point":
        return MultiPoint([geom])
    return geom


def same_crs(a: str, b: str) -> bool:
    """Whether two CRS names denote the same horizontal CRS for lon/lat GeoJSON purposes."""
    na, nb = horizontal_crs(a), horizontal_crs(b)
    if na in _LONLAT_CRS and nb in _LONLAT_CRS:
        return True
    return na == nb


# --------------------------------------------------------------------------- files


def resolve_aux(spec: LayerSpec, files: list[Path], relative: str) -> Path:
    """Find an auxiliary file (admin boundaries, code-list directory) named in options.

    The builder sets ``options["_root"]`` to the mirror directory; without it the path is
    searched for relative to each ancestor of the first source file, which finds it in a
    mirror laid out like the official download tree.
    """
    root = spec.source.options.get("_root")
    candidates: list[Path] = []
    if root:
        candidates.append(Path(root) / relative)
    if files:
        candidates.extend(parent / relative for parent in files[0].resolve().parents)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise SourceError(
        f"layer {spec.id!r}: auxiliary file {relative!r} not found "
        f"(looked in {[str(c) for c in candidates[:3]]}...); set options._root to the mirror"
    )
