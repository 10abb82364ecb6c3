"""The synchronous PostgreSQL store (psycopg 3): the same public operations as the SQLite
:class:`~sentinel.store.sync.Store` (both are :class:`~sentinel.store.operations.StoreOperations`).

The operations of :mod:`sentinel.store.ops` run unchanged; :data:`~sentinel.store.dialect.POSTGRES`
translates their statements. Like the SQLite store: writes go through one connection guarded by a
lock, reads use one connection per thread, and a forked child opens its own connections.

Not selectable by users yet (the database value parser refuses ``postgresql://`` until the whole
backend exists). Not here yet: the LISTEN/NOTIFY wake-up and the decision watcher, liveness
across hosts (a waiter is recorded by pid and host; :meth:`PgStore.sweep` cancels only waiters
of this host that are certainly gone, and expiry handles the others), the async store and a
connection pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from sentinel.errors import StoreError
from sentinel.store import liveness, ops, sql
from sentinel.store.dialect import POSTGRES
from sentinel.store.models import DatabaseInfo
from sentinel.store.operations import StoreOperations
from sentinel.store.pgschema import migrate_pg, pg_current_version, pg_schema_version
from sentinel.store.sync import DEFAULT_EXPIRY_GRACE

if TYPE_CHECKING:
    pass

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


class PgStore(StoreOperations):
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

    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        """No wake-up yet (LISTEN/NOTIFY is to come): a waiter finds the change by polling."""

    def _tidy_liveness(self) -> None:
        """Nothing to tidy: a PostgreSQL waiter keeps no lock file (liveness across hosts is
        to come); the sweep cancels only waiters of this host that are certainly gone."""

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
