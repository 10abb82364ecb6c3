"""One thread per process that wakes waiting calls when their request is decided.

Two triggers make it look at the database, and the database is the only thing it trusts:

* a wake-up hint (:mod:`sentinel.store.hints`): the deciding process sends a datagram to this
  process right after its COMMIT, so a decision is seen in well under a millisecond;
* ``PRAGMA data_version`` (about 4 µs) polled on a plain sqlite3 connection every
  ``poll_interval``: it changes whenever another connection commits, which catches writers that
  send no hint. Every ``fallback_interval`` it checks regardless.

Then it runs ONE query for all watched ids and resolves the futures of rows that left
``pending``. The cost is fixed per process (about 100 wake-ups a second) however many calls wait,
and nothing at all when nothing is watched.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import ClassVar

from sentinel.errors import RequestNotFound, StoreError
from sentinel.fdwait import readable
from sentinel.store import hints, liveness, sql
from sentinel.store.codec import request_from_row
from sentinel.store.failures import describe
from sentinel.store.models import RequestRecord
from sentinel.store.paths import file_identity, live_dir, resolve_path
from sentinel.store.sync import DEFAULT_BUSY_TIMEOUT, open_connection

#: Seconds between data_version probes while something is watched (hints make wake-ups faster).
POLL_INTERVAL = 0.01
#: Seconds between full checks even when data_version did not change.
FALLBACK_INTERVAL = 1.0


class Watcher:
    """Resolves futures when watched requests leave ``pending``. Use :meth:`for_path`."""

    _instances: ClassVar[dict[str, Watcher]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        poll_interval: float = POLL_INTERVAL,
        fallback_interval: float = FALLBACK_INTERVAL,
    ) -> None:
        self.path = resolve_path(path)
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval
        self.fallback_interval = fallback_interval
        self._futures: dict[str, Future[RequestRecord]] = {}
        self._cond = threading.Condition()
        self._force = False
        self._ids_json: str | None = None  # JSON list of watched ids, rebuilt on change
        self._new_ids: set[str] = set()  # watched since the last check (existence not yet known)
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._lock_path: str | None = None
        self._sock: socket.socket | None = None
        self.hinted = 0  # wake-ups caused by a hint (for tests/benchmarks)
        self.checks = 0  # full status queries run (for tests/benchmarks)

    @classmethod
    def for_path(cls, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Watcher:
        """The shared watcher of this process for the database at ``path``."""
        key = str(resolve_path(path))
        with cls._instances_lock:
            inst = cls._instances.get(key)
            if inst is None or inst._stopped:
                inst = cls(key, busy_timeout=busy_timeout)
                cls._instances[key] = inst
            return inst

    @classmethod
    def stop_shared(cls, chosen: Callable[[str], bool]) -> None:
        """Stop and forget the shared watchers whose database path ``chosen`` accepts."""
        with cls._instances_lock:
            watchers = [cls._instances.pop(k) for k in list(cls._instances) if chosen(k)]
        for watcher in watchers:
            watcher.stop()

    # --- public -------------------------------------------------------------------------

    def watch(self, request_id: str) -> Future[RequestRecord]:
        """A future resolved with the request once it is no longer pending.

        Sync code: ``fut.result(timeout)``; async code: ``await asyncio.wrap_future(fut)``. The
        future fails with :class:`RequestNotFound` for an unknown id and :class:`StoreError` when
        the database cannot be read.
        """
        # Hold this process's liveness lock for as long as it waits (sweepers test it).
        lock_path = liveness.hold(live_dir(self.path))
        with self._cond:
            if self._stopped:
                raise StoreError(f"watcher for {self.path} is stopped")
            fut = self._futures.get(request_id)
            if fut is None or fut.done():
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._futures[request_id] = fut
                self._ids_json = None
                self._new_ids.add(request_id)
            self._force = True  # check at once: the row may already be decided
            if self._lock_path != lock_path:  # first use, or a new process after fork
                self._lock_path = lock_path
                if self._sock is not None:
                    self._sock.close()
                self._sock = hints.bind(lock_path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"sentinel-watcher:{self.path.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        hints.send([lock_path])  # interrupt the thread's wait so the new id is checked now
        return fut

    def unwatch(self, request_id: str) -> None:
        """Stop watching ``request_id`` (its future, if unresolved, is left as is)."""
        with self._cond:
            if self._futures.pop(request_id, None) is not None:
                self._ids_json = None
            self._new_ids.discard(request_id)

    @property
    def watching(self) -> int:
        """Number of ids watched now."""
        with self._cond:
            return len(self._futures)

    def stop(self) -> None:
        """Stop the thread; unresolved futures fail with StoreError."""
        with self._cond:
            self._stopped = True
            pending = list(self._futures.values())
            self._futures.clear()
            self._cond.notify_all()
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        for fut in pending:
            if not fut.done():
                fut.set_exception(StoreError(f"watcher for {self.path} stopped"))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    # --- thread -------------------------------------------------------------------------

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        identity: tuple[int, int] | None = None
        last_version: int | None = None
        last_check = 0.0
        failures = 0
        cond = self._cond
        monotonic = time.monotonic
        while True:
            with cond:
                while not self._futures and not self._stopped:
                    # Nothing watched: block without polling, and drop the connection.
                    if conn is not None:
                        conn.close()
                        conn = None
                        last_version = None
                    cond.wait()
                if self._stopped:
                    break
                sock = self._sock
            hinted = self._wait(sock)
            with cond:
                force = self._force or hinted
                self._force = False
            try:
                if conn is None:
                    conn = open_connection(self.path, self.busy_timeout)
                    identity = file_identity(self.path)
                version = conn.execute(sql.DATA_VERSION).fetchone()[0]
                now = monotonic()
                if (
                    now - last_check >= self.fallback_interval
                    and file_identity(self.path) != identity
                ):
                    # The file was deleted or replaced: reconnect to what is at the path now.
                    conn.close()
                    conn = open_connection(self.path, self.busy_timeout)
                    identity = file_identity(self.path)
                    version = conn.execute(sql.DATA_VERSION).fetchone()[0]
                    force = True
                if force or version != last_version or now - last_check >= self.fallback_interval:
                    last_version = version
                    last_check = now
                    self._check(conn)
                failures = 0
            except Exception as exc:  # never let the thread die: callers would wait in vain
                failures += 1
                if conn is not None:
                    conn.close()
                    conn = None
                if failures >= 3:
                    err: StoreError
                    if isinstance(exc, sqlite3.Error):
                        err = describe(exc, str(self.path), self.busy_timeout)
                    elif isinstance(exc, StoreError):
                        err = exc
                    else:
                        err = StoreError(f"watcher for {self.path} failed: {exc!r}")
                    self._fail_all(err)
                    failures = 0
        if conn is not None:
            conn.close()

    def _wait(self, sock: socket.socket | None) -> bool:
        """Wait one poll interval or until a hint arrives; True when hinted."""
        if sock is None:
            time.sleep(self.poll_interval)
            return False
        try:
            ready = readable([sock], self.poll_interval)
        except (OSError, ValueError):  # closed by stop()
            time.sleep(self.poll_interval)
            return False
        if not ready:
            return False
        try:
            while True:  # drain: a burst of hints costs one check
                sock.recv(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, OSError):
            pass
        self.hinted += 1
        return True

    def _check(self, conn: sqlite3.Connection) -> None:
        """One query for every watched id; resolve the ones that left pending."""
        self.checks += 1
        with self._cond:
            if self._ids_json is None:  # re-encoded only when the watched set changed
                self._ids_json = json.dumps(list(self._futures))
            ids_json = self._ids_json
            new_ids, self._new_ids = self._new_ids, set()
        if new_ids:
            known = {r[0] for r in conn.execute(sql.WATCH_EXISTING, (json.dumps(sorted(new_ids)),))}
            for request_id in new_ids - known:
                self._resolve(
                    request_id,
                    exc=RequestNotFound(
                        f"no approval request with id {request_id!r} in {self.path}"
                    ),
                )
        for row in conn.execute(sql.WATCH_DONE, (ids_json,)).fetchall():
            rec = request_from_row(row)
            self._resolve(rec.id, rec=rec)

    def _resolve(
        self, request_id: str, rec: RequestRecord | None = None, exc: BaseException | None = None
    ) -> None:
        with self._cond:
            fut = self._futures.pop(request_id, None)
            if fut is not None:
                self._ids_json = None
        if fut is None or fut.done():
            return
        try:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(rec)  # type: ignore[arg-type]
        except InvalidStateError:
            pass  # cancelled by its owner meanwhile

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            futures = list(self._futures.items())
            self._futures.clear()
            self._ids_json = None
        for _, fut in futures:
            try:
                fut.set_exception(exc)
            except InvalidStateError:
                pass
