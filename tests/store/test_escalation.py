"""Store.escalate / AsyncStore.escalate: one ``escalated`` event in the chain, once, only while
the request is pending; the row shows when and to whom; ``sentinel pending`` and ``sentinel show`` show it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from sentinel.audit.verify import verify
from sentinel.store import AsyncStore, HistoryFilter, Store
from sentinel.store.models import DecisionTerms
from tests.helpers import PYTHON, python_env
from tests.store.factories import new_request, operator

TERMS = DecisionTerms(approvers=("finance",), escalate_after=600.0, escalate_to=("security",))


def escalations(store: Store, request_id: str) -> list[object]:
    return [
        e
        for e in store.history(HistoryFilter(kinds=("escalated",)), limit=50)
        if e.request_id == request_id
    ]


def test_escalate_records_one_event_in_the_chain_and_marks_the_row_once(store: Store) -> None:
    rec = store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
    assert rec.escalated_at is None and rec.escalated_to == ()
    now = rec.created_at + 600.5
    done = store.escalate(rec.id, ["security"], now)
    assert done is not None and done.is_pending
    assert done.escalated_at == now and done.escalated_to == ("security",)
    assert store.get(rec.id).escalated_to == ("security",)
    (event,) = escalations(store, rec.id)
    assert event.function == rec.function and event.rule_id == rec.rule_id
    assert event.data["to"] == ["security"]
    assert event.data["may_decide"] == ["finance", "security"]  # the row's approvers + to
    assert event.data["after_seconds"] == pytest.approx(600.5)
    assert "escalated to security" in (event.reason or "")
    # Again, from anyone: nothing changes, nothing is appended.
    assert store.escalate(rec.id, ["security"], now + 5) is None
    assert store.escalate(rec.id, ["ops"]) is None
    assert len(escalations(store, rec.id)) == 1
    assert store.get(rec.id).escalated_at == now
    assert verify(store).ok  # the event is part of the one hash chain


def test_only_a_pending_unexpired_request_escalates(store: Store) -> None:
    decided = store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
    store.decide(decided.id, True, operator())
    assert store.escalate(decided.id, ["security"]) is None
    short = store.submit(new_request(timeout_seconds=1.0))
    assert store.escalate(short.id, ["security"], short.created_at + 2.0) is None
    assert store.escalate("f" * 32, ["security"]) is None
    with pytest.raises(ValueError, match="at least one"):
        store.escalate(decided.id, [])
    assert store.history(HistoryFilter(kinds=("escalated",))) == []
    # A decided row stays as it was decided (the database refuses any later change).
    assert store.get(decided.id).escalated_at is None


def test_a_decision_after_the_escalation_still_finishes_the_row(store: Store) -> None:
    rec = store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
    store.escalate(rec.id, ["security"])
    done = store.decide(rec.id, False, operator("sam"), "no")
    assert done.status == "denied" and done.escalated_to == ("security",)
    assert done.to_dict()["escalated_to"] == ["security"]


def test_async_store_escalates_the_same_way(db_path: Path) -> None:
    async def run() -> tuple[object, object, int]:
        async with AsyncStore(db_path) as store:
            rec = await store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
            first = await store.escalate(rec.id, ("security",), may_decide=("security",))
            second = await store.escalate(rec.id, ("security",))
            events = await store.history(HistoryFilter(kinds=("escalated",)))
            return first, second, len(events)

    first, second, n = asyncio.run(run())
    assert first is not None and second is None and n == 1
    with Store(db_path) as store:
        (event,) = store.history(HistoryFilter(kinds=("escalated",)))
        assert event.data["may_decide"] == ["security"]


def test_step_11_adds_the_columns_to_an_existing_database(db_path: Path) -> None:
    from sentinel.store.schema import MIGRATIONS, migrate

    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, str(db_path), MIGRATIONS[:10])  # the schema before escalation
    conn.close()
    with Store(db_path) as store:
        rec = store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
        assert store.escalate(rec.id, ["security"]) is not None
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *args],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_queue_and_show_say_escalated_to_whom_and_when(store: Store, db_path: Path) -> None:
    plain = store.submit(new_request())
    rec = store.submit(new_request(terms=TERMS, timeout_seconds=3600.0))
    listed = cli("pending", "--db", str(db_path))
    assert listed.returncode == 0, listed.stderr
    assert "ESCALATION" not in listed.stdout  # nothing escalated: the table as before
    at = time.time()
    store.escalate(rec.id, ["security"], at)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    listed = cli("pending", "--db", str(db_path))
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(rec.id[:12])]
    assert f"escalated to security at {when}" in line
    (other,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(plain.id[:12])]
    assert "escalated" not in other
    shown = cli("show", rec.id, "--db", str(db_path))
    assert shown.returncode == 0, shown.stderr
    assert f"escalation: escalated to security at {when}" in shown.stdout
    assert "who decides: finance; after 600s also security (escalation)" in shown.stdout
    assert "escalat" not in cli("show", plain.id, "--db", str(db_path)).stdout
