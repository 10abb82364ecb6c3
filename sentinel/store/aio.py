"""The asynchronous store (aiosqlite): every operation of :class:`Store`, as coroutines.

It runs the very same operation generators (:mod:`sentinel.store.ops`, ``limits``, ``baselines``)
as the sync store, so the SQL and the transaction logic are shared, and it keeps the sync store's
rules: decisions and sweeps commit with ``synchronous=FULL``, other writes with ``NORMAL``; a write
into a database file that was deleted or replaced is refused (and the path reopened); the
submitting process holds its liveness lock before its row is visible; a forked child opens its
own connection. The guard's async approval path uses it through
:func:`sentinel.runtime.async_store_for` (one per database per event loop: a transaction spans
several awaits, serialised by a lock of that loop).

For waiting on decisions use the :class:`Watcher` (``await asyncio.wrap_future(watcher.watch(id))``):
polling through aiosqlite costs ~114 µs a probe against ~4 µs on a plain connection.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosqlite

from sentinel.errors import DecisionConflict, RequestNotFound, StoreError
from sentinel.store import baselines, grants, hints, limits, liveness, ops, sql
from sentinel.store.baselines import BaselineRow, LearnPlan
from sentinel.store.failures import describe
from sentinel.store.grants import Acceptance, GrantRecord, GrantUse, GrantUseRow, NewGrant
from sentinel.store.limits import LimitCheck, LimitUsage
from sentinel.store.models import (
    CANCELLED,
    EXPIRED,
    ArgumentEdit,
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
from sentinel.store.operations import DeadTest, sweep_plan
from sentinel.store.paths import database_size, file_identity, live_dir, prepare, resolve_path
from sentinel.store.schema import migrate, schema_version
from sentinel.store.sync import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_JOURNAL_SIZE_LIMIT,
    drive,
    ensure_wal,
    open_connection,
)

if TYPE_CHECKING:
    from sentinel.store.watcher import Watcher


async def drive_async(
    conn: aiosqlite.Connection, op: ops.Op, fail: Callable[[BaseException], StoreError]
) -> Any:
    """Run one operation generator on an aiosqlite connection (rolls back on any error)."""
    try:
        q = next(op)
        while True:
            try:
                if q.fetch == "many":  # q.params: a sequence of parameter tuples
                    await conn.executemany(q.sql, q.params)
                    q = op.send(None)
                    continue
                if q.fetch == "rowcount":
                    cur = await conn.execute(q.sql, q.params)
                    result: Any = cur.rowcount
                    await cur.close()
                else:
                    # One trip to the connection's thread per statement: executing, fetching and
                    # closing a cursor would each be one (a submit is ~6 statements).
                    rows = list(await conn.execute_fetchall(q.sql, q.params))
                    if q.fetch == "one":  # single-row statements (LIMIT 1, RETURNING of one id)
                        result = rows[0] if rows else None
                    elif q.fetch == "all":
                        result = rows
                    else:
                        result = None
            except (sqlite3.Error, ValueError) as exc:  # ValueError: the connection was closed
                raise fail(exc) from exc
            q = op.send(result)
    except StopIteration as stop:
        return stop.value
    except BaseException:
        try:
            if conn.in_transaction:  # raises ValueError once the connection is closed
                await conn.execute(sql.ROLLBACK)
        except (sqlite3.Error, ValueError):
            pass
        raise
    finally:
        op.close()


#: Run each operation on the connection's worker thread in one trip (through
#: ``aiosqlite.Connection._execute``, the method every public call of aiosqlite goes through),
#: as the sync store runs it on its caller's thread. False, or an aiosqlite without it: one trip
#: per statement (:func:`drive_async`), about twice the cost of an approval's submit + decide.
ONE_TRIP = True


class _ConnState:
    """What one connection's ``synchronous`` setting is now. In one-trip mode only the worker
    thread touches it (operations run there one after another); otherwise only under the lock."""

    __slots__ = ("durable",)

    def __init__(self) -> None:
        self.durable = False


def one_trip(conn: aiosqlite.Connection) -> bool:
    """True when whole operations can run on ``conn``'s worker thread (see :data:`ONE_TRIP`)."""
    return (
        ONE_TRIP
        and callable(getattr(conn, "_execute", None))
        and isinstance(getattr(conn, "_connection", None), sqlite3.Connection)
    )


