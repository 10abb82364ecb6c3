"""AsyncStore offers every operation of Store, with the same arguments, results and rules (real
SQLite files; the sync store reads what the async one wrote and the other way round)."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

from sentinel.errors import StoreError
from sentinel.store import AsyncStore, HistoryFilter, Store, Watcher, aio, liveness
from sentinel.store.limits import LimitCheck
from sentinel.store.pgaio import AsyncPgStore
from sentinel.store.postgres import PgStore
from tests.store.factories import learn_plan, new_request, operator

#: Public names only one of the two has, and why.
ONLY_ASYNC = {
    "open": "connects lazily on first use; awaiting open() does it up front (Store connects in __init__)",
    "close_blocking": "closes from synchronous code on any thread (runtime.close_shared, ended loops)",
}
#: Names present on both that are not coroutines on AsyncStore: no I/O behind them.
NOT_COROUTINES = {"watcher", "closed"}


@pytest.fixture(autouse=True, params=["one trip", "per statement"])
def trips(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways of driving an operation (see ``aio.ONE_TRIP``)."""
    monkeypatch.setattr(aio, "ONE_TRIP", request.param == "one trip")
    return str(request.param)


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"), [(Store, AsyncStore), (PgStore, AsyncPgStore)], ids=["sqlite", "pg"]
)
def test_async_store_offers_every_public_operation_of_store(
    sync_cls: type, async_cls: type
) -> None:
    assert _public(PgStore) == _public(Store)  # both backends offer the same operations
    assert _public(sync_cls) - _public(async_cls) == set()
    assert _public(async_cls) - _public(sync_cls) == set(ONLY_ASYNC)
    for name in sorted(_public(sync_cls) - NOT_COROUTINES):
        sync, coro = getattr(sync_cls, name), getattr(async_cls, name)
        assert inspect.iscoroutinefunction(coro), f"{async_cls.__name__}.{name} is not a coroutine"
        got = [(p.name, p.kind, p.default) for p in inspect.signature(coro).parameters.values()]
        want = [(p.name, p.kind, p.default) for p in inspect.signature(sync).parameters.values()]
        assert got == want, f"{async_cls.__name__}.{name} takes other arguments than {name}"
    assert isinstance(inspect.getattr_static(async_cls, "closed"), property)
    assert not inspect.iscoroutinefunction(async_cls.watcher)


# --- the operations AsyncStore gained, against the sync store on the same file ----------------


async def test_audit_operations_match_the_sync_store(db_path: Path) -> None:
    sync = Store(db_path)
    async with AsyncStore(db_path) as astore:
        await astore.append_events(
            [
                {"kind": "blocked", "value_at_risk": 7.0, "function": "transfer", "ts": 100.0},
                {"kind": "denied", "value_at_risk": 3.0, "function": "wire", "ts": 200.0},
                {"kind": "allowed", "function": "transfer", "ts": 300.0},
            ]
        )
        state = await astore.audit_state()
        assert state == sync.audit_state()
        assert state[1:3] == (1, 3) and state[4] == []
        rows = await astore.event_rows(1, 10)
        assert rows == sync.event_rows(1, 10) and [r[0] for r in rows] == [2, 3]
        only_transfer = HistoryFilter(function="transfer")
        page = await astore.export_page(only_transfer, 0, 10)
        assert [e.seq for e in page] == [1, 3] == [e.seq for e in sync.export_page(only_transfer)]
        assert await astore.value_protected() == {"blocked": (1, 7.0), "denied": (1, 3.0)}
        assert await astore.value_protected(150.0, 250.0) == {"denied": (1, 3.0)}
        hash_2 = rows[0][14]
        assert await astore.prune_events(2) == (2, hash_2, 2)
        assert [e.seq for e in sync.events_after(0)] == [3]
        assert [w[:2] for w in sync.audit_state()[4]] == [(2, hash_2)]
        assert await astore.prune_events(99) is None
    sync.close()


