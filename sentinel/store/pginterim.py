"""Interim asynchronous access to PostgreSQL, until the native async store lands (issue 17).

:class:`ThreadedAsyncStore` gives the awaitable API of :class:`~sentinel.store.aio.AsyncStore`
over a synchronous :class:`~sentinel.store.postgres.PgStore`: each operation runs on a worker
thread (the store is thread-safe), so the guard's async approval path works on PostgreSQL.
:mod:`sentinel.store.location` uses it only while ``sentinel.store.pgaio`` is not available.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sentinel.errors import StoreError

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
