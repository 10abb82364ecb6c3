"""Issue 20.7: a request past its expiry but not yet marked expired is approved by raw SQL.

The attacker (any process that can write the database) takes the write lock before the waiting
call's deadline, so the call's own compare-and-set (pending → expired) waits behind it; after the
expiry it writes ``status='approved'`` and commits. The waiting call then reads an approved row.
It must not run the function: an approval decided at or after the expiry, or reaching the call
more than ``LATE_APPROVAL_GRACE`` past it by the call's own clock, is treated as expired
(``SentinelTimeoutError``) and audited. The database refuses a decision stamped at or after
``expires_at`` and any change of a row's expiry (schema step 7), but the in-process check holds
even when those triggers are dropped. Honest operators deciding such a row get a clear
"expired at" error (store, CLI).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig, protect
from sentinel.errors import DecisionConflict, SentinelTimeoutError
from sentinel.guard import LATE_APPROVAL_GRACE
from sentinel.identity import current_operator
from sentinel.store import MIGRATIONS, NewRequest, Store
from sentinel.store.schema import migrate
from tests.faults.support import (
    Proc,
    all_events,
    assert_decided_once,
    cli,
    first_pending,
    raw_connection,
    verify_chain,
)
from tests.helpers import signed_decide

RULES = """\
default_action: allow
rules:
  - id: pay
    function_pattern: "pay*"
    action: require_approval
