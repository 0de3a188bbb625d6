"""Buildings -> 3D Tiles 1.1: glb content with per-building ids and metadata.

Pipeline (memory does not grow with the input)
----------------------------------------------
1. **One streaming pass** over the CityGML files (:func:`geoservice.loaders.citygml.read_many`).
   Each building is meshed at once - LOD2 surfaces when present (each planar polygon
   projected to its Newell best-fit plane and triangulated with ``mapbox_earcut``), else
   an LOD1 extrusion of its footprint (walls, roof and floor; counter-clockwise outward
   faces, flat normals) - with vertices in float64 ECEF, and appended to a spill file of
   its grid cell (``cell_deg`` degrees) on disk.  Only small per-cell counts and bounds
   stay in memory; spill buffers are flushed when they exceed ``spill_bytes`` (and at
   least every ``CHECKPOINT_S`` seconds, for the checkpoints).
2. **A level-of-detail quadtree over the cells** (:mod:`geoservice.city3d.lod`): leaves
   hold the buildings (at most ``max_per_leaf``), inner tiles hold them merged into
   blocks and refine ``REPLACE``; built bottom-up, one leaf's spill records in memory at a
   time, subtrees in worker processes; external tilesets every few levels.
3. **Checkpoints and publication** (:mod:`geoservice.city3d.resume`): everything is
   written in a staging directory with a manifest (mesh-pass checkpoints at every spill
   flush, a record per finished tile), so a killed build rerun with the same inputs goes
   on where it stood, and the finished tileset is published by one atomic symlink swap.
4. **Content tiles** are written one at a time: moved to an east-north-up frame at the
   tile centre (float64 ``transform``, relative to the parent tile's), so glb positions
   are small float32 offsets.  glTF is y-up: positions are stored ``(E, U, -N)`` and the
   3D Tiles y-up -> z-up convention brings them back.

Each glb holds one triangle primitive with ``POSITION``, ``NORMAL`` and ``_FEATURE_ID_0``
(float, one id per vertex = the building's row), ``EXT_mesh_features`` (``featureCount``,
``propertyTable`` 0) and ``EXT_structural_metadata`` (class ``building``: building_id,
gml_id, measured_height, storeys, usage, usage_code, class, flood_depth_m, flood_rank,
flood_duration_h, flood_scale, flood_source, district_zone, lod, source_file).  The BIN
chunk starts on an 8-byte boundary and every bufferView offset is a multiple of 8.

Bounding volumes are ``region`` (radians, ellipsoidal metres) computed from the content
itself: the geodetic bounds of every vertex and of the 8 corners of the tile's local
bounding box (united with the children's), padded by 0.5 m, so they contain the content
and the children by construction.

Heights
-------
PLATEAU heights are orthometric (T.P., JGD2011 vertical).  3D Tiles need ellipsoidal
heights: ``h = H + N`` with the geoid undulation ``N`` from :class:`Geoid`: EGM96 (15')
through PROJ ``vgridshift`` on Debian's ``proj-data`` file ``/usr/share/proj/egm96_15.gtx``
(or a ``egm96_15.gtx`` in pyproj's data directory).  Japan's own GSIGEO2011 grid is not
available offline; EGM96 differs from it by well under 1 m in Tokyo.  When no grid is
found a constant Tokyo undulation of 36.7 m is used.  Which one was used is written to
``asset.extras.heights`` of the tileset.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mapbox_earcut
import numpy as np

from geoservice.catalogue import LayerSpec
from geoservice.city3d.resume import (
    Staging,
    StagingDamaged,
    build_lock,
    die_with_parent,
    discard,
    fingerprint,
    open_staging,
    publish,
)
from geoservice.config import Settings
from geoservice.loaders.citygml import Building, ReadErrors, read_many
from geoservice.loaders.codelists import CodeLists
from geoservice.loaders.plateau_bldg import building_record
from geoservice.loaders.sources import BuildReport, Mirror, resolve_sources, rooted
from geoservice.runs import RunReport

log = logging.getLogger(__name__)

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
TOKYO_GEOID_M = 36.7
GENERATOR = "Tokyo GeoTwin geoservice.city3d.tiles3d"
Progress = Callable[[int], None]
#: seconds of meshing a kill may lose at most (a spill flush + checkpoint at least this often)
CHECKPOINT_S = 10.0
#: a spill frame's header: payload length, CRC32
_FRAME = struct.Struct("<QI")

# --------------------------------------------------------------------------- geodesy


def geodetic_to_ecef(lon: Any, lat: Any, h: Any) -> np.ndarray:
    """(lon, lat degrees, ellipsoidal h) -> ECEF metres, shape (..., 3), float64."""
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    h = np.asarray(h, dtype=np.float64)
    sphi = np.sin(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sphi * sphi)
    x = (n + h) * np.cos(phi) * np.cos(lam)
    y = (n + h) * np.cos(phi) * np.sin(lam)
    z = (n * (1.0 - WGS84_E2) + h) * sphi
    return np.stack([x, y, z], axis=-1)


def ecef_to_geodetic(xyz: Any) -> np.ndarray:
    """ECEF metres (..., 3) -> (lon deg, lat deg, ellipsoidal h m) (..., 3)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1.0 - WGS84_E2))
    for _ in range(6):
        sl = np.sin(lat)
        n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sl * sl)
        h = p / np.cos(lat) - n
        lat = np.arctan2(z, p * (1.0 - WGS84_E2 * n / (n + h)))
    sl = np.sin(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sl * sl)
    h = p / np.cos(lat) - n
    return np.stack([np.degrees(lon), np.degrees(lat), h], axis=-1)


