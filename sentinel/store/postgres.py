"""The synchronous PostgreSQL store (psycopg 3): the same operations as :class:`~sentinel.store.sync.Store`.

The operations of :mod:`sentinel.store.ops` run unchanged; :data:`~sentinel.store.dialect.POSTGRES`
translates their statements. Like the SQLite store: writes go through one connection guarded by a
lock, reads use one connection per thread, and a forked child opens its own connections.

Not selectable by users yet (the database value parser refuses ``postgresql://`` until the whole
backend exists). Not here yet: the LISTEN/NOTIFY wake-up and the decision watcher, liveness
across hosts (a waiter is recorded by pid and host; :meth:`PgStore.sweep` cancels only waiters
of this host that are certainly gone, and expiry handles the others), anomaly baselines, the
async store and a connection pool.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from sentinel.errors import RequestNotFound, StoreError
from sentinel.store import liveness, ops, sql
from sentinel.store.dialect import POSTGRES
from sentinel.store.models import (
    CANCELLED,
    EXPIRED,
    EventRecord,
    HistoryFilter,
    MetricsSnapshot,
    NewRequest,
    OperatorIdentity,
    PendingSummary,
    RequestRecord,
    Vote,
)
from sentinel.store.pgschema import migrate_pg
from sentinel.store.sync import DEFAULT_EXPIRY_GRACE, sweep_plan

if TYPE_CHECKING:
    from sentinel.store.baselines import BaselineRow, LearnPlan
    from sentinel.store.limits import LimitCheck, LimitUsage

Conn = psycopg.Connection[tuple[Any, ...]]

#: Default seconds a connection waits for a lock (the write lock, a row) before giving up.
DEFAULT_LOCK_TIMEOUT = 5.0
#: Seconds to wait for the server when connecting.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Connections inherited across fork(): kept referenced so the child never closes them (closing
#: would end the parent's session with the server).
_INHERITED: list[Conn] = []


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages, logs and the status bar)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable database URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe_pg(exc: BaseException, where: str, lock_timeout: float) -> StoreError:
    """A :class:`StoreError` for a psycopg error on the database ``where`` (a masked URL)."""
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) or str(exc)).strip()
    if isinstance(exc, pg_errors.LockNotAvailable):
        msg = (
            f"database {where} is locked by another writer: still busy after waiting "
            f"{lock_timeout:g}s ({text})"
        )
    elif isinstance(exc, pg_errors.UndefinedTable):
        msg = f"database {where} is not a Sentinel database ({text}; run `sentinel db migrate`)"
    elif isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        msg = f"database {where} is read-only: cannot record anything ({text})"
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        msg = f"database {where}: permission denied ({text})"
    elif isinstance(exc, psycopg.OperationalError):
        msg = f"cannot reach database {where} ({text})"
    else:
        msg = f"database {where}: {text}"
    err = StoreError(msg)
    err.__cause__ = exc
    return err


def drive_pg(conn: Conn, op: ops.Op, fail: Callable[[BaseException], StoreError]) -> Any:
    """Run one operation generator on an autocommit psycopg connection (rolls back on error)."""
    try:
        q = next(op)
        while True:
            statements = POSTGRES.translate(q.sql)
            result: Any = None
            try:
                with conn.cursor() as cur:
                    for n, text in enumerate(statements):
                        last = n == len(statements) - 1
                        if q.fetch == "many" and last:
                            cur.executemany(text, q.params)
                            continue
                        cur.execute(text, list(q.params) if last else None)
                    if q.fetch == "one":
                        result = cur.fetchone()
                    elif q.fetch == "all":
                        result = cur.fetchall()
                    elif q.fetch == "rowcount":
                        result = cur.rowcount
            except psycopg.Error as exc:
                raise fail(exc) from exc
            q = op.send(result)
    except StopIteration as stop:
        return stop.value
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.execute(sql.ROLLBACK)
            except psycopg.Error:
                pass
        raise
    finally:
        op.close()


class PgStore:
    """Durable approval queue and event log in a PostgreSQL database (see the module doc).

    ``url``: a ``postgresql://`` URL or libpq connection string. Migrates the schema on open
    (``create=False`` refuses a database without it). Thread-safe like the SQLite store.
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        create: bool = True,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
    ) -> None:
        self.url = url
        self.expiry_grace = float(expiry_grace)
        #: Where the database is, for messages (the password masked).
        self.path = mask_url(url)
        self.lock_timeout = float(lock_timeout)
        self.connect_timeout = float(connect_timeout)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: dict[Conn, threading.Thread] = {}
        self._readers_lock = threading.Lock()
        self._durable = False
        self._closed = False
        self._caller: tuple[int, ops.Caller] | None = None
        self._pid = os.getpid()
        self._writer = self._connect()
        try:
            if create:
                migrate_pg(self._writer, self.path)
            else:
                drive_pg(self._writer, ops.count_events(), self._fail)
        except psycopg.Error as exc:
            self._writer.close()
            raise self._fail(exc) from exc
        except BaseException:
            self._writer.close()
            raise

    # --- plumbing -----------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> StoreError:
        return describe_pg(exc, self.path, self.lock_timeout)

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name="sentinel",
            )
        except psycopg.Error as exc:
            raise self._fail(exc) from exc
        try:
            for text in POSTGRES.translate(
                sql.SET_BUSY_TIMEOUT.format(int(self.lock_timeout * 1000))
            ):
                conn.execute(text)
        except psycopg.Error as exc:
            conn.close()
            raise self._fail(exc) from exc
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """A forked child must not use its parent's server sessions: it opens its own."""
        with self._lock:
            if self._pid == os.getpid():
                return
            _INHERITED.extend([self._writer, *self._readers])
            self._readers = {}
            self._readers_lock = threading.Lock()
            self._local = threading.local()
            self._durable = False
            self._writer = self._connect()
            self._pid = os.getpid()

    def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        self._check_open()
        with self._lock:
            if self._writer.closed or self._writer.broken:
                # The session ended (server restarted, backend terminated): the operation that
                # saw it failed with a clear error; this one runs on a new session.
                self._writer = self._connect()
                self._durable = False
            if durable != self._durable:
                try:
                    for text in POSTGRES.translate(sql.SYNC_FULL if durable else sql.SYNC_NORMAL):
                        self._writer.execute(text)
                except psycopg.Error as exc:
                    raise self._fail(exc) from exc
                self._durable = durable
            return drive_pg(self._writer, op, self._fail)

    def _reader(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                main = threading.main_thread()
                for old, owner in list(self._readers.items()):
                    if owner is not main and not owner.is_alive():
                        del self._readers[old]
                        old.close()
                self._readers[conn] = threading.current_thread()
        return conn

    def _read(self, op: ops.Op) -> Any:
        self._check_open()
        return drive_pg(self._reader(), op, self._fail)

    def _caller_info(self) -> ops.Caller:
        pid = os.getpid()
        if self._caller is None or self._caller[0] != pid:
            # No lock file: another host could not see it. Liveness across hosts is to come.
            self._caller = (
                pid,
                ops.Caller(pid, liveness.pid_start_time(pid), liveness.hostname(), None),
            )
        return self._caller[1]

    # --- writes -------------------------------------------------------------------------

    def submit(self, new: NewRequest) -> RequestRecord:
        """Insert a pending request and its ``approval_requested`` event (one transaction).
        Idempotent on ``new.id``."""
        rec: RequestRecord = self._write(ops.submit(new, self._caller_info()))
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
        """Record a vote on a pending, unexpired request; finish it at its quorum (as
        :meth:`sentinel.store.sync.Store.decide`: same errors, ``request_id`` may be a unique
        prefix)."""
        now = time.time()
        cast = ops.cast_vote(approve, operator, reason, vote, now)
        full_id = request_id
        if len((request_id or "").strip()) < ops.FULL_ID_LENGTH:
            full_id = self.get(request_id).id
        try:
            rec: RequestRecord = self._write(ops.decide(full_id, cast, operator, now), durable=True)
        except RequestNotFound:
            full_id = self.get(request_id).id
            rec = self._write(ops.decide(full_id, cast, operator, now), durable=True)
        return rec

    def escalate(
        self,
        request_id: str,
        to: Sequence[str],
        now: float | None = None,
        *,
        may_decide: Sequence[str] | None = None,
    ) -> RequestRecord | None:
        """Record once that ``to`` may decide now (see :meth:`sentinel.store.sync.Store.escalate`)."""
        rec: RequestRecord | None = self._write(
            ops.escalate(request_id, to, may_decide, time.time() if now is None else now)
        )
        return rec

    def expire(self, request_id: str) -> RequestRecord | None:
        """CAS pending → expired. Returns the row as it is now, None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(
                request_id, EXPIRED, "no decision before the deadline", time.time(), "caller"
            )
        )
        return rec

    def cancel(
        self, request_id: str, reason: str = "cancelled by the caller"
    ) -> RequestRecord | None:
        """CAS pending → cancelled. Returns the row as it is now, None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(request_id, CANCELLED, reason, time.time(), "caller")
        )
        return rec

    def append_events(
        self, events: list[dict[str, Any]], *, records: bool = True
    ) -> list[EventRecord] | Any:
        """Append events in one transaction, hash-chained; returns them as stored (see
        :meth:`sentinel.store.sync.Store.append_events`)."""
        return self._write(ops.append_events(list(events), time.time(), records))

    def sweep(self) -> int:
        """Cancel pending rows whose waiting process (on this host) certainly died; expire rows
        past expiry + grace. Returns how many rows changed; safe from any number of processes."""
        now = time.time()
        rows = self._read(ops.pending_liveness())
        dead, overdue, _waiters = sweep_plan(rows, now, self.expiry_grace)
        if not dead and not overdue:
            return 0
        n: int = self._write(ops.sweep_apply(dead, overdue, now), durable=True)
        return n

    # --- limit counters (operations in store/limits.py) -----------------------------------

    def limit_reserve(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """Check limit counters and reserve this call in each, atomically (under the write lock,
        across every process and host)."""
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

    # --- anomaly baselines (operations in store/baselines.py) -----------------------------

    def baseline_for_call(self, agent: str, function: str) -> list[BaselineRow]:
        """Every :class:`~sentinel.store.baselines.BaselineRow` of one (agent, function)."""
        from sentinel.store import baselines

        out: list[BaselineRow] = self._read(baselines.for_call(agent, function))
        return out

    def baseline_for_call_seen(
        self, agent: str, function: str, vkeys: dict[str, str]
    ) -> tuple[list[BaselineRow], set[str]]:
        """:meth:`baseline_for_call` plus which parameters' values were seen before."""
        from sentinel.store import baselines

        out: tuple[list[BaselineRow], set[str]] = self._read(
            baselines.for_call_seen(agent, function, vkeys)
        )
        return out

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
        """Add a call (or a batch) to the baselines in one write transaction."""
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
        """Delete matching baselines (None = any) and append ``event`` in one transaction."""
        from sentinel.store import baselines

        n: int = self._write(baselines.reset(agent, function, event, time.time()))
        return n

    # --- audit --------------------------------------------------------------------------

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
        """Pending requests, newest first (keyset pages: pass the last row's (created_at, id))."""
        out: list[RequestRecord] = self._read(ops.pending_newest(limit, before))
        return out

    def pending_summary(self) -> PendingSummary:
        """Pending counts by agent, function and whole risk score."""
        out: PendingSummary = self._read(ops.pending_summary())
        return out

    def history(
        self, filter: HistoryFilter | None = None, before_seq: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events newest first; pass the last page's smallest ``seq`` as ``before_seq``."""
        out: list[EventRecord] = self._read(ops.history(filter, before_seq, limit))
        return out

    def metrics(self, since: float | None = None) -> MetricsSnapshot:
        """Counts, value protected, approval latency, pending and hourly figures."""
        snap: MetricsSnapshot = self._read(ops.metrics(since, time.time()))
        return snap

    def events_after(self, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq > after_seq``, oldest first."""
        out: list[EventRecord] = self._read(ops.events_after(after_seq, limit))
        return out

    def count_events(self) -> int:
        """Number of events stored."""
        n: int = self._read(ops.count_events())
        return n

    def data_version(self) -> int:
        """Changes whenever anything is committed on the server (a hint to re-read)."""
        n: int = self._read(ops.data_version())
        return n

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

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgStore({self.path!r})"
