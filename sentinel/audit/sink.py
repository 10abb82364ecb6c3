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
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from sentinel.normalize import digest, to_jsonable
from sentinel.redact import MASK, Redactor, redact_string, safe_text

_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

FLUSH_INTERVAL = 0.05
MAX_PENDING = 100_000


_PLAIN = frozenset((str, int, bool, type(None)))
_SHORT_SAFE = re.compile(r"[\x20-\x7e]{0,11}\Z")
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
    if cls is int or cls is bool or cls is float or value is None:
        text = repr(value)
        if len(text) < 12:  # too short to hold a key or a card number: nothing to mask
            return text
    elif cls is str and _SHORT_SAFE.match(value):
        return value  # short printable text: nothing to mask or escape
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as exc:  # hostile __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return safe_text(redactor.redact(text), limit)


def _plain_args(raw: dict[str, Any], redactor: Redactor) -> tuple[str, dict[str, Any]] | None:
    """Digest and redacted copy of arguments that are all plain scalars (the common case), without
    the general normalisation; None when any value needs it. Same results as the general path."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        cls = value.__class__
        if cls not in _PLAIN:
            if cls is not float or value - value != 0.0:  # NaN/inf are normalised to strings
                return None
        if key.__class__ is not str:
            return None
        if redactor.is_secret_key(key) and value is not None and value != "":
            out[key] = MASK
        elif cls is str and len(value) >= 12:
            out[key] = redact_string(value)
        else:
            out[key] = value
    text = _CANONICAL(raw)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), out


def finalize_event(event: dict[str, Any], redactor: Redactor) -> list[dict[str, Any]]:
    """Turn a raw event into stored events.

    A raw event may hold live objects: ``raw_params`` (the call's arguments: normalised, digested
    and redacted here) and ``then`` (a follow-up event, such as the ``executed`` outcome of an
    allowed call, which shares the call's fields). ``raw_result`` becomes a short summary.
    The digest is over the real arguments; only the redacted copy is kept. ``_redactor`` (a
    :class:`Redactor`) overrides the sink's redactor for this event and its follow-up.
    """
    # A guard may name the redactor of the policy in force for this call (hot reload can change
    # redact_keys; guards sharing this sink may have different policies).
    redactor = event.pop("_redactor", None) or redactor
    follow = event.pop("then", None)
    raw = event.pop("raw_params", None)
    data = event.get("data")
    if data is None:
        data = event["data"] = {}
    if raw is not None:
        fast = _plain_args(raw, redactor) if raw.__class__ is dict else None
        if fast is not None:
            if "digest" not in event:
                event["digest"] = fast[0]
            if "args" not in data:
                data["args"] = fast[1]
        else:
            params = to_jsonable(raw)
            event.setdefault("digest", digest(params))
            data.setdefault("args", redactor.redact(params))
    if "raw_error" in data:
        data["error"] = summarize(data.pop("raw_error"), redactor)
    if "raw_result" in event:
        data["result"] = summarize(event.pop("raw_result"), redactor)
    if follow is None:
        return [event]
    for key in _SHARED:
        if key not in follow:
            follow[key] = event.get(key)
    if "_redactor" not in follow:
        follow["_redactor"] = redactor
    out = [event]
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
            if self._store is not None:
                # Events the store wrote itself since the last batch (a denial, an expiry) reach
                # the mirror and the anchor too.
                self._after_commit(0, strict=True)
            if self._anchorer is not None and self._store is not None:
                self._anchorer.after_commit(self._store, 0, force=True)
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