def enu_rotation(lon: float, lat: float) -> np.ndarray:
    """3x3 matrix whose columns are the East, North, Up unit vectors in ECEF."""
    lam, phi = math.radians(lon), math.radians(lat)
    sl, cl, sp, cp = math.sin(lam), math.cos(lam), math.sin(phi), math.cos(phi)
    return np.array(
        [[-sl, -sp * cl, cp * cl], [cl, -sp * sl, cp * sl], [0.0, cp, sp]], dtype=np.float64
    )


def enu_transform(lon: float, lat: float, h: float) -> list[float]:
    """The 4x4 ENU -> ECEF matrix at a point, column-major (a 3D Tiles ``transform``)."""
    m = np.eye(4)
    m[:3, :3] = enu_rotation(lon, lat)
    m[:3, 3] = geodetic_to_ecef(lon, lat, h)
    return [float(v) for v in m.T.reshape(-1)]


class Geoid:
    """Geoid undulation N (ellipsoidal h = orthometric H + N), taken (and cached) at the
    nearest node of a 0.01° grid."""

    def __init__(self, grid: Path | None = None, constant: float = TOKYO_GEOID_M) -> None:
        self.constant = constant
        self._cache: dict[tuple[int, int], float] = {}
        self._transformer: Any = None
        self.grid_path: Path | None = None
        path = grid if grid is not None else self.find_grid()
        if path is not None and path.is_file():
            try:
                from pyproj import Transformer

                t = Transformer.from_pipeline(f"+proj=vgridshift +grids={path} +multiplier=1")
                n = float(t.transform(139.76, 35.68, 0.0)[2])
                if math.isfinite(n) and 20.0 < n < 60.0:
                    self._transformer = t
                    self.grid_path = path
                    self.description = (
                        f"ellipsoidal (WGS84/GRS80) = T.P. orthometric + EGM96 geoid "
                        f"undulation from {path.name} via PROJ vgridshift "
                        "(approximates GSIGEO2011 within ~1 m in Tokyo)"
                    )
            except Exception as exc:  # grid unreadable: fall back to the constant
                log.warning("geoid grid %s unusable (%s); using %.1f m", path, exc, constant)
        if self._transformer is None:
            self.description = (
                f"ellipsoidal = T.P. orthometric + constant Tokyo geoid undulation "
                f"{constant:.1f} m (no geoid grid available; error up to ~1 m)"
            )

    @property
    def uses_grid(self) -> bool:
        """Whether undulations come from a geoid grid (not the constant)."""
        return self._transformer is not None

    @staticmethod
    def find_grid() -> Path | None:
        """egm96_15.gtx from pyproj's data directory or Debian's proj-data."""
        candidates: list[Path] = []
        env = os.environ.get("GEOSERVICE_GEOID_GRID")
        if env:
            candidates.append(Path(env))
        try:
            import pyproj

            candidates.append(Path(pyproj.datadir.get_data_dir()) / "egm96_15.gtx")
        except Exception:
            pass
        candidates.append(Path("/usr/share/proj/egm96_15.gtx"))
        return next((c for c in candidates if c.is_file()), None)

    def undulation(self, lon: float, lat: float) -> float:
        """N at (lon, lat) in metres."""
        if self._transformer is None:
            return self.constant
        key = (round(lon * 100), round(lat * 100))
        value = self._cache.get(key)
        if value is None:
            value = float(self._transformer.transform(key[0] / 100, key[1] / 100, 0.0)[2])
            if not math.isfinite(value):
                value = self.constant
            self._cache[key] = value
        return value


# --------------------------------------------------------------------------- meshing


@dataclass(slots=True)
class Mesh:
    """One building's triangles: float64 ECEF positions, float32 ECEF normals, indices."""

    positions: np.ndarray
    normals: np.ndarray
    indices: np.ndarray


def _signed_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _dedupe(ring: np.ndarray) -> np.ndarray:
    """Drop consecutive duplicate vertices (and a closing duplicate)."""
    if len(ring) < 2:
        return ring
    keep = np.any(np.abs(np.diff(ring, axis=0, append=ring[:1])) > 1e-12, axis=1)
    return ring[keep]


def _triangulate(rings2d: list[np.ndarray]) -> np.ndarray:
    """earcut on (exterior, holes...) 2D rings; counter-clockwise triangles (k, 3), indices
    into the stack of the rings."""
    verts = np.concatenate(rings2d).astype(np.float64)
    ends = np.cumsum([len(r) for r in rings2d]).astype(np.uint32)
    tris = np.asarray(mapbox_earcut.triangulate_float64(verts, ends), dtype=np.int64)
    tris = tris.reshape(-1, 3)
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = cross < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def box_corners(lo: Any, hi: Any) -> np.ndarray:
    """The 8 corners (8, 3) of the axis-aligned box ``lo``..``hi``."""
    return np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])],
        dtype=np.float64,
    )


