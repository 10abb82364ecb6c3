"""The asynchronous PostgreSQL store (psycopg ``AsyncConnection``): every operation of
:class:`~sentinel.store.postgres.PgStore`, as coroutines.

It is an :class:`~sentinel.store.aio.AsyncStore` whose plumbing runs on PostgreSQL: the public
operations (submit, decide, sweep, limits, baselines…) are AsyncStore's own, so they run the
same operation generators of :mod:`sentinel.store.ops`, translated by
:data:`~sentinel.store.dialect.POSTGRES` (:func:`drive_pg_async` is the async twin of
:func:`~sentinel.store.postgres.drive_pg`). Per store (one per event loop): one writer session
and one reader session, each serialised by a lock of that loop, opened on first use; a session
found gone while idle is replaced. Waking and liveness are the process's
:class:`~sentinel.store.pgwatch.PgWatcher` (``await asyncio.wrap_future(watcher.watch(id))``),
shared with the sync store. A cancelled caller stops waiting at once, but its operation runs to
its end (a transaction is never abandoned half-way on the shared session). A forked child opens
its own sessions.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import TransactionStatus

from sentinel.errors import StoreError
from sentinel.store import liveness, ops, sql
from sentinel.store.aio import AsyncStore
from sentinel.store.dialect import PG_HELD_KEYS, POSTGRES
from sentinel.store.models import DatabaseInfo, NewRequest, RequestRecord
from sentinel.store.operations import DeadTest
from sentinel.store.pgschema import migrate_pg, pg_current_version, pg_schema_version
from sentinel.store.postgres import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LIVENESS_GRACE,
    DEFAULT_LOCK_TIMEOUT,
    describe_pg,
    drive_pg,
    mask_url,
    session_alive,
    session_kwargs,
    session_settings,
)
from sentinel.store.sync import DEFAULT_EXPIRY_GRACE

if TYPE_CHECKING:
    from sentinel.store.pgwatch import PgWatcher

AConn = psycopg.AsyncConnection[tuple[Any, ...]]

#: Sessions inherited across fork(): kept referenced, never closed by the child.
_INHERITED: list[object] = []


async def drive_pg_async(
    conn: AConn, op: ops.Op, fail: Callable[[BaseException], StoreError]
) -> Any:
    """Run one operation generator on an autocommit async psycopg connection (rolls back on
    error): :func:`~sentinel.store.postgres.drive_pg` with awaits (pipeline mode alike)."""
    try:
        q = next(op)
        async with conn.pipeline() as pipe, conn.cursor() as cur:
            while True:
                statements = POSTGRES.translate(q.sql)
                result: Any = None
                try:
                    for n, text in enumerate(statements):
                        last = n == len(statements) - 1
                        if q.fetch == "many" and last:
                            await cur.executemany(text, q.params)
                        else:
                            await cur.execute(text, list(q.params) if last else None)
                    if q.fetch == "one":
                        result = await cur.fetchone()
                    elif q.fetch == "all":
                        result = await cur.fetchall()
                    elif q.fetch == "rowcount":
                        await pipe.sync()
                        result = cur.rowcount
                    elif q.sql == sql.COMMIT:
                        await pipe.sync()  # the outcome is known before the operation returns
                except psycopg.Error as exc:
                    raise fail(exc) from exc
                q = op.send(result)
    except StopIteration as stop:
        return stop.value
    except psycopg.Error as exc:  # raised when the pipeline closed (a queued statement failed)
        await _rollback(conn)
        raise fail(exc) from exc
    except BaseException:
        await _rollback(conn)
        raise
    finally:
        op.close()


async def _rollback(conn: AConn) -> None:
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            await conn.execute(sql.ROLLBACK)
        except psycopg.Error:
            pass


def _drop_result(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of an operation whose caller was cancelled (no "never retrieved")."""
    if not task.cancelled():
        task.exception()


class _Session:
    """One lazily opened session and the lock of the loop that serialises its operations."""

    __slots__ = ("conn", "durable", "lock")

    def __init__(self) -> None:
        self.conn: AConn | None = None
        self.durable = False
        self.lock = asyncio.Lock()


