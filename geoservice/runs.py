"""What one run of a bulk write did: a harvest of a neighbour's feed, an incidents
ingest, a CSV import of sightings.

Every such run upserts records one by one and answers the same questions (how many were
created, updated, left unchanged, skipped and why), so they share one report; a kind of run
adds only its own fields (the feed and its high-water mark, the import's rejected lines).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class RunReport:
    """Counts of one run; ``as_json()`` is what the CLI prints and the API returns."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def wrote(self, before: object | None) -> None:
        """Count one write: created when nothing was there ``before``, else updated."""
        if before is None:
            self.created += 1
        else:
            self.updated += 1

    def skip(self, problem: str, keep: int = 1000) -> None:
        """Count one skipped record and say why (the first ``keep`` reasons are kept)."""
        self.skipped += 1
        if len(self.problems) < keep:
            self.problems.append(problem)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON (every field, the kind's own ones included)."""
        return dataclasses.asdict(self)
