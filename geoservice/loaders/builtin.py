"""Import every built-in loader module so its ``@register`` decorators run.

Kept separate from ``geoservice.loaders`` so the heavy readers (lxml, mojxml) load only
when a build actually asks for a loader.  Registered formats: ``geojson``,
``csv-points``, ``plateau-urf``, ``plateau-lsld``, ``plateau-fld``, ``mojxml``.
"""

from __future__ import annotations

from geoservice.loaders import (
    csv_points,
    geojson,
    mojxml_parcels,
    plateau_bldg,
    plateau_fld,
    plateau_urf,
)

__all__ = ["plateau_bldg", "csv_points", "geojson", "mojxml_parcels", "plateau_fld", "plateau_urf"]
