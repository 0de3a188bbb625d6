"""The hazard card: what the hazard layers say about one site, and where they are silent.

``HazardService.build(store, specs, raster)`` reads every hazard layer ONCE into STRtree
indexes (start-up); ``card(geometry)`` then answers from memory.  Principles:

* **No data is not safe.**  Every layer reports whether the site lies inside its declared
  coverage (``inside`` / ``partial`` / ``outside``) and a status: ``hit`` (the site touches
  a zone), ``clear`` (inside coverage, no zone), ``clear-where-covered`` (partly covered,
  no zone in the covered part) or ``no-data``.  A site outside every layer's coverage gets
  a card whose summary says exactly that.
* **Not the legal hazard map.**  The card carries the disclaimer (ja + en) and a link to
  the municipality's hazard-map page (``hazard_maps.yml``; unverified URLs are flagged).
* Synthetic layers (flood-depth raster, earthquake risk, emergency roads) are labelled.

Coverage of a layer = its spec's ``coverage.bbox`` (intersected with the union of its
``coverage.municipalities`` when listed); ``extent_of_data`` layers use the extent of the
built data; layers described as Tokyo-wide (:data:`TOKYO_WIDE`) are further cut to the
union of Tokyo's municipalities, so a site in Saitama is ``no-data``, not ``clear``.
Distances and areas are in EPSG:6677 (JGD2011 plane-rectangular IX), straight-line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.validation
import yaml
from shapely import STRtree
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from geoservice.auth.scope import MunicipalityIndex
from geoservice.catalogue import LayerSpec
from geoservice.crs import to_6677
from geoservice.features import Feature
from geoservice.geometry import InvalidGeometry, parse_geometry
from geoservice.hazards.raster import COLLECTION as RASTER_ID
from geoservice.hazards.raster import TITLE as RASTER_TITLE
from geoservice.hazards.raster import FloodRaster, RasterError
from geoservice.reinfolib.site import Results, is_api_layer, outcome
from geoservice.store import Store

log = logging.getLogger(__name__)

#: Sediment-disaster zone layers and how to read each one's properties.
ZONE_LAYERS: dict[str, dict[str, str | None]] = {
    "sediment-special-zones": {
        "phenomenon": "genshoname",
        "zone_class": "kubun",
        "public_notice": "koujinum",
        "notified_on": "koujidate",
        "name": "keiryuname",
        "number": "keiryunum",
        "location": "shozaichi",
    },
    "sediment-warning-zones": {
        "phenomenon": "phenomenon",
        "zone_class": "zone_class",
        "public_notice": None,  # PLATEAU lsld carries 区域番号 and 告示日, no 告示番号
        "notified_on": "notified_on",
        "name": "zone_name",
        "number": "zone_number",
        "location": "location",
    },
    "landslide-zones": {
        "phenomenon": "genshoname",
        "zone_class": "kubun",
        "public_notice": "koujinum",
        "notified_on": "koujidate",
        "name": "kashoname",
        "number": "kashonum",
        "location": "shozaichi",
    },
}
FLOOD_LAYER = "flood-inundation"
RISK_LAYER = "earthquake-risk"
ROAD_LAYER = "emergency-transport-roads"
SHELTER_LAYERS = ("hachioji-shelters", "shelters")
#: Official hazard layers fetched per site from the 不動産情報ライブラリ API (card order).
API_LAYERS = (
    "reinfolib-liquefaction",        # 液状化の発生傾向: level and 微地形 (XKT025)
    "reinfolib-large-fills",         # 大規模盛土造成地 (XKT020)
    "reinfolib-steep-slope-areas",   # 急傾斜地崩壊危険区域 (XKT022)
    "reinfolib-landslide-prevention",  # 地すべり防止区域 (XKT021)
    "reinfolib-disaster-risk-areas",   # 災害危険区域 (XKT016)
)
ADMIN_LAYER = "admin-boundaries"
#: Layers complete for all of Tokyo (their bbox is cut to Tokyo's municipalities).
TOKYO_WIDE = frozenset({"sediment-special-zones", "landslide-zones", "shelters"})
#: Largest site accepted (m²): a card is for a site, not a city.
MAX_AREA_M2 = 5_000_000.0
K_SHELTERS = 3
#: Hachioji flag property -> designated hazard label.
SHELTER_HAZARDS = {
    "flood": "洪水 (flood)",
    "sediment": "崖崩れ・土石流・地滑り (sediment disaster)",
    "earthquake": "地震 (earthquake)",
    "inland_flood": "内水氾濫 (inland flooding)",
}

DISCLAIMER = {
    "ja": (
        "このカードはオープンデータ等の重ね合わせであり、法令に基づくハザードマップではありません。"
        "区域が表示されない場所や、データの対象範囲外の場所が安全であることを意味しません。"
        "合成（デモ）と表示されたレイヤーは架空のデータです。必ず市区町村のハザードマップで確認してください。"
    ),
    "en": (
        "This card overlays open data; it is not the legal hazard map. An area where no zone "
        "is shown, or that lies outside a layer's coverage, is not thereby safe. Layers "
        "marked synthetic (demo) hold invented data. Always check the municipality's "
        "official hazard map."
    ),
}
HAZARD_MAPS = Path(__file__).with_name("hazard_maps.yml")


#: Site geometry types the card accepts.
SITE_TYPES = ("Point", "MultiPoint", "Polygon", "MultiPolygon", "LineString", "MultiLineString")


def parse_site(obj: Any) -> BaseGeometry:
    """A GeoJSON geometry or Feature (CRS84) -> a valid shapely geometry, or 400
    (``geoservice.geometry``: one parser and error for every route)."""
    if isinstance(obj, Mapping) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    return parse_geometry(obj, "geometry", SITE_TYPES)


@dataclass
class LayerIndex:
    """One vector layer: features in an STRtree, its coverage geometry and spec."""

    spec: LayerSpec
    features: list[Feature]
    coverage: BaseGeometry | None
    synthetic: bool
    tree: STRtree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = STRtree([f.geometry for f in self.features])
        if self.coverage is not None:
            shapely.prepare(self.coverage)

    def coverage_of(self, site: BaseGeometry) -> str:
        """``inside`` / ``partial`` / ``outside`` of the layer's coverage."""
        if self.coverage is None or self.coverage.is_empty:
            return "outside"
        if self.coverage.covers(site):
            return "inside"
        if self.coverage.intersects(site):
            return "partial"
        return "outside"

    def hits(self, site: BaseGeometry) -> list[Feature]:
        """Features whose geometry intersects the site (boundary included)."""
        idx = self.tree.query(site, predicate="intersects")
        return [self.features[int(i)] for i in sorted(idx)]


