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
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentinel.arguments import CallArguments
from sentinel.redact import Redactor, safe_text

#: ``GuardEvent.result`` of an event without a return value (None is a return value).
NO_RESULT: Any = type("NoResult", (), {"__repr__": lambda self: "NO_RESULT"})()

FLUSH_INTERVAL = 0.05
MAX_PENDING = 100_000
# The writer thread gives the GIL back every this many queue items while it builds a batch: during
# a burst of calls it then falls behind and catches up in the gaps, instead of taking turns with
# the calling threads at the interpreter's 5 ms switch interval (which doubled their latency).
_YIELD_EVERY = 64


#: Ints this large cannot be printed by Python (4300-digit limit): the general path handles them.
_BIG = 10**4000
# Short printable text with no ``=`` or ``:`` cannot hold a secret (``pw=…`` can, however short).
_SHORT_SAFE = re.compile(r"[\x20-\x39\x3b-\x3c\x3e-\x7e]{0,11}\Z")
_SHARED = (
    "request_id",
    "agent_id",
    "function",
    "digest",
    "policy_version",
    "rule_id",
    "value_at_risk",
)


def summarize(value: Any, redactor: Redactor, limit: int = 200) -> str:
    """A short, redacted, single-line summary of a return value or exception message."""
    cls = value.__class__
    if (cls is int and -_BIG < value < _BIG) or cls is bool or cls is float or value is None:
        text = repr(value)
        if len(text) < 12:  # too short to hold a key or a card number: nothing to mask
            return text
    elif cls is str and _SHORT_SAFE.match(value):
        return value  # short printable text: nothing to mask or escape
    if isinstance(value, (dict, list, tuple)):
        # By structure first, as arguments are: a name/value pair list
        # ([{"name": "X-Api-Key", "value": …}]) is not recognisable once printed.
        try:
            value = redactor.redact(value)
        except Exception:  # nested too deep, a hostile key: the text pass below still runs
            pass
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as exc:  # hostile __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return safe_text(redactor.redact(text), limit)


@dataclass(slots=True, eq=False)
class GuardEvent:
    """An event the guard hands the sink: the stored columns as typed fields, plus the three
    things the writer thread turns into stored form off the caller's thread —

    * ``arguments``: the call's :class:`~sentinel.arguments.CallArguments` (its digest becomes
      ``digest`` unless one is set, its redacted form ``data["args"]``);
    * ``result``: a return value (summarised and redacted into ``data["result"]``);
    * ``error``: an exception's text (summarised and redacted into ``data["error"]``);

    ``redactor`` is the one of the policy the call was decided under (a reload can change
    ``redact_keys``), ``None`` for the sink's own. ``outcome_of`` is the allowed record (see
    :func:`allowed_record`) whose outcome this event is: the call's fields come from it.
    """

    kind: str
    ts: float
    function: str | None = None
    agent_id: str | None = None
    request_id: str | None = None
    digest: str | None = None
    policy_version: str | None = None
    rule_id: str | None = None
    value_at_risk: float | None = None
    reason: str | None = None
    data: dict[str, Any] | None = None
    arguments: CallArguments | None = None
    result: Any = NO_RESULT
    error: str | None = None
    redactor: Redactor | None = None
    outcome_of: list[Any] | None = None


def finalize_event(event: GuardEvent, redactor: Redactor) -> dict[str, Any]:
    """The stored form of ``event`` (an event dict for :meth:`Store.append_events`)."""
    redactor = event.redactor or redactor
    out: dict[str, Any] = {
        "kind": event.kind,
        "ts": event.ts,
        "function": event.function,
        "agent_id": event.agent_id,
        "request_id": event.request_id,
        "digest": event.digest,
        "policy_version": event.policy_version,
        "rule_id": event.rule_id,
        "value_at_risk": event.value_at_risk,
        "reason": event.reason,
    }
    parent = event.outcome_of
    if parent is not None:
        # The outcome of a call whose `allowed` event was queued (and finalised) before it.
        done = parent[_DONE]
        for key in _SHARED:
            if out[key] is None:
                out[key] = done.get(key)
    data = dict(event.data) if event.data else {}
    args = event.arguments
    if args is not None:
        if out["digest"] is None:
            out["digest"] = args.digest
        data.setdefault("args", args.redacted(redactor))
    if event.error is not None:
        data["error"] = summarize(event.error, redactor)
    if event.result is not NO_RESULT:
        data["result"] = summarize(event.result, redactor)
    out["data"] = data
    return out


