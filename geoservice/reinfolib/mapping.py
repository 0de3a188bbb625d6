"""API properties → a layer's own schema, with the same options every loader has.

The API's ``u_``-prefixed values are display strings with units ("200%", "1,200,000(円/㎡)",
"60%"): a property declared ``number`` or ``integer`` takes the number such a string leads
with; a layer keeps the raw text by declaring a second ``string`` property with the same
``source``.  Values that still do not read as their type become ``null`` (logged), because
one odd value in an official answer must not make the whole layer unusable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from geoservice.catalogue import LayerSpec, PropertySpec
from geoservice.errors import SourceError
from geoservice.loaders.common import PropertyMapper
from geoservice.reinfolib.values import PARSERS

log = logging.getLogger("geoservice.reinfolib")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def display_number(text: str) -> float | None:
    """The number a display string leads with; ``None`` when it has none.

    >>> display_number("1,200,000(円/㎡)"), display_number("200%"), display_number("-")
    (1200000.0, 200.0, None)
    """
    match = _NUMBER.search(text.replace("，", ","))
    return float(match.group(0).replace(",", "")) if match else None


class ApiPropertyMapper(PropertyMapper):
    """``PropertyMapper`` that reads display strings as numbers and never fails a layer."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__(spec)
        self._numeric = {p.name for p in spec.properties if p.type in ("number", "integer")}
        #: ``options.parse``: property → unit-aware parser ("yen": "3,300万円" → 33000000.0)
        self._parsers = {name: PARSERS[kind]
                         for name, kind in (spec.source.options.get("parse") or {}).items()}

    def _value(self, prop: PropertySpec, raw: Mapping[str, Any], where: str) -> Any:
        value = raw.get(prop.source_field)
        parse = self._parsers.get(prop.name)
        if parse is not None:
            try:
                return parse(value)
            except ValueError as exc:
                log.warning("%s: property %r: %s", where, prop.name, exc)
                return None
        if (prop.name in self._numeric and isinstance(value, str)
                and prop.name not in self.value_maps and prop.name not in self.constants):
            number = display_number(value)
            if prop.type == "integer" and number is not None and number.is_integer():
                return int(number)
            return number
        try:
            return super()._value(prop, raw, where)
        except SourceError as exc:
            log.warning("%s", exc.description)
            return None


def mapper(spec: LayerSpec) -> ApiPropertyMapper:
    """The mapper of one API layer."""
    return ApiPropertyMapper(spec)
