"""The synchronous store (sqlite3): thread-safe, one write connection per Store."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import DecisionConflict, RequestNotFound, StoreError
from sentinel.store import hints, liveness, ops, sql
from sentinel.store.failures import describe
from sentinel.store.models import (
    CANCELLED,
    EXPIRED,
    DatabaseInfo,
    EventRecord,
    HistoryFilter,
    MetricsSnapshot,
    NewRequest,
    OperatorIdentity,
    PendingSummary,
    RequestRecord,
    Vote,
)
from sentinel.store.paths import database_size, file_identity, live_dir, prepare, resolve_path
from sentinel.store.schema import migrate, schema_version

if TYPE_CHECKING:
    from sentinel.store.baselines import BaselineRow, LearnPlan
    from sentinel.store.limits import LimitCheck, LimitUsage
    from sentinel.store.watcher import Watcher

#: Default seconds a connection waits for another writer before giving up.
DEFAULT_BUSY_TIMEOUT = 5.0
#: WAL file size kept after checkpoints (bytes).
DEFAULT_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
#: Seconds past ``expires_at`` before the sweeper expires a row (the caller normally does it first).
DEFAULT_EXPIRY_GRACE = 2.0


def open_connection(
    path: Path, busy_timeout: float, journal_size_limit: int = DEFAULT_JOURNAL_SIZE_LIMIT
) -> sqlite3.Connection:
    """A plain sqlite3 connection in autocommit mode with the store's per-connection settings."""
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(sql.SET_BUSY_TIMEOUT.format(int(busy_timeout * 1000)))
    conn.execute(sql.SYNC_NORMAL)
    conn.execute(sql.SET_JOURNAL_SIZE_LIMIT.format(int(journal_size_limit)))
    return conn


def ensure_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the database to WAL once; retry while another opener holds it (as huey does)."""
    deadline = time.monotonic() + max(busy_timeout, 1.0)
    while True:
        try:
            mode = conn.execute(sql.JOURNAL_MODE).fetchone()[0]
            if str(mode).lower() == "wal":
                return
            mode = conn.execute(sql.SET_WAL).fetchone()[0]
            if str(mode).lower() == "wal":
                return
            raise sqlite3.OperationalError(f"cannot enable WAL mode (journal_mode stays {mode})")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


#: Connections inherited across fork(): kept referenced so they are never closed in the child.
_INHERITED: list[sqlite3.Connection] = []


def sweep_plan(
    rows: list[tuple[Any, ...]], now: float, grace: float
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Which pending rows to cancel (waiter dead) and expire (overdue), and whom to hint."""
    dead: list[tuple[str, str]] = []
    overdue: list[str] = []
    waiters: list[str] = []
    for request_id, pid, pid_start, host, lock_path, expires_at in rows:
        if liveness.waiter_is_dead(pid, pid_start, host, lock_path):
            dead.append((request_id, f"agent process {pid} on {host} exited"))
        elif expires_at + grace < now:
            overdue.append(request_id)
            if lock_path:
                waiters.append(lock_path)
    return dead, overdue, waiters


def drive(
    conn: sqlite3.Connection, op: ops.Op, fail: Callable[[BaseException], StoreError]
) -> Any:
    """Run one operation generator on a sqlite3 connection (rolls back on any error)."""
    try:
        q = next(op)
        while True:
            try:
                if q.fetch == "many":  # q.params: a sequence of parameter tuples
                    conn.executemany(q.sql, q.params)
                    q = op.send(None)
                    continue
                cur = conn.execute(q.sql, q.params)
                if q.fetch == "one":
                    result: Any = cur.fetchone()
                elif q.fetch == "all":
                    result = cur.fetchall()
                elif q.fetch == "rowcount":
                    result = cur.rowcount
                else:
                    result = None
            except sqlite3.Error as exc:
                raise fail(exc) from exc
            q = op.send(result)
    except StopIteration as stop:
        return stop.value
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute(sql.ROLLBACK)
            except sqlite3.Error:
                pass
        raise
    finally:
        op.close()


