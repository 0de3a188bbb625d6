"""``csv-points`` loader: one point feature per row of a UTF-8 CSV file.

Japanese municipal open data is published as CSV with latitude/longitude columns (often
named ``緯度``/``経度``) and hazard flags such as ``○`` or ``True``; the spec declares the
flags as ``boolean`` properties and :func:`geoservice.loaders.common.coerce` reads them.

Options: ``lon`` / ``lat`` (column names, default ``lon``/``lat``), ``encoding``
(default ``utf-8-sig``, which also accepts files without a BOM).  A row that cannot be
read raises ``SourceError`` naming the file and its line number, so the operator can fix
the source rather than silently lose a shelter.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from shapely.geometry import Point

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.common import PropertyMapper, feature_id, to_crs84


@register("csv-points")
def load_csv_points(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield a point feature per CSV row, typed per the spec."""
    options = spec.source.options
    lon_col = str(options.get("lon", "lon"))
    lat_col = str(options.get("lat", "lat"))
    encoding = str(options.get("encoding", "utf-8-sig"))
    mapper = PropertyMapper(spec)
    for path in files:
        yield from _read_file(spec, mapper, path, lon_col, lat_col, encoding)


def _read_file(
    spec: LayerSpec, mapper: PropertyMapper, path: Path, lon_col: str, lat_col: str, encoding: str
) -> Iterator[Feature]:
    try:
        fh = path.open(encoding=encoding, newline="")
    except OSError as exc:
        raise SourceError(f"{path.name}: cannot open: {exc}") from None
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames or []
        except UnicodeDecodeError as exc:
            raise SourceError(f"{path.name}: line 1: not {encoding} text: {exc}") from None
        missing = [c for c in (lon_col, lat_col) if c not in header]
        if missing:
            raise SourceError(f"{path.name}: line 1: missing coordinate columns {missing}")
        index = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SourceError(f"{path.name}: line {reader.line_num}: {exc}") from None
            where = f"{path.name}: line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise SourceError(f"{where}: wrong number of columns (header has {len(header)})")
            yield Feature(
                id=feature_id(spec, row, path, index),
                properties=mapper.map(row, where),
                geometry=_point(row, lon_col, lat_col, where, spec.source.crs),
            )
            index += 1


def _point(row: dict[str, str], lon_col: str, lat_col: str, where: str, crs: str) -> Point:
    try:
        lon, lat = float(row[lon_col]), float(row[lat_col])
    except ValueError:
        raise SourceError(
            f"{where}: coordinates {row[lon_col]!r}/{row[lat_col]!r} are not numbers"
        ) from None
    geom = to_crs84(Point(lon, lat), crs)
    x, y = geom.coords[0]
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise SourceError(f"{where}: coordinates {x}, {y} are outside lon/lat range")
    return Point(x, y)
