"""PostgreSQL wake-up and liveness (real server, real processes): the requests trigger notifies,
the PgWatcher wakes waiting calls from the notice (and without it, after its session was
killed), and a waiter's liveness key lets a sweep on another host cancel a dead waiter only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sentinel.errors import RequestNotFound
from sentinel.store import liveness
from sentinel.store.dialect import NOTICE_CHANNEL
from sentinel.store.pgwatch import PgWatcher
from sentinel.store.postgres import PgStore
from tests.pg import PgCluster
from tests.store.factories import new_request, operator

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    s = PgStore(pg_url)
    yield s
    s.close()
    PgWatcher.stop_shared(lambda url: url == pg_url)


def _decide_in_another_process(url: str, request_id: str) -> None:
    code = (
        "import sys\n"
        "from sentinel.store.postgres import PgStore\n"
        "from tests.store.factories import operator\n"
        "s = PgStore(sys.argv[1]); s.decide(sys.argv[2], True, operator('bob')); s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, url, request_id],
        env=_env(),
        cwd=ROOT,
        check=True,
        timeout=60,
    )


def test_a_raw_sql_decision_notifies_the_channel_with_the_request_id(
    store: PgStore, pg_url: str
) -> None:
    rec = store.submit(new_request())
    other = store.submit(new_request())
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTICE_CHANNEL}")
        with psycopg.connect(pg_url, autocommit=True) as raw:
            raw.execute(
                "UPDATE requests SET status = 'denied', decided_at = created_at + 1 WHERE id = %s",
                (rec.id,),
            )
            raw.execute("UPDATE requests SET reason = 'edited' WHERE id = %s", (other.id,))
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert got == [rec.id]
        # A change of something else (the reason) notified nobody.
        assert [n.payload for n in listener.notifies(timeout=0.3)] == []


def test_watcher_wakes_on_the_notice_of_a_decision_in_another_process(
    store: PgStore, pg_url: str
) -> None:
    # No fallback re-read within the test: only the notice can wake it.
    watcher = PgWatcher(pg_url, fallback_interval=3600)
    try:
        rec = store.submit(new_request())
        fut = watcher.watch(rec.id)
        assert not fut.done()
        _decide_in_another_process(pg_url, rec.id)
        done = fut.result(timeout=30)
        assert done.status == "approved" and done.decided_by is not None
        assert watcher.notified >= 1 and watcher.watching == 0
        with pytest.raises(RequestNotFound, match="no approval request with id 'nope-nope'"):
            watcher.watch("nope-nope").result(timeout=30)
    finally:
        watcher.stop()


def test_store_watcher_is_shared_per_process_and_resolves_an_already_decided_row(
    store: PgStore,
) -> None:
    assert store.watcher() is store.watcher()
    rec = store.submit(new_request())
    store.decide(rec.id, False, operator())
    assert store.watcher().watch(rec.id).result(timeout=30).status == "denied"


def _listener_pids(cluster: PgCluster, url: str) -> list[int]:
    dbname = url.rsplit("/", 1)[1]
    with cluster.admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'sentinel-listener'",
            (dbname,),
        ).fetchall()
    return [r[0] for r in rows]


def test_killed_listener_session_reconnects_and_rechecks_so_the_waiter_still_wakes(
    store: PgStore, pg_cluster: PgCluster, pg_url: str
) -> None:
    watcher = PgWatcher(pg_url, fallback_interval=3600)
    try:
        rec = store.submit(new_request())
        fut = watcher.watch(rec.id)
        for _ in range(500):
            if watcher.connects >= 1 and watcher.checks >= 1:
                break
            time.sleep(0.01)
        pids = [p for p in _listener_pids(pg_cluster, pg_url)]
        with pg_cluster.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (pids,))
        # Decided while the watcher's session is gone: its notice reaches nobody.
        store.decide(rec.id, True, operator())
        assert fut.result(timeout=30).status == "approved"
        assert watcher.connects >= 2  # it came back (and re-read what it watched)
    finally:
        watcher.stop()


def test_reader_sessions_are_a_bounded_pool_shared_by_threads(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = PgStore(pg_url, pool_size=3)
    try:
        rec = store.submit(new_request())
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for _ in range(20):
                    assert store.get(rec.id).id == rec.id
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with pg_cluster.admin() as admin:
            (n,) = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND application_name = 'sentinel'",
                (pg_url.rsplit("/", 1)[1],),
            ).fetchone() or (0,)
        assert 2 <= n <= 1 + 3  # the writer plus at most pool_size readers, for 12 threads
    finally:
        store.close()


# --- liveness across hosts ------------------------------------------------------------------

_WAITER = """
import sys, time
from sentinel.store.postgres import PgStore
from tests.store.factories import new_request
store = PgStore(sys.argv[1])
rec = store.submit(new_request())
print(rec.id, rec.host, rec.lock_path, flush=True)
time.sleep(600)
"""


def _start_waiter(url: str, host: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WAITER, url],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(SENTINEL_HOST=host),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()


def test_a_killed_waiter_on_host_a_is_cancelled_by_a_sweep_on_host_b(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, (dead_id, dead_host, dead_lock) = _start_waiter(pg_url, "host-a")
    alive, (alive_id, _, alive_lock) = _start_waiter(pg_url, "host-c")
    monkeypatch.setenv("SENTINEL_HOST", "host-b")
    # grace 0: a key no session holds is a dead waiter at the first sweep that sees it.
    sweeper = PgStore(pg_url, liveness_grace=0)
    try:
        assert dead_host == "host-a" and dead_lock.startswith("pg:") and dead_lock != alive_lock
        assert sweeper.sweep() == 0  # both waiters hold their keys: nobody is cancelled
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(timeout=30)
        for _ in range(500):  # the server ends the killed process's session (its socket closed)
            if sweeper.sweep():
                break
            time.sleep(0.02)
        gone = sweeper.get(dead_id)
        assert gone.status == "cancelled"
        assert "agent process" in (gone.decision_reason or "") and "host-a" in (
            gone.decision_reason or ""
        )
        for _ in range(5):
            assert sweeper.sweep() == 0
        assert sweeper.get(alive_id).status == "pending"  # alive on host-c: never cancelled
    finally:
        for p in (dead, alive):
            p.kill()
            p.wait(timeout=30)
        sweeper.close()


def test_a_missing_key_on_another_host_is_given_the_grace_before_cancelling(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, (dead_id, _, _) = _start_waiter(pg_url, "host-a")
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait(timeout=30)
    monkeypatch.setenv("SENTINEL_HOST", "host-b")
    sweeper = PgStore(pg_url, liveness_grace=3600)
    try:
        for _ in range(20):
            assert sweeper.sweep() == 0  # within the grace: maybe only reconnecting
        assert sweeper.get(dead_id).status == "pending"
    finally:
        sweeper.close()


def test_same_host_waiter_whose_key_is_gone_is_judged_by_its_pid() -> None:
    judge = liveness.SessionLiveness(grace=0)
    me = liveness.hostname()
    rows = [
        ("alive", os.getpid(), liveness.pid_start_time(os.getpid()), me, "pg:123456789012", 0.0),
        ("gone", 2**22 + 12345, 1, me, "pg:223456789012", 0.0),
        ("held", 2**22 + 12345, 1, "elsewhere", "pg:323456789012", 0.0),
    ]
    is_dead = judge.judge(rows, held={323456789012})
    assert [is_dead(*r[1:5]) for r in rows] == [False, True, False]


_FORKER = """
import os, sys
from sentinel.store.postgres import PgStore
from tests.store.factories import new_request
store = PgStore(sys.argv[1])
parent = store.submit(new_request())
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    child = store.submit(new_request())
    os.write(w, (child.lock_path + "\\n").encode())
    os._exit(0)
os.close(w)
child_lock = os.read(r, 200).decode().strip()
os.waitpid(pid, 0)
held = store._held_keys()
print(parent.lock_path, child_lock, int(parent.lock_path[3:]) in held, flush=True)
"""


def test_a_forked_child_has_its_own_key_and_leaves_the_parents_session_alone(
    pg_url: str,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FORKER, pg_url],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout.split()
    parent_lock, child_lock, parent_still_held = out
    assert parent_lock.startswith("pg:") and child_lock.startswith("pg:")
    assert parent_lock != child_lock
    assert parent_still_held == "True"  # the child's exit did not end the parent's session
