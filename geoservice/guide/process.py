"""The OGC API Processes description of ``procedure-guide``.

The process is executed by the guide's own routes (``geoservice.guide.api``: sync, and
async with a durable job table), which also serve ``/ogc/processes``; pygeoapi does not
run it.  Inputs are the body of ``POST /api/guide``: ``site`` and ``works``.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from geoservice.guide.models import GuideAnswer, SiteInput, Works

PROCESS_ID = "procedure-guide"
_P1 = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
CONFORMANCE: tuple[str, ...] = (
    f"{_P1}/core",
    f"{_P1}/ogc-process-description",
    f"{_P1}/json",
    f"{_P1}/job-list",
    f"{_P1}/dismiss",
)


def _schema(model: Any) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` kept local (no remote refs)."""
    return model.model_json_schema(ref_template="#/$defs/{model}")  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _metadata() -> dict[str, Any]:
    return {
        "version": "1.0.0",
        "id": PROCESS_ID,
        "title": {"en": "Real-estate procedure guide", "ja": "不動産ワンストップ手続ガイド"},
        "description": {
            "en": "For a piece of land (parcel 地番, point or CRS84 polygon) and the planned "
                  "works: every catalogue procedure with its status (required, notice, "
                  "prohibited, not-required, undetermined), the reasons, the office, the "
                  "timing, a timeline and the hazard overlays. Guidance, not a legal "
                  "determination.",
            "ja": "土地（地番・地点・区域）と予定する行為から、必要な行政手続・根拠法令・窓口・"
                  "時期を案内します（法的判断ではありません）。",
        },
        "jobControlOptions": ["sync-execute", "async-execute"],
        "outputTransmission": ["value"],
        "keywords": ["guide", "procedure", "permit", "地番", "建築", "開発許可"],
        "links": [{
            "type": "text/html", "rel": "about", "title": "procedure catalogue",
            "href": "https://github.com/tokyo-geotwin/procedures", "hreflang": "ja",
        }],
        "inputs": {
            "site": {
                "title": "Site",
                "description": "Exactly one of parcel {municipality_code, chiban}, "
                               "point [lon, lat] or geometry (GeoJSON Polygon/MultiPolygon, "
                               "CRS84).",
                "schema": _schema(SiteInput),
                "minOccurs": 1,
                "maxOccurs": 1,
            },
            "works": {
                "title": "Planned works",
                "description": "Activities (required) and the figures the rules compare.",
                "schema": _schema(Works),
                "minOccurs": 1,
                "maxOccurs": 1,
            },
        },
        "outputs": {
            "answer": {
                "title": "Guide answer",
                "description": "Every catalogue procedure with its status, reasons, office "
                               "and timing; the site's layers; the timeline; the hazards.",
                "schema": {**_schema(GuideAnswer), "contentMediaType": "application/json"},
            }
        },
        "example": {
            "inputs": {
                "site": {"point": [139.70, 35.585]},
                "works": {"activities": ["new-building"], "use": "office",
                          "site_area_m2": 300, "floor_area_m2": 600,
                          "building_height_m": 12, "storeys": 4, "structure": "rc"},
            }
        },
    }



def metadata() -> dict[str, Any]:
    """The pygeoapi process metadata (a deep copy: callers may change it)."""
    return copy.deepcopy(_metadata())


def _localised(value: Any) -> Any:
    return value.get("en") if isinstance(value, dict) else value


def process_summary(base: str) -> dict[str, Any]:
    """The process in ``/processes`` (OGC API Processes Part 1 ``processSummary``)."""
    m = _metadata()
    url = f"{base}/processes/{PROCESS_ID}"
    return {
        "id": PROCESS_ID,
        "title": _localised(m["title"]),
        "description": _localised(m["description"]),
        "version": m["version"],
        "keywords": m["keywords"],
        "jobControlOptions": m["jobControlOptions"],
        "outputTransmission": m["outputTransmission"],
        "links": [
            {"href": url, "rel": "self", "type": "application/json",
             "title": "process description"},
            {"href": f"{url}/execution", "type": "application/json", "title": "execute",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute"},
        ],
    }


def process_description(base: str) -> dict[str, Any]:
    """The full process description (summary + inputs + outputs + example)."""
    m = _metadata()
    return {
        **process_summary(base),
        "inputs": copy.deepcopy(m["inputs"]),
        "outputs": copy.deepcopy(m["outputs"]),
        "example": copy.deepcopy(m["example"]),
    }
