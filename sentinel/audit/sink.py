"""Getting events into the store without slowing allowed calls down.

Events about approvals are written by the store itself, in the same transaction as the state
change. Everything else the guard records (allowed, blocked, executed, failed, governance errors)
goes through an :class:`EventSink`:

* ``emit_now`` writes synchronously (blocks, errors: rare, and they must not be lost);
* ``emit`` queues the event for a background thread that commits batches at least every 50 ms and
  at interpreter exit. Heavy work (normalising arguments, the digest, redaction) happens on that
  thread, not on the caller's.

If the store cannot be written, events are kept (never dropped) and :attr:`EventSink.failure`
names the problem, so the guard can refuse further calls under ``fail_mode="secure"``.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from sentinel.normalize import digest, to_jsonable
from sentinel.redact import Redactor

FLUSH_INTERVAL = 0.05
MAX_PENDING = 100_000


def summarize(value: Any, redactor: Redactor, limit: int = 200) -> str:
    """A short, redacted, single-line summary of a return value or exception message."""
    from sentinel.redact import safe_text

    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as exc:  # hostile __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return safe_text(redactor.redact(text), limit)


def finalize_event(event: dict[str, Any], redactor: Redactor) -> list[dict[str, Any]]:
    """Turn a raw event into stored events.

    A raw event may hold live objects: ``raw_params`` (the call's arguments: normalised, digested
    and redacted here) and ``then`` (a follow-up event, such as the ``executed`` outcome of an
    allowed call, which shares the call's fields). ``raw_result`` becomes a short summary.
    """
    follow = event.pop("then", None)
    raw = event.pop("raw_params", None)
    data = event.setdefault("data", {})
    if raw is not None:
        params = to_jsonable(raw)
        event.setdefault("digest", digest(params))
        data.setdefault("args", redactor.redact(params))
    if "raw_error" in data:
        data["error"] = summarize(data.pop("raw_error"), redactor)
    if "raw_result" in event:
        data["result"] = summarize(event.pop("raw_result"), redactor)
    out = [event]
    if follow is not None:
        shared = {
            k: event.get(k)
            for k in (
                "request_id",
                "agent_id",
                "function",
                "digest",
                "policy_version",
                "rule_id",
                "value_at_risk",
            )
        }
        for key, value in shared.items():
            follow.setdefault(key, value)
        out.extend(finalize_event(follow, redactor))
    return out


class EventSink:
    """Writes guard events to the store, batched or synchronously."""

    def __init__(
        self,
        writer: Callable[[list[dict[str, Any]]], Any],
        *,
        redactor: Redactor | None = None,
        sync: bool = False,
    ) -> None:
        self._writer = writer
        self._redactor = redactor or Redactor()
        self.sync = sync
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._write_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.failure: str | None = None
        self.written = 0
        atexit.register(self.close)

    # -- public -------------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Record ``event``; batched unless the sink is synchronous."""
        if self.sync:
            self.emit_now(event)
            return
        if len(self._queue) >= MAX_PENDING:
            # Back-pressure instead of unbounded memory or dropping: write on the caller.
            self.flush()
        self._queue.append(event)
        if self._thread is None:
            self._start()

    def emit_now(self, event: dict[str, Any]) -> None:
        """Write ``event`` before returning (after anything already queued). Raises on failure."""
        with self._write_lock:
            self.flush()
            self._write(finalize_event(event, self._redactor))

    def flush(self) -> None:
        """Write everything queued so far. Raises the store's error if it cannot."""
        # One writer at a time: a flush returns only after everything queued before it has been
        # committed, including a batch the background thread was in the middle of writing.
        with self._write_lock:
            batch = self._drain()
            if batch:
                try:
                    self._write(batch)
                except Exception:
                    # Put them back in order: nothing is lost.
                    self._queue.extendleft(reversed(batch))
                    raise

    def close(self) -> None:
        """Flush and stop the background thread (also runs at interpreter exit)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        try:
            self.flush()
        except Exception as exc:  # at exit there is nobody left to raise to
            self.failure = f"{type(exc).__name__}: {exc}"

    # -- internals ----------------------------------------------------------------------------

    def _start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="sentinel-event-sink", daemon=True
                )
                self._thread.start()

    def _drain(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        pop = self._queue.popleft
        while True:
            try:
                batch.extend(finalize_event(pop(), self._redactor))
            except IndexError:
                return batch

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            self._writer(batch)
        except Exception as exc:
            self.failure = f"audit log unavailable: {type(exc).__name__}: {exc}"
            raise
        self.failure = None
        self.written += len(batch)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                self._cond.wait(FLUSH_INTERVAL)
            if not self._queue:
                continue
            try:
                self.flush()
            except Exception:
                time.sleep(0.5)  # store down: keep the events, retry later
