"""Parked requests (nobody waits in a process: a LangGraph checkpoint does) and the claim of
their approval, on both backends (SQLite file, real PostgreSQL server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.store import Store
from tests.store.factories import new_request, operator
from tests.store.test_contract import ROOT, Backend


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    if request.param == "sqlite":
        Store(db_path).close()  # create and migrate the file
        return Backend("sqlite", str(db_path))
    return Backend("postgresql", request.getfixturevalue("pg_url"))


_PARKER = """
import sys
from sentinel.store import Store
from sentinel.store.postgres import PgStore
from tests.store.factories import new_request
store = Store(sys.argv[2]) if sys.argv[1] == "sqlite" else PgStore(sys.argv[2])
print(store.submit(new_request(parked=True)).id, flush=True)
store.close()
"""


def test_the_sweep_leaves_a_parked_request_of_an_exited_process(backend: Backend) -> None:
    parked = subprocess.run(
        [sys.executable, "-c", _PARKER, backend.name, backend.target],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    with backend.open() as s:
        overdue = s.submit(new_request(parked=True, created_at=time.time() - 400))
        assert s.sweep() == 1  # only the overdue one: expiry still ends a parked request
        assert s.get(parked).status == "pending"
        assert s.get(overdue.id).status == "expired"
        rec = s.decide(parked, True, operator())  # and it can be decided as usual
        assert rec.status == "approved"
        requested = [e for e in s.history() if e.request_id == parked][-1]
        assert requested.kind == "approval_requested" and requested.data["parked"] is True


def test_an_approval_is_claimed_exactly_once_across_connections(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    try:
        rec = stores[0].submit(new_request(parked=True))
        assert stores[0].claim(rec.id) is False  # pending: nothing to claim
        stores[0].decide(rec.id, True, operator())
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(s.claim(rec.id, {"by": "t"})))
            for s in stores
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
        assert stores[1].claim(rec.id) is False
        assert stores[1].claim("0" * 32) is None
        claims = [e for e in stores[2].history() if e.kind == "approval_claimed"]
        assert [(e.request_id, e.data) for e in claims] == [(rec.id, {"by": "t"})]
        denied = stores[0].submit(new_request(parked=True))
        stores[0].decide(denied.id, False, operator())
        assert stores[0].claim(denied.id) is False
    finally:
        for s in stores:
            s.close()


async def test_the_async_store_claims_once(backend: Backend) -> None:
    from sentinel.store import AsyncStore
    from sentinel.store.pgaio import AsyncPgStore

    s = backend.open()
    rec = s.submit(new_request(parked=True))
    s.decide(rec.id, True, operator())
    opener = AsyncStore if backend.name == "sqlite" else AsyncPgStore
    try:
        async with opener(backend.target) as a:
            assert await a.claim(rec.id) is True
            assert await a.claim(rec.id) is False
        assert s.claim(rec.id) is False
    finally:
        s.close()
