"""Checks of a 3D Tiles 1.1 tileset with glb content (the official validator is not on npm).

:func:`validate_tileset` walks ``tileset.json`` and every glb it references:

* tileset: ``asset.version`` is ``"1.1"``; ``geometricError`` is a non-negative number on
  the tileset and every tile, never larger on a child than on its parent (and the
  tileset's is not smaller than the root's); ``refine`` is ``"ADD"`` or ``"REPLACE"``
  (upper case; required on the root); every tile has exactly one ``boundingVolume``
  (``region``, ``box`` or ``sphere``), well formed; ``transform`` has 16 finite numbers;
  a child's volume lies inside its parent's; content files exist; a ``.json`` content is
  an external tileset, checked as the tile's child;
* glb: header magic/version/length equal to the file size, chunk lengths, JSON chunk
  first and a multiple of 4 bytes, BIN chunk data starting on an 8-byte boundary, every
  bufferView ``byteOffset`` a multiple of 8 and inside the buffer, accessors inside their
  views, ``POSITION`` ``min``/``max`` equal to the data;
* extensions: every extension used anywhere in the glTF JSON is in ``extensionsUsed``
  and ``extensionsRequired`` is a subset of it; ``EXT_mesh_features`` feature ids point
  at an existing property table whose ``count`` equals ``featureCount``, ids are
  ``< featureCount`` and every id occurs; property-table columns have the right byte
  sizes (numbers: ``count`` values; strings: ``count + 1`` offsets ending at the end of
  the values);
* containment: the content's bounds - the 8 corners of the ``POSITION`` min/max box,
  y-up -> z-up, through the accumulated tile transforms, to ECEF and geodetic - lie in
  the tile's ``region`` (or ``box``).

:func:`run_gltf_validator` runs the Khronos glTF-Validator (npm ``gltf-validator``,
``tools/validate_gltf.mjs``) with ``node`` on glb files.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoservice.city3d.tiles3d import box_corners, ecef_to_geodetic, geodetic_to_ecef

PROJECT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = PROJECT / "tools" / "validate_gltf.mjs"
_REFINE = ("ADD", "REPLACE")
_COMPONENT = {
    5120: ("b", 1),
    5121: ("B", 1),
    5122: ("h", 2),
    5123: ("H", 2),
    5125: ("I", 4),
    5126: ("f", 4),
}
_NUM = {"VEC3": 3, "SCALAR": 1, "VEC2": 2, "VEC4": 4, "MAT4": 16}
_META_SIZE = {
    "INT8": 1,
    "UINT8": 1,
    "INT16": 2,
    "UINT16": 2,
    "INT32": 4,
    "UINT32": 4,
    "INT64": 8,
    "UINT64": 8,
    "FLOAT32": 4,
    "FLOAT64": 8,
}
_Y_UP_TO_Z_UP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
_TOL_RAD = 1e-9
_TOL_M = 0.01


@dataclass
class ValidationReport:
    """Problems found: errors break the spec, warnings are doubtful but legal."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tiles: int = 0
    contents: int = 0
    features: int = 0
    #: features in leaf tiles (each building once, whatever the coarser tiles hold)
    leaf_features: int = 0

    @property
    def ok(self) -> bool:
        """No errors and no warnings."""
        return not self.errors and not self.warnings


def validate_tileset(path: Path) -> ValidationReport:
    """Validate ``tileset.json`` at ``path`` and the glb files it references."""
    report = ValidationReport()
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.errors.append(f"{path.name}: cannot read: {exc}")
        return report
    version = (doc.get("asset") or {}).get("version")
    if version != "1.1":
        report.errors.append(f"asset.version is {version!r}, expected '1.1'")
    ge = doc.get("geometricError")
    if not _nonneg(ge):
        report.errors.append(f"tileset geometricError {ge!r} is not a non-negative number")
    root = doc.get("root")
    if not isinstance(root, dict):
        report.errors.append("tileset has no root tile")
        return report
    if _nonneg(ge) and _nonneg(root.get("geometricError")) and root["geometricError"] > ge:
        report.errors.append("root geometricError is larger than the tileset's")
    if root.get("refine") is None:
        report.errors.append("root: refine is required on the root tile")
    _tile(root, "root", np.eye(4), None, None, path.parent, report)
    return report


