"""Which office handles a procedure, resolved from the municipality code and the law.

The table is data (``authorities.yml``): municipality kinds (特別区, delegated Tama cities,
other Tama cities, towns and villages, islands), names, island branch offices and, per
authority key, an office template chosen ``by_code`` → ``by_kind`` → ``default``.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

AUTHORITIES_FILE = Path(__file__).with_name("authorities.yml")


class KindSpec(BaseModel):
    """One municipality kind: explicit codes and/or inclusive code ranges."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    label: str
    codes: list[str] = Field(default_factory=list)
    ranges: list[tuple[str, str]] = Field(default_factory=list)

    def matches(self, code: str) -> bool:
        """Whether ``code`` belongs to this kind."""
        return code in self.codes or any(lo <= code <= hi for lo, hi in self.ranges)


class OfficeSpec(BaseModel):
    """Office templates for one authority key."""

    model_config = ConfigDict(extra="forbid")
    default: str
    by_kind: dict[str, str] = Field(default_factory=dict)
    by_code: dict[str, str] = Field(default_factory=dict)


class AuthorityTable(BaseModel):
    """The whole authority table, as read from ``authorities.yml``."""

    model_config = ConfigDict(extra="forbid")
    kinds: list[KindSpec]
    municipalities: dict[str, str]
    island_branches: dict[str, str] = Field(default_factory=dict)
    unknown_municipality: str
    offices: dict[str, OfficeSpec]

    def kind(self, code: str | None) -> str | None:
        """The municipality kind of ``code`` (``None`` when unknown).

        Examples
        --------
        >>> t = default_authorities()
        >>> [t.kind(c) for c in ("13101", "13201", "13202", "13305", "13361", None)]
        ['special-ward', 'delegated-city', 'tama-city', 'town-village', 'island', None]
        """
        if code is None:
            return None
        return next((k.kind for k in self.kinds if k.matches(code)), None)

    def name(self, code: str | None) -> str | None:
        """The municipality's Japanese name, if the code is known."""
        return self.municipalities.get(code or "")

    def office(self, key: str, code: str | None) -> str:
        """The office that handles authority ``key`` for municipality ``code``.

        Examples
        --------
        >>> t = default_authorities()
        >>> t.office("earthwork", "13101")
        '千代田区長 (宅地造成及び特定盛土等規制法 担当)'
        """
        spec = self.offices.get(key)
        if spec is None:
            raise KeyError(f"no office table for authority key {key!r}")
        kind = self.kind(code)
        if code is None or kind is None:
            values = defaultdict(str, code="", name="the municipality", branch="支庁")
            return f"{spec.default.format_map(values)} — {self.unknown_municipality}"
        template = spec.by_code.get(code) or spec.by_kind.get(kind) or spec.default
        values = defaultdict(str, code=code, name=self.name(code) or code)
        values["branch"] = self.island_branches.get(code, "支庁")
        return template.format_map(values)


def load_authorities(path: Path = AUTHORITIES_FILE) -> AuthorityTable:
    """Read and validate an authority table."""
    with path.open(encoding="utf-8") as fh:
        return AuthorityTable.model_validate(yaml.safe_load(fh))


@lru_cache(maxsize=1)
def default_authorities() -> AuthorityTable:
    """The packaged table, read once per process."""
    return load_authorities()
