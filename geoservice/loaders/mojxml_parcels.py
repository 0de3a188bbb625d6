"""``mojxml`` loader: 法務省 登記所備付地図データ (地図XML) land parcels (筆).

Parsing is delegated to the PyPI ``mojxml`` package (``mojxml.reader.iter_content_xmls``
opens ``.xml`` files and the ministry's nested ``.zip`` archives; ``mojxml.parse.parse_raw``
builds GeoJSON-like parcels and transforms 公共座標 1-19系 to lon/lat).  This module adds
what the service needs around it: refusing 任意座標系 files, the raw ->
property mapping, stable ids and ``SourceError`` on unreadable input.

Why refuse 任意座標系: such maps use a local survey origin; their coordinates are metres
from an unknown point, so placing them anywhere would be a fabrication.  They can only be
georeferenced with control points, which this loader does not take.  The build may catch
the ``SourceError`` and skip the file with its message.

Raw record per parcel (source fields for the layer spec): ``chiban`` (地番), ``oaza``,
``chome``, ``koaza``, ``yobi`` names and their ``*_code``, ``municipality_code``
(市区町村コード), ``municipality`` (市区町村名), ``map_name`` (地図名),
``coordinate_system`` (座標系), ``datum_type`` (測地系判別), ``accuracy`` (精度区分),
``coordinate_type`` (座標値種別), ``fude_id`` (筆ID), plus the original Japanese keys.

Ids: ``<municipality_code>-<map_name>-<筆ID>`` unless the spec sets ``id_property``;
筆ID is unique only within one XML file.  Parcels whose 地番 is 地区外 / 別図 are
skipped, as ``mojxml`` does by default: they point at another map.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

from lxml import etree
from shapely.geometry import shape

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.common import PropertyMapper, feature_id

ARBITRARY_CRS = "任意座標系"
_NS = "{http://www.moj.go.jp/MINJI/tizuxml}"

_KEYS = {
    "地番": "chiban",
    "大字名": "oaza",
    "丁目名": "chome",
    "小字名": "koaza",
    "予備名": "yobi",
    "大字コード": "oaza_code",
    "丁目コード": "chome_code",
    "小字コード": "koaza_code",
    "予備コード": "yobi_code",
    "市区町村コード": "municipality_code",
    "市区町村名": "municipality",
    "地図名": "map_name",
    "座標系": "coordinate_system",
    "測地系判別": "datum_type",
    "精度区分": "accuracy",
    "座標値種別": "coordinate_type",
    "筆ID": "fude_id",
    "筆界未定構成筆": "undetermined_boundary",
}


@register("mojxml")
def load_mojxml(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield the parcels of 地図XML files (``.xml`` or ministry ``.zip``) in CRS84."""
    from mojxml.reader import iter_content_xmls  # lazy: optional heavy import

    mapper = PropertyMapper(spec)
    for path in files:
        try:
            contents = list(iter_content_xmls([path]))
        except (OSError, BadZipFile, KeyError, ValueError) as exc:
            raise SourceError(f"{path.name}: cannot read 地図XML: {exc}") from None
        for n, content in enumerate(contents):
            label = path.name if len(contents) == 1 else f"{path.name}[{n}]"
            yield from _parcels(spec, mapper, path, label, content)


def coordinate_system(content: bytes, label: str) -> str:
    """The 座標系 declared by a 地図XML document (e.g. 公共座標9系, 任意座標系)."""
    try:
        root = etree.fromstring(content)
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"{label}: line {exc.lineno}: malformed XML: {exc.msg}") from None
    text = root.findtext(f"{_NS}座標系")
    if not text:
        raise SourceError(f"{label}: no <座標系> element: not a 地図XML file?")
    return text.strip()


def _parcels(
    spec: LayerSpec, mapper: PropertyMapper, path: Path, label: str, content: bytes
) -> Iterator[Feature]:
    from mojxml.constants import CRS_MAP
    from mojxml.parse import ParseOptions, parse_raw

    crs = coordinate_system(content, label)
    if crs == ARBITRARY_CRS:
        raise SourceError(
            f"{label}: the file uses an arbitrary coordinate system (任意座標系): its "
            "coordinates are local survey metres and it cannot be placed on the map "
            "without control points; skip it or georeference it first"
        )
    if crs not in CRS_MAP:
        raise SourceError(f"{label}: unknown coordinate system {crs!r}")
    try:
        records = parse_raw(content, ParseOptions())
    except (AssertionError, KeyError, ValueError, AttributeError, TypeError) as exc:
        raise SourceError(f"{label}: cannot parse 地図XML parcels: {exc!r}") from None
    for index, record in enumerate(records):
        raw = _raw(record["properties"])
        where = f"{label}: parcel {raw.get('fude_id')}"
        geometry = shape(record["geometry"]) if record.get("geometry") else None
        if spec.id_property:
            fid = feature_id(spec, raw, path, index)
        else:
            fid = f"{raw.get('municipality_code')}-{raw.get('map_name')}-{raw.get('fude_id')}"
        yield Feature(id=fid, properties=mapper.map(raw, where), geometry=geometry)


def _raw(properties: dict[str, Any]) -> dict[str, Any]:
    raw = dict(properties)
    for japanese, english in _KEYS.items():
        raw[english] = properties.get(japanese)
    return raw