def _nonneg(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _tile(
    tile: dict[str, Any],
    where: str,
    parent_matrix: np.ndarray,
    parent_volume: dict[str, Any] | None,
    parent_error: float | None,
    base: Path,
    report: ValidationReport,
) -> None:
    report.tiles += 1
    ge: Any = tile.get("geometricError")
    if not _nonneg(ge):
        report.errors.append(f"{where}: geometricError {ge!r} is not a non-negative number")
    elif parent_error is not None and ge > parent_error:
        report.errors.append(f"{where}: geometricError {ge} exceeds its parent's {parent_error}")
    refine = tile.get("refine")
    if refine is not None and refine not in _REFINE:
        report.errors.append(f"{where}: refine {refine!r} is not 'ADD' or 'REPLACE'")
    matrix = parent_matrix
    if "transform" in tile:
        t = tile["transform"]
        if not (isinstance(t, list) and len(t) == 16 and all(_finite(v) for v in t)):
            report.errors.append(f"{where}: transform is not 16 finite numbers")
        else:
            matrix = parent_matrix @ np.array(t, dtype=float).reshape(4, 4).T
    volume: Any = tile.get("boundingVolume")
    kinds = [k for k in ("region", "box", "sphere") if isinstance(volume, dict) and k in volume]
    if len(kinds) != 1:
        report.errors.append(f"{where}: boundingVolume needs exactly one of region/box/sphere")
        volume = None
    elif not _volume_ok(volume, where, report):
        volume = None
    if volume is not None and parent_volume is not None:
        corners = _volume_corners(volume, matrix)
        if corners is not None and not _inside(corners, parent_volume, parent_matrix):
            report.errors.append(f"{where}: boundingVolume is not inside its parent's")
    content = tile.get("content")
    if content is not None:
        uri = content.get("uri") if isinstance(content, dict) else None
        if not uri:
            report.errors.append(f"{where}: content without uri")
        elif not (base / uri).is_file():
            report.errors.append(f"{where}: content {uri} does not exist")
        elif uri.endswith(".json"):
            _external(base / uri, f"{where}>{uri}", matrix, volume, ge, report)
        else:
            report.contents += 1
            before = report.features
            bounds = _glb(base / uri, report)
            if not tile.get("children"):
                report.leaf_features += report.features - before
            if bounds is not None and volume is not None:
                corners = box_corners(bounds[0], bounds[1])
                world = (
                    matrix @ _Y_UP_TO_Z_UP @ np.column_stack([corners, np.ones(len(corners))]).T
                ).T[:, :3]
                if not _inside_world(world, volume, matrix):
                    report.errors.append(f"{where}: content {uri} is not inside boundingVolume")
    for i, child in enumerate(tile.get("children") or []):
        _tile(child, f"{where}/{i}", matrix, volume, ge if _nonneg(ge) else None, base, report)


def _external(
    path: Path,
    where: str,
    matrix: np.ndarray,
    volume: dict[str, Any] | None,
    error: Any,
    report: ValidationReport,
) -> None:
    """An external tileset (a content ``.json``): its root is checked as the tile's child."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.errors.append(f"{where}: cannot read: {exc}")
        return
    if (doc.get("asset") or {}).get("version") != "1.1":
        report.errors.append(f"{where}: asset.version is not '1.1'")
    root = doc.get("root")
    if not isinstance(root, dict):
        report.errors.append(f"{where}: external tileset has no root tile")
        return
    parent_error = error if _nonneg(error) else None
    _tile(root, where, matrix, volume, parent_error, path.parent, report)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _volume_ok(volume: dict[str, Any], where: str, report: ValidationReport) -> bool:
    if "region" in volume:
        r = volume["region"]
        if not (isinstance(r, list) and len(r) == 6 and all(_finite(v) for v in r)):
            report.errors.append(f"{where}: region must be 6 finite numbers")
            return False
        w, s, e, n, h0, h1 = r
        if not (-math.pi <= w <= math.pi and -math.pi <= e <= math.pi):
            report.errors.append(f"{where}: region longitudes out of [-pi, pi]")
            return False
        if not (-math.pi / 2 <= s <= n <= math.pi / 2) or h0 > h1:
            report.errors.append(f"{where}: region south>north, latitudes or heights invalid")
            return False
        return True
    if "box" in volume:
        b = volume["box"]
        if not (isinstance(b, list) and len(b) == 12 and all(_finite(v) for v in b)):
            report.errors.append(f"{where}: box must be 12 finite numbers")
            return False
        return True
    s = volume["sphere"]
    if not (isinstance(s, list) and len(s) == 4 and all(_finite(v) for v in s) and s[3] >= 0):
        report.errors.append(f"{where}: sphere must be 4 finite numbers, radius >= 0")
        return False
    return True


def _volume_corners(volume: dict[str, Any], matrix: np.ndarray) -> np.ndarray | None:
    """World (ECEF) sample points of a volume: region corners/edges, box corners."""
    if "region" in volume:
        w, s, e, n, h0, h1 = volume["region"]
        lons = np.degrees(np.linspace(w, e, 5))
        lats = np.degrees(np.linspace(s, n, 5))
        pts = [(lo, la, h) for lo in lons for la in lats for h in (h0, h1)]
        arr = np.array(pts)
        return geodetic_to_ecef(arr[:, 0], arr[:, 1], arr[:, 2])
    if "box" in volume:
        b = np.array(volume["box"], dtype=float)
        c, axes = b[:3], b[3:].reshape(3, 3)
        local = np.array(
            [
                c + sx * axes[0] + sy * axes[1] + sz * axes[2]
                for sx in (-1, 1)
                for sy in (-1, 1)
                for sz in (-1, 1)
            ]
        )
        return (matrix @ np.column_stack([local, np.ones(8)]).T).T[:, :3]
    return None


def _inside(world: np.ndarray, volume: dict[str, Any], matrix: np.ndarray) -> bool:
    return _inside_world(world, volume, matrix)


def _inside_world(world: np.ndarray, volume: dict[str, Any], matrix: np.ndarray) -> bool:
    if "region" in volume:
        w, s, e, n, h0, h1 = volume["region"]
        geo = ecef_to_geodetic(world)
        lon, lat, h = np.radians(geo[:, 0]), np.radians(geo[:, 1]), geo[:, 2]
        return bool(
            (lon >= w - _TOL_RAD).all()
            and (lon <= e + _TOL_RAD).all()
            and (lat >= s - _TOL_RAD).all()
            and (lat <= n + _TOL_RAD).all()
            and (h >= h0 - _TOL_M).all()
            and (h <= h1 + _TOL_M).all()
        )
    if "box" in volume:
        b = np.array(volume["box"], dtype=float)
        c, axes = b[:3], b[3:].reshape(3, 3)
        inv = np.linalg.inv(matrix)
        local = (inv @ np.column_stack([world, np.ones(len(world))]).T).T[:, :3] - c
        for axis in axes:
            length = float(np.linalg.norm(axis))
            if length == 0:
                continue
            proj = local @ (axis / length)
            if (np.abs(proj) > length + _TOL_M).any():
                return False
        return True
    s = volume["sphere"]
    inv = np.linalg.inv(matrix)
    local = (inv @ np.column_stack([world, np.ones(len(world))]).T).T[:, :3]
    return bool((np.linalg.norm(local - np.array(s[:3]), axis=1) <= s[3] + _TOL_M).all())


# --------------------------------------------------------------------------- glb


def _extensions_in(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "extensions" and isinstance(value, dict):
                found.update(value)
            _extensions_in(value, found)
    elif isinstance(node, list):
        for value in node:
            _extensions_in(value, found)


def _glb(path: Path, report: ValidationReport) -> tuple[np.ndarray, np.ndarray] | None:
    """Check one glb; return its POSITION (min, max) or ``None`` when unreadable."""
    name = path.name
    data = path.read_bytes()
    if len(data) < 20:
        report.errors.append(f"{name}: too short for a glb")
        return None
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        report.errors.append(f"{name}: not a glTF 2.0 binary (magic {magic!r}, version {version})")
        return None
    if length != len(data):
        report.errors.append(f"{name}: header length {length} != file size {len(data)}")
        return None
    chunks: list[tuple[bytes, int, int]] = []  # (type, data offset, length)
    offset = 12
    while offset < len(data):
        if offset + 8 > len(data):
            report.errors.append(f"{name}: truncated chunk header at {offset}")
            return None
        clen, ctype = struct.unpack_from("<I4s", data, offset)
        if clen % 4:
            report.errors.append(f"{name}: chunk {ctype!r} length {clen} is not a multiple of 4")
        if offset + 8 + clen > len(data):
            report.errors.append(f"{name}: chunk {ctype!r} runs past the end of the file")
            return None
        chunks.append((ctype, offset + 8, clen))
        offset += 8 + clen
    if not chunks or chunks[0][0] != b"JSON":
        report.errors.append(f"{name}: first chunk is not JSON")
        return None
    try:
        doc = json.loads(data[chunks[0][1] : chunks[0][1] + chunks[0][2]].decode("utf-8"))
    except ValueError as exc:
        report.errors.append(f"{name}: JSON chunk unreadable: {exc}")
        return None
    binary = b""
    if len(chunks) > 1 and chunks[1][0] == b"BIN\0":
        start = chunks[1][1]
        if start % 8:
            report.errors.append(f"{name}: BIN chunk data starts at {start}, not 8-byte aligned")
        binary = data[start : start + chunks[1][2]]
    used = set(doc.get("extensionsUsed") or [])
    required = set(doc.get("extensionsRequired") or [])
    found: set[str] = set()
    _extensions_in(doc, found)
    if found - used:
        report.errors.append(f"{name}: extensions not in extensionsUsed: {sorted(found - used)}")
    if required - used:
        report.errors.append(
            f"{name}: extensionsRequired not in extensionsUsed: {sorted(required - used)}"
        )
    views = doc.get("bufferViews") or []
    for i, view in enumerate(views):
        off, blen = view.get("byteOffset", 0), view.get("byteLength", 0)
        if off % 8:
            report.errors.append(f"{name}: bufferView {i} byteOffset {off} is not 8-byte aligned")
        if off + blen > len(binary):
            report.errors.append(f"{name}: bufferView {i} runs past the BIN chunk")
            return None
    return _check_mesh(name, doc, views, binary, report)


def _accessor(
    doc: dict[str, Any], views: list[dict[str, Any]], binary: bytes, index: int
) -> np.ndarray:
    acc = doc["accessors"][index]
    fmt, size = _COMPONENT[acc["componentType"]]
    n = _NUM[acc["type"]]
    view = views[acc["bufferView"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    stride = view.get("byteStride") or size * n
    if stride != size * n:
        raise ValueError("interleaved accessors are not checked")
    count = acc["count"]
    if start + count * stride > view.get("byteOffset", 0) + view["byteLength"]:
        raise ValueError(f"accessor {index} runs past its bufferView")
    arr = np.frombuffer(binary, dtype=np.dtype(f"<{fmt}"), count=count * n, offset=start)
    return arr.reshape(count, n) if n > 1 else arr


def _check_mesh(
    name: str,
    doc: dict[str, Any],
    views: list[dict[str, Any]],
    binary: bytes,
    report: ValidationReport,
) -> tuple[np.ndarray, np.ndarray] | None:
    lo = np.full(3, np.inf)
    hi = -lo
    tables = ((doc.get("extensions") or {}).get("EXT_structural_metadata") or {}).get(
        "propertyTables"
    ) or []
    classes = (
        ((doc.get("extensions") or {}).get("EXT_structural_metadata") or {}).get("schema") or {}
    ).get("classes") or {}
    for t_index, table in enumerate(tables):
        _check_table(name, t_index, table, classes, views, report)
    try:
        for mesh in doc.get("meshes") or []:
            for prim in mesh.get("primitives") or []:
                attrs = prim.get("attributes") or {}
                if "POSITION" not in attrs:
                    report.errors.append(f"{name}: primitive without POSITION")
                    continue
                acc = doc["accessors"][attrs["POSITION"]]
                pos = _accessor(doc, views, binary, attrs["POSITION"])
                if "min" not in acc or "max" not in acc:
                    report.errors.append(f"{name}: POSITION accessor lacks min/max")
                elif len(pos) and (
                    not np.allclose(pos.min(axis=0), acc["min"], atol=1e-5)
                    or not np.allclose(pos.max(axis=0), acc["max"], atol=1e-5)
                ):
                    report.errors.append(f"{name}: POSITION min/max do not match the data")
                if len(pos):
                    lo, hi = np.minimum(lo, pos.min(axis=0)), np.maximum(hi, pos.max(axis=0))
                features = ((prim.get("extensions") or {}).get("EXT_mesh_features") or {}).get(
                    "featureIds"
                ) or []
                for fid in features:
                    count = fid.get("featureCount")
                    table_index = fid.get("propertyTable")
                    if table_index is not None:
                        if not 0 <= table_index < len(tables):
                            report.errors.append(
                                f"{name}: featureIds.propertyTable {table_index} does not exist"
                            )
                        elif tables[table_index].get("count") != count:
                            report.errors.append(
                                f"{name}: property table count {tables[table_index].get('count')}"
                                f" != featureCount {count}"
                            )
                    if "attribute" in fid:
                        key = f"_FEATURE_ID_{fid['attribute']}"
                        if key not in attrs:
                            report.errors.append(f"{name}: feature id attribute {key} missing")
                            continue
                        ids = _accessor(doc, views, binary, attrs[key])
                        if len(ids) != len(pos):
                            report.errors.append(f"{name}: {key} count != POSITION count")
                        distinct = np.unique(ids)
                        if len(distinct) and (distinct.max() >= count or distinct.min() < 0):
                            report.errors.append(f"{name}: feature ids outside 0..{count - 1}")
                        if len(distinct) != count:
                            report.warnings.append(
                                f"{name}: {count - len(distinct)} features have no vertices"
                            )
                        report.features += int(count)
    except (KeyError, IndexError, ValueError) as exc:
        report.errors.append(f"{name}: {exc}")
        return None
    if not np.isfinite(lo).all():
        return None
    return lo, hi


def _check_table(
    name: str,
    index: int,
    table: dict[str, Any],
    classes: dict[str, Any],
    views: list[dict[str, Any]],
    report: ValidationReport,
) -> None:
    cls = classes.get(str(table.get("class")))
    if cls is None:
        report.errors.append(
            f"{name}: property table {index} class {table.get('class')!r} not in the schema"
        )
        return
    count = table.get("count", 0)
    for prop, col in (table.get("properties") or {}).items():
        definition = (cls.get("properties") or {}).get(prop)
        if definition is None:
            report.errors.append(f"{name}: property {prop!r} not in class {table.get('class')}")
            continue
        values = views[col["values"]]
        if definition.get("type") == "STRING":
            osize = _META_SIZE[col.get("stringOffsetType", "UINT32")]
            offsets = views[col["stringOffsets"]]
            if offsets["byteLength"] != (count + 1) * osize:
                report.errors.append(f"{name}: {prop}: {count + 1} string offsets expected")
        elif definition.get("type") == "SCALAR" and not definition.get("array"):
            size = _META_SIZE[definition["componentType"]]
            if values["byteLength"] != count * size:
                report.errors.append(
                    f"{name}: {prop}: {values['byteLength']} bytes for "
                    f"{count} {definition['componentType']} values"
                )


# --------------------------------------------------------------------------- gltf-validator


def run_gltf_validator(files: list[Path]) -> list[dict[str, Any]]:
    """Run the Khronos glTF-Validator on ``files``; one result dict per file.

    Each dict has ``file``, ``errors``, ``warnings``, ``infos``, ``hints``, ``messages``.
    Raises ``RuntimeError`` when node or the npm package is missing.
    """
    results: list[dict[str, Any]] = []
    for i in range(0, len(files), 200):
        batch = [str(f) for f in files[i : i + 200]]
        try:
            proc = subprocess.run(
                ["node", str(NODE_SCRIPT), *batch],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=PROJECT,
            )
        except FileNotFoundError:
            raise RuntimeError("node is not installed (needed for gltf-validator)") from None
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if len(lines) != len(batch):
            raise RuntimeError(f"gltf-validator failed (run `npm install`?): {proc.stderr[-500:]}")
        results.extend(json.loads(ln) for ln in lines)
    return results


def validate_all(path: Path, gltf: bool = True) -> ValidationReport:
    """:func:`validate_tileset` plus glTF-Validator errors/warnings on every glb."""
    report = validate_tileset(path)
    if gltf:
        files = sorted(Path(path).parent.rglob("*.glb"))
        for result in run_gltf_validator(files):
            name = Path(result["file"]).name
            if result["errors"]:
                report.errors.append(f"{name}: gltf-validator: {result['messages']}")
            if result["warnings"]:
                report.warnings.append(f"{name}: gltf-validator: {result['messages']}")
    return report
