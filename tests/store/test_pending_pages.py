"""Newest-first pending pages and the pending summary (what the command center paints first)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sentinel.store import AsyncStore, Store
from tests.store.factories import new_request, operator

BASE = float(int(time.time()) - 1000)


def _submit_many(store: Store, n: int, base: float = BASE) -> list[str]:
    ids = []
    for i in range(n):
        # Pairs share a created_at so the id tiebreak of the keyset is exercised.
        req = new_request(
            id=f"{i:04d}" + "f" * 28,
            created_at=base + i // 2,
            function=f"fn_{i % 3}",
            agent_id=None if i % 5 == 0 else f"agent-{i % 2}",
            risk_score=None if i % 4 == 0 else float(i % 11) + 0.5,
            value_at_risk=float(i),
            timeout_seconds=86_400,
        )
        store.submit(req)
        ids.append(req.id)
    return ids


def test_pending_newest_pages_cover_everything_newest_first_without_repeats(store: Store) -> None:
    ids = _submit_many(store, 25)
    newest_first = sorted(ids, key=lambda i: (BASE + int(i[:4]) // 2, i), reverse=True)
    seen: list[str] = []
    before = None
    while True:
        page = store.pending_newest(limit=7, before=before)
        if not page:
            break
        assert len(page) <= 7
        seen.extend(r.id for r in page)
        before = (page[-1].created_at, page[-1].id)
    assert seen == newest_first
    assert store.pending_newest(limit=3)[0].id == newest_first[0]


def test_pending_newest_skips_decided_requests(store: Store) -> None:
    ids = _submit_many(store, 6)
    newest = store.pending_newest(limit=1)[0].id
    store.decide(newest, False, operator(), reason="no")
    after = [r.id for r in store.pending_newest(limit=10)]
    assert newest not in after
    assert sorted(after) == sorted(set(ids) - {newest})


def test_pending_newest_rejects_bad_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.pending_newest(limit=0)
    with pytest.raises(ValueError, match=r"before must be \(created_at, id\)"):
        store.pending_newest(limit=5, before=("yesterday", "x"))  # type: ignore[arg-type]


def test_pending_summary_counts_in_the_database(store: Store) -> None:
    empty = store.pending_summary()
    assert (empty.total, empty.by_agent, empty.oldest_created_at, empty.value_at_risk) == (
        0,
        {},
        None,
        0.0,
    )
    _submit_many(store, 20)
    recs = store.list_pending(limit=100)
    s = store.pending_summary()
    assert s.total == 20
    assert s.by_agent == {a: sum(r.agent_id == a for r in recs) for a in {r.agent_id for r in recs}}
    assert None in s.by_agent
    assert s.by_function == {"fn_0": 7, "fn_1": 7, "fn_2": 6}
    expected_risk: dict[int | None, int] = {}
    for r in recs:
        k = None if r.risk_score is None else int(r.risk_score)
        expected_risk[k] = expected_risk.get(k, 0) + 1
    assert s.by_risk == expected_risk
    assert s.value_at_risk == sum(range(20))
    assert s.oldest_created_at == BASE
    store.decide(recs[0].id, True, operator(), reason="ok")
    assert store.pending_summary().total == 19


def test_pending_newest_reads_the_index_in_order(store: Store, db_path: Path) -> None:
    from sentinel.store import sql

    conn = sqlite3.connect(db_path)
    try:
        for q, args in (
            (sql.SELECT_PENDING_NEWEST, (10,)),
            (sql.SELECT_PENDING_NEWEST_BEFORE, (1.0, "a", 10)),
        ):
            plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + q, args))
            assert "requests_pending_newest" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of every pending row per page
    finally:
        conn.close()


async def test_async_store_pages_and_summary_like_the_sync_store(
    store: Store, db_path: Path
) -> None:
    ids = _submit_many(store, 9)
    async with AsyncStore(db_path) as astore:
        first = await astore.pending_newest(limit=4)
        rest = await astore.pending_newest(limit=10, before=(first[-1].created_at, first[-1].id))
        assert [r.id for r in first + rest] == [r.id for r in store.pending_newest(limit=20)]
        assert len(first + rest) == len(ids)
        assert (await astore.pending_summary()) == store.pending_summary()
