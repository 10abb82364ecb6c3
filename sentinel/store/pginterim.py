"""Interim asynchronous access to PostgreSQL, until the native pieces land (issue 17).

:class:`ThreadedAsyncStore` gives the awaitable API of :class:`~sentinel.store.aio.AsyncStore`
over a synchronous :class:`~sentinel.store.postgres.PgStore`: each operation runs on a worker
thread (the store is thread-safe), so the guard's async approval path works on PostgreSQL.
:class:`PollingWatcher` resolves a waiting call's future by re-reading its row every
``interval`` seconds (the row is the truth; there is no wake-up notice here).

:mod:`sentinel.store.location` uses these only while ``sentinel.store.pgaio`` /
``sentinel.store.pgwatch`` are not available.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from sentinel.errors import RequestNotFound, StoreError
from sentinel.store.models import PENDING, RequestRecord

#: Seconds between two reads of the watched rows.
POLL_INTERVAL = 0.1


class ThreadedAsyncStore:
    """The async store API over a synchronous store: ``await store.op(...)`` runs ``op`` on a
    worker thread. Attributes that are not operations (``path``, ``expiry_grace`` …) are the
    synchronous store's."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.sync, name)
        if name.startswith("_") or not callable(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._closed:
                raise StoreError(f"store for {self.sync.path} is closed")
            return await asyncio.to_thread(value, *args, **kwargs)

        call.__name__ = name
        return call

    @property
    def closed(self) -> bool:
        return self._closed or bool(self.sync.closed)

    async def close(self) -> None:
        self.close_blocking()

    def close_blocking(self) -> None:
        """Close the underlying store (idempotent)."""
        self._closed = True
        self.sync.close()

    async def __aenter__(self) -> ThreadedAsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_blocking()

    def __repr__(self) -> str:
        return f"ThreadedAsyncStore({self.sync!r})"


class PollingWatcher:
    """Resolves futures when watched requests leave ``pending``, by polling their rows (the
    interface of :class:`~sentinel.store.watcher.Watcher`). One per process per database
    (:meth:`for_url`); a read that fails is retried at the next poll (the caller's deadline
    decides)."""

    _instances: ClassVar[dict[str, PollingWatcher]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str, *, interval: float = POLL_INTERVAL) -> None:
        self.url = url
        self.interval = float(interval)
        self._futures: dict[str, Future[RequestRecord]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._store: Any = None

    @classmethod
    def for_url(cls, url: str) -> PollingWatcher:
        """The shared watcher of this process for the database at ``url``."""
        with cls._instances_lock:
            inst = cls._instances.get(url)
            if inst is None or inst._stopped or inst._pid != os.getpid():
                inst = cls(url)
                cls._instances[url] = inst
            return inst

    @classmethod
    def stop_shared(cls, chosen: Callable[[str], bool]) -> None:
        """Stop and forget the shared watchers whose URL ``chosen`` accepts."""
        with cls._instances_lock:
            watchers = [cls._instances.pop(k) for k in list(cls._instances) if chosen(k)]
        for watcher in watchers:
            watcher.stop()

    def watch(self, request_id: str) -> Future[RequestRecord]:
        """A future resolved with the request once it is no longer pending."""
        with self._cond:
            if self._stopped:
                raise StoreError("decision watcher is stopped")
            fut = self._futures.get(request_id)
            if fut is None or fut.done():
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._futures[request_id] = fut
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sentinel-pg-poll", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return fut

    def unwatch(self, request_id: str) -> None:
        """Stop watching ``request_id``."""
        with self._cond:
            self._futures.pop(request_id, None)

    @property
    def watching(self) -> int:
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
                fut.set_exception(StoreError("decision watcher stopped"))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._store is not None:
            self._store.close()

    def _run(self) -> None:
        from sentinel.store.postgres import PgStore

        while True:
            with self._cond:
                while not self._futures and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                ids = list(self._futures)
            try:
                if self._store is None or self._store.closed:
                    self._store = PgStore(self.url, create=False)
                for request_id in ids:
                    self._check(request_id)
            except StoreError:
                pass  # unreachable for now: the next poll tries again
            with self._cond:
                if not self._stopped:
                    self._cond.wait(self.interval)

    def _check(self, request_id: str) -> None:
        try:
            record = self._store.get(request_id)
        except RequestNotFound as exc:
            self._resolve(request_id, error=exc)
            return
        if record.status != PENDING:
            self._resolve(request_id, record=record)

    def _resolve(
        self, request_id: str, *, record: RequestRecord | None = None, error: Exception | None = None
    ) -> None:
        with self._cond:
            fut = self._futures.pop(request_id, None)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(record)  # type: ignore[arg-type]
