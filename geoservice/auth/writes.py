"""Authorised, audited feature writes: the one path every write takes.

OGC API Features Part 4, the CSV import and moderation all call ``GuardedWriter``; it
checks the collection is editable, validates geometry (400) and properties (422, listing
what is accepted), derives ``municipality_code`` from the geometry, enforces the token's
municipality on both the current and the new feature (403, nothing written), checks
``If-Match`` against the ETag of the stored feature (412, nothing written), and journals
every write in the audit log around the store write (see ``geoservice.auth.audit``).

Check-then-write runs under one lock per process, and on PostGIS in the write's own
transaction (``Store.unit``) with the feature, its audit entry and its event; the current
feature is read with its row locked (``get_for_update``), so two hosts changing the same
feature with the same ``If-Match`` take turns and the second gets a 412.  (The embedded
store's processes share one SQLite writer but no row lock: two of them writing one
feature at the same instant could both pass the check; the journal records both.)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry

from geoservice import fastjson
from geoservice.auth.audit import AuditLog, feature_json
from geoservice.auth.errors import Forbidden, PreconditionFailed
from geoservice.auth.scope import MunicipalityIndex
from geoservice.auth.tokens import Principal
from geoservice.catalogue import LayerSpec
from geoservice.errors import InvalidParameter, NotFound, ServiceError, Unprocessable
from geoservice.features import Feature
from geoservice.store import Store, values

#: A collection's own rules, run on every write before validation:
#: ``(who, new feature, current feature or None) -> feature to store``.
PrepareHook = Callable[[Principal, Feature, Feature | None], Feature]
#: Told of every committed write: ``(collection, feature before or None when created,
#: stored feature or None when deleted)`` - both sides, so a listener can tell a new
#: feature from a correction and a withdrawal (e.g. the sightings room's alert events).
WriteListener = Callable[[str, Feature | None, Feature | None], object]

MUNICIPALITY = "municipality_code"
log = logging.getLogger("geoservice.auth")


class MethodNotAllowed(ServiceError):
    """A write on a collection that is not editable."""

    status = 405
    code = "MethodNotAllowed"


def feature_etag(f: Feature) -> str:
    """Strong ETag of a stored feature: a hash of its canonical GeoJSON (CRS84)."""
    doc = fastjson.dumps(feature_json(f), sort_keys=True)
    return '"' + hashlib.sha256(doc).hexdigest()[:32] + '"'


def etag_matches(if_match: str, f: Feature) -> bool:
    """RFC 9110 ``If-Match``: ``*`` or a list of entity tags (strong comparison)."""
    current = feature_etag(f)
    for tag in (t.strip() for t in if_match.split(",")):
        if tag == "*" or tag == current:
            return True
    return False


def check_properties(spec: LayerSpec, props: dict[str, Any]) -> None:
    """Types and enums of properties, as the store checks them, but as a 422."""
    try:
        values.to_storage(spec, props)
    except InvalidParameter as exc:
        raise Unprocessable(exc.description) from None


@dataclass(frozen=True, slots=True)
class Op:
    """One store write: ``kind`` is create / replace / delete; ``action`` names it in audit."""

    kind: str
    action: str
    collection: str
    fid: str
    before: Feature | None
    after: Feature | None


class GuardedWriter:
    """Scoped, validated, audited writes over a store."""

    def __init__(
        self,
        store: Store,
        specs: dict[str, LayerSpec],
        audit: AuditLog,
        index: MunicipalityIndex,
    ) -> None:
        self.store = store
        self.specs = specs
        self.audit = audit
        self.index = index
        self.lock = threading.RLock()
        self.hooks: dict[str, PrepareHook] = {}
        #: Called after each create/replace/delete (see ``WriteListener``); on PostGIS in
        #: the write's transaction, elsewhere after it (failures logged, not raised).
        self.listeners: list[WriteListener] = []
        self.id_prefix: dict[str, str] = {}

    # -- checks ------------------------------------------------------------------------

    def editable(self, cid: str) -> LayerSpec:
        """The spec of an editable collection (404 unknown, 405 read-only)."""
        spec = self.specs.get(cid)
        if spec is None:
            raise NotFound(f"collection {cid!r} does not exist")
        if not spec.editable:
            raise MethodNotAllowed(f"collection {cid!r} is read-only")
        return spec

    def in_scope(self, who: Principal, geom: BaseGeometry | None) -> bool:
        """May ``who`` write a feature at ``geom``?"""
        if who.admin:
            return True
        if who.municipality is None or geom is None or self.index.empty:
            return False
        return self.index.covers(who.municipality, geom)

    def check_current(self, who: Principal, before: Feature, if_match: str | None) -> None:
        """403 when the current feature is outside the token's area; 412 on a stale ETag."""
        if not self.in_scope(who, before.geometry):
            raise Forbidden(
                f"feature {before.id!r} lies outside municipality {who.municipality}; "
                "a municipality token may only change its own features"
            )
        if if_match is not None and not etag_matches(if_match, before):
            raise PreconditionFailed(
                f"If-Match {if_match} does not match the current ETag {feature_etag(before)};"
                " fetch the feature again and retry"
            )

    def prepare(
        self,
        who: Principal,
        cid: str,
        feature: Feature,
        before: Feature | None,
        scoped: bool = True,
    ) -> Feature:
        """Apply the collection's rules, derive the municipality, validate, check scope."""
        spec = self.editable(cid)
        geom = feature.geometry
        gtype = spec.geometry_type
        if geom is None and gtype != "Geometry":
            raise InvalidParameter(f"geometry: required ({gtype}) for collection {cid!r}")
        if geom is not None and gtype not in ("Geometry", geom.geom_type):
            if not (gtype.startswith("Multi") and geom.geom_type == gtype[5:]):
                raise InvalidParameter(
                    f"geometry: collection {cid!r} takes {gtype}, got {geom.geom_type}"
                )
        hook = self.hooks.get(cid)
        if hook is not None:
            feature = hook(who, feature, before)
        props = {k: v for k, v in feature.properties.items() if v is not None}
        if spec.property(MUNICIPALITY) is not None:
            props.pop(MUNICIPALITY, None)
            code = self.index.code_at(geom) if geom is not None else None
            if code is not None:
                props[MUNICIPALITY] = code
        check_properties(spec, props)
        if scoped and not self.in_scope(who, geom):
            raise Forbidden(
                f"the geometry lies outside municipality {who.municipality}; a municipality"
                " token may only write features inside its own municipality"
            )
        return Feature(feature.id, props, geom)

    def new_id(self, cid: str) -> str:
        """A fresh feature id (with the collection's prefix, if any)."""
        return self.id_prefix.get(cid, "") + uuid.uuid4().hex

    # -- the write itself ----------------------------------------------------------------

    def apply(self, who: Principal, op: Op, note: str | None = None) -> Feature | None:
        """Journal, write, commit the journal entry (or mark it aborted), tell listeners.

        On a store with real units of work (PostGIS) all of it is one transaction: the
        listeners' writes (the alert event and its outbox rows) commit with the feature
        and its audit entry, and a listener that fails undoes the write (nothing is left
        half-done).  On the embedded store a failing listener is logged, never raised."""
        with self.store.unit():
            result = self._journalled(who, op, note)
            for listener in self.listeners:
                if self.store.atomic:
                    listener(op.collection, op.before, result)
                    continue
                try:
                    listener(op.collection, op.before, result)
                except Exception:  # never undo or fail an acknowledged write
                    log.exception("write listener failed for %s/%s", op.collection, op.fid)
        return result

    def _journalled(self, who: Principal, op: Op, note: str | None) -> Feature | None:
        seq = self.audit.begin(who, op.action, op.collection, op.fid, op.before, op.after, note)
        try:
            result: Feature | None
            if op.kind == "create":
                assert op.after is not None
                result = self.store.create(op.collection, op.after)
            elif op.kind == "replace":
                assert op.after is not None
                result = self.store.replace(op.collection, op.fid, op.after)
            else:
                self.store.delete(op.collection, op.fid)
                result = None
        except InvalidParameter as exc:
            self.audit.abort(seq, exc.description)
            raise Unprocessable(exc.description) from None
        except BaseException as exc:
            self.audit.abort(seq, f"{type(exc).__name__}: {exc}")
            raise
        self.audit.commit(seq, result, op.fid)
        return result

    # -- the four Part 4 operations ------------------------------------------------------

    def create(
        self,
        who: Principal,
        cid: str,
        feature: Feature,
        action: str = "create",
        scoped: bool = True,
    ) -> Feature:
        """Insert a new feature (the server assigns its id)."""
        with self.lock:
            new = self.prepare(
                who,
                cid,
                Feature(self.new_id(cid), feature.properties, feature.geometry),
                None,
                scoped,
            )
            result = self.apply(who, Op("create", action, cid, new.id, None, new))
        assert result is not None
        return result

    def replace(
        self,
        who: Principal,
        cid: str,
        fid: str,
        feature: Feature,
        if_match: str | None,
        action: str = "replace",
    ) -> Feature:
        """Replace properties and geometry of an existing feature."""
        return self._rewrite(who, cid, fid, if_match, action,
                             lambda before: Feature(fid, feature.properties, feature.geometry))

    def update(
        self,
        who: Principal,
        cid: str,
        fid: str,
        properties: dict[str, Any],
        geometry: BaseGeometry | None,
        if_match: str | None,
        action: str = "update",
    ) -> Feature:
        """JSON merge-patch: ``properties`` merged (``null`` removes), geometry replaced."""
        return self._rewrite(who, cid, fid, if_match, action,
                             lambda before: values.merge_patch(fid, before, properties, geometry))

    def _rewrite(
        self,
        who: Principal,
        cid: str,
        fid: str,
        if_match: str | None,
        action: str,
        new_of: Callable[[Feature], Feature],
    ) -> Feature:
        """Replace an existing feature by ``new_of(current)``, checked and audited."""
        with self.lock, self.store.unit():
            self.editable(cid)
            before = self.store.get_for_update(cid, fid)
            self.check_current(who, before, if_match)
            new = self.prepare(who, cid, new_of(before), before)
            result = self.apply(who, Op("replace", action, cid, fid, before, new))
        assert result is not None
        return result

    def delete(self, who: Principal, cid: str, fid: str, if_match: str | None) -> None:
        """Delete a feature."""
        with self.lock, self.store.unit():
            self.editable(cid)
            before = self.store.get_for_update(cid, fid)
            self.check_current(who, before, if_match)
            self.apply(who, Op("delete", "delete", cid, fid, before, None))
