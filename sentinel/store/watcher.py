"""One thread per process that wakes waiting calls when their request is decided.

It polls ``PRAGMA data_version`` (about 4 µs) every few milliseconds on a plain sqlite3 connection.
The value changes when any other connection commits; then, or every second as a fallback, it runs
ONE query for all watched ids and resolves the futures of rows that left ``pending``. Cost is a
fixed ~1 % of a core per process however many calls wait, and nothing when nothing is watched.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import ClassVar

from sentinel.errors import RequestNotFound, StoreError
from sentinel.store import liveness, ops, sql
from sentinel.store.failures import describe
from sentinel.store.models import RequestRecord
from sentinel.store.paths import live_dir, resolve_path
from sentinel.store.sync import DEFAULT_BUSY_TIMEOUT, drive, open_connection

#: Seconds between data_version probes while something is watched.
POLL_INTERVAL = 0.004
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
        self._stopped = False
        self._thread: threading.Thread | None = None
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

    # --- public -------------------------------------------------------------------------

    def watch(self, request_id: str) -> Future[RequestRecord]:
        """A future resolved with the request once it is no longer pending.

        Sync code: ``fut.result(timeout)``; async code: ``await asyncio.wrap_future(fut)``. The
        future fails with :class:`RequestNotFound` for an unknown id and :class:`StoreError` when
        the database cannot be read.
        """
        # Hold this process's liveness lock for as long as it waits (sweepers test it).
        liveness.hold(live_dir(self.path))
        with self._cond:
            if self._stopped:
                raise StoreError(f"watcher for {self.path} is stopped")
            fut = self._futures.get(request_id)
            if fut is None or fut.done():
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._futures[request_id] = fut
            self._force = True  # check at once: the row may already be decided
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"sentinel-watcher:{self.path.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return fut

    def unwatch(self, request_id: str) -> None:
        """Stop watching ``request_id`` (its future, if unresolved, is left as is)."""
        with self._cond:
            self._futures.pop(request_id, None)

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
        for fut in pending:
            if not fut.done():
                fut.set_exception(StoreError(f"watcher for {self.path} stopped"))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    # --- thread -------------------------------------------------------------------------

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        last_version: int | None = None
        last_check = 0.0
        failures = 0
        while True:
            with self._cond:
                while not self._futures and not self._stopped:
                    # Nothing watched: sleep without polling, and drop the connection.
                    if conn is not None:
                        conn.close()
                        conn = None
                        last_version = None
                    self._cond.wait()
                if self._stopped:
                    break
                force = self._force
                self._force = False
                ids = list(self._futures)
            try:
                if conn is None:
                    conn = open_connection(self.path, self.busy_timeout)
                version = conn.execute(sql.DATA_VERSION).fetchone()[0]
                now = time.monotonic()
                if force or version != last_version or now - last_check >= self.fallback_interval:
                    last_version = version
                    last_check = now
                    self._check(conn, ids)
                failures = 0
            except (sqlite3.Error, StoreError) as exc:
                failures += 1
                if conn is not None:
                    conn.close()
                    conn = None
                if failures >= 3:
                    self._fail_all(
                        describe(exc, str(self.path), self.busy_timeout)
                        if isinstance(exc, sqlite3.Error)
                        else exc
                    )
                    failures = 0
            with self._cond:
                if self._futures and not self._force and not self._stopped:
                    self._cond.wait(self.poll_interval)
        if conn is not None:
            conn.close()

    def _check(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        self.checks += 1
        rows = conn.execute(sql.WATCH_STATUS, (json.dumps(ids),)).fetchall()
        status = dict(rows)
        for request_id in ids:
            st = status.get(request_id)
            if st == "pending":
                continue
            if st is None:
                self._resolve(
                    request_id,
                    exc=RequestNotFound(
                        f"no approval request with id {request_id!r} in {self.path}"
                    ),
                )
                continue
            rec = drive(
                conn, ops.get(request_id), lambda e: describe(e, str(self.path), self.busy_timeout)
            )
            self._resolve(request_id, rec=rec)

    def _resolve(
        self, request_id: str, rec: RequestRecord | None = None, exc: BaseException | None = None
    ) -> None:
        with self._cond:
            fut = self._futures.pop(request_id, None)
        if fut is None or fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(rec)  # type: ignore[arg-type]

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            futures = list(self._futures.items())
            self._futures.clear()
        for _, fut in futures:
            if not fut.done():
                fut.set_exception(exc)