class AsyncPgStore(AsyncStore):
    """Coroutine twin of :class:`~sentinel.store.postgres.PgStore` (see the module doc):
    ``async with AsyncPgStore(url) as store: ...``, or :meth:`close` when done."""

    #: Where the database is, for messages: the URL with its password masked (not a file).
    path: str  # type: ignore[assignment]

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        create: bool = True,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
        liveness_grace: float = DEFAULT_LIVENESS_GRACE,
    ) -> None:
        # AsyncStore's __init__ prepares a SQLite file: nothing of it applies here.
        self.url = url
        #: Where the database is, for messages (the password masked).
        self.path = mask_url(url)
        self.lock_timeout = float(lock_timeout)
        self.busy_timeout = self.lock_timeout
        self.connect_timeout = float(connect_timeout)
        self.expiry_grace = float(expiry_grace)
        self._create = create
        self._liveness = liveness.SessionLiveness(liveness_grace)
        self._writer: _Session | None = None
        self._reader: _Session | None = None
        self._ready = False
        self._closed = False
        self._caller: tuple[int, ops.Caller] | None = None
        self._pid = os.getpid()
        #: The schema version found when the database was first opened (see PgStore).
        self.migrated_from = pg_schema_version()

    # --- plumbing -----------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> StoreError:
        return describe_pg(exc, self.path, self.lock_timeout)

    def _init_db(self) -> None:
        """Migrate (or check) the schema on a short-lived sync session (off the loop)."""
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise self._fail(exc) from exc
        try:
            self.migrated_from = pg_current_version(conn)
            if self._create:
                migrate_pg(conn, self.path)
            else:
                drive_pg(conn, ops.count_events(), self._fail)  # a clear "run migrate"
        except psycopg.Error as exc:
            raise self._fail(exc) from exc
        finally:
            conn.close()

    async def _connect(self) -> AConn:
        try:
            conn: AConn = await psycopg.AsyncConnection.connect(
                self.url, **session_kwargs(self.url, self.connect_timeout)
            )
        except psycopg.Error as exc:
            raise self._fail(exc) from exc
        try:
            for text in session_settings(self.lock_timeout):
                await conn.execute(text)
        except psycopg.Error as exc:
            await conn.close()
            raise self._fail(exc) from exc
        return conn

    async def open(self) -> AsyncPgStore:
        """Migrate the schema (or check it) and prepare the sessions (done on first use)."""
        self._check_open()
        if self._writer is None:
            self._writer, self._reader = _Session(), _Session()
        if not self._ready:
            await asyncio.to_thread(self._init_db)
            self._ready = True
        return self

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """A forked child leaves its parent's sessions alone (referenced, never closed)."""
        for session in (self._writer, self._reader):
            if session is not None and session.conn is not None:
                _INHERITED.append(session.conn)
        self._writer = self._reader = None
        self._caller = None
        self._pid = os.getpid()

    async def _session_for(self, write: bool) -> _Session:
        await self.open()
        session = self._writer if write else self._reader
        if session is None:  # closed (or forked) meanwhile
            raise StoreError(f"store for {self.path} is closed")
        return session

    async def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        return await self._run(op, durable)

    async def _read(self, op: ops.Op) -> Any:
        return await self._run(op, None)

    async def _run(self, op: ops.Op, durable: bool | None) -> Any:
        try:
            session = await self._session_for(durable is not None)
        except BaseException:
            op.close()
            raise
        task = asyncio.ensure_future(self._drive(session, op, durable))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_drop_result)
            raise

    async def _drive(self, session: _Session, op: ops.Op, durable: bool | None) -> Any:
        async with session.lock:
            try:
                conn = await self._live(session)
                if durable is not None and durable != session.durable:
                    try:
                        for text in POSTGRES.translate(
                            sql.SYNC_FULL if durable else sql.SYNC_NORMAL
                        ):
                            await conn.execute(text)
                    except psycopg.Error as exc:
                        raise self._fail(exc) from exc
                    session.durable = durable
            except BaseException:
                op.close()
                raise
            return await drive_pg_async(conn, op, self._fail)

    async def _live(self, session: _Session) -> AConn:
        """The session's connection, (re)opened when it is missing or gone (call locked)."""
        conn = session.conn
        if conn is not None and session_alive(conn):  # type: ignore[arg-type]
            return conn
        if conn is not None:
            await conn.close()
        session.conn = None
        session.durable = False
        session.conn = await self._connect()
        return session.conn

    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        """Nothing to send: the schema's trigger notifies the listeners at COMMIT."""

    def _tidy_liveness(self) -> None:
        """Nothing to tidy: a session's advisory lock ends with the session."""

    async def _dead_test(self, rows: list[tuple[Any, ...]]) -> DeadTest:
        held: set[int] = set()
        if self._liveness.keys(rows):
            session = await self._session_for(False)
            async with session.lock:
                conn = await self._live(session)
                try:
                    cur = await conn.execute(PG_HELD_KEYS)
                    held = {int(r[0]) for r in await cur.fetchall()}
                except psycopg.Error as exc:
                    raise self._fail(exc) from exc
        return self._liveness.judge(rows, held)

    def _caller_info(self) -> ops.Caller:
        pid = os.getpid()
        if self._caller is None or self._caller[0] != pid:
            self._caller = (
                pid,
                ops.Caller(pid, liveness.pid_start_time(pid), liveness.hostname(), None),
            )
        lock_path = self.watcher().hold()  # a flag check: submit took it off the loop first
        caller = self._caller[1]
        if caller.lock_path != lock_path:
            caller = ops.Caller(caller.pid, caller.pid_start, caller.host, lock_path)
            self._caller = (pid, caller)
        return caller

    # --- what differs from AsyncStore -------------------------------------------------------

    async def submit(self, new: NewRequest) -> RequestRecord:
        """See :meth:`PgStore.submit <sentinel.store.operations.StoreOperations.submit>`."""
        self._check_open()
        # The liveness key is held before the row can be seen; connecting the listener the first
        # time blocks, so it happens on a worker thread, not on the loop.
        await asyncio.to_thread(self.watcher().hold)
        return await super().submit(new)

    async def info(self) -> DatabaseInfo:
        """See :meth:`PgStore.info <sentinel.store.postgres.PgStore.info>`."""
        requests, pending, events, version = await self._read(ops.database_counts())
        size = await self._read(ops.database_size())
        return DatabaseInfo(
            "postgresql", self.path, version, pg_schema_version(), self.migrated_from,
            requests, pending, events, size,
        )  # fmt: skip

    async def data_version(self) -> int:
        """See :meth:`PgStore.data_version <sentinel.store.operations.StoreOperations.data_version>`."""
        n: int = await self._read(ops.data_version())
        return n

    def watcher(self) -> PgWatcher:  # type: ignore[override]
        """The process-wide :class:`~sentinel.store.pgwatch.PgWatcher` for this database (not a
        coroutine: it only looks the watcher up)."""
        from sentinel.store.pgwatch import PgWatcher

        return PgWatcher.for_url(self.url, connect_timeout=self.connect_timeout)

    def _take_sessions(self) -> list[AConn]:
        conns = [s.conn for s in (self._writer, self._reader) if s is not None and s.conn]
        self._writer = self._reader = None
        if self._pid != os.getpid():  # a forked child: the parent's sessions are not ours
            _INHERITED.extend(conns)
            return []
        return conns

    async def close(self) -> None:
        """Close the sessions (idempotent; the shared watcher stays)."""
        self._closed = True
        for conn in self._take_sessions():
            await conn.close()

    def close_blocking(self) -> None:
        """Close from synchronous code, on any thread, whether or not the store's loop runs
        (closing a psycopg session does not wait for anything)."""
        self._closed = True
        for conn in self._take_sessions():
            conn.pgconn.finish()  # what AsyncConnection.close does, without needing a loop

    async def __aenter__(self) -> AsyncPgStore:
        return await self.open()

    def __repr__(self) -> str:
        return f"AsyncPgStore({self.path!r})"
