"""Tell people when a call waits for them: a signed JSON webhook and a Slack-compatible message
for every new pending request (and again, "escalated to …", for one nobody decided within its
rule's ``escalate_after``), delivered in the background (never delaying the protected call),
retried with back-off, failures recorded as ``notification_failed`` events.

The one entry point is :func:`notify_pending`, called right after a request is stored::

    record = store.submit(new)
    notify_pending(config, record, store)   # returns at once

Configuration: ``SENTINEL_NOTIFY_WEBHOOK``, ``SENTINEL_NOTIFY_SLACK``, ``SENTINEL_NOTIFY_SECRET``,
``SENTINEL_NOTIFY_DECIDE_URL`` (see :data:`sentinel.notify.settings.ENVIRONMENT`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sentinel.notify.settings import ENVIRONMENT, NotifySettings
from sentinel.store.models import RequestRecord

log = logging.getLogger("sentinel.notify")

_stores: dict[Any, Any] = {}
_stores_lock = threading.Lock()


def _event_writer(config: Any, store: Any) -> Any:
    """Where failure events go: the given store, else a store for ``config.db_path``."""
    if store is not None:
        return store.append_events
    from sentinel.store.location import open_store, parse_or_default

    given = getattr(config, "db", None) or getattr(config, "db_path", None)
    path = parse_or_default(given)

    def write(events: list[dict[str, Any]]) -> None:
        with _stores_lock:
            target = _stores.get(path)
            if target is None:
                target = _stores[path] = open_store(path)
        target.append_events(events)

    return write


def notify_pending(config: Any, record: RequestRecord, store: Any = None) -> bool:
    """Queue notifications for a new pending request and return at once.

    ``config`` may be a :class:`~sentinel.config.SentinelConfig` (``notify_*`` attributes win over
    the environment) or None. Returns True when something was queued. Never raises: a broken
    notification setup is logged, and the protected call goes on.
    """
    return _notify(config, record, store, "approval_requested")


def notify_escalated(config: Any, record: RequestRecord, store: Any = None) -> bool:
    """Queue "escalated to …" notifications for a request nobody decided within its rule's
    ``escalate_after`` (``record.escalated_to``; who may decide now from ``record.terms``), to
    the same targets as :func:`notify_pending`. Returns at once; never raises."""
    return _notify(config, record, store, "approval_escalated")


def _notify(config: Any, record: RequestRecord, store: Any, kind: str) -> bool:
    try:
        settings = NotifySettings.from_env(config)
        if not settings.enabled:
            return False
        from sentinel.notify.deliver import Notifier, build_deliveries

        return Notifier.shared().submit(
            build_deliveries(settings, record, kind), _event_writer(config, store)
        )
    except Exception as exc:
        log.warning("sentinel notify: notifications not sent: %s", exc)
        return False


__all__ = ["ENVIRONMENT", "NotifySettings", "notify_escalated", "notify_pending"]
