"""The real-estate one-stop procedure guide: land + planned works → every procedure's status.

Public API (framework-neutral; routes and OGC processes are thin adapters)::

    service = GuideService(store, catalogue_specs)    # once, at start-up
    answer = service.answer(request_body)             # GuideAnswer; raises ServiceError

    evaluate(site_facts, works, rules)                # the pure rule engine
"""

from geoservice.guide.authority import AuthorityTable, default_authorities, load_authorities
from geoservice.guide.engine import DISCLAIMER, FeatureHit, LayerFacts, SiteFacts, evaluate
from geoservice.guide.models import (
    ACTIVITIES,
    STATUSES,
    STRUCTURES,
    USES,
    GuideAnswer,
    GuideRequest,
    ProcedureOut,
    Works,
    parse_request,
)
from geoservice.guide.rules import Rule, default_rules, load_rules, required_layers
from geoservice.guide.service import GuideService
from geoservice.guide.spatial import LayerIndex, SpatialIndex, area_m2

__all__ = [
    "ACTIVITIES",
    "DISCLAIMER",
    "STATUSES",
    "STRUCTURES",
    "USES",
    "AuthorityTable",
    "FeatureHit",
    "GuideAnswer",
    "GuideRequest",
    "GuideService",
    "LayerFacts",
    "LayerIndex",
    "ProcedureOut",
    "Rule",
    "SiteFacts",
    "SpatialIndex",
    "Works",
    "area_m2",
    "default_authorities",
    "default_rules",
    "evaluate",
    "load_authorities",
    "load_rules",
    "parse_request",
    "required_layers",
]