class Mesher:
    """Turns buildings into ECEF meshes (LOD2 surfaces, else LOD1 extrusion)."""

    def __init__(self, geoid: Geoid) -> None:
        self.geoid = geoid

    def mesh(self, b: Building) -> tuple[Mesh, tuple[float, ...]] | None:
        """The building's mesh and its (lon0, lat0, lon1, lat1, h0, h1) bounds."""
        lon0, lat0 = b.centroid()
        n_geoid = self.geoid.undulation(lon0, lat0)
        mlat = math.radians(1.0) * WGS84_A
        mlon = mlat * math.cos(math.radians(lat0))
        rot = enu_rotation(lon0, lat0)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (llh, nrm_enu, tris)
        if b.lod2:
            for _, rings in b.lod2:
                part = self._polygon3d(rings, lon0, lat0, mlon, mlat)
                if part is not None:
                    parts.append(part)
        if not parts:
            parts = self._extrusion(b, lon0, lat0, mlon, mlat)
        if not parts:
            return None
        llh = np.concatenate([p[0] for p in parts])
        normals_enu = np.concatenate([p[1] for p in parts])
        offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        tris = np.concatenate([p[2] + off for p, off in zip(parts, offsets, strict=True)])
        h = llh[:, 2] + n_geoid
        positions = geodetic_to_ecef(llh[:, 0], llh[:, 1], h)
        normals = (normals_enu @ rot.T).astype(np.float32)
        bounds = (
            float(llh[:, 0].min()),
            float(llh[:, 1].min()),
            float(llh[:, 0].max()),
            float(llh[:, 1].max()),
            float(h.min()),
            float(h.max()),
        )
        mesh = Mesh(positions, normals, tris.reshape(-1).astype(np.uint32))
        return mesh, bounds

    @staticmethod
    def _polygon3d(
        rings: list[np.ndarray], lon0: float, lat0: float, mlon: float, mlat: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        rings = [_dedupe(r) for r in rings]
        rings = [r for r in rings if len(r) >= 3]
        if not rings:
            return None
        llh = np.concatenate(rings)
        local = np.column_stack([(llh[:, 0] - lon0) * mlon, (llh[:, 1] - lat0) * mlat, llh[:, 2]])
        ext = local[: len(rings[0])]
        nxt = np.roll(ext, -1, axis=0)
        normal = np.array(
            [
                np.sum((ext[:, 1] - nxt[:, 1]) * (ext[:, 2] + nxt[:, 2])),
                np.sum((ext[:, 2] - nxt[:, 2]) * (ext[:, 0] + nxt[:, 0])),
                np.sum((ext[:, 0] - nxt[:, 0]) * (ext[:, 1] + nxt[:, 1])),
            ]
        )
        length = float(np.linalg.norm(normal))
        if length < 1e-9:
            return None  # degenerate (zero-area) polygon
        normal /= length
        helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(helper, normal)
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        uv = np.column_stack([local @ u, local @ v])
        sizes = [len(r) for r in rings]
        splits = np.cumsum(sizes)[:-1]
        # counter-clockwise in (u, v): wound about the Newell normal
        tris = _triangulate(np.split(uv, splits))
        if len(tris) == 0:
            return None
        return llh, np.tile(normal, (len(llh), 1)), tris

    @staticmethod
    def _extrusion(
        b: Building, lon0: float, lat0: float, mlon: float, mlat: float
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """LOD1 block: footprint x [base, top] with floor, roof and walls."""
        if b.lod1:
            zs = np.concatenate([r[:, 2] for rings in b.lod1 for r in rings])
            base, top = float(zs.min()), float(zs.max())
            bottom = min(b.lod1, key=lambda rings: float(rings[0][:, 2].mean()))
            polys = [bottom]
        elif b.lod0:
            zs = np.concatenate([r[:, 2] for rings in b.lod0 for r in rings])
            height = b.measured_height or 3.0 * (b.storeys or 1)
            top = float(zs.max())
            base = top - height
            polys = b.lod0
        else:
            return []
        if top - base < 0.1:
            top = base + max(b.measured_height or 0.0, 0.1)
        parts = []
        for rings in polys:
            rings2 = [_dedupe(r[:, :2]) for r in rings]
            rings2 = [r for r in rings2 if len(r) >= 3]
            if not rings2:
                continue
            # exterior CCW, holes CW (in lon/lat, same sense as in metres)
            rings2 = [
                r if (_signed_area(r) > 0) == (i == 0) else r[::-1] for i, r in enumerate(rings2)
            ]
            flat = np.concatenate(rings2)
            xy = np.column_stack([(flat[:, 0] - lon0) * mlon, (flat[:, 1] - lat0) * mlat])
            tris = _triangulate(np.split(xy, np.cumsum([len(r) for r in rings2])[:-1]))
            if len(tris):
                n = len(flat)
                roof = np.column_stack([flat, np.full(n, top)])
                floor = np.column_stack([flat, np.full(n, base)])
                parts.append((roof, np.tile([0.0, 0.0, 1.0], (n, 1)), tris))
                parts.append((floor, np.tile([0.0, 0.0, -1.0], (n, 1)), tris[:, [0, 2, 1]]))
            for ring in rings2:
                nxt = np.roll(ring, -1, axis=0)
                dx = (nxt[:, 0] - ring[:, 0]) * mlon
                dy = (nxt[:, 1] - ring[:, 1]) * mlat
                length = np.hypot(dx, dy)
                ok = length > 1e-6
                if not ok.any():
                    continue
                a, c, dx, dy, length = ring[ok], nxt[ok], dx[ok], dy[ok], length[ok]
                k = len(a)
                quad = np.empty((k, 4, 3))
                quad[:, 0, :2], quad[:, 0, 2] = a, base
                quad[:, 1, :2], quad[:, 1, 2] = c, base
                quad[:, 2, :2], quad[:, 2, 2] = c, top
                quad[:, 3, :2], quad[:, 3, 2] = a, top
                nrm = np.column_stack([dy / length, -dx / length, np.zeros(k)])
                base_idx = (np.arange(k) * 4)[:, None]
                wall_tris = np.concatenate(
                    [base_idx + np.array([0, 1, 2]), base_idx + np.array([0, 2, 3])]
                )
                parts.append((quad.reshape(-1, 3), np.repeat(nrm, 4, axis=0), wall_tris))
        return parts


# --------------------------------------------------------------------------- metadata

#: (name, type, componentType or None, noData) of the property table columns.
PROPERTIES: list[tuple[str, str, str | None, Any]] = [
    ("building_id", "STRING", None, ""),
    ("gml_id", "STRING", None, ""),
    ("measured_height", "SCALAR", "FLOAT64", -9999.0),
    ("storeys", "SCALAR", "INT32", -1),
    ("usage", "STRING", None, ""),
    ("usage_code", "STRING", None, ""),
    ("class", "STRING", None, ""),
    ("flood_depth_m", "SCALAR", "FLOAT64", -9999.0),
    ("flood_rank", "STRING", None, ""),
    ("flood_duration_h", "SCALAR", "FLOAT64", -9999.0),
    ("flood_scale", "STRING", None, ""),
    ("flood_source", "STRING", None, ""),
    ("district_zone", "STRING", None, ""),
    ("lod", "SCALAR", "UINT8", 255),
    ("source_file", "STRING", None, ""),
]
_NP = {"FLOAT64": np.float64, "INT32": np.int32, "UINT8": np.uint8}


def metadata_schema() -> dict[str, Any]:
    """The ``EXT_structural_metadata`` schema of the building class."""
    props: dict[str, Any] = {}
    for name, type_, component, nodata in PROPERTIES:
        entry: dict[str, Any] = {"type": type_, "noData": nodata}
        if component:
            entry["componentType"] = component
        props[name] = entry
    return {"id": "geotwin_buildings", "classes": {"building": {"properties": props}}}


def feature_row(b: Building) -> tuple[Any, ...]:
    """One property-table row (None where absent) in :data:`PROPERTIES` order."""
    raw = building_record(b)
    return tuple(raw.get(name) for name, *_ in PROPERTIES)


# --------------------------------------------------------------------------- glb


class _Bin:
    """A binary buffer of 8-byte-aligned bufferViews."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict[str, Any]] = []

    def add(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.length) % 8
        if pad:
            self.parts.append(b"\0" * pad)
            self.length += pad
        view: dict[str, Any] = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.parts.append(data)
        self.length += len(data)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        data = b"".join(self.parts)
        return data + b"\0" * ((-len(data)) % 8)


def write_glb(
    path: Path,
    positions: np.ndarray,
    normals: np.ndarray,
    feature_ids: np.ndarray,
    indices: np.ndarray,
    rows: list[tuple[Any, ...]],
    double_sided: bool,
) -> None:
    """Write one glb: a triangle primitive with feature ids and a property table."""
    buf = _Bin()
    pos = np.ascontiguousarray(positions, dtype=np.float32)
    nrm = np.ascontiguousarray(normals, dtype=np.float32)
    fid = np.ascontiguousarray(feature_ids, dtype=np.float32)
    small = len(pos) <= 65535  # 16-bit indices when they fit: a third less index data
    idx = np.ascontiguousarray(indices, dtype=np.uint16 if small else np.uint32)
    accessors = [
        {
            "bufferView": buf.add(pos.tobytes(), 34962),
            "componentType": 5126,
            "count": len(pos),
            "type": "VEC3",
            "min": [float(v) for v in pos.min(axis=0)],
            "max": [float(v) for v in pos.max(axis=0)],
        },
        {
            "bufferView": buf.add(nrm.tobytes(), 34962),
            "componentType": 5126,
            "count": len(nrm),
            "type": "VEC3",
        },
        {
            "bufferView": buf.add(fid.tobytes(), 34962),
            "componentType": 5126,
            "count": len(fid),
            "type": "SCALAR",
        },
        {
            "bufferView": buf.add(idx.tobytes(), 34963),
            "componentType": 5123 if small else 5125,
            "count": len(idx),
            "type": "SCALAR",
        },
    ]
    table: dict[str, Any] = {}
    for col, (name, type_, component, nodata) in enumerate(PROPERTIES):
        values = [row[col] for row in rows]
        if type_ == "STRING":
            encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
            if not any(encoded):
                continue  # no value in this tile: the column is omitted (not required)
            offsets = np.zeros(len(encoded) + 1, dtype=np.uint32)
            offsets[1:] = np.cumsum([len(e) for e in encoded])
            table[name] = {
                "values": buf.add(b"".join(encoded)),
                "stringOffsets": buf.add(offsets.tobytes()),
                "stringOffsetType": "UINT32",
            }
        else:
            assert component is not None
            arr = np.array([nodata if v is None else v for v in values], dtype=_NP[component])
            table[name] = {"values": buf.add(arr.tobytes())}
    binary = buf.bytes()
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": GENERATOR},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1, "_FEATURE_ID_0": 2},
                        "indices": 3,
                        "material": 0,
                        "mode": 4,
                        "extensions": {
                            "EXT_mesh_features": {
                                "featureIds": [
                                    {"featureCount": len(rows), "attribute": 0, "propertyTable": 0}
                                ]
                            }
                        },
                    }
                ]
            }
        ],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.92, 0.91, 0.88, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.9,
                },
                "doubleSided": double_sided,
            }
        ],
        "accessors": accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(binary)}],
        "extensions": {
            "EXT_structural_metadata": {
                "schema": metadata_schema(),
                "propertyTables": [{"class": "building", "count": len(rows), "properties": table}],
            }
        },
    }
    js = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * ((4 - (len(js) % 8)) % 8)  # JSON length = 4 mod 8: BIN data 8-aligned
    total = 12 + 8 + len(js) + 8 + len(binary)
    with path.open("wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, total))
        fh.write(struct.pack("<I4s", len(js), b"JSON"))
        fh.write(js)
        fh.write(struct.pack("<I4s", len(binary), b"BIN\0"))
        fh.write(binary)


# --------------------------------------------------------------------------- tiling


@dataclass
class _Cell:
    count: int = 0
    bounds: list[float] = field(
        default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf, math.inf, -math.inf]
    )


@dataclass(kw_only=True)
class TilesReport(RunReport):
    """What :func:`write_tiles` did: ``skipped`` buildings without geometry, ``problems``
    (files that failed to parse), the hierarchy's size, wall time and peak memory."""

    buildings: int = 0
    tiles: int = 0
    leaves: int = 0
    blocks: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    geoid: str = ""
    tileset: Path | None = None
    #: leaf tiles this run wrote (the others came from an interrupted run's checkpoints)
    leaves_built: int = 0
    #: what was resumed ("" for a build from nothing)
    resume_note: str = ""


class _Spill:
    """Per-cell append-only spill files with a bounded in-memory buffer.

    Each flush appends one frame per cell: length, CRC32, pickled records.  ``sizes``: each
    file's length after the last flush - what a checkpoint records, so a resumed build
    truncates the files back to it (:meth:`restore`) and a damaged frame is detected
    (:class:`~geoservice.city3d.resume.StagingDamaged`) instead of being read."""

    def __init__(self, directory: Path, limit: int, sizes: dict[str, int] | None = None) -> None:
        self.directory = directory
        self.limit = limit
        self.buffers: dict[tuple[int, int], list[Any]] = {}
        self.size = 0
        self.sizes: dict[str, int] = dict(sizes or {})

    @staticmethod
    def name(key: tuple[int, int]) -> str:
        """The spill file of a cell."""
        return f"{key[0]}_{key[1]}.pkl"

    def add(self, key: tuple[int, int], record: tuple[Any, ...], nbytes: int) -> bool:
        """Buffer a record; True when the buffer is over its limit (time to flush)."""
        self.buffers.setdefault(key, []).append(record)
        self.size += nbytes
        return self.size > self.limit

    def flush(self) -> None:
        for key, records in self.buffers.items():
            payload = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
            with (self.directory / self.name(key)).open("ab") as fh:
                fh.write(_FRAME.pack(len(payload), zlib.crc32(payload)))
                fh.write(payload)
                self.sizes[self.name(key)] = fh.tell()
        self.buffers.clear()
        self.size = 0

    def restore(self) -> None:
        """Back to the last checkpoint: files cut to their recorded sizes, newer ones gone."""
        for path in self.directory.iterdir():
            size = self.sizes.get(path.name)
            if size is None:
                path.unlink()
            elif path.stat().st_size < size:
                raise StagingDamaged(f"spill file {path.name} is shorter than its checkpoint")
            else:
                os.truncate(path, size)

    def read(self, key: tuple[int, int]) -> list[Any]:
        out: list[Any] = []
        path = self.directory / self.name(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StagingDamaged(f"spill file {path.name} is missing") from None
        pos = 0
        while pos < len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                raise StagingDamaged(f"spill file {path.name} is damaged at byte {pos}")
            out.extend(pickle.loads(payload))
            pos += _FRAME.size + length
        return out

    def discard(self, keys: Iterable[tuple[int, int]]) -> None:
        """Delete the spill files of cells whose leaf is complete (disk use stays flat)."""
        for key in keys:
            (self.directory / self.name(key)).unlink(missing_ok=True)


def _union(bounds: Iterable[list[float]]) -> list[float]:
    out = [math.inf, math.inf, -math.inf, -math.inf, math.inf, -math.inf]
    for b in bounds:
        out = [
            min(out[0], b[0]),
            min(out[1], b[1]),
            max(out[2], b[2]),
            max(out[3], b[3]),
            min(out[4], b[4]),
            max(out[5], b[5]),
        ]
    return out


def _region(b: list[float]) -> list[float]:
    """(lon0, lat0, lon1, lat1, h0, h1) degrees -> 3D Tiles region (radians)."""
    return [*(math.radians(v) for v in b[:4]), b[4], b[5]]


def _diagonal_m(b: list[float]) -> float:
    lat = math.radians((b[1] + b[3]) / 2)
    dx = math.radians(b[2] - b[0]) * WGS84_A * math.cos(lat)
    dy = math.radians(b[3] - b[1]) * WGS84_A
    return math.sqrt(dx * dx + dy * dy + (b[5] - b[4]) ** 2)


def write_tiles(
    files: list[Path],
    out_dir: Path,
    codelists: CodeLists | None = None,
    *,
    max_per_leaf: int = 600,
    cell_deg: float = 0.004,
    max_leaf_cells: int = 16,
    grid: int = 12,
    subtree_levels: int = 3,
    spill_bytes: int = 32 << 20,
    geoid: Geoid | None = None,
    synthetic: bool = False,
    attribution: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    merged: bool = True,
    resume: bool = True,
) -> TilesReport:
    """Write the buildings of ``files`` as a 3D Tiles 1.1 tileset at ``out_dir``.

    Resumable and published atomically (:mod:`geoservice.city3d.resume`): the build runs in
    ``.<name>.staging`` beside ``out_dir`` with a checkpoint manifest; a build killed at any
    point and run again with the same inputs and options goes on from its last checkpoint
    (``resume=False``: start over) and writes the same bytes as an uninterrupted one.
    ``out_dir`` becomes a symlink to the finished release, swapped in one rename, so
    readers never see a half-written tileset and a failed run leaves the old one served.
    Files that fail to parse are skipped and listed in ``report.problems``.  The level of
    detail hierarchy (:mod:`geoservice.city3d.lod`): leaves of at most ``max_per_leaf``
    buildings and ``max_leaf_cells`` cells a side (unless one ``cell_deg`` cell holds
    more), inner tiles of ``grid`` x ``grid``
    merged blocks, external tilesets every ``subtree_levels`` levels.  ``workers``: meshing
    and tree-building processes (``None``: automatic - several for inputs over 32 MB, else
    in-process); ``workers`` and ``spill_bytes`` (memory, checkpoint spacing) may differ
    between a run and its resumption.  ``merged=False`` writes the flat layout (empty inner
    tiles, refine ``ADD``: every view loads full-detail leaves) - kept for benchmarks.
    """
    started = time.perf_counter()
    geoid = geoid or Geoid()
    out_dir = Path(out_dir)
    options = {
        "max_per_leaf": max_per_leaf,
        "cell_deg": cell_deg,
        "max_leaf_cells": max_leaf_cells,
        "grid": grid,
        "subtree_levels": subtree_levels,
        "merged": merged,
        "synthetic": synthetic,
        "attribution": attribution,
    }
    inputs = fingerprint(
        files, options, codelists.directory if codelists else None, geoid.description
    )
    n_workers = _auto_workers(files) if workers is None else workers
    build = _Build(files, codelists, geoid, options, spill_bytes, progress, n_workers)
    with build_lock(out_dir):
        staging = open_staging(out_dir, inputs, resume=resume)
        try:
            report = build.run(staging)
        except StagingDamaged as exc:  # a machine crash tore a checkpoint: redo it all
            log.warning("%s: %s; starting over", out_dir, exc)
            discard(out_dir)
            staging = open_staging(out_dir, inputs)
            report = build.run(staging)
        except NothingToTile:  # there is nothing to resume either
            discard(out_dir)
            raise
        publish(staging)
    report.tileset = out_dir / "tileset.json"
    report.seconds = time.perf_counter() - started
    report.peak_rss_mb = _peak_rss_mb()
    return report


class NothingToTile(ValueError):
    """No building of the input has geometry."""


@dataclass
class _Build:
    """One build's inputs; :meth:`run` takes a staging directory from wherever it stands."""

    files: list[Path]
    codelists: CodeLists | None
    geoid: Geoid
    options: dict[str, Any]
    spill_bytes: int
    progress: Progress | None
    workers: int

    def run(self, staging: Staging) -> TilesReport:
        """Mesh pass (or its checkpoint), tree (reusing completed units), tileset.json."""
        from geoservice.city3d.lod import LodOptions, build_tree  # lod builds on this module

        report = TilesReport(geoid=self.geoid.description)
        o = self.options
        state = staging.manifest.get("spill") or {}
        resumed_at = int(state.get("consumed", 0))
        spill = _Spill(staging.spill, self.spill_bytes, state.get("sizes"))
        if staging.phase == "spill":
            cells = _spill_pass(self, staging, spill, report)
        else:
            cells = _restore_cells(state, report)
        if not cells:
            raise NothingToTile("no buildings with geometry to tile")
        if staging.phase == "tree":
            opts = LodOptions(
                o["max_per_leaf"],
                o["max_leaf_cells"],
                o["grid"],
                o["subtree_levels"],
                self.workers,
                merged=o["merged"],
            )
            root, counts, built = build_tree(
                cells, o["cell_deg"], spill, staging.content, staging.units, opts
            )
            result = {
                "tiles": counts.tiles,
                "leaves": counts.leaves,
                "blocks": counts.blocks,
                "leaves_built": built,
                "run": len(staging.manifest["runs"]),
            }
            result["tiles"] += self._write_tileset(staging.content, root, report.buildings)
            staging.save(phase="complete", result=result)
        result = staging.manifest["result"]
        report.tiles, report.leaves, report.blocks = (
            result["tiles"],
            result["leaves"],
            result["blocks"],
        )
        runs = len(staging.manifest["runs"])
        # a run that only publishes what an earlier run finished built nothing
        report.leaves_built = result["leaves_built"] if result["run"] == runs else 0
        if runs > 1:
            report.resume_note = (
                f"resumed an interrupted build (run {runs}): {resumed_at} buildings meshed "
                f"before, {report.leaves - report.leaves_built} of {report.leaves} leaf "
                f"tiles reused, {report.leaves_built} built"
            )
        return report

    def _write_tileset(self, content: Path, root: dict[str, Any], buildings: int) -> int:
        """``tileset.json`` over ``root``; 1 when an empty root had to be added, else 0."""
        added = 0
        if "children" not in root:  # one leaf: an empty root above it, so it has an error
            w, s, e, n, h0, h1 = root["boundingVolume"]["region"]
            bounds = [math.degrees(v) for v in (w, s, e, n)] + [h0, h1]
            root = {
                "boundingVolume": root["boundingVolume"],
                "geometricError": max(1.0, _diagonal_m(bounds) / 20.0),
                "refine": "ADD",
                "children": [root],
            }
            added = 1
        extras: dict[str, Any] = {
            "heights": self.geoid.description,
            "geoid_grid": self.geoid.uses_grid,
            "buildings": buildings,
            "synthetic": self.options["synthetic"],
        }
        if self.options["attribution"]:
            extras["attribution"] = self.options["attribution"]
        # the error of showing nothing is the whole city: the root is drawn while the city
        # is more than a few pixels across, not only once the camera is near
        w, s, e, n, h0, h1 = root["boundingVolume"]["region"]
        city = _diagonal_m([math.degrees(v) for v in (w, s, e, n)] + [h0, h1])
        tileset = {
            "asset": {"version": "1.1", "generator": GENERATOR, "extras": extras},
            "geometricError": max(root["geometricError"] * 2.0, city),
            "root": root,
        }
        (content / "tileset.json").write_text(
            json.dumps(tileset, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        return added


def _peak_rss_mb() -> float:
    """Peak resident memory (MB) of this process and of its largest finished worker."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(me, kids) / 1024, 1)


class _Source:
    """The input buildings in order from a resume point (file index, buildings of it already
    consumed), remembering where each file starts in the stream, so that a checkpoint can
    name the file and offset of a stream position."""

    def __init__(self, build: _Build, first: int, skip: int, consumed: int) -> None:
        self.build, self.first, self.skip = build, first, skip
        self.starts: dict[int, int] = {first: consumed - skip}
        self.errors: list[tuple[int, str]] = []  # (file index, message)

    def __iter__(self) -> Iterator[Building]:
        pos = self.starts[self.first] + self.skip
        for i in range(self.first, len(self.build.files)):
            self.starts.setdefault(i, pos)
            errors = ReadErrors()
            b = self.build
            skip = self.skip if i == self.first else 0  # parsed as XML only, not meshed
            for building in read_many([b.files[i]], b.codelists, errors, skip):
                pos += 1
                yield building
            self.errors.extend((i, m) for m in errors.messages())
            self.starts[i + 1] = pos

    def position(self, consumed: int) -> tuple[int, int]:
        """(file index, offset) of stream position ``consumed``."""
        i = max(k for k, start in self.starts.items() if start <= consumed)
        return i, consumed - self.starts[i]  # i == len(files): every file was read


def _restore_cells(state: dict[str, Any], report: TilesReport) -> dict[tuple[int, int], _Cell]:
    """Cells and counters of a checkpoint (the cells in their first-seen order: leaves list
    their buildings in that order, so a resumed build writes the same bytes)."""
    report.buildings = int(state.get("buildings", 0))
    report.skipped = int(state.get("skipped", 0))
    report.problems = list(state.get("problems", []))
    return {(c[0], c[1]): _Cell(c[2], list(c[3:])) for c in state.get("cells", [])}


def _spill_pass(
    build: _Build, staging: Staging, spill: _Spill, report: TilesReport
) -> dict[tuple[int, int], _Cell]:
    """Mesh every building into the spill file of its grid cell (from the last checkpoint
    on); the cells' counts/bounds.  A flush and checkpoint when the spill buffer is full or
    :data:`CHECKPOINT_S` after the last one, whichever comes first."""
    state = staging.manifest.get("spill") or {}
    cells = _restore_cells(state, report)
    spill.restore()
    consumed = int(state.get("consumed", 0))
    checkpoints = int(state.get("checkpoints", 0))
    source = _Source(build, int(state.get("file", 0)), int(state.get("offset", 0)), consumed)
    problems = list(report.problems)
    cell_deg = build.options["cell_deg"]

    def checkpoint(done: bool) -> None:
        nonlocal checkpoints
        checkpoints += 1
        file, offset = source.position(consumed)
        report.problems = problems + [m for i, m in source.errors if done or i < file]
        staging.save(
            phase="tree" if done else "spill",
            spill={
                "consumed": consumed,
                "file": file,
                "offset": offset,
                "checkpoints": checkpoints,
                "buildings": report.buildings,
                "skipped": report.skipped,
                "problems": report.problems,
                "cells": [[k[0], k[1], c.count, *c.bounds] for k, c in cells.items()],
                "sizes": spill.sizes,
            },
        )

    last = time.monotonic()
    for meshed in _meshed(source, build.geoid, build.workers):
        consumed += 1
        if meshed is None:
            report.skipped += 1
            continue
        row, mesh, bounds, lod2 = meshed
        lon = (bounds[0] + bounds[2]) / 2
        lat = (bounds[1] + bounds[3]) / 2
        key = (math.floor(lon / cell_deg), math.floor(lat / cell_deg))
        cell = cells.setdefault(key, _Cell())
        cell.count += 1
        cell.bounds = _union([cell.bounds, list(bounds)])
        record = (row, mesh.positions, mesh.normals, mesh.indices, lod2)
        report.buildings += 1
        full = spill.add(key, record, mesh.positions.nbytes * 2 + mesh.indices.nbytes + 400)
        if full or time.monotonic() > last + CHECKPOINT_S:
            spill.flush()
            checkpoint(done=False)
            last = time.monotonic()
        if build.progress is not None and report.buildings % 1000 == 0:
            build.progress(report.buildings)
    spill.flush()
    checkpoint(done=True)
    return cells


_Meshed = tuple[tuple[Any, ...], Mesh, tuple[float, ...], bool] | None
_WORKER: Mesher | None = None
_BATCH = 256


def _mesh_one(mesher: Mesher, b: Building) -> _Meshed:
    try:
        meshed = mesher.mesh(b)
    except Exception as exc:  # a broken building must not stop a city
        log.warning("%s: line %d: building not meshed: %s", b.source_file, b.line, exc)
        return None
    if meshed is None:
        return None
    return feature_row(b), meshed[0], meshed[1], b.lod == 2


def _init_worker(grid: str | None, constant: float, parent: int) -> None:
    global _WORKER
    die_with_parent(parent)
    _WORKER = Mesher(Geoid(Path(grid) if grid else Path("/nonexistent"), constant))


def _mesh_batch(batch: list[Building]) -> list[_Meshed]:
    assert _WORKER is not None
    return [_mesh_one(_WORKER, b) for b in batch]


def _meshed(buildings: Iterable[Building], geoid: Geoid, workers: int) -> Iterable[_Meshed]:
    """Mesh in this process, or in ``workers`` processes (batches, bounded in flight)."""
    if workers <= 1:
        mesher = Mesher(geoid)
        for b in buildings:
            yield _mesh_one(mesher, b)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    grid = str(geoid.grid_path) if geoid.grid_path else None
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),  # safe in threaded processes
        initializer=_init_worker,
        initargs=(grid, geoid.constant, os.getpid()),
    ) as pool:
        pending: deque[Future[list[_Meshed]]] = deque()
        batch: list[Building] = []
        for b in buildings:
            batch.append(b)
            if len(batch) >= _BATCH:
                pending.append(pool.submit(_mesh_batch, batch))
                batch = []
                while len(pending) > 2 * workers:
                    yield from pending.popleft().result()
        if batch:
            pending.append(pool.submit(_mesh_batch, batch))
        while pending:
            yield from pending.popleft().result()


def _auto_workers(files: list[Path]) -> int:
    """Worker processes for meshing: none for small inputs (start-up costs ~1 s)."""
    size = sum(p.stat().st_size for p in files if p.exists())
    if size < 32 << 20:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- build hook


def tiles_after_build(
    settings: Settings, specs: dict[str, LayerSpec], mirror: Mirror | None, report: BuildReport
) -> None:
    """``geoservice build`` hook: re-read the ``buildings`` layer's sources into 3D Tiles.

    Called after the store swap when a ``buildings`` layer was built.  The tiles are made
    from the CityGML sources (the store keeps only 2D footprints) into
    ``settings.tiles_dir / "buildings"``.  A failure is logged and recorded in
    ``report.skipped["buildings-3dtiles"]`` - the new store stays in place and the previous
    tileset is kept; per-file read errors are recorded the same way.
    """
    from geoservice.loaders.gml import spec_codelists

    spec = specs.get("buildings")
    if spec is None or "buildings" not in report.counts:
        return
    try:
        files, root, _label, synthetic = resolve_sources(spec, settings, mirror)
        sp = rooted(spec, root)
        result = write_tiles(
            files,
            Path(settings.tiles_dir) / "buildings",
            spec_codelists(sp, files),
            synthetic=synthetic or spec.synthetic,
            attribution=spec.attribution,
        )
        if result.problems:
            report.skipped["buildings-3dtiles"] = "; ".join(result.problems)
        log.info("3D Tiles: %d buildings in %d tiles", result.buildings, result.tiles)
    except Exception as exc:
        log.exception("3D Tiles for buildings failed; the previous tileset is kept")
        report.skipped["buildings-3dtiles"] = f"3D Tiles not written: {exc}"
