"""SIGKILL at the worst moments: a waiting agent, a decider mid-decision, a writer
mid-transaction, the command center. Nothing lost, nothing double-decided, the chain verifies."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from sentinel.errors import DecisionConflict
from sentinel.identity import current_operator
from sentinel.store import Store
from tests.faults.support import (
    RULES,
    Proc,
    all_events,
    assert_decided_once,
    cli,
    final_events_by_request,
    integrity_ok,
    verify_chain,
)
from tests.helpers import signed_decide

ACK = re.compile(r"ACK (\d+) (w\d+-\d+)\Z")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "sentinel.db"
    Store(path).close()
    return path


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def _wait_pending(store: Store, n: int = 1, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = store.list_pending()
        if len(rows) >= n:
            return rows
        assert time.monotonic() < deadline, "the request never became pending"
        time.sleep(0.02)


def test_killed_waiting_agent_becomes_cancelled_and_a_late_approval_is_refused(db, rules):
    agent = Proc(["hold", str(db), str(rules)])
    agent.expect("CALLING")
    store = Store(db)
    (row,) = _wait_pending(store)
    assert store.sweep() == 0  # alive: the sweeper leaves it alone
    os.kill(agent.pid, signal.SIGKILL)
    agent.proc.wait(timeout=10)
    listing = cli("pending", "--json", db=db)  # any operator command sweeps first
    assert listing.returncode == 0 and row.id not in listing.stdout
    rec = store.get(row.id)
    assert rec.status == "cancelled" and f"process {agent.pid}" in (rec.decision_reason or "")
    late = cli("approve", row.id, db=db)
    assert late.returncode == 1 and "cancelled" in late.stderr  # the click fails its CAS
    assert "RAN" not in agent.seen
    assert final_events_by_request(store)[row.id] == 1
    verify_chain(store)
    assert_decided_once(store, db)


def test_decider_killed_before_commit_leaves_the_request_pending_for_another(db, rules):
    agent = Proc(["hold", str(db), str(rules)])
    agent.expect("CALLING")
    store = Store(db)
    (row,) = _wait_pending(store)
    killed = Proc(["decide-pause", str(db), row.id])
    killed.expect("BEFORE_COMMIT")  # the CAS UPDATE and its audit event are written, not committed
    os.kill(killed.pid, signal.SIGKILL)
    killed.proc.wait(timeout=10)
    assert store.get(row.id).status == "pending"
    assert not [e for e in all_events(store) if e.kind == "approved"]
    done = cli("approve", row.id, db=db)  # a second operator decides: its CAS wins
    assert done.returncode == 0, done.stderr
    agent.expect("RAN")
    rec = store.get(row.id)
    assert rec.status == "approved" and "killed-op" not in (rec.decided_by or "")
    with pytest.raises(DecisionConflict):
        signed_decide(store, row.id, False, current_operator("test"))
    verify_chain(store)
    assert_decided_once(store, db)
    agent.kill()


def test_writer_killed_inside_a_transaction_releases_the_lock_and_leaves_no_partial_row(db):
    holder = Proc(["txn-hold", str(db)])
    holder.expect("IN_TXN")
    blocked = Store(db, busy_timeout=0.2)
    from sentinel.errors import StoreError

    with pytest.raises(StoreError, match="locked"):
        blocked.append_events([{"kind": "allowed"}])
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(timeout=10)
    store = Store(db)
    store.append_events([{"kind": "allowed", "function": "after"}])  # the lock is free
    events = all_events(store)
    assert [e.function for e in events] == ["after"]  # the uncommitted row is gone
    assert verify_chain(store) == 1
    integrity_ok(db)


def test_writers_killed_at_random_lose_no_acknowledged_event(db):
    rng = random.Random(3)
    acked: dict[int, str] = {}
    for _ in range(12):
        procs = [Proc(["writer", str(db)]) for _ in range(2)]
        for p in procs:
            p.expect("ACK")
        time.sleep(rng.uniform(0.05, 0.3))
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.proc.wait(timeout=10)
            time.sleep(0.02)
            for line in [*p.seen, *_drain(p)]:
                m = ACK.match(line)  # a line torn by the kill was never acknowledged
                if m:
                    acked[int(m[1])] = m[2]
    store = Store(db)
    stored = {e.seq: e.function for e in all_events(store)}
    assert len(acked) > 50
    for seq, name in acked.items():
        assert stored.get(seq) == name, f"acknowledged event {seq} ({name}) lost"
    verify_chain(store)
    integrity_ok(db)


def _drain(p: Proc) -> list[str]:
    out = []
    while not p.lines.empty():
        out.append(p.lines.get_nowait())
    return out


def test_command_center_killed_mid_stream_loses_nothing(db, rules, tmp_path):
    agents = [Proc(["mixed", str(db), str(rules), "40", str(s), "0.5"]) for s in range(2)]
    tui = Proc(["tui-decider", str(db)])
    tui.expect("TUI_READY", timeout=60)
    tui.expect("TUI_DECIDED 3", timeout=60)
    os.kill(tui.pid, signal.SIGKILL)
    tui.proc.wait(timeout=10)
    stop = tmp_path / "stop"
    decider = Proc(["cli-decider", str(db), str(stop), "9"])
    try:
        calls = [c for a in agents for c in a.json_lines()]
    finally:
        stop.write_text("x")
        decider.proc.wait(timeout=60)
    assert len(calls) == 80
    for a in agents:
        assert a.proc.returncode == 0, "".join(a.err)[-2000:]
    store = Store(db)
    status = assert_decided_once(store, db)
    assert status and all(s in ("approved", "denied") for s in status.values())
    verify_chain(store)
    integrity_ok(db)

