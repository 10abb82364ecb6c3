"""PostgreSQL faults with nothing lost and fail-secure (real servers, real processes): the server
restarted while a call waits, the writer's session killed in the middle of a transaction, a
statement past the server's statement_timeout.

The restart test runs on a cluster of its own (other tests share the session's)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sentinel.errors import StoreError
from sentinel.store.dialect import WRITE_LOCK
from sentinel.store.pgwatch import PgWatcher
from sentinel.store.postgres import PgStore
from tests.pg import PgCluster
from tests.store.factories import new_request

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]

_DECIDER = """
import sys
from sentinel.store.postgres import PgStore
from tests.store.factories import operator
s = PgStore(sys.argv[1]); s.decide(sys.argv[2], True, operator('bob')); s.close()
"""


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PgCluster]:
    with PgCluster.start() as cluster:
        yield cluster


@pytest.fixture
def own_url(own_cluster: PgCluster) -> Iterator[str]:
    with own_cluster.database() as url:
        yield url
        PgWatcher.stop_shared(lambda _url: True)


def test_a_call_waiting_through_a_server_restart_sees_the_decision_made_after_it(
    own_cluster: PgCluster, own_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PgStore(own_url)
    try:
        rec = store.submit(new_request())
        waiting = store.watcher().watch(rec.id)
        own_cluster.restart(down_for=1.0)
        assert not waiting.done()  # neither failed nor resolved: it keeps waiting
        subprocess.run(
            [sys.executable, "-c", _DECIDER, own_url, rec.id],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            check=True,
            timeout=60,
        )
        done = waiting.result(timeout=30)
        assert done.status == "approved" and done.decided_by is not None
        # The store's own sessions ended with the restart: it opens new ones, nothing doubled.
        assert store.get(rec.id).status == "approved"
        kinds = [e.kind for e in store.history()]
        assert kinds == ["approved", "approval_requested"]
        # The waiter took its liveness key again: a sweep on another host cancels nothing.
        for _ in range(500):
            if store.watcher().connected:
                break
            time.sleep(0.02)
        alive = store.submit(new_request())
        monkeypatch.setenv("SENTINEL_HOST", "elsewhere")
        with PgStore(own_url, liveness_grace=0) as sweeper:
            assert sweeper.sweep() == 0
            assert sweeper.get(alive.id).status == "pending"
    finally:
        store.close()


def _blocked_writer(cluster: PgCluster, url: str) -> int:
    """The pid of the session waiting for the write lock (bounded wait)."""
    dbname = url.rsplit("/", 1)[1].split("?", 1)[0]
    with cluster.admin() as admin:
        for _ in range(500):
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event = 'advisory'",
                (dbname,),
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.01)
    raise AssertionError("no session ever waited for the write lock")


def test_the_writer_killed_mid_transaction_fails_clearly_then_recovers(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = PgStore(pg_url, lock_timeout=60)
    try:
        rec = store.submit(new_request())
        outcome: list[BaseException | object] = []
        with psycopg.connect(pg_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))  # every writer waits

            def cancel() -> None:
                try:
                    outcome.append(store.cancel(rec.id))
                except BaseException as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=cancel)
            thread.start()
            victim = _blocked_writer(pg_cluster, pg_url)  # inside BEGIN, waiting for the lock
            with pg_cluster.admin() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
            thread.join(timeout=60)
        (err,) = outcome
        assert isinstance(err, StoreError)
        assert "cannot reach database postgresql://sentinel:***@" in str(err)
        assert "terminating connection" in str(err)
        assert store.get(rec.id).status == "pending"  # the killed transaction wrote nothing
        again = store.cancel(rec.id)  # a new session: working again
        assert again is not None and again.status == "cancelled"
        assert [e.kind for e in store.history()] == ["cancelled", "approval_requested"]
    finally:
        store.close()


def test_a_statement_past_the_statement_timeout_is_a_clear_error(
    pg_url: str,
) -> None:
    url = pg_url + "?options=-c%20statement_timeout%3D300"
    store = PgStore(url, lock_timeout=60)  # the lock wait would outlast the statement timeout
    try:
        with psycopg.connect(pg_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            with pytest.raises(StoreError, match="ran past the server's statement_timeout"):
                store.append_events([{"kind": "allowed"}])
        assert store.count_events() == 0
        (stored,) = store.append_events([{"kind": "allowed"}])  # the lock is free again
        assert stored.seq == 1
    finally:
        store.close()
