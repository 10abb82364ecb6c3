"""The synchronous store (sqlite3): thread-safe, one write connection per Store."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import StoreError
from sentinel.store import hints, liveness, ops, sql
from sentinel.store.failures import describe
from sentinel.store.models import (
    DatabaseInfo,
)
from sentinel.store.operations import StoreOperations
from sentinel.store.paths import database_size, file_identity, live_dir, prepare, resolve_path
from sentinel.store.schema import migrate, schema_version

if TYPE_CHECKING:
    from sentinel.store.baselines import BaselineRow
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


def drive(conn: sqlite3.Connection, op: ops.Op, fail: Callable[[BaseException], StoreError]) -> Any:
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


class Store(StoreOperations):
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

    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        hints.send(lock_paths)  # a datagram to each waiting process's lock file

    def _tidy_liveness(self) -> None:
        liveness.remove_stale_locks(live_dir(self.path))

    # --- anomaly baselines: the scoring hot path reads without the generic driver --------------

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
