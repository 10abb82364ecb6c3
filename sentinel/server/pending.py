"""The pending list the API serves, kept up to date from the audit log instead of re-read.

Reading and encoding 10,000 pending rows costs about 0.3 s, far too much for something a dashboard
polls. Every change to a request appends an event in the same transaction (``approval_requested``
when it is stored, ``voted`` / ``escalated`` while it waits; ``approved`` / ``denied`` /
``expired`` / ``cancelled`` when it leaves the queue), so after one full load the index replays only the events newer than the last one it saw:
a new request costs one ``get``, a decision one dictionary delete. Each row is kept as its encoded
JSON, so a response is a join of ready bytes. Requests whose time ran out but that nobody marked
expired yet are filtered out at serve time.
"""

from __future__ import annotations

import bisect
import json
import threading
from typing import Any

from sentinel.errors import RequestNotFound
from sentinel.server.payload import pending_json
from sentinel.store.models import PENDING, HistoryFilter, RequestRecord

#: Events that (re)state a pending row: it is read again. (A vote short of the quorum and an
#: escalation change what the listing shows of a request that stays pending.)
_RESTATE = ("approval_requested", "voted", "escalated")
_KINDS = (*_RESTATE, "approved", "denied", "expired", "cancelled")
_CHANGES = HistoryFilter(kinds=_KINDS)
#: Beyond this many new events since the last look, a full reload is cheaper than a replay.
MAX_REPLAY = 5_000
_PAGE = 500
_ALL = 1 << 40


def _encode(rec: RequestRecord) -> bytes:
    return json.dumps(pending_json(rec), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class PendingIndex:
    """Pending requests, oldest first, as encoded JSON; thread-safe."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version: int | None = None
        self._seq = 0
        # id → (created_at, expires_at, encoded row)
        self._rows: dict[str, tuple[float, float, bytes]] = {}
        self._order: list[tuple[float, str]] = []  # (created_at, id), sorted like list_pending
        self.reloads = 0

    # -- keeping up -------------------------------------------------------------------------

    def _latest_seq(self) -> int:
        last = self.store.history(None, limit=1)
        return int(last[0].seq) if last else 0

    def _reload(self) -> None:
        # The sequence number is read first: an event committed while the rows are read is
        # replayed next time, and replaying is idempotent.
        self._seq = self._latest_seq()
        self._rows.clear()
        self._order.clear()
        for rec in self.store.list_pending(_ALL):
            self._put(rec)
        self.reloads += 1

    def _put(self, rec: RequestRecord) -> None:
        if rec.id in self._rows:
            self._drop(rec.id)
        self._rows[rec.id] = (rec.created_at, rec.expires_at, _encode(rec))
        bisect.insort(self._order, (rec.created_at, rec.id))

    def _drop(self, request_id: str) -> None:
        row = self._rows.pop(request_id, None)
        if row is None:
            return
        key = (row[0], request_id)
        i = bisect.bisect_left(self._order, key)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]

    def _new_events(self) -> list[Any] | None:
        """Change events newer than the last seen, oldest first; None when too many."""
        out: list[Any] = []
        before: int | None = None
        size = 16  # most refreshes follow one or two changes: read a small page first
        while True:
            page = self.store.history(_CHANGES, before_seq=before, limit=size)
            newer = [e for e in page if e.seq > self._seq]
            out.extend(newer)
            if len(out) > MAX_REPLAY:
                return None
            if len(newer) < len(page) or len(page) < size:
                break
            before = page[-1].seq
            size = _PAGE
        out.sort(key=lambda e: e.seq)
        return out

    def refresh(self) -> None:
        """Bring the index up to date with the database (cheap when nothing changed)."""
        version = self.store.data_version()
        if version == self._version:
            return
        first = self._version is None
        self._version = version
        events = None if first else self._new_events()
        if events is None:
            self._reload()
            return
        for event in events:
            rid = event.request_id
            if not rid:
                continue
            if event.kind in _RESTATE:
                try:
                    rec = self.store.get(rid)
                except RequestNotFound:
                    continue
                if rec.status == PENDING and rec.id == rid:
                    self._put(rec)
                else:
                    self._drop(rid)
            else:
                self._drop(rid)
            self._seq = max(self._seq, int(event.seq))

    # -- serving ----------------------------------------------------------------------------

    def body(self, limit: int, now: float) -> bytes:
        """JSON array of up to ``limit`` live pending requests, oldest first."""
        with self._lock:
            self.refresh()
            parts: list[bytes] = []
            for _, rid in self._order:
                _, expires_at, row = self._rows[rid]
                if expires_at > now:
                    parts.append(row)
                    if len(parts) >= limit:
                        break
        return b"[" + b",".join(parts) + b"]"


__all__ = ["MAX_REPLAY", "PendingIndex"]
