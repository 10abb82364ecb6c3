"""The store contract, run against both backends (SQLite file, real PostgreSQL server).

Every test takes ``backend`` (parametrized: ``sqlite`` / ``postgresql``) and uses only what both
stores offer; what the database itself refuses (triggers) is checked with a raw connection of
each kind. PostgreSQL tests use the throwaway server of tests/pg.py (one database per test).
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
import pytest

from sentinel.audit.keys import Verifier
from sentinel.audit.verify import verify
from sentinel.errors import DecisionConflict, DuplicateVote, RequestNotFound
from sentinel.store import Store
from sentinel.store.dialect import POSTGRES, to_postgres
from sentinel.store.models import DecisionTerms, HistoryFilter
from sentinel.store.pgschema import migrate_pg, pg_schema_version
from sentinel.store.postgres import PgStore, mask_url
from sentinel.store.schema import schema_version
from tests.store.factories import learn_plan, new_request, operator

if TYPE_CHECKING:
    from tests.pg import PgCluster

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    """One backend under test: ``open()`` a new store (its own connections), ``raw`` SQL."""

    name: str
    target: str  # the database file, or the postgresql:// URL

    def open(self) -> Any:
        return Store(self.target) if self.name == "sqlite" else PgStore(self.target)

    def raw(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on a fresh connection of this backend, outside the store."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.target, isolation_level=None)
            try:
                return conn.execute(statement, params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.target, autocommit=True) as pg:
            cur = pg.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    @property
    def refused(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,) if self.name == "sqlite" else (psycopg.Error,)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    if request.param == "sqlite":
        Store(db_path).close()  # create and migrate the file
        return Backend("sqlite", str(db_path))
    url: str = request.getfixturevalue("pg_url")
    return Backend("postgresql", url)


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    s = backend.open()
    yield s
    s.close()


def _threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- schema and dialect ---------------------------------------------------------------------


def test_postgres_schema_is_at_the_sqlite_version() -> None:
    # A new SQLite migration step needs its PostgreSQL step (sentinel/store/pgschema.py).
    assert pg_schema_version() == schema_version()


def test_dialect_translates_the_sqlite_statements() -> None:
    begin = to_postgres("BEGIN IMMEDIATE")
    assert begin[0].startswith("BEGIN") and "pg_advisory_xact_lock" in begin[1]
    (insert,) = to_postgres("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING a")
    assert insert == "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING a"
    (upsert,) = to_postgres(
        "INSERT INTO c (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = n + excluded.n"
    )
    assert upsert.endswith("DO UPDATE SET n = c.n + excluded.n")
    (like,) = to_postgres("SELECT a FROM t WHERE +b LIKE ? ESCAPE '\\' AND c = ? COLLATE NOCASE")
    assert like == "SELECT a FROM t WHERE b ILIKE %s ESCAPE '\\' AND lower(c) = lower(%s)"
    (literal,) = to_postgres("SELECT '50% ?' FROM t WHERE a = ?")
    assert literal == "SELECT '50%% ?' FROM t WHERE a = %s"
    assert to_postgres("PRAGMA journal_mode") == ()
    with pytest.raises(ValueError, match="no PostgreSQL form"):
        to_postgres("PRAGMA foreign_keys = ON")
    assert POSTGRES.translate("SELECT 1 FROM t WHERE 1 AND a > ?") == (
        "SELECT 1 FROM t WHERE TRUE AND a > %s",
    )


def test_password_is_masked_in_the_store_name() -> None:
    assert mask_url("postgresql://bob:s3cret@db.example:5432/sentinel") == (
        "postgresql://bob:***@db.example:5432/sentinel"
    )
    assert mask_url("postgresql://bob@db/sentinel") == "postgresql://bob@db/sentinel"


def test_postgres_migration_is_versioned_and_applied_once(pg_url: str) -> None:
    first = PgStore(pg_url)
    second = PgStore(pg_url)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [
                (pg_schema_version(),)
            ]
            assert migrate_pg(conn, "test") == 0
            (db_id,) = conn.execute("SELECT value FROM audit_meta WHERE key = 'db_id'").fetchone()
        assert len(db_id) == 32 and int(db_id, 16) >= 0
        assert "***" in first.path and "***" in repr(second)
    finally:
        first.close()
        second.close()


def test_postgres_store_replaces_sessions_killed_while_idle(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = PgStore(pg_url)
    try:
        rec = store.submit(new_request())
        assert store.get(rec.id).id == rec.id  # a reader session exists
        dbname = urlsplit(pg_url).path.lstrip("/")
        with pg_cluster.admin() as admin:
            pids = [
                r[0]
                for r in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
            ]
            assert len(pids) >= 3  # the writer, a reader, the listener
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
            for _ in range(200):  # terminating is asynchronous: until they have left
                left = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchone()
                if left == (0,):
                    break
                time.sleep(0.02)
        # Each session's end was waiting to be read: the store sees it and opens new ones.
        assert store.get(rec.id).status == "pending"
        cancelled = store.cancel(rec.id)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert [e.kind for e in store.history()] == ["cancelled", "approval_requested"]
    finally:
        store.close()


# --- submit and lookup ----------------------------------------------------------------------


def test_submit_writes_row_and_event_and_is_idempotent(store: Any) -> None:
    new = new_request(value_at_risk=1234.5, risk_score=2.7)
    rec = store.submit(new)
    assert rec.status == "pending" and rec.expires_at == pytest.approx(new.created_at + 300)
    assert store.submit(new).id == rec.id  # same id again: what is stored
    got = store.get(rec.id)
    assert got.arguments == new.arguments and got.value_at_risk == 1234.5
    assert got.created_at == new.created_at  # a timestamp survives exactly (8-byte floats)
    assert [e.kind for e in store.history()] == ["approval_requested"]
    assert store.count_events() == 1
    summary = store.pending_summary()
    assert summary.total == 1 and summary.by_risk == {2: 1}  # truncated, as SQLite's CAST


def test_get_by_unique_prefix_and_errors(store: Any) -> None:
    a = store.submit(new_request(id="abcd111"))
    store.submit(new_request(id="abcd222"))
    store.submit(new_request(id="abcE333"))  # "abcd" must not match upper-case E by collation
    assert store.get("abcd1").id == a.id
    assert store.get("abcd111").id == a.id
    with pytest.raises(RequestNotFound, match="ambiguous"):
        store.get("abcd")
    with pytest.raises(RequestNotFound, match="no approval request with id 'zzzz'"):
        store.get("zzzz")
    with pytest.raises(RequestNotFound, match="too short"):
        store.get("abc")


def test_pending_oldest_first_and_newest_pages(store: Any) -> None:
    now = time.time()
    ids = [store.submit(new_request(created_at=now - age)).id for age in (5, 50, 20)]
    assert [r.id for r in store.list_pending()] == [ids[1], ids[2], ids[0]]
    page = store.pending_newest(limit=2)
    assert [r.id for r in page] == [ids[0], ids[2]]
    rest = store.pending_newest(limit=2, before=(page[-1].created_at, page[-1].id))
    assert [r.id for r in rest] == [ids[1]]


# --- decisions ------------------------------------------------------------------------------


def test_decide_once_and_the_second_decision_names_the_first(store: Any) -> None:
    rec = store.submit(new_request())
    decided = store.decide(rec.id[:8], True, operator("alice"), "looks right")
    assert decided.status == "approved" and decided.decision_reason == "looks right"
    with pytest.raises(DecisionConflict, match="already approved by alice@ops1") as info:
        store.decide(rec.id, False, operator("bob"))
    assert info.value.record.status == "approved"
    kinds = [e.kind for e in store.history()]
    assert kinds == ["approved", "approval_requested"]


def test_quorum_counts_each_operator_once(store: Any) -> None:
    rec = store.submit(new_request(terms=DecisionTerms(quorum=2)))
    first = store.decide(rec.id, True, operator("alice"))
    assert first.status == "pending" and len(first.votes) == 1
    with pytest.raises(DuplicateVote, match="already voted"):
        store.decide(rec.id, True, operator("alice"))
    done = store.decide(rec.id, True, operator("bob"))
    assert done.status == "approved" and [v.operator for v in done.votes] == ["alice", "bob"]
    assert [e.kind for e in store.history()] == ["approved", "voted", "approval_requested"]


def test_expiry_cancel_and_unknown_ids(store: Any) -> None:
    late = store.submit(new_request(timeout_seconds=0.05))
    time.sleep(0.1)
    with pytest.raises(DecisionConflict, match="expired"):
        store.decide(late.id, True, operator())
    assert store.get(late.id).status == "expired"
    b = store.submit(new_request())
    store.decide(b.id, True, operator())
    obeyed = store.expire(b.id)  # the caller's timeout lost: it obeys the approval
    assert obeyed is not None and obeyed.status == "approved"
    c = store.submit(new_request())
    cancelled = store.cancel(c.id, "task cancelled")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert store.expire("unknown-id") is None
    with pytest.raises(RequestNotFound):
        store.decide("does-not-exist", True, operator())


_RACER = """
import json, sys
from sentinel.errors import DecisionConflict
from sentinel.store import Store
from sentinel.store.postgres import PgStore
from tests.store.factories import operator
kind, target, verdict, ids = sys.argv[1], sys.argv[2], sys.argv[3] == "approve", sys.argv[4:]
store = Store(target) if kind == "sqlite" else PgStore(target)
out = {}
print("ready", flush=True)
sys.stdin.readline()
for i in ids:
    try:
        out[i] = store.decide(i, verdict, operator("p" + sys.argv[3])).status
    except DecisionConflict as exc:
        out[i] = "lost:" + exc.record.status
