"""The audit journal: who changed what, when, with the feature before and after.

On PostGIS the journal is a table of the store's database and every step below runs in
the feature write's own transaction (``Store.unit``): the entry and the feature commit
together, and a failed write leaves neither.  On the embedded store, store and audit live
in two files, so one transaction cannot cover both.  The order is:

1. ``begin`` appends a ``pending`` row (who, what, before, the intended after) and commits;
2. the store write runs (its own durable transaction);
3. ``commit`` marks the row ``committed`` with the stored after-image — or ``abort`` marks it
   ``aborted`` when the store write failed.

A committed audit record therefore exists only for a store write that succeeded, and a crash
between 2 and 3 leaves a ``pending`` row: detectable, never silent.  ``reconcile`` (run at
start-up) compares each pending row with the store: the feature equals the intended after
→ ``recovered`` (the write happened); equals the before → ``aborted``; anything else →
``unknown`` (an operator must look).  Readers see committed and recovered rows by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import mapping

from geoservice.auth.tokens import Principal, now_utc
from geoservice.errors import NotFound
from geoservice.features import Feature
from geoservice.state import StateDB
from geoservice.store import Store

VISIBLE = ("committed", "recovered")


def feature_json(f: Feature | None) -> dict[str, Any] | None:
    """A feature as a GeoJSON dict (CRS84), or ``None``."""
    if f is None:
        return None
    geom = None if f.geometry is None else mapping(f.geometry)
    return {"type": "Feature", "id": f.id, "properties": f.properties, "geometry": geom}


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record."""

    seq: int
    at: str
    state: str
    actor: str
    municipality: str | None
    admin: bool
    action: str
    collection: str
    feature: str | None
    before: Any
    after: Any
    note: str | None

    def as_json(self) -> dict[str, Any]:
        """JSON form for ``/api/audit``."""
        return {
            "seq": self.seq,
            "at": self.at,
            "state": self.state,
            "who": {"name": self.actor, "municipality": self.municipality, "admin": self.admin},
            "action": self.action,
            "collection": self.collection,
            "feature": self.feature,
            "before": self.before,
            "after": self.after,
            "note": self.note,
        }


class AuditLog:
    """Append-only journal in the auth database."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def begin(
        self,
        who: Principal,
        action: str,
        collection: str,
        feature: str | None,
        before: Feature | None,
        after: Feature | None,
        note: str | None = None,
    ) -> int:
        """Journal an intended write (state ``pending``); return its sequence number."""
        with self.db.write() as con:
            cur = con.execute(
                "INSERT INTO audit (at, state, actor, municipality, admin, action, collection,"
                " feature, before, after, note) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING seq",
                (
                    now_utc(),
                    who.name,
                    who.municipality,
                    int(who.admin),
                    action,
                    collection,
                    feature,
                    _canonical(feature_json(before)),
                    _canonical(feature_json(after)),
                    note,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

    def commit(self, seq: int, after: Feature | None, feature: str | None = None) -> None:
        """The store write succeeded: record the stored after-image."""
        with self.db.write() as con:
            con.execute(
                "UPDATE audit SET state = 'committed', at = ?, after = ?,"
                " feature = COALESCE(?, feature) WHERE seq = ?",
                (now_utc(), _canonical(feature_json(after)), feature, seq),
            )

    def abort(self, seq: int, reason: str) -> None:
        """The store write failed: keep the attempt, marked ``aborted``."""
        with self.db.write() as con:
            con.execute(
                "UPDATE audit SET state = 'aborted', note = ? WHERE seq = ?", (reason[:500], seq)
            )

    def list(
        self,
        collection: str | None = None,
        feature: str | None = None,
        limit: int = 100,
        states: tuple[str, ...] = VISIBLE,
    ) -> list[AuditEntry]:
        """Newest first, filtered by collection / feature / state."""
        where = [f"state IN ({', '.join('?' * len(states))})"]
        params: list[Any] = list(states)
        if collection:
            where.append("collection = ?")
            params.append(collection)
        if feature:
            where.append("feature = ?")
            params.append(feature)
        rows = self.db.execute(
            "SELECT seq, at, state, actor, municipality, admin, action, collection, feature,"
            f" before, after, note FROM audit WHERE {' AND '.join(where)}"
            " ORDER BY seq DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [
            AuditEntry(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                bool(r[5]),
                r[6],
                r[7],
                r[8],
                json.loads(r[9]) if r[9] else None,
                json.loads(r[10]) if r[10] else None,
                r[11],
            )
            for r in rows
        ]

    def reconcile(self, store: Store, min_age_s: float = 120.0) -> dict[str, int]:
        """Resolve ``pending`` rows left by a crash between store write and audit commit.

        Only rows older than ``min_age_s`` are looked at, so a write in flight in another
        process is not mistaken for an interrupted one.
        """
        counts = {"recovered": 0, "aborted": 0, "unknown": 0}
        cutoff = (datetime.now(UTC) - timedelta(seconds=min_age_s)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        for e in self.list(limit=100000, states=("pending",)):
            if e.at > cutoff:
                continue
            try:
                current = feature_json(store.get(e.collection, e.feature or ""))
            except NotFound:
                current = None
            except Exception:  # noqa: BLE001 - a missing collection etc.: leave for an operator
                current = {"unreadable": True}
            cur = _canonical(current)
            if cur == _canonical(e.after):
                state = "recovered"
            elif cur == _canonical(e.before):
                state = "aborted"
            else:
                state = "unknown"
            counts[state] += 1
            with self.db.write() as con:
                con.execute(
                    "UPDATE audit SET state = ?, note = ? WHERE seq = ? AND state = 'pending'",
                    (state, "resolved at start-up after an interrupted write", e.seq),
                )
        return counts


def audited_upsert(
    store: Store,
    audit: AuditLog | None,
    who: Principal,
    collection: str,
    before: Feature | None,
    after: Feature,
    note: str | None = None,
) -> Feature:
    """Create (``before`` is None) or replace a feature, journalled begin → write → commit
    (or abort) when ``audit`` is given.  For trusted batch writers (harvest, ingest) that
    skip ``GuardedWriter``'s scope and validation checks."""
    action = "create" if before is None else "replace"
    with store.unit():
        seq = audit.begin(who, action, collection, after.id, before, after, note) if audit else 0
        try:
            if before is None:
                stored = store.create(collection, after)
            else:
                stored = store.replace(collection, after.id, after)
        except Exception as exc:
            if audit:
                audit.abort(seq, str(exc))
            raise
        if audit:
            audit.commit(seq, stored, stored.id)
    return stored