def layer_status(coverage: str, hits: int) -> str:
    """The per-layer verdict: ``hit``, ``clear``, ``clear-where-covered`` or ``no-data``."""
    if hits:
        return "hit"
    return {"inside": "clear", "partial": "clear-where-covered"}.get(coverage, "no-data")


@dataclass
class ShelterIndex:
    """Shelter points of all shelter layers, projected once to EPSG:6677."""

    features: list[tuple[str, Feature]]
    points: np.ndarray  # shapely Points in EPSG:6677
    coverage: dict[str, LayerIndex]
    xy: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.xy = shapely.get_coordinates(self.points) if len(self.points) else np.empty((0, 2))

    def nearest(self, site_m: BaseGeometry, k: int = K_SHELTERS) -> list[dict[str, Any]]:
        """The ``k`` nearest distinct shelters with straight-line distance (m) to ``site_m``
        (the site already projected with :func:`to_6677`).

        Candidates are found with numpy from the site's centroid (the exact distance lies
        within the site's radius of it), then measured exactly with shapely.
        """
        if not self.features:
            return []
        c = site_m.centroid
        coords = shapely.get_coordinates(site_m)
        radius = float(np.hypot(coords[:, 0] - c.x, coords[:, 1] - c.y).max())
        approx = np.hypot(self.xy[:, 0] - c.x, self.xy[:, 1] - c.y)
        want = min(k * 4, len(approx))
        bound = float(np.partition(approx, want - 1)[want - 1]) + radius
        cand = np.flatnonzero(approx <= bound)
        exact = shapely.distance(site_m, self.points[cand])
        order = cand[np.argsort(exact, kind="stable")]
        dist = dict(zip(cand.tolist(), exact.tolist(), strict=True))
        out: list[dict[str, Any]] = []
        for i in order[:want]:
            lid, f = self.features[int(i)]
            entry = _shelter_entry(lid, f, float(dist[int(i)]), self.coverage[lid].synthetic)
            twin = next((e for e in out if _same_site(e, entry)), None)
            if twin is not None:
                twin["also_in"].append({"layer": lid, "id": f.id})
                if twin["designated_hazards"] is None:
                    twin["designated_hazards"] = entry["designated_hazards"]
                continue
            out.append(entry)
            if len(out) == k:
                break
        return out