store.close()
print(json.dumps(out), flush=True)
"""


def test_two_processes_racing_decide_each_request_exactly_once(backend: Backend) -> None:
    with backend.open() as s:
        ids = [s.submit(new_request()).id for _ in range(40)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, backend.name, backend.target, verdict, *ids],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for verdict in ("approve", "deny")
    ]
    for p in procs:  # both connected and migrated: then both start at once
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    approve, deny = results
    with backend.open() as s:
        for i in ids:
            final = s.get(i).status
            assert final in ("approved", "denied")
            winner, loser = (approve, deny) if final == "approved" else (deny, approve)
            assert winner[i] == final and loser[i] == "lost:" + final
        decisions = [e for e in s.history(limit=1000) if e.kind in ("approved", "denied")]
        assert sorted(e.request_id for e in decisions) == sorted(ids)  # one event per request


# --- the audit chain ------------------------------------------------------------------------


def test_chain_verifies_after_concurrent_appends_from_several_connections(
    backend: Backend, tmp_path: Path
) -> None:
    stores = [backend.open() for _ in range(4)]
    try:
        rec = stores[0].submit(new_request())

        def writer(s: Any, n: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(20):
                    s.append_events(
                        [{"kind": "allowed", "function": f"f{n}-{i}"}, {"kind": "executed"}]
                    )
                if n == 1:
                    s.decide(rec.id, True, operator())

            return run

        _threads([writer(s, n) for n, s in enumerate(stores)])
        reader = stores[0]
        events = reader.events_after(0, 1000)
        assert [e.seq for e in events] == list(range(1, 4 * 40 + 3))
        report = verify(reader, anchor_dir=tmp_path / "anchors", verifier=Verifier({}, {}))
        assert report.ok, report.problems
        assert report.table_events == 4 * 40 + 2
        assert reader.metrics().counts["allowed"] == 80
    finally:
        for s in stores:
            s.close()


def test_history_filters_read_the_same_on_both(store: Any) -> None:
    store.append_events(
        [
            {"kind": "allowed", "function": "Transfer_Funds", "agent_id": "Billing"},
            {"kind": "blocked", "function": "rm_rf", "agent_id": "ops", "reason": "50% off"},
            {
                "kind": "allowed",
                "function": "transfer_x",
                "agent_id": "billing",
                "value_at_risk": 9,
            },
        ]
    )
    fns = [e.function for e in store.history(HistoryFilter(function="transfer*"))]
    assert fns == ["transfer_x", "Transfer_Funds"]  # globs ignore case, newest first
    assert len(store.history(HistoryFilter(agent="BILLING"))) == 2
    assert [e.kind for e in store.history(HistoryFilter(text="50%"))] == ["blocked"]
    assert [e.seq for e in store.history(before_seq=3)] == [2, 1]
    assert store.history(HistoryFilter(value=5, value_op=">"))[0].value_at_risk == 9


# --- what the database itself refuses -------------------------------------------------------


def test_database_refuses_a_second_decision_and_event_edits(backend: Backend) -> None:
    with backend.open() as s:
        done = s.submit(new_request())
        s.decide(done.id, True, operator())
        pending = s.submit(new_request())
    refused = backend.refused
    with pytest.raises(refused, match="already decided"):
        backend.raw("UPDATE requests SET status = 'denied' WHERE id = ?", (done.id,))
    with pytest.raises(refused, match="expiry of a request cannot change"):
        backend.raw(
            "UPDATE requests SET expires_at = expires_at + 3600 WHERE id = ?", (pending.id,)
        )
    with pytest.raises(refused, match="at or after expires_at"):
        backend.raw(
            "UPDATE requests SET status = 'approved', decided_at = expires_at + 1 WHERE id = ?",
            (pending.id,),
        )
    with pytest.raises(refused, match="cannot be deleted"):
        backend.raw("DELETE FROM requests WHERE id = ?", (pending.id,))
    with pytest.raises(refused, match="append-only"):
        backend.raw("UPDATE events SET reason = 'nothing to see' WHERE seq = 1")
    with pytest.raises(refused, match="append-only"):
        backend.raw("DELETE FROM events WHERE seq = 1")
    if backend.name == "postgresql":
        with pytest.raises(refused, match="cannot be truncated"):
            backend.raw("TRUNCATE events")
    with backend.open() as s:
        assert s.get(done.id).status == "approved" and s.count_events() == 3


# --- escalation, sweeping, limits, prune ----------------------------------------------------


def test_escalation_is_recorded_once(store: Any) -> None:
    rec = store.submit(new_request())
    first = store.escalate(rec.id, ["security"])
    assert first is not None and first.escalated_to == ("security",)
    assert store.escalate(rec.id, ["security"]) is None  # once: a second call writes nothing
    assert [e.kind for e in store.history()] == ["escalated", "approval_requested"]


_WAITER = """
import sys
from sentinel.store import Store
from sentinel.store.postgres import PgStore
from tests.store.factories import new_request
store = Store(sys.argv[2]) if sys.argv[1] == "sqlite" else PgStore(sys.argv[2])
print(store.submit(new_request()).id, flush=True)
store.close()
"""


def test_sweep_cancels_dead_waiters_and_expires_overdue_rows(backend: Backend) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", _WAITER, backend.name, backend.target],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout.strip()  # its waiting process has exited
    with backend.open() as s:
        overdue = s.submit(new_request(created_at=time.time() - 400))  # 300 s timeout
        alive = s.submit(new_request())  # this process: alive, not overdue
        assert s.sweep() == 2
        assert s.get(gone).status == "cancelled"
        assert s.get(overdue.id).status == "expired"
        assert s.get(alive.id).status == "pending"
        assert s.sweep() == 0


def test_limit_reserve_lets_exactly_the_cap_through_across_connections(
    backend: Backend,
) -> None:
    from sentinel.store.limits import LimitCheck

    check = LimitCheck(key="daily_spend|agent=bot", window=3600.0, cap=150.0, amount=10.0)
    stores = [backend.open() for _ in range(4)]
    passed: list[tuple[str, float]] = []
    lock = threading.Lock()
    try:

        def caller(s: Any) -> Callable[[], None]:
            def run() -> None:
                for _ in range(8):
                    (usage,) = s.limit_reserve([check])
                    if not usage.exceeded:
                        with lock:
                            passed.append(usage.reservation)
                    else:
                        s.limit_release([usage.reservation])

            return run

        _threads([caller(s) for s in stores])
        assert len(passed) == 15  # 150 / 10, whoever raced
        (now,) = stores[0].limit_usage([check])
        assert now.used == pytest.approx(150.0) and now.calls == 15
        stores[0].limit_release(passed[:5])
        (after,) = stores[0].limit_usage([check])
        assert after.used == pytest.approx(100.0) and after.calls == 10
    finally:
        for s in stores:
            s.close()


def test_prune_through_a_checkpoint_and_value_protected(store: Any) -> None:
    store.append_events(
        [
            {"kind": "blocked", "function": "pay", "value_at_risk": 40.0},
            {"kind": "denied", "function": "pay", "value_at_risk": 2.5},
            {"kind": "allowed", "function": "read"},
        ]
    )
    assert store.value_protected() == {"blocked": (1, 40.0), "denied": (1, 2.5)}
    assert [e.kind for e in store.export_page(HistoryFilter(function="pay"))] == [
        "blocked",
        "denied",
    ]
    up_to, head, deleted = store.prune_events(2)
    assert (up_to, deleted) == (2, 2) and head == store.audit_state()[4][0][1]
    assert [e.seq for e in store.events_after(0)] == [3]
    assert store.prune_events(99) is None


# --- anomaly baselines ----------------------------------------------------------------------


def test_anomaly_baselines_learn_score_and_reset(backend: Backend) -> None:
    with backend.open() as one, backend.open() as other:
        one.baseline_learn("billing", "transfer", learn_plan(10.0, "acct-1"), 1000.0)
        other.baseline_learn("billing", "transfer", learn_plan(30.0, "acct-2"), 1001.0)
        one.baseline_learn("billing", "transfer", learn_plan(20.0, "acct-1"))
        rows = one.baseline_for_call("billing", "transfer")
        by_kind = {r.kind: r for r in rows}
        assert by_kind["number"].mean == pytest.approx(20.0) and by_kind["number"].n == 3
        assert by_kind["category"].size == 2 and by_kind["rate"].n == 3
        found, known = other.baseline_for_call_seen("billing", "transfer", {"to": "to=acct-1"})
        assert sorted(found) == sorted(rows) and known == {"to"}
        assert other.baseline_for_call_seen("billing", "transfer", {"to": "to=new"})[1] == set()
        assert one.baseline_seen("billing", "transfer", ["to=acct-2", "to=nope"]) == {"to=acct-2"}
        window = one.baseline_window("billing", "transfer", "amount")
        assert window is not None and struct.unpack("3d", window[0]) == (10.0, 30.0, 20.0)
        assert one.baseline_window("billing", "transfer", "nope") is None
        assert len(one.baseline_list(agent="billing")) == 3
        assert one.baseline_list(function="other") == []
        assert one.baseline_top_values("billing", "transfer", "to", 1) == [("acct-1", 2)]
        assert one.baseline_reset("billing", None, {"kind": "baseline_reset"}) == 3
        assert other.baseline_list() == []
        last = other.history(limit=1)[0]
        assert last.kind == "baseline_reset" and last.data["baselines_removed"] == 3


def test_data_version_changes_when_another_connection_commits(backend: Backend) -> None:
    """What pollers (the command center, the API's pending index) rely on to re-read."""
    watcher, writer = backend.open(), backend.open()
    try:
        before = watcher.data_version()
        assert watcher.data_version() == before  # nothing committed: unchanged
        writer.append_events([{"kind": "allowed"}])
        assert watcher.data_version() != before
    finally:
        watcher.close()
        writer.close()
