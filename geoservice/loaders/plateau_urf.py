"""``plateau-urf`` and ``plateau-lsld`` loaders: PLATEAU CityGML urban-planning zones.

Reads PLATEAU CityGML 2.0 files with the i-UR *urf* extension, both encodings found in
the wild:

* i-UR 2.0 (2022+): one element per zone kind - ``urf:UseDistrict`` (用途地域, with
  ``floorAreaRate`` / ``buildingCoverageRate``), ``urf:HeightControlDistrict`` (高度地区),
  ``urf:FirePreventionDistrict`` (防火・準防火地域), ... with ``urf:function`` coded in
  ``Common_districtsAndZonesType``;
* i-UR 1.4 (2020 data): a generic ``urf:DistrictsAndZones`` whose ``urf:class`` carries
  the same code.  The loader copies ``class`` to ``function`` and derives the i-UR 2.0
  kind from the code (1-13 -> UseDistrict, 18 -> HeightControlDistrict, 24/25 ->
  FirePreventionDistrict, ...) so one layer spec reads both vintages.

``plateau-lsld`` reads 土砂災害警戒区域 files: 2020 data encodes them as
``gen:GenericCityObject`` with a ``土砂災害警戒区域`` generic attribute set (区域区分,
現象の種類, 区域番号, 所在地, 告示日 ...), later data as ``urf:SedimentDisasterProneArea``.
Generic attributes are flattened into the raw record under their own names.

Why streaming: city-wide urf files reach hundreds of MB, so the file is read with
``lxml.etree.iterparse`` and every ``core:cityObjectMember`` is cleared once converted;
memory stays flat.

Raw record handed to the property mapping, per feature:

* every simple child element under its local name (``floorAreaRate``, ``custodian``);
* coded elements (with ``codeSpace``) as ``<name>_code`` (the raw code) and ``<name>``
  (the label from the code list, or the raw code when the list is absent);
* ``undecoded``: comma-separated names whose code list was absent (kept raw, recorded);
* ``feature_type`` (i-UR 2.0 class name), ``gml_id``.

Options: ``feature_types`` (list of class names to keep, matched against the element
name and ``feature_type``), ``codelists`` (code-list directory relative to
``options["_root"]``; see :class:`geoservice.loaders.codelists.CodeLists`).

Coordinates: ``srsName`` is taken from the geometry or the nearest ancestor, else the
file's ``gml:Envelope``, else ``spec.source.crs``.  JGD2011 (6668, and 6697 = 6668 +
height) is latitude-first, so ``posList`` is swapped to lon/lat; ``srsDimension`` 3
(PLATEAU's norm) drops the height.  Malformed or truncated XML raises ``SourceError``
naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.common import PropertyMapper
from geoservice.loaders.gml import local_name
from geoservice.loaders.plateau import city_objects, record

LSLD_TYPES = ("SedimentDisasterProneArea", "GenericCityObject")


@register("plateau-urf")
def load_plateau_urf(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield urf zones (用途地域, 高度地区, 防火地域 ...) from PLATEAU CityGML files."""
    yield from _load(spec, files, default_types=None)


@register("plateau-lsld")
def load_plateau_lsld(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield sediment-disaster warning zones (土砂災害警戒区域) from PLATEAU lsld files."""
    yield from _load(spec, files, default_types=LSLD_TYPES)


def _load(
    spec: LayerSpec, files: list[Path], default_types: Iterable[str] | None
) -> Iterator[Feature]:
    wanted = spec.source.options.get("feature_types", default_types)
    types = frozenset(wanted) if wanted else None
    mapper = PropertyMapper(spec)
    for ctx, obj in city_objects(spec, files):
        raw, geometry = record(obj, ctx)
        if types is not None and not ({local_name(obj.tag), raw.get("feature_type")} & types):
            continue
        fid, at = ctx.identify(spec, raw, obj)
        yield Feature(id=fid, properties=mapper.map(raw, at), geometry=geometry)