class Store:
    """Durable approval queue and event log in one SQLite file (WAL).

    Thread-safe: writes go through one connection guarded by a lock, reads use one connection per
    thread. ``create=False`` refuses to create a missing database (read-only tools).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
        journal_size_limit: int = DEFAULT_JOURNAL_SIZE_LIMIT,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
    ) -> None:
        self.path = resolve_path(path)
        self.busy_timeout = float(busy_timeout)
        self.expiry_grace = float(expiry_grace)
        self._journal_size_limit = journal_size_limit
        prepare(self.path, create=create)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: dict[sqlite3.Connection, threading.Thread] = {}  # reader -> its thread
        self._readers_lock = threading.Lock()
        self._dv_lock = threading.Lock()
        self._dv_conn: sqlite3.Connection | None = None
        self._durable = False
        self._closed = False
        self._caller: tuple[int, ops.Caller] | None = None
        self._pid = os.getpid()
        try:
            self._writer = open_connection(self.path, self.busy_timeout, journal_size_limit)
            try:
                ensure_wal(self._writer, self.busy_timeout)
                applied = migrate(self._writer, str(self.path))
            except BaseException:
                self._writer.close()
                raise
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc
        self._identity = file_identity(self.path)
        #: The schema version this store found when it opened the database (it migrates to
        #: the latest on open; ``sentinel db migrate`` reports the difference).
        self.migrated_from = schema_version() - applied

    # --- plumbing -----------------------------------------------------------------------

    def _check_identity(self) -> None:
        """Refuse to write into a database file that was deleted or replaced while open.

        SQLite keeps writing to the unlinked inode, where no operator can see anything. The
        store reopens the path (creating and migrating a new database when it is gone) and raises
        for this operation, so the caller is blocked with a reason; the next one works again.
        """
        if file_identity(self.path) == self._identity:
            return
        with self._lock:
            if file_identity(self.path) == self._identity:
                return
            old = [self._writer, *self._readers]
            if self._dv_conn is not None:
                old.append(self._dv_conn)
            self._readers = {}
            self._local = threading.local()
            self._dv_conn = None
            self._durable = False
            for conn in old:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            try:
                prepare(self.path, create=True)
                self._writer = open_connection(
                    self.path, self.busy_timeout, self._journal_size_limit
                )
                ensure_wal(self._writer, self.busy_timeout)
                migrate(self._writer, str(self.path))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
            self._identity = file_identity(self.path)
        raise StoreError(
            f"the database file {self.path} was deleted or replaced while in use; it has been "
            "reopened, and what was written to the old file is gone"
        )

    def _fail(self, exc: BaseException) -> StoreError:
        return describe(exc, str(self.path), self.busy_timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """A forked child must not use its parent's SQLite connections: open its own.

        The inherited ones are parked, never closed, so the child cannot disturb the parent's
        locks or trigger a checkpoint on them (sqlite.org/howtocorrupt.html §2.6).
        """
        with self._lock:
            if self._pid == os.getpid():
                return
            _INHERITED.extend([self._writer, *self._readers])
            if self._dv_conn is not None:
                _INHERITED.append(self._dv_conn)
            self._readers = {}
            self._readers_lock = threading.Lock()
            self._dv_lock = threading.Lock()
            self._dv_conn = None
            self._local = threading.local()
            self._durable = False
            try:
                self._writer = open_connection(
                    self.path, self.busy_timeout, self._journal_size_limit
                )
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
            self._pid = os.getpid()

    def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        self._check_open()
        self._check_identity()
        with self._lock:
            if durable != self._durable:
                # synchronous is per connection: FULL fsyncs a decision before anyone can see it.
                try:
                    self._writer.execute(sql.SYNC_FULL if durable else sql.SYNC_NORMAL)
                except sqlite3.Error as exc:
                    raise self._fail(exc) from exc
                self._durable = durable
            return drive(self._writer, op, self._fail)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = open_connection(self.path, self.busy_timeout, self._journal_size_limit)
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
            self._local.conn = conn
            with self._readers_lock:
                # Each thread gets its own reader; close those of threads that have ended (the
                # command center runs each worker on a new thread: they would pile up). Never the
                # main thread's: once the interpreter starts to exit it reports itself not alive,
                # yet the atexit handlers (the audit sink's last flush and exit anchor) still read
                # through its connection.
                main = threading.main_thread()
                for old, owner in list(self._readers.items()):
                    if owner is not main and not owner.is_alive():
                        del self._readers[old]
                        old.close()
                self._readers[conn] = threading.current_thread()
        return conn

    def _read(self, op: ops.Op) -> Any:
        self._check_open()
        return drive(self._reader(), op, self._fail)

    def _caller_info(self) -> ops.Caller:
        pid = os.getpid()
        if self._caller is None or self._caller[0] != pid:  # new process after fork
            lock_path = liveness.hold(live_dir(self.path))
            self._caller = (
                pid,
                ops.Caller(pid, liveness.pid_start_time(pid), liveness.hostname(), lock_path),
            )
        return self._caller[1]

    # --- writes -------------------------------------------------------------------------

    def submit(self, new: NewRequest) -> RequestRecord:
        """Insert a pending request and its ``approval_requested`` event (one transaction).

        Idempotent on ``new.id``: submitting the same id again returns the stored record.
        """
        caller = self._caller_info()  # liveness lock is held before the row becomes visible
        rec: RequestRecord = self._write(ops.submit(new, caller))
        return rec

    def decide(
        self,
        request_id: str,
        approve: bool,
        operator: OperatorIdentity,
        reason: str | None = None,
        *,
        vote: Vote | None = None,
    ) -> RequestRecord:
        """Approve or deny a pending, unexpired request (compare-and-set, durable commit).

        The decision is recorded as ``vote`` (a signed vote, see :mod:`sentinel.trust.decide`) or,
        without one, as an unsigned vote named by ``operator.account``. The request is finished
        when the votes reach its quorum (or deny quorum); until then the record returned is
        still pending. Raises :class:`DecisionConflict` (``.record`` = the row now) when someone
        decided first or the request expired, :class:`DuplicateVote` when this operator already
        voted, and :class:`RequestNotFound` for an unknown id. ``request_id`` may be a unique
        prefix.
        """
        now = time.time()
        cast = ops.cast_vote(approve, operator, reason, vote, now)
        try:
            full_id = request_id
            if len((request_id or "").strip()) < ops.FULL_ID_LENGTH:
                # Shorter than a whole id: a prefix that must match exactly one request (an
                # exact match on a short id is not preferred: that is how ids were squatted).
                full_id = self.get(request_id).id
            try:
                rec: RequestRecord = self._write(
                    ops.decide(full_id, cast, operator, now), durable=True
                )
            except RequestNotFound:
                full_id = self.get(request_id).id  # a unique prefix, or a clear error
                rec = self._write(
                    ops.decide(full_id, cast, operator, now), durable=True
                )
        except DecisionConflict as conflict:
            if conflict.record is not None:
                hints.send([conflict.record.lock_path])  # it may have just been marked expired
            raise
        if not rec.is_pending:  # a vote short of the quorum wakes nobody
            hints.send([rec.lock_path])  # wake the waiting process now (it re-reads the row)
        return rec

    def escalate(
        self,
        request_id: str,
        to: Sequence[str],
        now: float | None = None,
        *,
        may_decide: Sequence[str] | None = None,
    ) -> RequestRecord | None:
        """Record that nobody decided in time and ``to`` (groups / operators) may decide now:
        sets the row's ``escalated_at`` / ``escalated_to`` and appends one ``escalated`` event
        (same transaction, same chain). Idempotent: only a pending, unexpired request that was
        not escalated yet changes; returns its record, else None (nothing written).

        Recording an escalation widens nothing by itself: who may approve is decided by the
        waiting call from its own rule terms and the signed decision times."""
        rec: RequestRecord | None = self._write(
            ops.escalate(request_id, to, may_decide, time.time() if now is None else now)
        )
        return rec

    def expire(self, request_id: str) -> RequestRecord | None:
        """CAS pending → expired. Returns the row as it is now (a decision that won stays), None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(
                request_id, EXPIRED, "no decision before the deadline", time.time(), "caller"
            )
        )
        if rec is not None:
            hints.send([rec.lock_path])
        return rec

    def cancel(
        self, request_id: str, reason: str = "cancelled by the caller"
    ) -> RequestRecord | None:
        """CAS pending → cancelled. Returns the row as it is now, None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(request_id, CANCELLED, reason, time.time(), "caller")
        )
        if rec is not None:
            hints.send([rec.lock_path])
        return rec

    def sweep(self) -> int:
        """Cancel pending rows whose waiting process died; expire rows past expiry + grace.

        Returns how many rows changed. Safe to run from any number of processes at once.
        """
        now = time.time()
        rows = self._read(ops.pending_liveness())
        dead, overdue, waiters = sweep_plan(rows, now, self.expiry_grace)
        liveness.remove_stale_locks(live_dir(self.path))
        if not dead and not overdue:
            return 0
        n: int = self._write(ops.sweep_apply(dead, overdue, now), durable=True)
        hints.send(waiters)
        return n

    def append_events(
        self, events: list[dict[str, Any]], *, records: bool = True
    ) -> list[EventRecord] | Any:
        """Append events in one transaction, hash-chained; returns them as stored.

        Each dict holds EventRecord fields except seq/prev_hash/hash (``kind`` required,
        ``ts`` defaults to now). Unknown keys raise ValueError. With ``records=False`` the stored
        rows come back instead (tuples in column order plus the canonical body text), which skips
        building records (batch writers: the audit sink hands them to the JSONL mirror).
        """
        return self._write(ops.append_events(list(events), time.time(), records))

    # --- audit (sentinel.audit) ----------------------------------------------------------------

    def audit_state(self) -> tuple[Any, ...]:
        """(db_id, first seq, last seq, last hash, prune checkpoints) in one snapshot."""
        out: tuple[Any, ...] = self._read(ops.audit_state())
        return out

    def event_rows(self, after_seq: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """Raw event rows (column order) with ``seq > after_seq``, oldest first."""
        out: list[tuple[Any, ...]] = self._read(ops.event_rows(after_seq, limit))
        return out

    def export_page(
        self, filter: HistoryFilter | None, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events matching ``filter`` with ``seq > after_seq``, oldest first."""
        out: list[EventRecord] = self._read(ops.export_page(filter, after_seq, limit))
        return out

    def value_protected(
        self, since: float | None = None, until: float | None = None
    ) -> dict[str, tuple[int, float]]:
        """kind -> (count, sum of value_at_risk) over blocked/denied/expired events in [since, until)."""
        out: dict[str, tuple[int, float]] = self._read(ops.value_protected(since, until))
        return out

    def prune_events(self, up_to_seq: int) -> tuple[int, str, int] | None:
        """Delete events with ``seq <= up_to_seq`` after recording that checkpoint (one durable
        transaction). Returns (up_to_seq, its hash, rows deleted), or None if no such event."""
        out: tuple[int, str, int] | None = self._write(
            ops.prune(up_to_seq, time.time()), durable=True
        )
        return out

    # --- reads --------------------------------------------------------------------------

    def get(self, id_or_prefix: str) -> RequestRecord:
        """The request with this id or unique id prefix; raises :class:`RequestNotFound`."""
        rec: RequestRecord = self._read(ops.get(id_or_prefix))
        return rec

    def list_pending(self, limit: int = 1000) -> list[RequestRecord]:
        """Pending requests, oldest first."""
        out: list[RequestRecord] = self._read(ops.list_pending(limit))
        return out

    def pending_newest(
        self, limit: int = 100, before: tuple[float, str] | None = None
    ) -> list[RequestRecord]:
        """Pending requests, newest first, at most ``limit``. For the next (older) page pass the
        last row's ``(created_at, id)`` as ``before``; an empty list means there are no older ones."""
        out: list[RequestRecord] = self._read(ops.pending_newest(limit, before))
        return out

    def pending_summary(self) -> PendingSummary:
        """Pending counts by agent, function and whole risk score, counted in the database."""
        out: PendingSummary = self._read(ops.pending_summary())
        return out

    def history(
        self, filter: HistoryFilter | None = None, before_seq: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events newest first; pass the last page's smallest ``seq`` as ``before_seq`` for the next."""
        out: list[EventRecord] = self._read(ops.history(filter, before_seq, limit))
        return out

    def metrics(self, since: float | None = None) -> MetricsSnapshot:
        """Counts, value protected, approval latency, pending and hourly figures."""
        snap: MetricsSnapshot = self._read(ops.metrics(since, time.time()))
        return snap

    def events_after(self, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq > after_seq``, oldest first (for exporters and chain verification)."""
        out: list[EventRecord] = self._read(ops.events_after(after_seq, limit))
        return out

    # --- limit counters (sentinel.limits; operations in store/limits.py) ---------------------------

    def limit_reserve(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """Check limit counters and reserve this call in each, atomically (``BEGIN IMMEDIATE``).

        ``checks``: :class:`~sentinel.store.limits.LimitCheck`; returns one
        :class:`~sentinel.store.limits.LimitUsage` per check (with its reservation). A
        reservation counts for the whole window unless released."""
        from sentinel.store import limits

        out: list[LimitUsage] = self._write(limits.reserve(checks, time.time()))
        return out

    def limit_release(self, reservations: list[tuple[str, float]]) -> int:
        """Release reservations (``LimitUsage.reservation``) of calls that did not run."""
        from sentinel.store import limits

        if not reservations:
            return 0
        n: int = self._write(limits.release(reservations))
        return n

    def limit_usage(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """Read limit counters without reserving anything."""
        from sentinel.store import limits

        out: list[LimitUsage] = self._read(limits.usage(checks, time.time()))
        return out

    # --- anomaly baselines (sentinel.anomaly; operations in store/baselines.py) ---------------------

    def baseline_for_call(self, agent: str, function: str) -> list[BaselineRow]:
        """Every :class:`~sentinel.store.baselines.BaselineRow` of one (agent, function).

        The scoring hot path: one statement on this thread's reader, without the generic
        operation driver (same statement as ``baselines.for_call``)."""
        from sentinel.store.baselines import rows_for_call

        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        try:
            rows = self._reader().execute(sql.BASELINE_FOR_CALL, (agent, function)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc
        return rows_for_call(rows, agent, function)

    def baseline_for_call_seen(
        self, agent: str, function: str, vkeys: dict[str, str]
    ) -> tuple[list[BaselineRow], set[str]]:
        """:meth:`baseline_for_call` plus which parameters' values (``{param: digest}``) were
        seen before, in one query."""
        import json

        from sentinel.store.baselines import rows_seen

        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        try:
            rows = (
                self._reader()
                .execute(sql.BASELINE_FOR_CALL_SEEN, (json.dumps(vkeys), agent, function))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc
        return rows_seen(rows, agent, function)

    def baseline_seen(self, agent: str, function: str, vkeys: list[str]) -> set[str]:
        """Which of these string-value digests were seen before for this (agent, function)."""
        from sentinel.store import baselines

        out: set[str] = self._read(baselines.seen(agent, function, vkeys))
        return out

    def baseline_window(self, agent: str, function: str, param: str) -> tuple[bytes, bytes] | None:
        """The recent-values window (float64 blobs: values, times) behind a numeric baseline."""
        from sentinel.store import baselines

        out: tuple[bytes, bytes] | None = self._read(baselines.window(agent, function, param))
        return out

    def baseline_learn(
        self, agent: str, function: str, plan: LearnPlan, now: float | None = None
    ) -> None:
        """Add a call (or a batch, :class:`~sentinel.store.baselines.LearnPlan`) to the
        baselines in one write transaction."""
        from sentinel.store import baselines

        self._write(baselines.learn(agent, function, plan, time.time() if now is None else now))

    def baseline_list(
        self, agent: str | None = None, function: str | None = None
    ) -> list[BaselineRow]:
        """Every baseline row, optionally of one agent and/or function."""
        from sentinel.store import baselines

        out: list[BaselineRow] = self._read(baselines.list_rows(agent, function))
        return out

    def baseline_top_values(
        self, agent: str, function: str, param: str, limit: int = 5
    ) -> list[tuple[str, int]]:
        """The most frequent values seen for a string parameter (redacted as stored)."""
        from sentinel.store import baselines

        out: list[tuple[str, int]] = self._read(baselines.top_values(agent, function, param, limit))
        return out

    def baseline_reset(self, agent: str | None, function: str | None, event: dict[str, Any]) -> int:
        """Delete matching baselines (None = any) and append ``event`` in one transaction;
        returns the number of baseline rows removed."""
        from sentinel.store import baselines

        n: int = self._write(baselines.reset(agent, function, event, time.time()))
        return n

    def info(self) -> DatabaseInfo:
        """The backend, the file, the schema version, row counts and the size on disk."""
        requests, pending, events, version = self._read(ops.database_counts())
        return DatabaseInfo(
            "sqlite",
            str(self.path),
            version,
            schema_version(),
            self.migrated_from,
            requests,
            pending,
            events,
            database_size(self.path),
        )

    def count_events(self) -> int:
        """Number of events stored."""
        n: int = self._read(ops.count_events())
        return n

    def data_version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version on a dedicated connection)."""
        self._check_open()
        with self._dv_lock:
            if self._dv_conn is None:
                try:
                    self._dv_conn = open_connection(self.path, self.busy_timeout)
                except sqlite3.Error as exc:
                    raise self._fail(exc) from exc
            n: int = drive(self._dv_conn, ops.data_version(), self._fail)
            return n

    def watcher(self) -> Watcher:
        """The process-wide :class:`~sentinel.store.watcher.Watcher` for this database."""
        from sentinel.store.watcher import Watcher

        return Watcher.for_path(self.path, busy_timeout=self.busy_timeout)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Close every connection this store opened (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._dv_lock:
            if self._dv_conn is not None:
                self._dv_conn.close()
                self._dv_conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
