"""The rate-limit log on both state backends: what a hit deletes, what the sweep deletes.

A hit prunes only its own key's expired rows; everyone's expired rows go in a sweep at
most once a minute per process; limiters of different windows sharing the table keep each
other's hits (an hourly limit is not reset by a per-minute one).  That limits hold across
processes and hosts is tested through the apps (test_sightings_api, test_email_alerts,
test_multihost).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from geoservice.auth.db import DDL, LONGEST_WINDOW_S, AuthDB
from geoservice.auth.errors import TooManyRequests
from geoservice.auth.ratelimit import SWEEP_EVERY_S, RateLimiter, sweep_due
from geoservice.state import StateDB, schema_of
from geoservice.state.pg import PgDB
from geoservice.store.postgis import PostgisStore

T0 = 1_800_000_000.0  # hit times are given, not read from the clock
OLD_TABLE = "CREATE TABLE rate_hits (key TEXT NOT NULL, at {real} NOT NULL)"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[
    Callable[[], StateDB]
]:
    """Opens the auth database of each backend (again on every call, as a new process)."""
    if request.param == "sqlite":
        yield lambda: AuthDB(tmp_path / "auth.sqlite")
        return
    make_db: Callable[[str], str] = request.getfixturevalue("pg_database")
    store = PostgisStore(make_db(f"rate_{tmp_path.name[-12:].lower()}"), create=True)
    try:
        yield lambda: PgDB(store, schema_of("auth"), DDL["postgresql"])
    finally:
        store.close()


def keys(db: StateDB) -> list[tuple[str, float]]:
    """Every logged (key, hit time), oldest first."""
    return [(k, float(at)) for k, at in db.execute(
        "SELECT key, at FROM rate_hits ORDER BY at, key").fetchall()]


def test_a_hit_prunes_its_own_key_and_the_sweep_everyone_elses(
    backend: Callable[[], StateDB],
) -> None:
    db = backend()
    limiter = RateLimiter(db, 5, 100.0)
    limiter.hit("report:a", now=T0)
    limiter.hit("report:b", now=T0)
    assert sweep_due(db, T0 + 120)  # as if this process had just swept
    limiter.hit("report:a", now=T0 + 120)
    # the hit removed its own expired row only: b's expired row is still there
    assert keys(db) == [("report:b", T0), ("report:a", T0 + 120)]
    limiter.hit("report:c", now=T0 + 120 + SWEEP_EVERY_S - 1)  # too soon to sweep again
    assert ("report:b", T0) in keys(db)
    limiter.hit("report:c", now=T0 + 120 + SWEEP_EVERY_S)  # the sweep is due: b goes
    assert [k for k, _ in keys(db)] == ["report:a", "report:c", "report:c"]


def test_limiters_of_different_windows_keep_each_others_hits(
    backend: Callable[[], StateDB],
) -> None:
    db = backend()
    hourly = RateLimiter(db, 1, 3600.0)
    hourly.hit("email-client:x", now=T0)
    # a per-minute limiter's hit two minutes later, sweeping (a fresh process, a new db)
    RateLimiter(db, 5, 60.0).hit("report:y", now=T0 + 120)
    with pytest.raises(TooManyRequests):
        hourly.hit("email-client:x", now=T0 + 130)
    assert sweep_due(backend(), T0 + 3600)  # another process, an hour on: its sweep
    RateLimiter(backend(), 5, 60.0).hit("report:z", now=T0 + 3600)
    assert [k for k, _ in keys(db)] == ["report:z"]


def test_hits_logged_before_rows_carried_an_expiry_are_kept_a_day(
    backend: Callable[[], StateDB], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if request.node.callspec.params["backend"] == "sqlite":
        with sqlite3.connect(tmp_path / "auth.sqlite") as con:
            con.execute(OLD_TABLE.format(real="REAL"))
            con.execute("INSERT INTO rate_hits VALUES ('email-addr:h', ?)", (T0,))
    else:
        url = backend().store.url  # type: ignore[attr-defined]
        with psycopg.connect(url) as con:
            con.execute("DROP TABLE geoservice_auth.rate_hits")
            con.execute(OLD_TABLE.format(real="DOUBLE PRECISION").replace(
                "rate_hits", "geoservice_auth.rate_hits"))
            con.execute("INSERT INTO geoservice_auth.rate_hits VALUES ('email-addr:h', %s)",
                        (T0,))
    db = backend()  # opening migrates
    assert db.execute("SELECT expires_at FROM rate_hits").fetchall() == [
        (T0 + LONGEST_WINDOW_S,)]
    with pytest.raises(TooManyRequests):  # a daily limit still counts the old hit
        RateLimiter(db, 1, LONGEST_WINDOW_S).hit("email-addr:h", now=T0 + 7200)


def test_a_clock_stepped_back_does_not_stop_the_sweeps(tmp_path: Path) -> None:
    db = AuthDB(tmp_path / "auth.sqlite")
    assert sweep_due(db, T0) and not sweep_due(db, T0 + SWEEP_EVERY_S - 1)
    assert sweep_due(db, T0 - 3600)  # an NTP step back: sweep, do not wait an hour
    assert not sweep_due(db, T0 - 3600 + 1)