async def _on_worker(
    conn: aiosqlite.Connection,
    op: ops.Op,
    fail: Callable[[BaseException], StoreError],
    state: _ConnState,
    durable: bool | None,
) -> Any:
    """Run ``op`` with the sync driver on the connection's own thread, in one trip."""
    raw = conn._connection
    # aiosqlite leaves _execute untyped: it runs a callable on the worker and returns its result.
    execute = cast("Callable[[Callable[[], Any]], Awaitable[Any]]", conn._execute)
    if raw is None:
        op.close()
        raise fail(ValueError("Connection closed"))

    def run() -> Any:
        if durable is not None and durable != state.durable:
            # synchronous is per connection: FULL fsyncs a decision before anyone sees it.
            try:
                raw.execute(sql.SYNC_FULL if durable else sql.SYNC_NORMAL)
            except sqlite3.Error as exc:
                op.close()
                raise fail(exc) from exc
            state.durable = durable
        return drive(raw, op, fail)  # rolls back on any error

    try:
        return await execute(run)
    except ValueError as exc:  # aiosqlite's "Connection closed": the operation never ran
        if "closed" not in str(exc).lower():
            raise
        op.close()
        raise fail(exc) from exc


def _daemon_worker(conn: aiosqlite.Connection) -> None:
    """Make the connection's worker thread a daemon before it starts.

    A store shared per loop (:func:`sentinel.runtime.async_store_for`) is usually never closed;
    a non-daemon worker would then keep the interpreter from exiting (it joins such threads
    before any atexit handler could close the store). Committed data is safe either way (WAL).
    """
    thread = conn if isinstance(conn, threading.Thread) else getattr(conn, "_thread", None)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


