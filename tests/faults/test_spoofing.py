"""Approval spoofing: a decision for arguments other than the ones about to run, a decision for
an expired request, and a second decision, are all refused — through the store API and through
a raw ``UPDATE`` from another connection (the ``requests_final`` trigger)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig, protect
from sentinel.errors import DecisionConflict, SentinelBlockedError, SentinelTimeoutError
from sentinel.identity import current_operator
from sentinel.normalize import digest
from sentinel.store import Store
from tests.faults.support import (
    all_events,
    assert_decided_once,
    final_events_by_request,
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


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    return rules, db


def _guarded(rules: Path, db: Path, timeout: float = 30) -> tuple[Any, list[Any]]:
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db, timeout_seconds=timeout,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(order: dict[str, Any]) -> str:
        ran.append(dict(order))
        return "paid"

    return pay, ran


def _call_in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out




def test_arguments_changed_after_submission_are_not_executed(env):
    rules, db = env
    pay, ran = _guarded(rules, db)
    order = {"to": "alice", "amount": 10}
    t, out = _call_in_thread(pay, order)
    store = Store(db)
    rec = first_pending(store)
    assert rec.digest == digest({"order": {"to": "alice", "amount": 10}})
    order["to"] = "mallory"  # TOCTOU: the caller's dict changes while it waits
    order["amount"] = 10_000
    signed_decide(store, rec.id, True, current_operator("test"))  # the operator approved alice/10
    t.join(10)
    assert isinstance(out.get("error"), SentinelBlockedError)
    assert "digest mismatch" in out["error"].reason
    assert ran == []
    kinds = [e.kind for e in all_events(store) if e.request_id == rec.id]
    assert kinds == ["approval_requested", "approved", "blocked"]
    verify_chain(store)


def test_request_rewritten_in_the_database_before_approval_is_not_executed(env):
    rules, db = env
    pay, ran = _guarded(rules, db)
    t, out = _call_in_thread(pay, {"to": "alice", "amount": 10})
    store = Store(db)
    rec = first_pending(store)
    forged = {"order": {"amount": 10, "to": "alice-verified"}}
    conn = raw_connection(db)  # another process rewrites what the operator will see and approve
    conn.execute(
        "UPDATE requests SET arguments = ?, digest = ? WHERE id = ?",
        ('{"order":{"amount":10,"to":"alice-verified"}}', digest(forged), rec.id),
    )
    signed_decide(store, rec.id, True, current_operator("test"))
    t.join(10)
    assert isinstance(out.get("error"), SentinelBlockedError)
    # The operator signed the digest they were shown (the forged one): the waiting call checks
    # the signature against the digest of its real arguments, and refuses it before running.
    # (Unsigned, the digest binding check refuses it: test_binding.py.)
    reason = out["error"].reason
    assert "decision not signed by a trusted operator" in reason and "mismatch" in reason
    assert ran == []


def test_decision_for_an_expired_request_is_refused(env):
    rules, db = env
    pay, ran = _guarded(rules, db, timeout=0.5)
    t, out = _call_in_thread(pay, {"to": "bob", "amount": 1})
    store = Store(db)
    rec = first_pending(store)
    t.join(10)
    assert isinstance(out.get("error"), SentinelTimeoutError) and ran == []
    assert store.get(rec.id).status == "expired"
    with pytest.raises(DecisionConflict, match="expired"):
        signed_decide(store, rec.id, True, current_operator("late"))
    conn = raw_connection(db)
    with pytest.raises(sqlite3.IntegrityError, match="already decided"):
        conn.execute("UPDATE requests SET status = 'approved', decided_by = 'x' WHERE id = ?", (rec.id,))
    assert store.get(rec.id).status == "expired"
    assert final_events_by_request(store)[rec.id] == 1
    assert_decided_once(store, db)
    verify_chain(store)


def test_expired_but_unswept_request_cannot_be_approved(env):
    """The decider's CAS checks ``expires_at`` itself: no sweeper or caller has to run first."""
    from sentinel.store import NewRequest

    _, db = env
    store = Store(db)
    rec = store.submit(NewRequest(
        id="e" * 32, function="pay", arguments={}, digest="0" * 64,
        timeout_seconds=60, created_at=time.time() - 120,
    ))  # fmt: skip
    with pytest.raises(DecisionConflict, match="expired"):
        signed_decide(store, rec.id, True, current_operator("late"))
    assert store.get(rec.id).status == "expired"
    assert_decided_once(store, db)


def test_second_decision_is_refused_through_the_api_and_the_trigger(env):
    rules, db = env
    pay, ran = _guarded(rules, db)
    t, out = _call_in_thread(pay, {"to": "carol", "amount": 5})
    store = Store(db)
    rec = first_pending(store)
    signed_decide(store, rec.id, False, current_operator("first"))
    t.join(10)
    assert ran == [] and "denied" in str(out.get("error"))
    with pytest.raises(DecisionConflict, match="already denied"):
        signed_decide(store, rec.id, True, current_operator("second"))
    conn = raw_connection(db)
    for stmt in (
        "UPDATE requests SET status = 'approved' WHERE id = ?",
        "UPDATE requests SET status = 'pending' WHERE id = ?",
        "UPDATE requests SET decided_by = 'someone else' WHERE id = ?",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="already decided"):
            conn.execute(stmt, (rec.id,))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET kind = 'approved' WHERE request_id = ? AND kind = 'denied'", (rec.id,))
    final = store.get(rec.id)
    assert final.status == "denied" and final.operator is not None
    assert final.operator["channel"] == "first"  # the first decision stands, unchanged
    assert final_events_by_request(store)[rec.id] == 1
    verify_chain(store)