async def test_limit_counters_match_the_sync_store(db_path: Path) -> None:
    sync = Store(db_path)
    check = LimitCheck("transfer:billing", window=3600.0, cap=2.0, amount=1.0)
    async with AsyncStore(db_path) as astore:
        first = await astore.limit_reserve([check])
        assert (first[0].used, first[0].exceeded) == (0.0, False)
        second = sync.limit_reserve([check])
        third = await astore.limit_reserve([check])
        assert (second[0].used, third[0].used, third[0].exceeded) == (1.0, 2.0, True)
        usage = await astore.limit_usage([check])
        assert [(u.used, u.calls) for u in usage] == [(3.0, 3)]
        assert [(u.used, u.calls) for u in sync.limit_usage([check])] == [(3.0, 3)]
        assert third[0].reservation is not None
        assert await astore.limit_release([third[0].reservation]) == 1
        assert await astore.limit_release([]) == 0
        assert [u.used for u in sync.limit_usage([check])] == [2.0]
    sync.close()


async def test_anomaly_baselines_match_the_sync_store(db_path: Path) -> None:
    sync = Store(db_path)
    async with AsyncStore(db_path) as astore:
        await astore.baseline_learn("billing", "transfer", learn_plan(10.0, "acct-1"), 1000.0)
        sync.baseline_learn("billing", "transfer", learn_plan(30.0, "acct-2"), 1001.0)
        await astore.baseline_learn("billing", "transfer", learn_plan(20.0, "acct-1"))
        rows = await astore.baseline_for_call("billing", "transfer")
        assert rows == sync.baseline_for_call("billing", "transfer")
        by_kind = {r.kind: r for r in rows}
        assert by_kind["number"].mean == pytest.approx(20.0) and by_kind["number"].n == 3
        assert by_kind["category"].size == 2 and by_kind["rate"].n == 3
        vkeys = {"to": "to=acct-1"}
        seen = await astore.baseline_for_call_seen("billing", "transfer", vkeys)
        assert seen == sync.baseline_for_call_seen("billing", "transfer", vkeys)
        assert seen[1] == {"to"}
        assert await astore.baseline_seen("billing", "transfer", ["to=acct-2", "to=nope"]) == {
            "to=acct-2"
        }
        assert await astore.baseline_seen("billing", "transfer", []) == set()
        window = await astore.baseline_window("billing", "transfer", "amount")
        assert window is not None and struct.unpack("3d", window[0]) == (10.0, 30.0, 20.0)
        assert await astore.baseline_window("billing", "transfer", "nope") is None
        listed = await astore.baseline_list(agent="billing")
        assert listed == sync.baseline_list(agent="billing") and len(listed) == 3
        assert await astore.baseline_list(function="other") == []
        top = await astore.baseline_top_values("billing", "transfer", "to", 1)
        assert top == [("acct-1", 2)]
        removed = await astore.baseline_reset("billing", None, {"kind": "baseline_reset"})
        assert removed == 3 and sync.baseline_list() == []
        last = (await astore.history(limit=1))[0]
        assert last.kind == "baseline_reset" and last.data["baselines_removed"] == 3
    sync.close()


async def test_closed_and_watcher_like_the_sync_store(db_path: Path) -> None:
    astore = AsyncStore(db_path)
    assert astore.closed is False
    watcher = astore.watcher()
    assert isinstance(watcher, Watcher) and watcher is Store(db_path).watcher()
    await astore.close()
    assert astore.closed is True
    with pytest.raises(StoreError, match="closed"):
        await astore.count_events()
    watcher.stop()


# --- the sync store's rules ---------------------------------------------------------------------


async def _synchronous(astore: AsyncStore) -> int:
    conn = astore._conn
    assert conn is not None
    cur = await conn.execute("PRAGMA synchronous")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_decisions_and_prunes_commit_durably_other_writes_do_not(
    db_path: Path, trips: str
) -> None:
    normal, full = 1, 2
    async with AsyncStore(db_path) as astore:
        rec = await astore.submit(new_request())
        assert astore._conn is not None
        assert aio.one_trip(astore._conn) is (trips == "one trip")
        assert await _synchronous(astore) == normal
        await astore.decide(rec.id, True, operator())
        assert await _synchronous(astore) == full
        await astore.count_events()  # reads leave the setting alone
        assert await _synchronous(astore) == full
        await astore.append_events([{"kind": "allowed"}])
        assert await _synchronous(astore) == normal
        await astore.prune_events(1)
        assert await _synchronous(astore) == full


async def test_submit_holds_the_liveness_lock_of_the_waiting_process(db_path: Path) -> None:
    async with AsyncStore(db_path) as astore:
        rec = await astore.submit(new_request())
    assert (rec.pid, rec.host) == (os.getpid(), liveness.hostname())
    assert rec.pid_start == liveness.pid_start_time(os.getpid())
    assert rec.lock_path is not None and not liveness.lock_is_free(rec.lock_path)
    async with AsyncStore(db_path) as again:
        assert await again.sweep() == 0  # this process waits: its row is not cancelled
        assert (await again.get(rec.id)).status == "pending"