def _shelter_entry(lid: str, f: Feature, dist: float, synthetic: bool) -> dict[str, Any]:
    p = f.properties
    hazards: list[str] | None = None
    if lid == "hachioji-shelters":
        hazards = [label for key, label in SHELTER_HAZARDS.items() if p.get(key)]
    kinds = [k for k, v in (("指定緊急避難場所", p.get("evacuation_site")),
                            ("指定避難所", p.get("shelter"))) if v]
    assert f.geometry is not None
    return {
        "layer": lid,
        "id": f.id,
        "name": p.get("name"),
        "address": p.get("address"),
        "distance_m": round(dist, 1),
        "distance_kind": "straight line (EPSG:6677), not a walking route",
        "designated_hazards": hazards,
        "designation": kinds or None,
        "designated_hazards_note": (
            None if hazards is not None
            else "this source does not say which hazards the site is designated for"
        ),
        "lon": round(f.geometry.x, 6),
        "lat": round(f.geometry.y, 6),
        "synthetic": synthetic,
        "also_in": [],
    }


def _same_site(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """One place listed by two sources (same name, within 200 m)."""
    na = str(a.get("name") or "").replace(" ", "").replace("\u3000", "")
    nb = str(b.get("name") or "").replace(" ", "").replace("\u3000", "")
    return bool(na) and na == nb and abs(a["distance_m"] - b["distance_m"]) < 200


def _feature_extent(features: Iterable[Feature]) -> BaseGeometry | None:
    geoms = [f.geometry for f in features if f.geometry is not None]
    if not geoms:
        return None
    return box(*shapely.total_bounds(geoms))


class HazardService:
    """Hazard card over indexes built once (see module docstring)."""

    def __init__(
        self,
        zones: dict[str, LayerIndex],
        shelters: ShelterIndex,
        municipalities: MunicipalityIndex,
        raster: FloodRaster | None,
        raster_error: str | None,
        hazard_maps: dict[str, Any],
    ) -> None:
        self.layers = zones
        self.shelters = shelters
        self.municipalities = municipalities
        self.raster = raster
        self.raster_error = raster_error
        self.hazard_maps = hazard_maps
        #: The API layers of the card, as specs (empty when the catalogue has none).
        self.api_specs: dict[str, LayerSpec] = {}

    @property
    def api_layers(self) -> list[str]:
        """The ids of the API layers the card shows (fetched per site by the caller)."""
        return list(self.api_specs)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        store: Store,
        specs: Mapping[str, LayerSpec],
        raster_path: Path | None,
    ) -> HazardService:
        """Read the hazard layers and the raster once."""
        munis = MunicipalityIndex.from_store(store) if ADMIN_LAYER in specs else \
            MunicipalityIndex([], {}, [])
        tokyo = shapely.union_all(munis.geoms).buffer(0.005) if munis.geoms else None
        wanted = [*ZONE_LAYERS, FLOOD_LAYER, RISK_LAYER, ROAD_LAYER, *SHELTER_LAYERS]
        layers: dict[str, LayerIndex] = {}
        available = set(store.collections())
        for lid in wanted:
            spec = specs.get(lid)
            if spec is None or lid not in available:
                continue
            feats = [f for f in store.iter_features(lid) if f.geometry is not None]
            info = store.info(lid)
            cov = cls._coverage(spec, feats, munis, tokyo if lid in TOKYO_WIDE else None)
            layers[lid] = LayerIndex(spec, feats, cov, bool(spec.synthetic or info.synthetic))
        shelter_feats: list[tuple[str, Feature]] = [
            (lid, f) for lid in SHELTER_LAYERS if lid in layers for f in layers[lid].features
        ]
        pts = to_6677(shapely.MultiPoint([f.geometry for _, f in shelter_feats])) \
            if shelter_feats else None
        points = np.asarray(shapely.get_parts(pts)) if pts is not None else np.array([])
        shelters = ShelterIndex(shelter_feats, points,
                                {lid: layers[lid] for lid in SHELTER_LAYERS if lid in layers})
        raster: FloodRaster | None = None
        raster_error: str | None = None
        if raster_path is not None:
            try:
                raster = FloodRaster.open(raster_path)
            except RasterError as exc:
                raster_error = exc.description
                log.warning("flood-depth raster unavailable: %s", exc.description)
        maps = yaml.safe_load(HAZARD_MAPS.read_text(encoding="utf-8"))
        service = cls(layers, shelters, munis, raster, raster_error, maps)
        service.api_specs = {lid: specs[lid] for lid in API_LAYERS if is_api_layer(specs.get(lid))}
        return service

    @staticmethod
    def _coverage(
        spec: LayerSpec,
        feats: list[Feature],
        munis: MunicipalityIndex,
        tokyo: BaseGeometry | None,
    ) -> BaseGeometry | None:
        cov = spec.coverage
        area: BaseGeometry | None = box(*cov.bbox) if cov.bbox else None
        if cov.extent_of_data:
            extent = _feature_extent(feats)
            area = extent if area is None or extent is None else area.intersection(extent)
        if cov.municipalities and munis.geoms:
            parts = [g for c, g in zip(munis.codes, munis.geoms, strict=True)
                     if c in cov.municipalities]
            if parts:
                union = shapely.union_all(parts).buffer(0.002)
                area = union if area is None else area.intersection(union)
        if tokyo is not None and area is not None:
            area = area.intersection(tokyo)
        return area

    # -- the card -----------------------------------------------------------------------------

    @staticmethod
    def checked_site(geometry: BaseGeometry | Mapping[str, Any]) -> BaseGeometry:
        """The site as a valid CRS84 geometry no larger than a card covers, or a 400."""
        site = parse_site(geometry)
        area = float(to_6677(site).area)
        if area > MAX_AREA_M2:
            raise InvalidGeometry(
                f"the site covers {area:,.0f} m²; the card is limited to "
                f"{MAX_AREA_M2:,.0f} m² (a site, not a district)"
            )
        return site

    def card(
        self, geometry: BaseGeometry | Mapping[str, Any], official: Results | None = None
    ) -> dict[str, Any]:
        """The hazard card of a site (a CRS84 shapely geometry or GeoJSON geometry).

        ``official`` holds the API layers fetched for the site (``api_layers``); a layer
        missing from it is reported as not fetched, never as clear.
        """
        site = self.checked_site(geometry)
        projected = to_6677(site)
        area = float(projected.area)
        code = self.municipalities.code_at(site)
        layers: list[dict[str, Any]] = []

        sediment: list[dict[str, Any]] = []
        for lid, fields in ZONE_LAYERS.items():
            idx = self.layers.get(lid)
            if idx is None:
                layers.append(self._missing(lid))
                continue
            _cov, hits = self._assess(idx, site, layers)
            for f in hits:
                sediment.append(self._zone(lid, fields, f))

        flood = self._flood(site, layers)
        risk = self._risk(site, layers)
        roads = self._roads(site, layers)
        shelters = self._shelters(site, projected)
        official_rows = [self._official(lid, site, (official or {}).get(lid), layers)
                         for lid in self.api_specs]

        covered = [x for x in layers if x["coverage"] != "outside"]
        hit = [x for x in layers if x["status"] == "hit"]
        if not covered:
            status = "no-data"
            msg = {
                "ja": "この場所はどのハザードレイヤーの対象範囲にも入っていません。"
                      "データが無いことは安全を意味しません。市区町村のハザードマップを確認してください。",
                "en": "This site lies outside the coverage of every hazard layer. No data "
                      "does not mean safe: check the municipality's hazard map.",
            }
        elif hit:
            status = "hazards-found"
            msg = {
                "ja": f"{len(hit)} 件のレイヤーで区域等に該当します。"
                      "対象範囲外のレイヤーは判定していません。",
                "en": f"The site is in a zone of {len(hit)} layer(s). Layers whose coverage "
                      "does not include the site were not assessed.",
            }
        else:
            status = "none-found-where-covered"
            msg = {
                "ja": "対象範囲内のレイヤーでは該当する区域はありませんでした。"
                      "対象範囲外のレイヤーは判定していません（安全とは限りません）。",
                "en": "No zone was found in the layers that cover the site; layers that do "
                      "not cover it say nothing (this is not a statement of safety).",
            }
        return {
            "site": {
                "type": site.geom_type,
                "area_m2": round(area, 1),
                "centroid": [round(site.centroid.x, 7), round(site.centroid.y, 7)],
                "municipality_code": code,
                "municipality": self.municipalities.names.get(code) if code else None,
            },
            "summary": {
                "status": status,
                "message": msg,
                "layers_total": len(layers),
                "layers_covering_site": len(covered),
                "layers_with_hits": len(hit),
                "outside_every_coverage": not covered,
            },
            "layers": layers,
            "sediment_zones": sediment,
            "flood": flood,
            "earthquake_risk": risk,
            "emergency_transport_roads": roads,
            "shelters": shelters,
            "official": official_rows,
            "credits": sorted({r["credit"] for r in official_rows if r["source"]}),
            "hazard_map": self._hazard_map(code),
            "disclaimer": DISCLAIMER,
        }

    # -- sections -------------------------------------------------------------------------------

    def _assess(
        self, idx: LayerIndex, site: BaseGeometry, layers: list[dict[str, Any]]
    ) -> tuple[str, list[Feature]]:
        """The site's coverage and hits in one layer; appends the layer's row to ``layers``."""
        cov = idx.coverage_of(site)
        hits = idx.hits(site)
        layers.append(self._layer(idx, cov, len(hits)))
        return cov, hits

    @staticmethod
    def _layer(idx: LayerIndex, coverage: str, hits: int) -> dict[str, Any]:
        return {
            "layer": idx.spec.id,
            "title": idx.spec.title,
            "coverage": coverage,
            "coverage_description": idx.spec.coverage.description,
            "status": layer_status(coverage, hits),
            "hits": hits,
            "synthetic": idx.synthetic,
            "attribution": idx.spec.attribution,
        }

    @staticmethod
    def _missing(lid: str, title: str | None = None, reason: str | None = None) -> dict[str, Any]:
        return {
            "layer": lid,
            "title": title or lid,
            "coverage": "outside",
            "coverage_description": reason or "layer not built in this store",
            "status": "no-data",
            "hits": 0,
            "synthetic": False,
            "attribution": None,
        }

    @staticmethod
    def _zone(lid: str, fields: Mapping[str, str | None], f: Feature) -> dict[str, Any]:
        p = f.properties

        def get(key: str) -> Any:
            name = fields.get(key)
            return p.get(name) if name else None

        return {
            "layer": lid,
            "id": f.id,
            "kind": " ".join(str(x) for x in (get("phenomenon"), get("zone_class")) if x),
            "phenomenon": get("phenomenon"),
            "zone_class": get("zone_class"),
            "public_notice": get("public_notice"),
            "notified_on": get("notified_on"),
            "zone_number": get("number"),
            "name": get("name"),
            "location": get("location"),
        }

    def _official(
        self, lid: str, site: BaseGeometry, result: Any, layers: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One API layer's section: its zones at the site with their source, or why none.

        Coverage honesty as for the local layers: the API covers the site only when every
        tile covering it arrived; otherwise the layer is ``no-data`` with the API's reason.
        """
        spec = self.api_specs[lid]
        got, failure = outcome(result)
        hits = [] if got is None else [f for f in got.features if f.geometry is not None
                                       and f.geometry.intersects(site)]
        coverage = "outside" if got is None else "inside"
        why = failure.description if failure is not None else ""
        row = {
            "layer": lid, "title": spec.title, "coverage": coverage,
            "coverage_description": spec.coverage.description if got is not None
            else f"不動産情報ライブラリ API {spec.source.api}: {why}",
            "status": layer_status(coverage, len(hits)), "hits": len(hits), "synthetic": False,
            "attribution": spec.attribution,
        }
        layers.append(row)
        prov = got.provenance if got is not None else None
        return {
            "layer": lid, "api": spec.source.api, "title": spec.title,
            "status": row["status"],
            "source": prov.label() if prov is not None else None,
            "fetched_at": prov.fetched_at if prov is not None else None,
            "reason_code": failure.reason if failure else None,
            "reason": failure.description if failure else None,
            "credit": spec.attribution,
            "zones": [{"id": f.id, **f.properties} for f in hits],
        }

    def _flood(self, site: BaseGeometry, layers: list[dict[str, Any]]) -> dict[str, Any]:
        depth: dict[str, Any]
        if self.raster is None:
            depth = {"layer": RASTER_ID, "coverage": "outside", "status": "unavailable",
                     "reason": self.raster_error or "raster not built"}
            layers.append(self._missing(RASTER_ID, RASTER_TITLE, depth["reason"]))
        else:
            s = self.raster.sample(site)
            depth = {"layer": RASTER_ID, "title": RASTER_TITLE, "unit": "m",
                     "synthetic": self.raster.synthetic, **s.as_dict(),
                     "status": "no-data" if s.coverage == "outside" else "sampled"}
            wet = s.max is not None and s.max > 0
            layers.append({
                "layer": RASTER_ID,
                "title": RASTER_TITLE,
                "coverage": s.coverage,
                "coverage_description": "declared demo areas: "
                + ", ".join(f"{a['name']}" for a in self.raster.declared_areas()),
                "status": layer_status(s.coverage, 1 if wet else 0),
                "hits": 1 if wet else 0,
                "synthetic": self.raster.synthetic,
                "attribution": self.raster.tags.get("ATTRIBUTION"),
            })
        zones: list[dict[str, Any]] = []
        inundation: dict[str, Any] = {"layer": FLOOD_LAYER, "zones": zones}
        idx = self.layers.get(FLOOD_LAYER)
        if idx is None:
            layers.append(self._missing(FLOOD_LAYER))
            inundation["coverage"] = "outside"
        else:
            cov, hits = self._assess(idx, site, layers)
            inundation["coverage"] = cov
            for f in hits:
                p = f.properties
                zones.append({
                    "id": f.id,
                    "rank": p.get("rank"),
                    "rank_code": p.get("rank_code"),
                    "rank_org_code": p.get("rank_org_code"),
                    "rank_org": p.get("rank_org"),
                    "depth_min_m": p.get("depth_min_m"),
                    "depth_max_m": p.get("depth_max_m"),
                    "scale": p.get("scale"),
                })
        return {"depth": depth, "inundation": inundation}

    def _risk(self, site: BaseGeometry, layers: list[dict[str, Any]]) -> dict[str, Any]:
        idx = self.layers.get(RISK_LAYER)
        if idx is None:
            layers.append(self._missing(RISK_LAYER))
            return {"layer": RISK_LAYER, "coverage": "outside", "districts": []}
        cov, hits = self._assess(idx, site, layers)
        districts = [
            {
                "id": f.id,
                "name": f.properties.get("name"),
                "overall_rank": f.properties.get("overall_rank"),
                "building_collapse_rank": f.properties.get("building_collapse_rank"),
                "fire_rank": f.properties.get("fire_rank"),
            }
            for f in hits
        ]
        ranks = [d["overall_rank"] for d in districts if d["overall_rank"] is not None]
        return {
            "layer": RISK_LAYER,
            "coverage": cov,
            "synthetic": idx.synthetic,
            "scale": "1 (lowest) - 5 (highest)",
            "max_overall_rank": max(ranks) if ranks else None,
            "districts": districts,
        }

    def _roads(self, site: BaseGeometry, layers: list[dict[str, Any]]) -> dict[str, Any]:
        idx = self.layers.get(ROAD_LAYER)
        if idx is None:
            return {"layer": ROAD_LAYER, "coverage": "outside", "roads": []}
        cov, hits = self._assess(idx, site, layers)
        return {
            "layer": ROAD_LAYER,
            "coverage": cov,
            "synthetic": idx.synthetic,
            "roads": [{"id": f.id, "name": f.properties.get("name"),
                       "route": f.properties.get("route"),
                       "specified": f.properties.get("specified")} for f in hits],
        }

    def _shelters(self, site: BaseGeometry, site_m: BaseGeometry) -> dict[str, Any]:
        covers = {lid: idx.coverage_of(site) for lid, idx in self.shelters.coverage.items()}
        nearest = self.shelters.nearest(site_m)
        best = "inside" if "inside" in covers.values() else \
            "partial" if "partial" in covers.values() else "outside"
        note = None
        if best == "outside":
            note = ("the site is outside the shelter layers' coverage: nearer shelters "
                    "may exist that these layers do not list")
        return {"coverage": covers, "nearest": nearest, "k": K_SHELTERS, "note": note}

    def _hazard_map(self, code: str | None) -> dict[str, Any]:
        national = self.hazard_maps.get("national", [])
        entry = (self.hazard_maps.get("municipalities") or {}).get(code) if code else None
        municipal = None
        if entry:
            municipal = {"municipality_code": code, **entry}
            if not entry.get("verified"):
                municipal["note"] = ("unverified link: the municipality's official site; "
                                     "find its ハザードマップ page there")
        return {
            "municipal": municipal,
            "national": national,
            "note": "The legal hazard maps are the municipality's; this card is not one.",
        }


def point(lon: float, lat: float) -> Point:
    """A CRS84 point, with a 400 for out-of-range values."""
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        raise InvalidGeometry("lon must be in [-180, 180] and lat in [-90, 90] (CRS84 degrees)")
    return Point(lon, lat)