"""

LATE_APPROVER = str(Path(__file__).with_name("agents") / "late_approver.py")


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    return rules, db


def _config(rules: Path, db: Path, timeout: float) -> SentinelConfig:
    return SentinelConfig(
        rules_path=rules, db_path=db, timeout_seconds=timeout, show_waiting_hint=False,
        hot_reload=False, agent_id="victim",
    )  # fmt: skip


def _start_call(
    rules: Path, db: Path, kind: str, timeout: float
) -> tuple[threading.Thread, dict[str, Any], list[int]]:
    """Call a protected sync or async ``pay`` in a thread; returns (thread, outcome, ran)."""
    ran: list[int] = []
    out: dict[str, Any] = {}
    config = _config(rules, db, timeout)
    if kind == "sync":

        @protect(config)
        def pay(amount: int) -> str:
            ran.append(amount)
            return "paid"

        call = lambda: pay(5000)  # noqa: E731
    else:

        @protect(config)
        async def pay_async(amount: int) -> str:
            ran.append(amount)
            return "paid"

        call = lambda: asyncio.run(pay_async(5000))  # noqa: E731

    def run() -> None:
        try:
            out["result"] = call()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out, ran




def _late_raw_approval(db: Path, rec: Any, decided_at: str, *, drop: bool = False) -> None:
    """Hold the write lock from before the expiry until expiry + 1.5 s, then approve by SQL.

    ``decided_at``: ``"now"`` (the truth, after the expiry) or ``"early"`` (a lie: created_at)."""
    conn = raw_connection(db)
    try:
        if drop:  # an attacker with write access drops whatever triggers stand in the way
            conn.execute("DROP TRIGGER IF EXISTS requests_decided_in_time")
            conn.execute("DROP TRIGGER IF EXISTS requests_expiry_fixed")
        conn.execute("BEGIN IMMEDIATE")
        status = conn.execute("SELECT status FROM requests WHERE id = ?", (rec.id,)).fetchone()[0]
        assert status == "pending", "the lock was taken too late to reproduce the race"
        while time.time() <= rec.expires_at + 1.5:
            time.sleep(0.02)
        stamp = time.time() if decided_at == "now" else rec.created_at
        try:
            conn.execute(
                "UPDATE requests SET status = 'approved', decided_by = 'mallory', decided_at = ? "
                "WHERE id = ?",
                (stamp, rec.id),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def _assert_refused_as_expired(
    db: Path, rec: Any, thread: threading.Thread, out: dict[str, Any], ran: list[int]
) -> None:
    thread.join(30)
    assert not thread.is_alive()
    assert ran == [], "the function ran on an approval that came after the request's expiry"
    err = out.get("error")
    assert isinstance(err, SentinelTimeoutError), f"expected the expiry outcome, got {out!r}"
    assert err.request_id == rec.id
    assert "after its expiry" in err.reason
    with Store(db) as store:
        verify_chain(store)
        mine = [e for e in all_events(store) if e.request_id == rec.id]
        assert [e.kind for e in mine] == ["approval_requested", "blocked"]
        refusal = mine[-1]
        assert "approved after its expiry" in (refusal.reason or "")
        assert refusal.data["refused"] == "approved_after_expiry"
        assert refusal.data["decided_by"] == "mallory"
        assert refusal.digest == rec.digest and refusal.agent_id == "victim"
        assert not [e for e in all_events(store) if e.kind in ("executed", "failed")]


# --- the database refuses a late decision ---------------------------------------------------


def test_database_refuses_an_approval_stamped_after_expiry(env):
    rules, db = env
    thread, out, ran = _start_call(rules, db, "sync", timeout=1.0)
    rec = first_pending(db)
    with pytest.raises(sqlite3.IntegrityError, match="expired"):
        _late_raw_approval(db, rec, "now")
    thread.join(30)
    assert ran == [] and isinstance(out.get("error"), SentinelTimeoutError)
    assert "after its expiry" not in out["error"].reason  # the plain expiry: nothing was approved
    with Store(db) as store:
        assert store.get(rec.id).status == "expired"
        assert_decided_once(store, db)
        verify_chain(store)


def test_database_refuses_to_change_a_requests_expiry(env):
    _, db = env
    with Store(db) as store:
        rec = store.submit(NewRequest(
            id="f" * 32, function="pay", arguments={}, digest="0" * 64,
            timeout_seconds=60,
        ))  # fmt: skip
    conn = raw_connection(db)
    try:
        for stmt in (
            "UPDATE requests SET expires_at = expires_at + 3600 WHERE id = ?",
            "UPDATE requests SET created_at = created_at + 3600 WHERE id = ?",
            "UPDATE requests SET timeout_seconds = 1e9 WHERE id = ?",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="expiry of a request cannot change"):
                conn.execute(stmt, (rec.id,))
    finally:
        conn.close()
    with Store(db) as store:
        assert store.get(rec.id).expires_at == rec.expires_at


# --- the waiting call refuses a late approval by its own clock ----------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_approval_stamped_after_expiry_with_triggers_dropped_does_not_run(env, kind):
    rules, db = env
    thread, out, ran = _start_call(rules, db, kind, timeout=1.0)
    rec = first_pending(db)
    _late_raw_approval(db, rec, "now", drop=True)
    _assert_refused_as_expired(db, rec, thread, out, ran)
    assert "decided at" in out["error"].reason


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_approval_with_a_forged_early_decision_time_does_not_run(env, kind):
    """``decided_at`` says "before the expiry" (the trigger lets it through); the call's own clock
    says the approval reached it 1.5 s after — past the grace — so it is refused."""
    assert LATE_APPROVAL_GRACE < 1.5
    rules, db = env
    thread, out, ran = _start_call(rules, db, kind, timeout=1.0)
    rec = first_pending(db)
    _late_raw_approval(db, rec, "early")
    _assert_refused_as_expired(db, rec, thread, out, ran)
    assert "reached the waiting call" in out["error"].reason


def test_extending_the_expiry_does_not_let_a_late_approval_run(env):
    """The call checks the expiry it submitted, not the row's (which a writer can rewrite)."""
    rules, db = env
    thread, out, ran = _start_call(rules, db, "sync", timeout=1.0)
    rec = first_pending(db)
    conn = raw_connection(db)
    try:
        conn.execute("DROP TRIGGER IF EXISTS requests_decided_in_time")
        conn.execute("DROP TRIGGER IF EXISTS requests_expiry_fixed")
        conn.execute("BEGIN IMMEDIATE")
        while time.time() <= rec.expires_at + 1.5:
            time.sleep(0.02)
        conn.execute(
            "UPDATE requests SET expires_at = ?, status = 'approved', decided_by = 'mallory', "
            "decided_at = ? WHERE id = ?",
            (time.time() + 3600, time.time(), rec.id),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    _assert_refused_as_expired(db, rec, thread, out, ran)


@pytest.mark.parametrize(("stamp", "drop"), [("early", "0"), ("now", "1")])
def test_late_approval_from_another_process_does_not_run(env, stamp, drop):
    rules, db = env
    # A generous timeout: the attacker process must start and take the lock before the deadline.
    thread, out, ran = _start_call(rules, db, "sync", timeout=5.0)
    rec = first_pending(db)
    attacker = Proc([str(db), rec.id, stamp, drop], script=LATE_APPROVER)
    attacker.expect("LOCKED")
    with Store(db) as store:
        assert store.get(rec.id).status == "pending", "the attacker started too late"
    assert attacker.expect("APPROVED", timeout=60) == "APPROVED"
    attacker.proc.wait(timeout=30)
    _assert_refused_as_expired(db, rec, thread, out, ran)


def test_approval_in_time_still_runs(env):
    """The check does not refuse what it should not: an approval before the expiry runs."""
    rules, db = env
    thread, out, ran = _start_call(rules, db, "sync", timeout=30.0)
    rec = first_pending(db)
    with Store(db) as store:
        signed_decide(store, rec.id, True, current_operator("alice"))
    thread.join(30)
    assert out.get("result") == "paid" and ran == [5000]


# --- honest operators get a clear error -------------------------------------------------------


def _overdue(db: Path) -> Any:
    with Store(db) as store:
        return store.submit(NewRequest(
            id="e" * 32, function="pay", arguments={}, digest="0" * 64,
            timeout_seconds=60, created_at=time.time() - 120,
        ))  # fmt: skip


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_store_approve_of_an_expired_unswept_request_names_its_expiry(env):
    _, db = env
    rec = _overdue(db)
    with Store(db) as store:
        with pytest.raises(DecisionConflict) as caught:
            signed_decide(store, rec.id, True, current_operator("late"))
        assert str(caught.value) == (
            f"request {rec.id} expired at {_utc(rec.expires_at)} with no decision"
        )
        assert store.get(rec.id).status == "expired"
        assert_decided_once(store, db)


def test_cli_approve_of_an_expired_unswept_request_is_an_error(env):
    _, db = env
    rec = _overdue(db)
    result = cli("approve", rec.id[:12], db=db)
    assert result.returncode == 1, result.stdout
    assert f"request {rec.id} expired at {_utc(rec.expires_at)}" in result.stderr
    assert "approved" not in result.stdout.lower()
    with Store(db) as store:
        assert store.get(rec.id).status == "expired"
        assert_decided_once(store, db)


# --- old databases ---------------------------------------------------------------------------


def test_a_database_from_before_the_expiry_triggers_is_migrated(env):
    _, db = env
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(db), isolation_level=None)
    migrate(conn, str(db), MIGRATIONS[:6])  # the schema before step 7
    conn.close()
    with Store(db) as store:  # opening brings it to the current version
        rec = store.submit(NewRequest(
            id="a" * 32, function="pay", arguments={}, digest="0" * 64,
            timeout_seconds=60,
        ))  # fmt: skip
        assert signed_decide(store, rec.id, True, current_operator("alice")).status == "approved"
    conn = raw_connection(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        names = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert {"requests_decided_in_time", "requests_expiry_fixed", "requests_final"} <= names
    finally:
        conn.close()


def test_command_center_approve_of_an_expired_unswept_request_is_an_error(env):
    from sentinel_tui.data import DataSource

    _, db = env
    rec = _overdue(db)
    source = DataSource(db, operator=current_operator("tui"))
    try:
        outcome = source.decide(rec.id, True, None)
    finally:
        source.close()
    assert outcome.error == f"request {rec.id} expired at {_utc(rec.expires_at)} with no decision"
    assert outcome.record is not None and outcome.record.status == "expired"
    with Store(db) as store:
        assert store.get(rec.id).status == "expired"
        assert_decided_once(store, db)


def test_api_approve_of_an_expired_unswept_request_is_409_naming_its_expiry(env, tmp_path):
    from tests.server.conftest import ALICE, start_server

    _, db = env
    rec = _overdue(db)
    server = start_server(tmp_path, db=db)
    try:
        with server.client(ALICE) as c:
            r = c.post(f"/approval/{rec.id}/approve")
    finally:
        server.stop()
    assert r.status_code == 409, r.text
    assert r.json()["status"] == "expired"
    assert f"request {rec.id} expired at {_utc(rec.expires_at)}" in r.json()["message"]
    with Store(db) as store:
        assert store.get(rec.id).status == "expired"
        assert_decided_once(store, db)
