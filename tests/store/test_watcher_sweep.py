"""Waking waiting calls across processes, and cleaning up after dead waiters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from sentinel.errors import RequestNotFound, StoreError
from sentinel.store import Store, Watcher, hints
from tests.helpers import PYTHON, ROOT, python_env
from tests.store.factories import new_request, operator

AGENT = ROOT / "tests" / "e2e" / "agents" / "queue_agent.py"

DECIDE_IN_CHILD = textwrap.dedent(
    """
    import sys
    from sentinel.store import OperatorIdentity, Store
    op = OperatorIdentity(account="child-op", uid=1, login_uid=None, login_account=None, host="h2", ssh_client=None)
    with Store(sys.argv[1]) as s:
        s.decide(sys.argv[2], sys.argv[3] == "approve", op, "from another process")
    """
)


def _decide_in_child(db: Path, request_id: str, verdict: str) -> None:
    subprocess.run(
        [PYTHON, "-c", DECIDE_IN_CHILD, str(db), request_id, verdict],
        env=python_env(),
        check=True,
        timeout=60,
    )


def test_future_resolves_when_another_process_decides(store: Store) -> None:
    watcher = Watcher(store.path)  # a private instance: other tests' watches do not interfere
    try:
        rec = store.submit(new_request())
        fut = watcher.watch(rec.id)
        time.sleep(0.05)
        assert not fut.done()  # still pending: nothing to resolve
        hinted_before = watcher.hinted
        _decide_in_child(store.path, rec.id, "deny")
        got = fut.result(timeout=10)
        assert got.status == "denied"
        assert got.decided_by == "child-op@h2"
        assert got.decision_reason == "from another process"
        assert watcher.watching == 0  # resolved futures are dropped
        # the deciding process sent a wake-up hint after its commit (it may land just after the
        # data_version poll already resolved the future, so allow it a moment)
        if hints.ENABLED:
            deadline = time.monotonic() + 2
            while watcher.hinted == hinted_before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert watcher.hinted > hinted_before
    finally:
        watcher.stop()


async def test_async_callers_and_already_decided_rows(store: Store) -> None:
    watcher = Watcher(store.path)
    try:
        done = store.submit(new_request())
        store.decide(done.id, True, operator())
        waiting = store.submit(new_request())
        fast = await asyncio.wait_for(asyncio.wrap_future(watcher.watch(done.id)), 5)
        assert fast.status == "approved"  # decided before watch(): resolved on the first check
        slow = asyncio.wrap_future(watcher.watch(waiting.id))
        await asyncio.to_thread(_decide_in_child, store.path, waiting.id, "approve")
        assert (await asyncio.wait_for(slow, 10)).status == "approved"
        with pytest.raises(RequestNotFound):
            await asyncio.wait_for(asyncio.wrap_future(watcher.watch("no-such-id")), 5)
    finally:
        watcher.stop()


def test_only_changed_rows_are_resolved_and_unwatch_works(store: Store) -> None:
    watcher = Watcher(store.path)
    try:
        a, b = store.submit(new_request()), store.submit(new_request())
        fa, fb = watcher.watch(a.id), watcher.watch(b.id)
        _decide_in_child(store.path, a.id, "approve")
        assert fa.result(timeout=10).status == "approved"
        assert not fb.done() and watcher.watching == 1
        watcher.unwatch(b.id)
        assert watcher.watching == 0
    finally:
        watcher.stop()


def test_watcher_is_shared_per_database() -> None:
    assert Watcher.for_path("/tmp/x/../x/a.db") is Watcher.for_path("/tmp/x/a.db")


def _start_holder(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [PYTHON, str(AGENT), "hold", str(db)], env=python_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    return proc, line["id"]


def test_sweep_cancels_rows_of_a_sigkilled_waiter(store: Store) -> None:
    proc, request_id = _start_holder(store.path)
    try:
        assert store.sweep() == 0  # the waiter is alive: nothing to do
        assert store.get(request_id).status == "pending"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert store.sweep() == 1
        rec = store.get(request_id)
        assert rec.status == "cancelled"
        assert rec.decision_reason == f"agent process {proc.pid} on {rec.host} exited"
        assert store.history()[0].kind == "cancelled"
        assert not any(
            p.name.startswith(f"{rec.host}-{proc.pid}-")
            for p in (store.path.parent / "live").iterdir()
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()


def test_sweep_expires_overdue_rows_but_spares_live_ones(db_path: Path) -> None:
    with Store(db_path, expiry_grace=0.0) as store:
        overdue = store.submit(new_request(timeout_seconds=0.01))
        live = store.submit(new_request())
        time.sleep(0.05)
        assert store.sweep() == 1
        assert store.get(overdue.id).status == "expired"
        assert store.get(live.id).status == "pending"  # this process holds its liveness lock


def test_unreadable_database_fails_waiting_futures_with_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    watcher = Watcher(bad)
    try:
        fut = watcher.watch("some-request")
        with pytest.raises(StoreError, match="corrupted or not a Sentinel database"):
            fut.result(timeout=10)  # fail-secure: the waiting call is told, never left hanging
    finally:
        watcher.stop()