async def test_a_replaced_database_file_is_refused_once_then_used(db_path: Path) -> None:
    async with AsyncStore(db_path) as astore:
        await astore.append_events([{"kind": "allowed"}])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(StoreError, match="deleted or replaced"):
            await astore.append_events([{"kind": "blocked"}])
        await astore.append_events([{"kind": "denied"}])
        assert [e.kind for e in await astore.history()] == ["denied"]
    with Store(db_path) as sync:
        assert [e.kind for e in sync.history()] == ["denied"]


async def test_a_cancelled_caller_never_leaves_a_transaction_open(db_path: Path) -> None:
    """Cancel a submit at every point of its transaction: the operation still completes (as the
    sync store's would on its thread), the connection stays usable and the write lock is free."""
    async with AsyncStore(db_path) as astore:
        await astore.count_events()
        other = Store(db_path, busy_timeout=0.5)
        for steps in range(12):
            task = asyncio.ensure_future(astore.submit(new_request()))
            for _ in range(steps):
                await asyncio.sleep(0)
            if task.cancel():
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:  # a fast worker finished before the cancel: nothing to interrupt
                assert task.result().status == "pending"
            await astore.count_events()  # queued behind whatever the cancelled submit still does
            # A StoreError (busy) if the cancelled submit had left its transaction open:
            await asyncio.to_thread(other.append_events, [{"kind": "allowed"}])
            assert (await astore.submit(new_request())).status == "pending"
        pending = await astore.list_pending()
        assert 12 <= len(pending) <= 24  # each cancelled submit completed or never started
        other.close()


def _worker(astore: AsyncStore) -> threading.Thread:
    thread = getattr(astore._conn, "_thread", astore._conn)
    assert isinstance(thread, threading.Thread)
    return thread


async def test_close_blocking_inside_and_outside_a_loop(db_path: Path) -> None:
    inside = AsyncStore(db_path)
    await inside.count_events()
    worker = _worker(inside)
    assert worker.daemon  # a store never closed must not keep the interpreter from exiting
    inside.close_blocking()  # on the loop's own thread: tells the worker, waits for nothing
    assert inside.closed
    with pytest.raises(StoreError, match="closed"):
        await inside.count_events()
    await asyncio.to_thread(worker.join, 5)
    assert not worker.is_alive()

    outside = AsyncStore(db_path)
    await outside.submit(new_request())
    worker = _worker(outside)
    errors: list[BaseException] = []

    def close_from_a_thread() -> None:
        try:
            outside.close_blocking()  # no loop on this thread: waits for the close
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    closer = threading.Thread(target=close_from_a_thread)
    closer.start()
    await asyncio.to_thread(closer.join, 10)
    assert errors == [] and outside.closed and not closer.is_alive()
    with pytest.raises(StoreError, match="closed"):
        await outside.count_events()
    # The connection is closed when close_blocking returns; its worker thread ends just after.
    await asyncio.to_thread(worker.join, 5)
    assert not worker.is_alive()


def test_forked_child_gets_its_own_connection(db_path: Path) -> None:
    astore = AsyncStore(db_path)
    rec = asyncio.run(astore.submit(new_request()))
    pid = os.fork()
    if pid == 0:  # child: use the parent's AsyncStore object (its worker thread is not here)
        code = 1
        try:

            async def child() -> int:
                await astore.decide(rec.id, False, operator("child"))
                return 0 if (await astore.get(rec.id)).status == "denied" else 2

            code = asyncio.run(child())
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    done, status = os.waitpid(pid, os.WNOHANG)
    while not done and time.monotonic() < deadline:
        time.sleep(0.02)
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:  # it waits on the parent's connection, whose worker thread is not in the child
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the parent's connection")
    assert os.waitstatus_to_exitcode(status) == 0

    async def parent() -> str | None:
        decided = await astore.get(rec.id)  # the parent's connection still works
        await astore.submit(new_request())
        await astore.close()
        return decided.decided_by

    assert asyncio.run(parent()) == "child@ops1"
    with Store(db_path) as sync:
        assert len(sync.list_pending()) == 1
