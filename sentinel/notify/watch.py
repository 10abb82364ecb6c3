"""Notify for every new pending request in a database, whoever submitted it (and for every
escalation its waiting call recorded).

Used by ``sentinel serve --notify-all``: notification settings (a Slack URL is a secret) then live
on one server instead of on every agent machine. New requests are found through the audit log's
``approval_requested`` events (newest first, by sequence number), so the cost does not grow with
the size of the backlog; escalations through the ``escalated`` events in the same pass.
"""

from __future__ import annotations

import logging
from typing import Any

from sentinel.errors import RequestNotFound
from sentinel.notify import notify_escalated, notify_pending
from sentinel.store.models import PENDING, HistoryFilter

log = logging.getLogger("sentinel.notify")

_REQUESTED = HistoryFilter(kinds=("approval_requested", "escalated"))


class PendingWatcher:
    """Remembers the last ``approval_requested`` / ``escalated`` event it saw; :meth:`poll`
    notifies for newer ones whose request is still pending. Requests already waiting (or
    escalated) at start are not re-announced."""

    def __init__(self, store: Any, config: Any = None, page: int = 200) -> None:
        self.store = store
        self.config = config
        self.page = page
        latest = store.history(_REQUESTED, limit=1)
        self.last_seq: int = latest[0].seq if latest else 0
        self._version: int | None = None

    def poll(self) -> int:
        """Notify for requests submitted or escalated since the last poll. Returns how many
        notifications were queued."""
        version = self.store.data_version()
        if version == self._version:
            return 0
        self._version = version
        fresh = []
        before: int | None = None
        while True:
            page = self.store.history(_REQUESTED, before_seq=before, limit=self.page)
            newer = [e for e in page if e.seq > self.last_seq]
            fresh.extend(newer)
            if len(newer) < len(page) or len(page) < self.page:
                break
            before = page[-1].seq
        if not fresh:
            return 0
        self.last_seq = max(e.seq for e in fresh)
        sent = 0
        for event in sorted(fresh, key=lambda e: e.seq):
            if not event.request_id:
                continue
            try:
                record = self.store.get(event.request_id)
            except RequestNotFound:
                continue
            if record.status != PENDING:
                continue
            announce = notify_escalated if event.kind == "escalated" else notify_pending
            if announce(self.config, record, self.store):
                sent += 1
        return sent


__all__ = ["PendingWatcher"]
