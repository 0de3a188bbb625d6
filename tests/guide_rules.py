"""The rule catalogue the guide tests run against, and site helpers shared by them.

``GEOSERVICE_GUIDE_RULES`` names another rules directory: ``tools/mutation.py`` points it
at a mutated copy of the rules, so the same tests that pass on the real catalogue must fail
on every mutant.
"""

from __future__ import annotations

import os
from pathlib import Path

from geoservice.guide import LayerFacts, load_rules, required_layers
from geoservice.guide.rules import RULES_DIR

RULES_ENV = "GEOSERVICE_GUIDE_RULES"


def rules_dir() -> Path:
    """The rules directory under test (the packaged one unless the environment says so)."""
    return Path(os.environ.get(RULES_ENV) or RULES_DIR)


RULES = tuple(load_rules(rules_dir()))


def all_layers_full(**overrides: LayerFacts) -> dict[str, LayerFacts]:
    """Every layer the rules need, fully covering the site with no features, then overrides.

    Keyword names use ``_`` for ``-`` (``area_divisions`` → ``area-divisions``).
    """
    layers = {lid: LayerFacts("full") for lid in required_layers(RULES)}
    layers.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return layers
