"""The synchronous PostgreSQL store (psycopg 3): the same public operations as the SQLite
:class:`~sentinel.store.sync.Store` (both are :class:`~sentinel.store.operations.StoreOperations`).

The operations of :mod:`sentinel.store.ops` run unchanged; :data:`~sentinel.store.dialect.POSTGRES`
translates their statements. Connections, per process: writes go through ONE session guarded by
a lock (write transactions of all processes serialise on an advisory lock anyway); reads borrow
a session from a small bounded pool (psycopg_pool, ``pool_size``), never one per call or per
thread. A forked child leaves its parent's sessions alone and opens its own.

Waking and liveness go through the process's :class:`~sentinel.store.pgwatch.PgWatcher` (one
listener session per database): the schema's trigger NOTIFYs it when a request changes, and it
holds the session-level advisory lock whose key a submitted request records (``pg:<key>``), so
:meth:`PgStore.sweep` on any host cancels the requests of a waiter whose session is gone. The
async twin is :class:`~sentinel.store.pgaio.AsyncPgStore`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from sentinel.errors import StoreError
from sentinel.fdwait import readable
from sentinel.store import liveness, ops, sql
from sentinel.store.dialect import PG_HELD_KEYS, POSTGRES
from sentinel.store.models import DatabaseInfo
from sentinel.store.operations import DeadTest, StoreOperations
from sentinel.store.pgschema import migrate_pg, pg_current_version, pg_schema_version
from sentinel.store.sync import DEFAULT_EXPIRY_GRACE

if TYPE_CHECKING:
    from sentinel.store.pgwatch import PgWatcher

Conn = psycopg.Connection[tuple[Any, ...]]

#: Default seconds a connection waits for a lock (the write lock, a row) before giving up.
DEFAULT_LOCK_TIMEOUT = 5.0
#: Seconds to wait for the server when connecting.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Most reader sessions a store keeps open (they are borrowed per operation).
DEFAULT_POOL_SIZE = 4
#: Seconds a waiter on another host whose liveness key no session holds is still given (its
#: listener may be reconnecting after a restart) before a sweep cancels its requests.
DEFAULT_LIVENESS_GRACE = 10.0

#: Connections inherited across fork(): kept referenced so the child never closes them (closing
#: would end the parent's session with the server).
_INHERITED: list[object] = []


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
    elif isinstance(exc, pg_errors.QueryCanceled):
        msg = f"database {where}: a statement ran past the server's statement_timeout ({text})"
    elif isinstance(exc, PoolTimeout):
        msg = f"cannot reach database {where}: no connection available ({text})"
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        msg = f"database {where}: permission denied ({text})"
    elif isinstance(exc, psycopg.OperationalError):
        msg = f"cannot reach database {where} ({text})"
    else:
        msg = f"database {where}: {text}"
    err = StoreError(msg)
    err.__cause__ = exc
    return err


def session_kwargs(url: str, connect_timeout: float) -> dict[str, Any]:
    """How every store session (sync or async, writer or reader) connects to ``url``."""
    from sentinel.store.pgwatch import keepalive_kwargs

    return {
        "autocommit": True,
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": "sentinel",
        **keepalive_kwargs(url),
    }


def session_settings(lock_timeout: float) -> tuple[str, ...]:
    """The statements every store session runs once connected (how long it waits for a lock)."""
    return POSTGRES.translate(sql.SET_BUSY_TIMEOUT.format(int(lock_timeout * 1000)))


def session_alive(conn: Conn) -> bool:
    """False when an idle session is already gone (server restarted, backend terminated).

    A store session never LISTENs and runs nothing between operations, so anything readable
    while it is idle is the server's goodbye (a FATAL message, the end of the socket) or, rarely,
    an unsolicited notice: either way a new session is the safe choice. One ``poll`` call, no
    round trip; a session that dies during a statement still fails it with a clear error."""
    if conn.closed or conn.broken or conn.pgconn.status != ConnStatus.OK:
        return False
    try:
        return not readable([conn.fileno()], 0)
    except (OSError, ValueError):
        return False


def drive_pg(conn: Conn, op: ops.Op, fail: Callable[[BaseException], StoreError]) -> Any:
    """Run one operation generator on an autocommit psycopg connection (rolls back on error).

    In psycopg's pipeline mode: a statement whose result the operation does not read (BEGIN,
    an insert, COMMIT) is queued, not waited for, and the queue goes to the server in one round
    trip with the next statement whose result is read. A submission (BEGIN + insert, lock + chain
    head, event + rollup + COMMIT) is three round trips instead of six, and the write lock is held
    for two. A queued statement that fails raises at the next sync, before anything after it
    is acted on; COMMIT is always read, so success is only reported once it is durable."""
    try:
        q = next(op)
        with conn.pipeline() as pipe, conn.cursor() as cur:
            while True:
                statements = POSTGRES.translate(q.sql)
                result: Any = None
                try:
                    for n, text in enumerate(statements):
                        last = n == len(statements) - 1
                        if q.fetch == "many" and last:
                            cur.executemany(text, q.params)
                        else:
                            cur.execute(text, list(q.params) if last else None)
                    if q.fetch == "one":
                        result = cur.fetchone()
                    elif q.fetch == "all":
                        result = cur.fetchall()
                    elif q.fetch == "rowcount":
                        pipe.sync()
                        result = cur.rowcount
                    elif q.sql == sql.COMMIT:
                        pipe.sync()  # the outcome is known before the operation returns
                except psycopg.Error as exc:
                    raise fail(exc) from exc
                q = op.send(result)
    except StopIteration as stop:
        return stop.value
    except psycopg.Error as exc:  # raised when the pipeline closed (a queued statement failed)
        _rollback(conn)
        raise fail(exc) from exc
    except BaseException:
        _rollback(conn)
        raise
    finally:
        op.close()


def _rollback(conn: Conn) -> None:
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            conn.execute(sql.ROLLBACK)
        except psycopg.Error:
            pass


def _check_session(conn: Conn) -> None:
    """The pool's check on lending a session: a gone one is replaced, not lent."""
    if not session_alive(conn):
        conn.close()  # closed: the pool discards it (an open one would be lent again)
        raise psycopg.OperationalError("the session ended while idle in the pool")


