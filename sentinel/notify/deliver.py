"""Background delivery of notifications: a small thread pool, retries with back-off, failures
recorded as ``notification_failed`` events. Submitting never blocks and never raises."""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sentinel.approval.webhook import ACTION_HEADER, dumps, signed_headers
from sentinel.notify.messages import (
    escalated_payload,
    generic_payload,
    slack_escalated_payload,
    slack_payload,
)
from sentinel.notify.settings import NotifySettings
from sentinel.store.models import RequestRecord

log = logging.getLogger("sentinel.notify")

#: Deliveries waiting or running at most; beyond it new ones are dropped (and logged).
MAX_BACKLOG = 1000
EVENT_HEADER = "X-Sentinel-Event"
#: What a notification announces (the ``event`` of the JSON document and the X-Sentinel-Event
#: header): a new pending request, or one nobody decided within its rule's ``escalate_after``.
KINDS = ("approval_requested", "approval_escalated")


@dataclass(frozen=True)
class Delivery:
    """One message to one target."""

    target: str  # "webhook" | "slack"
    url: str
    body: bytes
    headers: dict[str, str]
    record: RequestRecord
    attempts: int
    timeout: float
    backoff: float
    kind: str = "approval_requested"  # one of KINDS


def build_deliveries(
    settings: NotifySettings, rec: RequestRecord, kind: str = "approval_requested"
) -> list[Delivery]:
    """The messages for one new pending request (or, ``kind="approval_escalated"``, one just
    escalated) under ``settings``."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}: one of {', '.join(KINDS)}")
    generic, slack = (
        (generic_payload, slack_payload)
        if kind == "approval_requested"
        else (escalated_payload, slack_escalated_payload)
    )
    out: list[Delivery] = []
    common = {
        "attempts": settings.attempts,
        "timeout": settings.timeout,
        "backoff": settings.backoff,
        "kind": kind,
    }
    if settings.webhook_url:
        body = dumps(generic(rec, settings.decide_url))
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: kind,
            ACTION_HEADER: rec.id,
            **signed_headers(settings.secret, body),
        }
        out.append(Delivery("webhook", settings.webhook_url, body, headers, rec, **common))  # type: ignore[arg-type]
    if settings.slack_url:
        body = dumps(slack(rec, settings.decide_url))
        headers = {"Content-Type": "application/json"}
        out.append(Delivery("slack", settings.slack_url, body, headers, rec, **common))  # type: ignore[arg-type]
    return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 30.0))
    except ValueError:
        return None


def send_with_retries(
    delivery: Delivery, client: Any, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Deliver one message. Returns None on success, else why it failed for good."""
    import httpx

    last = "no attempt made"
    for attempt in range(1, delivery.attempts + 1):
        pause = delivery.backoff * 2.0 ** (attempt - 1) * (0.75 + random.random() * 0.5)
        try:
            response = client.post(
                delivery.url,
                content=delivery.body,
                headers=delivery.headers,
                timeout=delivery.timeout,
            )
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"[:300]
        else:
            code = response.status_code
            if 200 <= code < 300:
                return None
            last = f"HTTP {code}"
            if 400 <= code < 500 and code not in (408, 425, 429):
                return f"{last} (not retried)"
            pause = _retry_after(response.headers.get("retry-after")) or pause
        if attempt < delivery.attempts:
            sleep(pause)
    return f"{last} after {delivery.attempts} attempts"


class Notifier:
    """Delivers notifications on background daemon threads. One per process (:meth:`shared`).

    Daemon threads, not an executor: a process that finished its work must be able to exit even
    when a notification target is down (an executor would keep it alive through every retry);
    at exit, queued deliveries get a bounded grace period (:meth:`flush`).
    """

    _instance: Notifier | None = None
    _lock = threading.Lock()

    def __init__(self, workers: int = 4) -> None:
        self._queue: queue.SimpleQueue[tuple[Delivery, Callable[[list[dict[str, Any]]], Any]]] = (
            queue.SimpleQueue()
        )
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()
        self.dropped = 0
        for n in range(workers):
            threading.Thread(target=self._work, name=f"sentinel-notify-{n}", daemon=True).start()

    @classmethod
    def shared(cls) -> Notifier:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
                atexit.register(cls._instance.flush, 3.0)
            return cls._instance

    def _http(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(follow_redirects=False)
            return self._client

    def submit(
        self, deliveries: list[Delivery], record_failure: Callable[[list[dict[str, Any]]], Any]
    ) -> bool:
        """Queue deliveries; returns at once. False when the backlog is full (they are dropped)."""
        with self._idle:
            if self._pending + len(deliveries) > MAX_BACKLOG:
                self.dropped += len(deliveries)
                log.warning(
                    "sentinel notify: backlog full, %d notification(s) dropped", len(deliveries)
                )
                return False
            self._pending += len(deliveries)
        for delivery in deliveries:
            self._queue.put((delivery, record_failure))
        return True

    def _work(self) -> None:
        while True:
            delivery, record_failure = self._queue.get()
            try:
                self._run(delivery, record_failure)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _run(
        self, delivery: Delivery, record_failure: Callable[[list[dict[str, Any]]], Any]
    ) -> None:
        try:
            failure = send_with_retries(delivery, self._http())
        except Exception as exc:  # a bug here must not kill the worker thread silently
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None:
            return
        rec = delivery.record
        host = urlsplit(delivery.url).hostname or "?"
        log.warning(
            "sentinel notify: %s notification for %s failed: %s", delivery.target, rec.id, failure
        )
        event = {
            "kind": "notification_failed",
            "request_id": rec.id,
            "agent_id": rec.agent_id,
            "function": rec.function,
            "digest": rec.digest,
            "rule_id": rec.rule_id,
            "reason": f"{delivery.target} notification failed: {failure}",
            # The URL itself is a secret for Slack webhooks: record only its host.
            "data": {
                "target": delivery.target,
                "host": host,
                "attempts": delivery.attempts,
                "error": failure,
                "notification": delivery.kind,
            },
        }
        try:
            record_failure([event])
        except Exception as exc:
            log.warning("sentinel notify: could not record the failure: %s", exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery finished (or ``timeout``); True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)


__all__ = ["KINDS", "Delivery", "Notifier", "build_deliveries", "send_with_retries"]