# The caller's side of an audited allowed call hands the sink raw fields, not event objects: the
# events are built (and everything else is done) on the writer thread, from exactly these fields,
# so the stored events and their hashes are the same as for the GuardEvent form. Two queue items
# per call, in the order things happened: the `allowed` record before the function runs, its
# outcome after.
#: Index of the finalised `allowed` event in an allowed record (set on the writer thread).
_DONE = 9


def allowed_record(
    ts: float,
    function: str,
    agent_id: str | None,
    rule_id: str | None,
    policy_version: str,
    value_at_risk: float | None,
    arguments: CallArguments,
    redactor: Redactor,
    data: dict[str, Any] | None,
) -> list[Any]:
    """The queue item for an ``allowed`` event: its fields as a list (cheap to make on the
    caller's thread), turned into the event on the writer thread. Its outcome is queued later as
    ``(record, ts, seconds, result, redactor)`` (see :func:`executed_record`)."""
    return [ts, function, agent_id, rule_id, policy_version, value_at_risk, arguments, redactor, data, None]


def executed_record(
    allowed: list[Any], ts: float, seconds: float, result: Any, redactor: Redactor
) -> tuple[Any, ...]:
    """The queue item for the ``executed`` outcome of the call ``allowed`` announced (it takes
    the call's fields — digest, rule, agent — from that event when both are finalised)."""
    return (allowed, ts, seconds, result, redactor)


