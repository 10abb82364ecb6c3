"""The async store contract, run against both backends: :class:`AsyncStore` on a SQLite file and
:class:`AsyncPgStore` on the real PostgreSQL server (tests/pg.py). Each test uses only what both
offer; what an async store writes, the sync store of the same backend reads (and verifies)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentinel.audit.keys import Verifier
from sentinel.audit.verify import verify
from sentinel.errors import DecisionConflict, DuplicateVote, RequestNotFound, StoreError
from sentinel.store import AsyncStore, Store
from sentinel.store.limits import LimitCheck
from sentinel.store.models import DecisionTerms
from sentinel.store.pgaio import AsyncPgStore
from sentinel.store.postgres import PgStore
from tests.store.factories import new_request, operator

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    name: str
    target: str

    def open_async(self, **options: Any) -> Any:
        if self.name == "sqlite":
            return AsyncStore(self.target, **options)
        return AsyncPgStore(self.target, **options)

    def open_sync(self) -> Any:
        return Store(self.target) if self.name == "sqlite" else PgStore(self.target)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(db_path))
    return Backend("postgresql", request.getfixturevalue("pg_url"))


@pytest.fixture
async def astore(backend: Backend) -> AsyncIterator[Any]:
    async with backend.open_async() as s:
        yield s


async def test_submit_get_and_idempotent_resubmission(astore: Any) -> None:
    new = new_request(value_at_risk=99.5)
    rec = await astore.submit(new)
    assert rec.status == "pending" and rec.lock_path  # its waiter's liveness is recorded
    assert (await astore.submit(new)).id == rec.id
    got = await astore.get(rec.id[:10])
    assert got.id == rec.id and got.value_at_risk == 99.5 and got.created_at == new.created_at
    assert [r.id for r in await astore.list_pending()] == [rec.id]
    assert [e.kind for e in await astore.history()] == ["approval_requested"]
    with pytest.raises(RequestNotFound, match="no approval request"):
        await astore.get("zzzzzzzz")


async def test_decide_once_quorum_and_conflicts(astore: Any) -> None:
    rec = await astore.submit(new_request())
    done = await astore.decide(rec.id, True, operator("alice"), "fine")
    assert done.status == "approved" and done.decision_reason == "fine"
    with pytest.raises(DecisionConflict, match="already approved by alice@ops1"):
        await astore.decide(rec.id, False, operator("bob"))
    two = await astore.submit(new_request(terms=DecisionTerms(quorum=2)))
    assert (await astore.decide(two.id, True, operator("alice"))).status == "pending"
    with pytest.raises(DuplicateVote, match="already voted"):
        await astore.decide(two.id, True, operator("alice"))
    final = await astore.decide(two.id, True, operator("bob"))
    assert final.status == "approved" and [v.operator for v in final.votes] == ["alice", "bob"]


async def test_expire_cancel_escalate_and_sweep(astore: Any) -> None:
    late = await astore.submit(new_request(timeout_seconds=0.05))
    await asyncio.sleep(0.1)
    with pytest.raises(DecisionConflict, match="expired"):
        await astore.decide(late.id, True, operator())
    won = await astore.submit(new_request())
    await astore.decide(won.id, False, operator())
    kept = await astore.expire(won.id)  # the decision that won stays
    assert kept is not None and kept.status == "denied"
    gone = await astore.cancel((await astore.submit(new_request())).id, "task cancelled")
    assert gone is not None and gone.status == "cancelled"
    assert await astore.expire("no-such-request") is None
    up = await astore.submit(new_request())
    esc = await astore.escalate(up.id, ["security"])
    assert esc is not None and esc.escalated_to == ("security",)
    assert await astore.escalate(up.id, ["security"]) is None
    overdue = await astore.submit(new_request(created_at=time.time() - 400))
    assert await astore.sweep() == 1  # overdue only: this process (the waiter) is alive
    assert (await astore.get(overdue.id)).status == "expired"
    assert (await astore.get(up.id)).status == "pending"


async def test_append_events_chain_verifies_with_the_sync_store(
    backend: Backend, astore: Any, tmp_path: Path
) -> None:
    async def writer(n: int) -> None:
        for i in range(10):
            await astore.append_events([{"kind": "allowed", "function": f"f{n}-{i}"}])

    await asyncio.gather(*(writer(n) for n in range(4)))
    stored = await astore.append_events([{"kind": "executed"}])
    assert [e.seq for e in stored] == [41]
    state = await astore.audit_state()
    assert state[1:4] == (1, 41, stored[0].hash)
    with backend.open_sync() as sync:
        report = verify(sync, anchor_dir=tmp_path / "anchors", verifier=Verifier({}, {}))
        assert report.ok, report.problems
        assert report.table_events == 41
    assert (await astore.metrics()).counts["allowed"] == 40
    assert await astore.count_events() == 41


async def test_limit_reserve_lets_exactly_the_cap_through_across_stores(backend: Backend) -> None:
    check = LimitCheck(key="daily|agent=bot", window=3600.0, cap=100.0, amount=10.0)
    async with backend.open_async() as one, backend.open_async() as two:

        async def caller(s: Any) -> list[tuple[str, float]]:
            got = []
            for _ in range(8):
                (usage,) = await s.limit_reserve([check])
                if usage.exceeded:
                    await s.limit_release([usage.reservation])
                else:
                    got.append(usage.reservation)
            return got

        passed = [r for part in await asyncio.gather(caller(one), caller(two)) for r in part]
        assert len(passed) == 10
        (now,) = await one.limit_usage([check])
        assert now.used == pytest.approx(100.0) and now.calls == 10
        assert await two.limit_release(passed[:4]) == 4
        (after,) = await one.limit_usage([check])
        assert after.calls == 6


async def test_info_and_data_version(backend: Backend, astore: Any) -> None:
    before = await astore.data_version()
    await astore.submit(new_request())
    with backend.open_sync() as sync:
        sync.append_events([{"kind": "allowed"}])
    assert await astore.data_version() != before
    info = await astore.info()
    assert info.backend == backend.name and (info.requests, info.pending, info.events) == (1, 1, 2)
    assert info.schema_version == info.latest_version and info.size_bytes > 0
    if backend.name == "postgresql":
        assert "***" in info.location


_DECIDER = """
import sys
from sentinel.store import Store
from sentinel.store.postgres import PgStore
from tests.store.factories import operator
s = Store(sys.argv[2]) if sys.argv[1] == "sqlite" else PgStore(sys.argv[2])
s.decide(sys.argv[3], True, operator("bob"))
s.close()
"""


async def test_a_waiting_coroutine_wakes_when_another_process_decides(
    backend: Backend, astore: Any
) -> None:
    rec = await astore.submit(new_request())
    waiting = asyncio.wrap_future(astore.watcher().watch(rec.id))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DECIDER, backend.name, backend.target, rec.id,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )  # fmt: skip
    assert await proc.wait() == 0
    done = await asyncio.wait_for(waiting, 30)
    assert done.status == "approved" and done.id == rec.id


async def test_a_cancelled_caller_leaves_the_store_usable(astore: Any) -> None:
    rec = await astore.submit(new_request())
    task = asyncio.ensure_future(astore.decide(rec.id, True, operator()))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    # Whether the decision landed or not, nothing was left half-done: the store still works.
    after = await astore.get(rec.id)
    assert after.status in ("pending", "approved")
    assert len(await astore.history()) == (1 if after.status == "pending" else 2)
    await astore.append_events([{"kind": "allowed"}])


async def test_a_closed_store_refuses_clearly(backend: Backend) -> None:
    s = backend.open_async()
    await s.open()
    await s.close()
    assert s.closed
    with pytest.raises(StoreError, match="is closed"):
        await s.get("abcdefgh")


def test_close_blocking_from_sync_code(backend: Backend) -> None:
    s = backend.open_async()

    async def use() -> int:
        await s.submit(new_request())
        n: int = await s.count_events()
        return n

    assert asyncio.run(use()) == 1
    s.close_blocking()  # the loop is gone: it closes without one
    assert s.closed
