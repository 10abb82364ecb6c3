"""Store behaviour: submit, get, exactly-once decisions, expiry, cancellation, the event chain."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from sentinel.errors import DecisionConflict, RequestNotFound
from sentinel.store import GENESIS_HASH, AsyncStore, Store, canonical_json
from tests.store.factories import new_request, operator


def test_submit_writes_pending_row_and_event_in_one_go(store: Store) -> None:
    new = new_request(context={"ticket": "T-1"})
    rec = store.submit(new)
    assert rec.status == "pending" and rec.is_pending
    assert rec.arguments["api_key"] == "[REDACTED]"  # one redacted copy, stored once
    assert rec.display_arguments is rec.arguments  # the old name reads the same copy
    assert rec.expires_at == pytest.approx(new.created_at + 300.0)
    assert rec.context == {"ticket": "T-1"} and rec.rule_ids == ("large-transfer",)
    assert rec.pid > 0 and rec.host and rec.lock_path and rec.pid_start
    [event] = store.history()
    assert event.kind == "approval_requested" and event.request_id == rec.id
    assert "sk-live-secret" not in json.dumps(event.data)  # events only carry the redacted copy
    assert event.data["arguments"]["api_key"] == "[REDACTED]"


def test_submit_is_idempotent_on_id(store: Store) -> None:
    new = new_request()
    first = store.submit(new)
    again = store.submit(new_request(id=new.id, function="something_else"))
    assert again == first
    assert store.count_events() == 1
    assert len(store.list_pending()) == 1


def test_get_by_unique_prefix_and_errors(store: Store) -> None:
    a = store.submit(new_request(id="abcd111"))
    store.submit(new_request(id="abcd222"))
    assert store.get("abcd1").id == a.id
    assert store.get("abcd111").id == a.id
    with pytest.raises(RequestNotFound, match="ambiguous"):
        store.get("abcd")
    with pytest.raises(RequestNotFound, match="no approval request with id 'zzzz'"):
        store.get("zzzz")
    with pytest.raises(RequestNotFound, match="too short"):
        store.get("abc")
    with pytest.raises(RequestNotFound):
        store.get("")


def test_list_pending_oldest_first(store: Store) -> None:
    now = time.time()
    ids = [store.submit(new_request(created_at=now - age)).id for age in (5, 50, 20)]
    listed = [r.id for r in store.list_pending()]
    assert listed == [ids[1], ids[2], ids[0]]
    assert len(store.list_pending(limit=2)) == 2


def test_decide_records_operator_and_second_decision_names_the_first(store: Store) -> None:
    rec = store.submit(new_request())
    alice = operator("alice", ssh_client="10.0.0.5 51000", display_name="Alice A.")
    decided = store.decide(rec.id, True, alice, "looks right")
    assert decided.status == "approved"
    assert decided.decided_by == alice.label
    assert decided.operator is not None and decided.operator["uid"] == 1000
    assert decided.operator["ssh_client"] == "10.0.0.5 51000"
    assert decided.decision_reason == "looks right"
    with pytest.raises(DecisionConflict) as info:
        store.decide(rec.id, False, operator("bob"))
    assert "already approved by alice@ops1" in str(info.value)
    assert info.value.record.status == "approved"
    assert store.get(rec.id).status == "approved"
    kinds = [e.kind for e in store.history()]
    assert kinds.count("approved") == 1 and "denied" not in kinds


def test_decision_after_expiry_is_refused_and_row_says_expired(store: Store) -> None:
    rec = store.submit(new_request(timeout_seconds=0.05))
    time.sleep(0.1)
    with pytest.raises(DecisionConflict, match="expired") as info:
        store.decide(rec.id, True, operator())
    assert info.value.record.status == "expired"
    assert store.get(rec.id).status == "expired"  # expired, never denied
    assert [e.kind for e in store.history()] == ["expired", "approval_requested"]


def test_decide_unknown_id(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.decide("does-not-exist", True, operator())


def test_expire_and_cancel_are_cas_and_return_current_record(store: Store) -> None:
    a = store.submit(new_request())
    expired = store.expire(a.id)
    assert expired is not None and expired.status == "expired"
    assert store.cancel(a.id, "late") is not None and store.get(a.id).status == "expired"
    b = store.submit(new_request())
    store.decide(b.id, True, operator())
    obeyed = store.expire(b.id)  # the caller's timeout lost the race: it must obey the approval
    assert obeyed is not None and obeyed.status == "approved"
    c = store.submit(new_request())
    cancelled = store.cancel(c.id, "task cancelled")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.decision_reason == "task cancelled"
    assert store.expire("unknown-id") is None


def test_expire_versus_approve_race_has_one_winner(db_path: Path) -> None:
    """Two stores (two connections) race timeout vs approval on the same rows."""
    caller, op = Store(db_path), Store(db_path)
    try:
        ids = [caller.submit(new_request()).id for _ in range(60)]
        results: dict[str, dict[str, str]] = {i: {} for i in ids}
        barrier = threading.Barrier(2)

        def as_caller() -> None:
            for i in ids:
                barrier.wait()
                rec = caller.expire(i)
                assert rec is not None
                results[i]["caller"] = rec.status

        def as_operator() -> None:
            for i in ids:
                barrier.wait()
                try:
                    results[i]["operator"] = op.decide(i, True, operator()).status
                except DecisionConflict as exc:
                    results[i]["operator"] = "lost:" + exc.record.status

        threads = [threading.Thread(target=as_caller), threading.Thread(target=as_operator)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in ids:
            final = caller.get(i).status
            # The caller acts on exactly what the database says; the operator is told the truth.
            assert results[i]["caller"] == final
            assert results[i]["operator"] == ("approved" if final == "approved" else "lost:expired")
        decisions = [e for e in caller.history(limit=1000) if e.kind in ("approved", "expired")]
        assert len(decisions) == len(ids)  # one decision event per request
    finally:
        caller.close()
        op.close()


def _recompute(prev: str, event: dict[str, object]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256((prev + canonical_json(body)).encode()).hexdigest()


def test_events_are_hash_chained_from_genesis(store: Store) -> None:
    rec = store.submit(new_request())
    store.decide(rec.id, False, operator(), "no")
    store.append_events(
        [{"kind": "blocked", "function": "rm_rf", "value_at_risk": 10, "data": {"x": [1, 2.5]}}]
    )
    conn = sqlite3.connect(store.path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")]
    conn.close()
    assert [r["seq"] for r in rows] == [1, 2, 3]
    prev = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == prev
        row["data"] = json.loads(row["data"])
        assert row["hash"] == _recompute(prev, row)
        prev = row["hash"]


def test_chain_stays_linear_with_concurrent_writers(db_path: Path) -> None:
    stores = [Store(db_path) for _ in range(4)]
    try:

        def write(s: Store) -> None:
            for i in range(25):
                s.append_events([{"kind": "allowed", "function": f"f{i}"}, {"kind": "executed"}])

        threads = [threading.Thread(target=write, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = list(reversed(stores[0].history(limit=1000)))
        assert [e.seq for e in events] == list(range(1, 201))
        assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    finally:
        for s in stores:
            s.close()


def test_events_after_reads_oldest_first_in_pages(store: Store) -> None:
    store.append_events([{"kind": "allowed", "function": f"f{i}"} for i in range(7)])
    first = store.events_after(0, limit=3)
    rest = store.events_after(first[-1].seq, limit=100)
    assert [e.seq for e in first + rest] == list(range(1, 8))
    assert store.events_after(7) == []


def test_append_events_validates_input(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown event field.*colour"):
        store.append_events([{"kind": "allowed", "colour": "red"}])
    with pytest.raises(ValueError, match="kind"):
        store.append_events([{"kind": "Not A Kind"}])
    with pytest.raises(ValueError, match="finite"):
        store.append_events([{"kind": "blocked", "value_at_risk": float("nan")}])
    assert store.count_events() == 0  # nothing half-written
    out = store.append_events([{"kind": "allowed", "agent_id": "a"}, {"kind": "executed"}])
    assert [e.seq for e in out] == [1, 2] and out[1].prev_hash == out[0].hash


def test_pending_row_cannot_be_lost_by_a_failed_transaction(store: Store) -> None:
    with pytest.raises(ValueError):
        store.submit(new_request(timeout_seconds=float("inf")))
    assert store.list_pending() == [] and store.count_events() == 0


async def test_async_store_shares_behaviour(db_path: Path) -> None:
    sync = Store(db_path)
    async with AsyncStore(db_path) as astore:
        rec = await astore.submit(new_request())
        assert (await astore.get(rec.id[:8])).id == rec.id
        assert [r.id for r in await astore.list_pending()] == [rec.id]
        v0 = await astore.data_version()
        sync.decide(rec.id, True, operator("carol"))  # another connection commits
        assert await astore.data_version() != v0
        with pytest.raises(DecisionConflict, match="carol"):
            await astore.decide(rec.id, False, operator("dave"))
        other = await astore.submit(new_request())
        assert (await astore.cancel(other.id, "bye")).status == "cancelled"  # type: ignore[union-attr]
        await astore.append_events([{"kind": "blocked", "value_at_risk": 7}])
        history = await astore.history()
        assert [e.kind for e in history][:2] == ["blocked", "cancelled"]
        assert await astore.count_events() == 5
        m = await astore.metrics()
        assert m.value_protected == 7
    sync.close()


def test_one_store_shared_by_many_threads(store: Store) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(20):
                rec = store.submit(new_request())
                with lock:
                    ids.append(rec.id)
                store.get(rec.id)
                store.history(limit=5)
                store.decide(rec.id, True, operator())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 160 and store.list_pending() == []
    assert store.count_events() == 320


def test_forked_child_gets_its_own_connections(store: Store) -> None:
    import os

    rec = store.submit(new_request())
    pid = os.fork()
    if pid == 0:  # child: use the parent's Store object
        code = 1
        try:
            store.decide(rec.id, False, operator("child"))
            code = 0 if store.get(rec.id).status == "denied" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(rec.id).decided_by == "child@ops1"
    store.submit(new_request())  # the parent's connections still work
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