def _drop_result(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of an operation whose caller was cancelled (no "never retrieved")."""
    if not task.cancelled():
        task.exception()


#: Connections inherited across fork(): their worker thread does not exist in the child, so they
#: are kept referenced (never closed, never finalised) instead.
_INHERITED: list[object] = []


class AsyncStore:
    """Coroutine twin of :class:`~sentinel.store.Store`: the same public operations with the same
    arguments and results; opens lazily on first use.

    ``async with AsyncStore(path) as store: ...`` or call :meth:`close` when done. One instance
    belongs to one event loop (its lock does); :func:`sentinel.runtime.async_store_for` keeps one
    per database per loop.
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
        self.path: Path = resolve_path(path)
        self.busy_timeout = float(busy_timeout)
        self.expiry_grace = float(expiry_grace)
        self._journal_size_limit = journal_size_limit
        prepare(self.path, create=create)
        self._conn: aiosqlite.Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._state = _ConnState()
        self._closed = False
        self._dv_conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._caller: tuple[int, ops.Caller] | None = None
        self._pid = os.getpid()
        #: The schema version found when the database was first opened (see Store).
        self.migrated_from = schema_version()

    # --- plumbing -----------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> StoreError:
        return describe(exc, str(self.path), self.busy_timeout)

    def _init_db(self) -> None:
        conn = open_connection(self.path, self.busy_timeout, self._journal_size_limit)
        try:
            ensure_wal(conn, self.busy_timeout)
            self.migrated_from = schema_version() - migrate(conn, str(self.path))
        finally:
            conn.close()

    async def open(self) -> AsyncStore:
        """Create/migrate the database and connect (done automatically on first use)."""
        self._check_open()
        if self._conn is not None:
            return self
        if self._lock is None:
            self._lock = asyncio.Lock()
        try:
            await asyncio.to_thread(self._init_db)
            identity = file_identity(self.path)
            pending = aiosqlite.connect(
                str(self.path), timeout=self.busy_timeout, isolation_level=None
            )
            _daemon_worker(pending)
            conn = await pending
            try:
                await conn.execute(sql.SET_BUSY_TIMEOUT.format(int(self.busy_timeout * 1000)))
                await conn.execute(sql.SYNC_NORMAL)
                await conn.execute(sql.SET_JOURNAL_SIZE_LIMIT.format(int(self._journal_size_limit)))
            except BaseException:
                await conn.close()
                raise
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc
        if self._conn is None and not self._closed:
            self._conn = conn
            self._state = _ConnState()
            self._identity = identity
        else:  # another coroutine opened it meanwhile, or close() ran
            await conn.close()
            self._check_open()
        return self

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """A forked child must not use its parent's connection (its worker thread is not even
        there): park it, never close it, and open a new one on next use (like :class:`Store`)."""
        _INHERITED.extend(c for c in (self._conn, self._dv_conn) if c is not None)
        self._conn = None
        self._dv_conn = None
        self._lock = None
        self._state = _ConnState()
        self._caller = None
        self._pid = os.getpid()

    async def _check_identity(self) -> None:
        """Refuse to write into a database file that was deleted or replaced while open (see
        :meth:`Store._check_identity`): reopen the path and raise for this operation."""
        if file_identity(self.path) == self._identity:
            return
        assert self._lock is not None
        async with self._lock:
            if self._conn is None or file_identity(self.path) == self._identity:
                return
            conn, self._conn = self._conn, None
            dv, self._dv_conn = self._dv_conn, None
            try:
                await conn.close()
            except (sqlite3.Error, ValueError):
                pass
            if dv is not None:
                dv.close()
            prepare(self.path, create=True)
        await self.open()
        raise StoreError(
            f"the database file {self.path} was deleted or replaced while in use; it has been "
            "reopened, and what was written to the old file is gone"
        )

    async def _lock_for_use(self) -> asyncio.Lock:
        self._check_open()
        if self._conn is None:
            await self.open()
        assert self._lock is not None  # open() made it
        return self._lock

    async def _connection(self) -> aiosqlite.Connection:
        """The connection, (re)opened if needed; call with the lock held."""
        if self._conn is None:
            await self.open()
        conn = self._conn
        if conn is None:
            raise StoreError(f"store for {self.path} is closed")
        return conn

    async def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        try:
            await self._lock_for_use()
            await self._check_identity()
        except BaseException:
            op.close()
            raise
        return await self._run(op, durable)

    async def _read(self, op: ops.Op) -> Any:
        try:
            await self._lock_for_use()
        except BaseException:
            op.close()
            raise
        return await self._run(op, None)

    async def _run(self, op: ops.Op, durable: bool | None) -> Any:
        """Run ``op`` (``durable``: the ``synchronous`` setting it needs, None for reads).

        A cancelled caller stops waiting at once, but the operation is never abandoned between
        two statements: that could leave a transaction (and the database's write lock) open on
        the shared connection. It completes, as the sync store's call would on its thread, and
        its result is dropped."""
        if self._lock is None:  # closed (or forked) since the caller checked
            op.close()
            raise StoreError(f"store for {self.path} is closed")
        try:
            conn = await self._connection()
        except BaseException:
            op.close()
            raise
        state = self._state
        if one_trip(conn):
            # The whole operation is one item in the connection's queue: nothing can run between
            # its statements, and a cancelled await leaves it running to its end.
            return await _on_worker(conn, op, self._fail, state, durable)
        task = asyncio.ensure_future(self._drive_locked(conn, state, op, durable))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_drop_result)
            raise

    async def _drive_locked(
        self, conn: aiosqlite.Connection, state: _ConnState, op: ops.Op, durable: bool | None
    ) -> Any:
        """One statement per trip: a transaction spans several awaits, so serialise."""
        assert self._lock is not None
        async with self._lock:
            if durable is not None and durable != state.durable:
                # synchronous is per connection: FULL fsyncs a decision before anyone sees it.
                try:
                    await conn.execute(sql.SYNC_FULL if durable else sql.SYNC_NORMAL)
                except (sqlite3.Error, ValueError) as exc:
                    op.close()
                    raise self._fail(exc) from exc
                state.durable = durable
            return await drive_async(conn, op, self._fail)

    def _caller_info(self) -> ops.Caller:
        pid = os.getpid()
        if self._caller is None or self._caller[0] != pid:  # new process after fork
            lock_path = liveness.hold(live_dir(self.path))
            self._caller = (
                pid,
                ops.Caller(pid, liveness.pid_start_time(pid), liveness.hostname(), lock_path),
            )
        return self._caller[1]

    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        """Tell waiting processes their row changed (a datagram hint: they re-read it)."""
        hints.send(lock_paths)

    def _tidy_liveness(self) -> None:
        """Remove the lock files of waiters that are gone (before a sweep)."""
        liveness.remove_stale_locks(live_dir(self.path))

    async def _dead_test(self, rows: list[tuple[Any, ...]]) -> DeadTest:
        """How :meth:`sweep` tells a dead waiter among ``rows`` (pending_liveness rows)."""
        return liveness.waiter_is_dead

    # --- writes -------------------------------------------------------------------------

    async def submit(self, new: NewRequest) -> RequestRecord:
        """See :meth:`Store.submit`."""
        caller = self._caller_info()  # liveness lock is held before the row becomes visible
        rec: RequestRecord = await self._write(ops.submit(new, caller))
        return rec

    async def decide(
        self,
        request_id: str,
        approve: bool,
        operator: OperatorIdentity,
        reason: str | None = None,
        *,
        vote: Vote | None = None,
        edit: ArgumentEdit | None = None,
    ) -> RequestRecord:
        """See :meth:`Store.decide`."""
        now = time.time()
        cast = ops.cast_vote(approve, operator, reason, vote, now)
        try:
            full_id = request_id
            if len((request_id or "").strip()) < ops.FULL_ID_LENGTH:
                # Shorter than a whole id: a prefix that must match exactly one request.
                full_id = (await self.get(request_id)).id
            try:
                rec: RequestRecord = await self._write(
                    ops.decide(full_id, cast, operator, now, edit), durable=True
                )
            except RequestNotFound:
                full_id = (await self.get(request_id)).id  # a unique prefix, or a clear error
                rec = await self._write(
                    ops.decide(full_id, cast, operator, now, edit), durable=True
                )
        except DecisionConflict as conflict:
            if conflict.record is not None:
                self._wake([conflict.record.lock_path])
            raise
        if not rec.is_pending:  # a vote short of the quorum wakes nobody
            self._wake([rec.lock_path])
        return rec

    async def escalate(
        self,
        request_id: str,
        to: Sequence[str],
        now: float | None = None,
        *,
        may_decide: Sequence[str] | None = None,
    ) -> RequestRecord | None:
        """See :meth:`Store.escalate`."""
        rec: RequestRecord | None = await self._write(
            ops.escalate(request_id, to, may_decide, time.time() if now is None else now)
        )
        return rec

    async def expire(self, request_id: str) -> RequestRecord | None:
        """See :meth:`Store.expire`."""
        rec: RequestRecord | None = await self._write(
            ops.finish(
                request_id, EXPIRED, "no decision before the deadline", time.time(), "caller"
            )
        )
        if rec is not None:
            self._wake([rec.lock_path])
        return rec

    async def cancel(
        self, request_id: str, reason: str = "cancelled by the caller"
    ) -> RequestRecord | None:
        """See :meth:`Store.cancel`."""
        rec: RequestRecord | None = await self._write(
            ops.finish(request_id, CANCELLED, reason, time.time(), "caller")
        )
        if rec is not None:
            self._wake([rec.lock_path])
        return rec

    async def claim(self, request_id: str, data: dict[str, Any] | None = None) -> bool | None:
        """See :meth:`Store.claim <sentinel.store.operations.StoreOperations.claim>`."""
        claimed: bool | None = await self._write(
            ops.claim(request_id, time.time(), dict(data or {})), durable=True
        )
        return claimed

    async def sweep(self) -> int:
        """See :meth:`Store.sweep`."""
        now = time.time()
        rows = await self._read(ops.pending_liveness())
        is_dead = await self._dead_test(rows)
        dead, overdue, waiters = sweep_plan(rows, now, self.expiry_grace, is_dead)
        self._tidy_liveness()
        if not dead and not overdue:
            return 0
        n: int = await self._write(ops.sweep_apply(dead, overdue, now), durable=True)
        self._wake(waiters)
        return n

    async def append_events(
        self, events: list[dict[str, Any]], *, records: bool = True
    ) -> list[EventRecord] | Any:
        """See :meth:`Store.append_events`."""
        return await self._write(ops.append_events(list(events), time.time(), records))

    # --- audit (sentinel.audit) ----------------------------------------------------------------

    async def audit_state(self) -> tuple[Any, ...]:
        """See :meth:`Store.audit_state`."""
        out: tuple[Any, ...] = await self._read(ops.audit_state())
        return out

    async def event_rows(self, after_seq: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """See :meth:`Store.event_rows`."""
        out: list[tuple[Any, ...]] = await self._read(ops.event_rows(after_seq, limit))
        return out

    async def export_page(
        self, filter: HistoryFilter | None, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """See :meth:`Store.export_page`."""
        out: list[EventRecord] = await self._read(ops.export_page(filter, after_seq, limit))
        return out

    async def value_protected(
        self, since: float | None = None, until: float | None = None
    ) -> dict[str, tuple[int, float]]:
        """See :meth:`Store.value_protected`."""
        out: dict[str, tuple[int, float]] = await self._read(ops.value_protected(since, until))
        return out

    async def prune_events(self, up_to_seq: int) -> tuple[int, str, int] | None:
        """See :meth:`Store.prune_events` (one durable transaction)."""
        out: tuple[int, str, int] | None = await self._write(
            ops.prune(up_to_seq, time.time()), durable=True
        )
        return out

    # --- reads --------------------------------------------------------------------------

    async def get(self, id_or_prefix: str) -> RequestRecord:
        """See :meth:`Store.get`."""
        rec: RequestRecord = await self._read(ops.get(id_or_prefix))
        return rec

    async def list_pending(self, limit: int = 1000) -> list[RequestRecord]:
        """See :meth:`Store.list_pending`."""
        out: list[RequestRecord] = await self._read(ops.list_pending(limit))
        return out

    async def pending_newest(
        self, limit: int = 100, before: tuple[float, str] | None = None
    ) -> list[RequestRecord]:
        """Pending requests, newest first; see :meth:`Store.pending_newest`."""
        out: list[RequestRecord] = await self._read(ops.pending_newest(limit, before))
        return out

    async def pending_summary(self) -> PendingSummary:
        """Pending counts by agent, function and risk; see :meth:`Store.pending_summary`."""
        out: PendingSummary = await self._read(ops.pending_summary())
        return out

    async def history(
        self, filter: HistoryFilter | None = None, before_seq: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """See :meth:`Store.history`."""
        out: list[EventRecord] = await self._read(ops.history(filter, before_seq, limit))
        return out

    async def metrics(self, since: float | None = None) -> MetricsSnapshot:
        """See :meth:`Store.metrics`."""
        snap: MetricsSnapshot = await self._read(ops.metrics(since, time.time()))
        return snap

    async def events_after(self, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        """See :meth:`Store.events_after`."""
        out: list[EventRecord] = await self._read(ops.events_after(after_seq, limit))
        return out

    # --- limit counters (sentinel.limits; operations in store/limits.py) ----------------------

    async def limit_reserve(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """See :meth:`Store.limit_reserve`."""
        out: list[LimitUsage] = await self._write(limits.reserve(checks, time.time()))
        return out

    async def limit_release(self, reservations: list[tuple[str, float]]) -> int:
        """See :meth:`Store.limit_release`."""
        if not reservations:
            return 0
        n: int = await self._write(limits.release(reservations))
        return n

    async def limit_usage(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """See :meth:`Store.limit_usage`."""
        out: list[LimitUsage] = await self._read(limits.usage(checks, time.time()))
        return out

    # --- anomaly baselines (sentinel.anomaly; operations in store/baselines.py) ---------------

    async def baseline_for_call(self, agent: str, function: str) -> list[BaselineRow]:
        """See :meth:`Store.baseline_for_call` (the same statement, through the driver)."""
        out: list[BaselineRow] = await self._read(baselines.for_call(agent, function))
        return out

    async def baseline_for_call_seen(
        self, agent: str, function: str, vkeys: dict[str, str]
    ) -> tuple[list[BaselineRow], set[str]]:
        """See :meth:`Store.baseline_for_call_seen`."""
        out: tuple[list[BaselineRow], set[str]] = await self._read(
            baselines.for_call_seen(agent, function, vkeys)
        )
        return out

    async def baseline_seen(self, agent: str, function: str, vkeys: list[str]) -> set[str]:
        """See :meth:`Store.baseline_seen`."""
        out: set[str] = await self._read(baselines.seen(agent, function, vkeys))
        return out

    async def baseline_window(
        self, agent: str, function: str, param: str
    ) -> tuple[bytes, bytes] | None:
        """See :meth:`Store.baseline_window`."""
        out: tuple[bytes, bytes] | None = await self._read(baselines.window(agent, function, param))
        return out

    async def baseline_learn(
        self, agent: str, function: str, plan: LearnPlan, now: float | None = None
    ) -> None:
        """See :meth:`Store.baseline_learn`."""
        await self._write(
            baselines.learn(agent, function, plan, time.time() if now is None else now)
        )

    async def baseline_list(
        self, agent: str | None = None, function: str | None = None
    ) -> list[BaselineRow]:
        """See :meth:`Store.baseline_list`."""
        out: list[BaselineRow] = await self._read(baselines.list_rows(agent, function))
        return out

    async def baseline_top_values(
        self, agent: str, function: str, param: str, limit: int = 5
    ) -> list[tuple[str, int]]:
        """See :meth:`Store.baseline_top_values`."""
        out: list[tuple[str, int]] = await self._read(
            baselines.top_values(agent, function, param, limit)
        )
        return out

    async def baseline_reset(
        self, agent: str | None, function: str | None, event: dict[str, Any]
    ) -> int:
        """See :meth:`Store.baseline_reset`."""
        n: int = await self._write(baselines.reset(agent, function, event, time.time()))
        return n

    async def info(self) -> DatabaseInfo:
        """See :meth:`Store.info`."""
        requests, pending, events, version = await self._read(ops.database_counts())
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

    # --- standing grants (operations in store/grants.py) ------------------------------------

    async def create_grant(self, new: NewGrant, operator: OperatorIdentity) -> GrantRecord:
        """See :meth:`Store.create_grant`."""
        out: GrantRecord = await self._write(
            grants.create(new, operator, time.time()), durable=True
        )
        return out

    async def get_grant(self, id_or_prefix: str) -> GrantRecord:
        """See :meth:`Store.get_grant`."""
        out: GrantRecord = await self._read(grants.get(id_or_prefix))
        return out

    async def list_grants(self, status: str | None = None, limit: int = 1000) -> list[GrantRecord]:
        """See :meth:`Store.list_grants`."""
        out: list[GrantRecord] = await self._read(grants.list_grants(status, limit))
        return out

    async def active_grants(self) -> list[GrantRecord]:
        """See :meth:`Store.active_grants`."""
        out: list[GrantRecord] = await self._read(grants.active())
        return out

    async def grant_uses(self, grant_id: str, limit: int = 100) -> list[GrantUseRow]:
        """See :meth:`Store.grant_uses`."""
        out: list[GrantUseRow] = await self._read(grants.uses(grant_id, limit))
        return out

    async def revoke_grant(
        self, id_or_prefix: str, operator: OperatorIdentity, reason: str | None = None
    ) -> GrantRecord:
        """See :meth:`Store.revoke_grant`."""
        full = (await self.get_grant(id_or_prefix)).id
        out: GrantRecord = await self._write(
            grants.revoke(full, operator, reason, time.time()), durable=True
        )
        return out

    async def expire_grants(self) -> int:
        """See :meth:`Store.expire_grants`."""
        n: int = await self._write(grants.expire_due(time.time()))
        return n

    async def approve_with_grant(
        self,
        request_id: str,
        new: NewGrant,
        operator: OperatorIdentity,
        reason: str | None = None,
        *,
        vote: Vote | None = None,
    ) -> tuple[RequestRecord, GrantRecord]:
        """See :meth:`Store.approve_with_grant`."""
        now = time.time()
        cast_ = ops.cast_vote(True, operator, reason, vote, now)
        full_id = (await self.get(request_id)).id
        try:
            rec, grant = await self._write(
                grants.approve_with(
                    full_id, ops.decide(full_id, cast_, operator, now), new, operator, now
                ),
                durable=True,
            )
        except DecisionConflict as conflict:
            record = conflict.record
            if isinstance(record, RequestRecord):
                self._wake([record.lock_path])
            raise
        self._wake([rec.lock_path])
        return rec, grant

    async def consume_grant(
        self,
        agent: str | None,
        function: str,
        params: Mapping[str, Any],
        value: float | None,
        *,
        digest: str | None = None,
        rule_id: str | None = None,
        policy_version: str | None = None,
        only: Iterable[str] | None = None,
        accept: Acceptance | None = None,
    ) -> GrantUse | None:
        """See :meth:`Store.consume_grant`."""
        call = grants.UseRequest(
            agent or "", function, params, value, digest, rule_id, policy_version,
            None if only is None else frozenset(only),
        )  # fmt: skip
        out: GrantUse | None = await self._write(grants.consume(call, time.time(), accept))
        return out

    async def count_events(self) -> int:
        """Number of events stored."""
        n: int = await self._read(ops.count_events())
        return n

    async def data_version(self) -> int:
        """See :meth:`Store.data_version` (a dedicated plain connection: a ~4 µs call, no thread hop)."""
        self._check_open()
        try:
            if self._dv_conn is None:
                self._dv_conn = open_connection(self.path, self.busy_timeout)
            return int(self._dv_conn.execute(sql.DATA_VERSION).fetchone()[0])
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc

    def watcher(self) -> Watcher:
        """The process-wide :class:`~sentinel.store.watcher.Watcher` for this database (not a
        coroutine: it only looks the watcher up)."""
        from sentinel.store.watcher import Watcher

        return Watcher.for_path(self.path, busy_timeout=self.busy_timeout)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` (or :meth:`close_blocking`) ran."""
        return self._closed

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        self._closed = True
        conn, self._conn = self._conn, None
        dv, self._dv_conn = self._dv_conn, None
        if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
            _INHERITED.extend(c for c in (conn, dv) if c is not None)
            return
        if dv is not None:
            dv.close()
        if conn is not None:
            await conn.close()

    def close_blocking(self) -> None:
        """Close from synchronous code, on any thread, whether or not the store's loop still runs.

        On a thread that runs an event loop the connection's worker is told to close it after
        the statements already queued (nothing waits); elsewhere this waits for the close. Used
        by :func:`sentinel.runtime.close_shared` and when a store's event loop has ended.
        """
        self._closed = True
        conn, self._conn = self._conn, None
        dv, self._dv_conn = self._dv_conn, None
        if self._pid != os.getpid():
            _INHERITED.extend(c for c in (conn, dv) if c is not None)
            return
        if dv is not None:
            dv.close()
        if conn is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # aiosqlite's worker answers whichever loop awaits it: a short private one will do.
            asyncio.run(conn.close())
            return
        conn.stop()

    async def __aenter__(self) -> AsyncStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncStore({str(self.path)!r})"