def _expand(item: Any, redactor: Redactor) -> dict[str, Any]:
    """The stored event for one queue item: a GuardEvent, an allowed record, its outcome, or an
    event already in stored form (put back after a failed write). The two record forms are
    built here directly — the same dicts :func:`finalize_event` gives for the GuardEvent form
    (a test holds them equal) — because the writer thread's time is taken from the callers'."""
    cls = item.__class__
    if cls is GuardEvent:
        return finalize_event(item, redactor)
    if cls is dict:
        return item
    if cls is list:
        ts, function, agent_id, rule_id, version, var, args, red, data, _ = item
        data = dict(data) if data else {}
        data["args"] = args.redacted(red or redactor)  # before digest: one pass gives both
        event = {
            "kind": "allowed",
            "ts": ts,
            "function": function,
            "agent_id": agent_id,
            "request_id": None,
            "digest": args.digest,
            "policy_version": version,
            "rule_id": rule_id,
            "value_at_risk": var,
            "reason": None,
            "data": data,
        }
        item[_DONE] = event
        return event
    allowed, ts, seconds, result, red = item
    done = allowed[_DONE]
    return {
        "kind": "executed",
        "ts": ts,
        "function": done["function"],
        "agent_id": done["agent_id"],
        "request_id": done["request_id"],
        "digest": done["digest"],
        "policy_version": done["policy_version"],
        "rule_id": done["rule_id"],
        "value_at_risk": done["value_at_risk"],
        "reason": None,
        "data": {
            "duration_ms": round(seconds * 1000.0, 3),
            "result": summarize(result, red or redactor),
        },
    }


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
        # Event dicts, allowed records and outcome tuples (see _expand), in order.
        self._queue: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._write_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.failure: str | None = None
        self.written = 0
        #: True once a batch was committed: the store is known to be writable.
        self.verified = False
        # After-commit work (JSONL mirror, anchors): see attach_audit.
        self._store: Any = None
        self._mirrors: list[Any] = []
        self._anchorer: Any = None
        self._hooks_failed = False
        self._anchor_warning: str | None = None
        atexit.register(self.close)

    def attach_audit(
        self,
        store: Any,
        *,
        mirror_dir: str | os.PathLike[str] | None = None,
        signer: Any = None,
        anchor_every: int = 1000,
        anchor_seconds: float = 60.0,
        anchor_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """After every committed batch, mirror the table to JSONL files in ``mirror_dir`` (catching
        up now, after a crash) and anchor the chain head with ``signer`` every ``anchor_every``
        events / ``anchor_seconds``. Idempotent per folder. A mirror folder that cannot be written
        sets :attr:`failure` (it is retried by every flush)."""
        from pathlib import Path

        from sentinel.audit.anchors import Anchorer
        from sentinel.audit.mirror import JsonlMirror

        with self._write_lock:
            self._store = store
            if mirror_dir is not None:
                folder = Path(mirror_dir).absolute()
                if all(m.directory != folder for m in self._mirrors):
                    self._mirrors.append(JsonlMirror(folder))
                    # Catch up now (after a crash, the files may be behind). A folder that cannot
                    # be written becomes this sink's failure: the guard refuses calls under
                    # fail_mode="secure" until it can.
                    self._after_commit(0)
            if signer is not None and self._anchorer is None:
                self._anchorer = Anchorer(
                    signer,
                    every_events=anchor_every,
                    every_seconds=anchor_seconds,
                    directory=None if anchor_dir is None else Path(anchor_dir),
                )

    # -- public -------------------------------------------------------------------------------

    def emit(self, event: Any) -> None:
        """Record ``event`` (an event dict, or a record made by :func:`allowed_record` /
        :func:`executed_record`); batched unless the sink is synchronous."""
        if self.sync:
            self.emit_now(event)
            return
        if len(self._queue) >= MAX_PENDING:
            # Back-pressure instead of unbounded memory or dropping: write on the caller.
            self.flush()
        self._queue.append(event)
        if self._thread is None:
            self._start()

    def emit_before(self, event: dict[str, Any] | list[Any]) -> None:
        """Record ``event`` about something that is about to happen (an allowed call about to
        run). Written before returning when the sink is synchronous or has not yet written
        successfully in this process — so a database that is read-only, full or corrupt is
        found before the first call runs — and queued otherwise. Raises when it cannot be
        written, and then the event is withdrawn: the thing it announces will not happen."""
        if not self.sync and self.verified and self.failure is None:
            self.emit(event)
            return
        with self._write_lock:
            try:
                self.emit_now(event)
            except BaseException:
                done = event[_DONE] if event.__class__ is list else None
                for i, queued in enumerate(self._queue):
                    if queued is event or (done is not None and queued is done):
                        del self._queue[i]
                        break
                raise

    def emit_now(self, event: Any) -> None:
        """Write ``event`` before returning (after anything already queued). Raises on failure;
        the event then stays queued and is written by a later flush (never dropped)."""
        with self._write_lock:
            self._queue.append(event)
            self.flush()

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
            elif self._hooks_failed:
                self._after_commit(0, strict=True)  # the mirror failed before: retry it now

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: nothing more is written through this sink."""
        return self._closed

    def close(self) -> None:
        """Flush and stop the background thread (also runs at interpreter exit)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._store is not None and self._store.closed and not self._queue:
            return  # its owner closed the store first, and nothing is left to write
        try:
            self.flush()
            if self._store is not None:
                # Events the store wrote itself since the last batch (a denial, an expiry) reach
                # the mirror and the anchor too.
                self._after_commit(0, strict=True)
            if self._anchorer is not None and self._store is not None:
                self._anchorer.after_commit(self._store, 0, force=True)
        except Exception as exc:
            # At exit there is nobody left to raise to, so it is said: an exit anchor missing in
            # silence would only show up later as an unanchored tail in `sentinel audit verify`.
            self.failure = f"{type(exc).__name__}: {exc}"
            logging.getLogger("sentinel").warning(
                "audit log not fully closed: %s", self.failure
            )

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
        yielding = threading.current_thread() is self._thread
        n = 0
        while True:
            try:
                batch.append(_expand(pop(), self._redactor))
            except IndexError:
                return batch
            n += 1
            if yielding and not n % _YIELD_EVERY:
                time.sleep(0)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        rows = None
        try:
            if self._store is not None:
                # Attached: write straight to the store and keep the stored rows for the mirror
                # (no records built, no re-reading).
                rows = self._store.append_events(batch, records=False)
            else:
                self._writer(batch)
        except Exception as exc:
            self.failure = f"audit log unavailable: {type(exc).__name__}: {exc}"
            raise
        self.written += len(batch)
        self.verified = True
        self._after_commit(len(batch), rows=rows)

    def _after_commit(
        self, n_events: int, *, strict: bool = False, rows: list[Any] | None = None
    ) -> None:
        """Mirror and anchor what was just committed. The events are safe in the table either
        way; a failure here is remembered (``failure``) so the guard can refuse further calls,
        and retried by the next flush (``strict`` raises it)."""
        if self._store is None:
            self.failure = None
            return
        try:
            for mirror in self._mirrors:
                mirror.catch_up(self._store, rows)
        except Exception as exc:
            self._hooks_failed = True
            self.failure = f"audit mirror unavailable: {type(exc).__name__}: {exc}"
            if strict:
                raise
            return
        self._hooks_failed = False
        self.failure = None
        if self._anchorer is not None:
            try:
                self._anchorer.after_commit(self._store, n_events)
            except Exception as exc:
                # Every event is committed (and mirrored); only the periodic anchor is missing, so
                # calls go on. Said once per distinct problem; `sentinel audit verify` shows the
                # unanchored tail.
                message = f"could not anchor the audit chain: {type(exc).__name__}: {exc}"
                if message != self._anchor_warning:
                    self._anchor_warning = message
                    logging.getLogger("sentinel").warning(message)

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