class PgStore(StoreOperations):
    """Durable approval queue and event log in a PostgreSQL database (see the module doc).

    ``url``: a ``postgresql://`` URL or libpq connection string. Migrates the schema on open
    (``create=False`` refuses a database without it). Thread-safe like the SQLite store.
    ``pool_size``: most reader sessions (a whole number); ``liveness_grace``: see :data:`DEFAULT_LIVENESS_GRACE`.
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        create: bool = True,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
        pool_size: float = DEFAULT_POOL_SIZE,
        liveness_grace: float = DEFAULT_LIVENESS_GRACE,
    ) -> None:
        self.url = url
        self.expiry_grace = float(expiry_grace)
        #: Where the database is, for messages (the password masked).
        self.path = mask_url(url)
        self.lock_timeout = float(lock_timeout)
        self.connect_timeout = float(connect_timeout)
        self.pool_size = max(1, int(pool_size))
        self._liveness = liveness.SessionLiveness(liveness_grace)
        self._lock = threading.RLock()
        self._durable = False
        self._closed = False
        self._caller: tuple[int, ops.Caller] | None = None
        self._pid = os.getpid()
        self._writer = self._connect()
        try:
            #: The schema version found on open (``create`` migrates it to the latest; without
            #: it the database is used as found, and ``sentinel db info`` says if it is behind).
            self.migrated_from = pg_current_version(self._writer)
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
        self._pool = self._new_pool()

    # --- plumbing -----------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> StoreError:
        return describe_pg(exc, self.path, self.lock_timeout)

    def _connect_kwargs(self) -> dict[str, Any]:
        return session_kwargs(self.url, self.connect_timeout)

    def _configure(self, conn: Conn) -> None:
        for text in session_settings(self.lock_timeout):
            conn.execute(text)

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(self.url, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise self._fail(exc) from exc
        try:
            self._configure(conn)
        except psycopg.Error as exc:
            conn.close()
            raise self._fail(exc) from exc
        return conn

    def _new_pool(self) -> ConnectionPool[Conn]:
        """The reader sessions: opened on demand (one at first), at most ``pool_size``."""
        return ConnectionPool(
            self.url,
            kwargs=self._connect_kwargs(),
            min_size=1,
            max_size=self.pool_size,
            configure=self._configure,
            check=_check_session,
            timeout=self.connect_timeout,
            reconnect_timeout=0,  # keep trying while the server is down (no "give up" state)
            name=f"sentinel-readers:{self.path}",
            open=True,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store for {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """A forked child must not use its parent's server sessions: it opens its own (the
        parent's pool and writer stay referenced, never closed: closing would end them for the
        parent too)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            _INHERITED.extend([self._writer, self._pool])
            self._durable = False
            self._caller = None
            self._writer = self._connect()
            self._pool = self._new_pool()
            self._pid = os.getpid()

    def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        self._check_open()
        with self._lock:
            if not session_alive(self._writer):
                # The session ended (server restarted, backend terminated) while idle, or under
                # an operation that failed with a clear error: this one runs on a new session.
                self._writer.close()
                try:
                    self._writer = self._connect()
                except BaseException:
                    op.close()
                    raise
                self._durable = False
            if durable != self._durable:
                try:
                    for text in POSTGRES.translate(sql.SYNC_FULL if durable else sql.SYNC_NORMAL):
                        self._writer.execute(text)
                except psycopg.Error as exc:
                    op.close()
                    raise self._fail(exc) from exc
                self._durable = durable
            return drive_pg(self._writer, op, self._fail)

    def _read(self, op: ops.Op) -> Any:
        self._check_open()
        try:
            with self._pool.connection() as conn:
                return drive_pg(conn, op, self._fail)
        except PoolTimeout as exc:
            op.close()
            raise self._fail(exc) from exc

    def _held_keys(self) -> set[int]:
        """The liveness keys some session of this database holds now."""
        self._check_open()
        try:
            with self._pool.connection() as conn:
                return {int(r[0]) for r in conn.execute(PG_HELD_KEYS).fetchall()}
        except psycopg.Error as exc:  # PoolTimeout is one
            raise self._fail(exc) from exc

    def _dead_test(self, rows: list[tuple[Any, ...]]) -> DeadTest:
        held = self._held_keys() if self._liveness.keys(rows) else set()
        return self._liveness.judge(rows, held)

    def _caller_info(self) -> ops.Caller:
        pid = os.getpid()
        if self._caller is None or self._caller[0] != pid:
            self._caller = (
                pid,
                ops.Caller(pid, liveness.pid_start_time(pid), liveness.hostname(), None),
            )
        # The listener session holds this process's key before the row can be seen (a flag
        # check once held; it reconnects first when the session dropped).
        lock_path = self.watcher().hold()
        caller = self._caller[1]
        if caller.lock_path != lock_path:
            caller = ops.Caller(caller.pid, caller.pid_start, caller.host, lock_path)
            self._caller = (pid, caller)
        return caller

    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        """Nothing to send: the schema's trigger notifies the listeners at COMMIT."""

    def _tidy_liveness(self) -> None:
        """Nothing to tidy: a session's advisory lock ends with the session."""

    def watcher(self) -> PgWatcher:
        """The process-wide :class:`~sentinel.store.pgwatch.PgWatcher` for this database."""
        from sentinel.store.pgwatch import PgWatcher

        return PgWatcher.for_url(self.url, connect_timeout=self.connect_timeout)

    def info(self) -> DatabaseInfo:
        """The backend, the URL (password masked), the schema version, row counts and the
        database's size on the server."""
        requests, pending, events, version = self._read(ops.database_counts())
        size = self._read(ops.database_size())
        return DatabaseInfo(
            "postgresql", self.path, version, pg_schema_version(), self.migrated_from,
            requests, pending, events, size,
        )  # fmt: skip

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Close every connection this store opened (idempotent; the shared watcher stays)."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():  # a forked child: the parent's sessions are not ours
            _INHERITED.extend([self._writer, self._pool])
            return
        with self._lock:
            self._writer.close()
        self._pool.close(timeout=1.0)

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgStore({self.path!r})"
