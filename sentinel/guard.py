"""The decision core. Every protected call, sync or async, decorated or wrapped by an
integration, goes through :class:`Guard`; the allow / block / approve logic exists only here.

The path of a call (``../shared/DESIGN.md``, "Decision semantics"):

1. **bind** the arguments to names (cached signature, see :mod:`sentinel.normalize`);
2. **evaluate** the policy to a verdict;
3. **escalate** with hooks (limits, anomaly scores) — only ever stricter;
4. **act**: run, raise, or write a pending request and wait for its decision;
5. **fail secure**: any error inside governance blocks the call (``fail_mode="secure"``) or lets
   it through and records that it did (``"safe"``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
    new_request_id,
)
from sentinel.audit.sink import EventSink
from sentinel.config import SentinelConfig
from sentinel.errors import (
    DecisionConflict,
    SentinelBlockedError,
    SentinelDeniedError,
    SentinelError,
    SentinelTimeoutError,
)
from sentinel.normalize import Binder, digest, to_jsonable
from sentinel.policy import Action, Verdict
from sentinel.redact import Redactor, safe_text

T = TypeVar("T")

_ALLOW = Action.ALLOW
_BLOCK = Action.BLOCK
_APPROVE = Action.REQUIRE_APPROVAL


# --- escalation hooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    """A hook's opinion about a call: an action (only stricter ones have any effect) and why."""

    action: Action
    reason: str
    source: str  # "anomaly", "limit:<rule id>", …
    risk_score: float | None = None
    explanation: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class GuardHook(Protocol):
    """Something that can make a verdict stricter (limits, anomaly detection) and learns from
    calls that actually ran."""

    def assess(
        self, function: str, params: Mapping[str, Any], agent_id: str | None, verdict: Verdict
    ) -> Escalation | None:
        """Return an escalation, or None. Raising is a governance error (fail_mode applies)."""

    def observe(
        self, function: str, params: Mapping[str, Any], agent_id: str | None, succeeded: bool
    ) -> None:
        """Called after an assessed call ran (``succeeded``: it returned without raising).
        Baselines learn only from calls that ran; limits count them."""

    def abandon(self, function: str, params: Mapping[str, Any], agent_id: str | None) -> None:
        """Called when an assessed call did not run (blocked, denied, expired, cancelled,
        governance error), so reservations can be released."""


class Decision(NamedTuple):
    """What the guard decided for one call, before acting on it. (A tuple: built on every call.)"""

    action: Action
    verdict: Verdict
    reason: str
    rule_id: str | None
    escalations: tuple[Escalation, ...] = ()

    @property
    def risk_score(self) -> float | None:
        scores = [e.risk_score for e in self.escalations if e.risk_score is not None]
        return max(scores) if scores else None

    @property
    def risk_explanation(self) -> str | None:
        parts = [e.explanation or e.reason for e in self.escalations]
        return "; ".join(parts) if parts else None


# --- the private event loop for sync callers --------------------------------------------------


class _LoopThread:
    """One daemon thread running an asyncio loop, used to run approval channels (async code) for
    synchronous callers — whether or not the caller's own thread has a loop running."""

    _instance: _LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="sentinel-approvals", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block the calling thread until it finishes. If the caller
        is interrupted (KeyboardInterrupt), the coroutine is cancelled and allowed to clean up."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                try:
                    future.result(timeout=5)
                except BaseException:
                    pass
            raise


# --- stores and sinks are per database, shared by every guard in the process ------------------

_stores: dict[Path, Any] = {}
_sinks: dict[tuple[Path, bool], EventSink] = {}
_shared_lock = threading.Lock()


def _store_for(path: Path) -> Any:
    from sentinel.store import Store

    key = Path(path).absolute()
    with _shared_lock:
        store = _stores.get(key)
        if store is None:
            store = Store(key)
            _stores[key] = store
        return store


def _watcher_for(path: Path) -> Any:
    from sentinel.store import Watcher

    return Watcher.for_path(Path(path).absolute())


# --- the guard -------------------------------------------------------------------------------------


class Guard:
    """Decides and runs protected calls for one :class:`SentinelConfig`."""

    def __init__(
        self,
        config: SentinelConfig,
        context_fn: Callable[..., Any] | None = None,
        *,
        hooks: list[GuardHook] | None = None,
    ) -> None:
        self.config = config
        self.context_fn = context_fn
        self._context_binder = _context_binder(context_fn)
        self.policy_source = config.policy_source()  # loads the rules now: errors surface early
        self.hooks: list[GuardHook] = list(hooks) if hooks is not None else _default_hooks(config)
        self._sink: EventSink | None = None
        self._redactor: Redactor | None = None
        self._redactor_version: str | None = None
        self.agent_id = config.agent_id
        #: Allowed calls (and their outcomes) are recorded when ``audit_log`` is on; blocks,
        #: approvals, errors and the outcome of approved calls are always recorded.
        self.record_allowed = bool(config.audit_log)

    # -- public entry points ------------------------------------------------------------------

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``func`` protected by this guard (sync or async, methods included)."""
        import functools

        binder = Binder(func)
        name = func.__name__
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                params = binder.bind(args, kwargs)
                if self._plainly_allowed(name, params):
                    return await func(*args, **kwargs)
                return await self.run_async(name, params, lambda: func(*args, **kwargs))

            async_wrapper.__signature__ = binder.signature  # type: ignore[attr-defined]
            async_wrapper.__sentinel_guard__ = self  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            params = binder.bind(args, kwargs)
            if self._plainly_allowed(name, params):
                return func(*args, **kwargs)
            return self.run_sync(name, params, lambda: func(*args, **kwargs))

        sync_wrapper.__signature__ = binder.signature  # type: ignore[attr-defined]
        sync_wrapper.__sentinel_guard__ = self  # type: ignore[attr-defined]
        return sync_wrapper

    def _plainly_allowed(self, function: str, params: Mapping[str, Any]) -> bool:
        """True when the policy allows the call outright and nothing needs recording or
        assessing: the common case, decided without building a Decision. Anything else —
        including an error while evaluating — goes the full way through run_sync/run_async,
        which evaluates again and handles errors by ``fail_mode``."""
        if self.hooks or self.record_allowed:
            return False
        try:
            verdict = self.policy_source.current.evaluate(function, params, self.agent_id)
        except Exception:
            return False
        return verdict.action is _ALLOW and not verdict.shadow

    def preview(self, function: str, params: Mapping[str, Any]) -> Decision:
        """What :meth:`decide` would say, leaving nothing behind: hooks that reserve something in
        ``assess`` (limits) are told at once that the call will not run."""
        decision = self.decide(function, params)
        for hook in self.hooks:
            try:
                hook.abandon(function, params, self.agent_id)
            except Exception as exc:
                _warn(f"{type(hook).__name__}.abandon failed: {exc}")
        return decision

    def decide(self, function: str, params: Mapping[str, Any]) -> Decision:
        """Evaluate the policy and the hooks for a call, without acting on it. Hooks may reserve
        capacity (limits) until the guard reports the outcome; use :meth:`preview` to only ask."""
        policy = self.policy_source.current
        verdict = policy.evaluate(function, params, self.agent_id)
        if not self.hooks:
            return Decision(verdict.action, verdict, verdict.reason, verdict.rule_id)
        action, reason, rule_id = verdict.action, verdict.reason, verdict.rule_id
        escalations: list[Escalation] = []
        for hook in self.hooks:
            esc = hook.assess(function, params, self.agent_id, verdict)
            if esc is None:
                continue
            escalations.append(esc)
            # Escalation only ever makes a verdict stricter; it never weakens a block.
            if esc.action.strictness > action.strictness:
                action, reason, rule_id = esc.action, esc.reason, esc.source
        return Decision(action, verdict, reason, rule_id, tuple(escalations))

    def _classify(self, function: str, params: dict[str, Any]) -> tuple[Decision, bool]:
        """Decide, raise for a block, and say whether an allowed call can take the fast path
        (nothing escalated, nothing to record)."""
        decision = self.decide(function, params)
        if decision.action is _ALLOW:
            fast = (
                not self.record_allowed and not decision.escalations and not decision.verdict.shadow
            )
            if not fast:
                self._check_sink()
            return decision, fast
        if decision.action is _BLOCK:
            raise self._block(function, params, decision)
        return decision, False

    def _stopped(self, function: str, params: dict[str, Any], exc: BaseException) -> None:
        """Governance ended without running the call: release what hooks hold, then re-raise a
        block or an interruption, or apply ``fail_mode`` to a governance error (returns only
        when the call may run under ``fail_mode="safe"``)."""
        if self.hooks:
            self._abandon(function, params, True)
        if isinstance(exc, SentinelBlockedError) or not isinstance(exc, Exception):
            raise exc
        self._governance_failure(function, params, exc)

    def run_sync(self, function: str, params: dict[str, Any], invoke: Callable[[], T]) -> T:
        """Govern one synchronous call: ``invoke()`` runs the real function."""
        record = None
        try:
            decision, fast = self._classify(function, params)
            if decision.action is _APPROVE:
                record = _LoopThread.get().run(self._approval(function, params, decision))
                self._check_binding(function, params, record)
        except BaseException as exc:
            self._stopped(function, params, exc)
            return self._execute_sync(function, params, invoke, None, None)
        # The function runs outside the try: its own exceptions are never governance errors.
        if fast and not self.hooks:
            return invoke()
        if fast:  # allowed, nothing to record; hooks still learn that it ran
            try:
                result = invoke()
            except BaseException:
                self._observe(function, params, False)
                raise
            self._observe(function, params, True)
            return result
        return self._execute_sync(function, params, invoke, decision, record)

    async def run_async(
        self, function: str, params: dict[str, Any], invoke: Callable[[], Awaitable[T]]
    ) -> T:
        """Govern one asynchronous call: ``await invoke()`` runs the real function."""
        record = None
        try:
            decision, fast = self._classify(function, params)
            if decision.action is _APPROVE:
                record = await self._approval(function, params, decision)
                self._check_binding(function, params, record)
        except BaseException as exc:
            self._stopped(function, params, exc)
            return await self._execute_async(function, params, invoke, None, None)
        if fast and not self.hooks:
            return await invoke()
        if fast:
            try:
                result = await invoke()
            except BaseException:
                self._observe(function, params, False)
                raise
            self._observe(function, params, True)
            return result
        return await self._execute_async(function, params, invoke, decision, record)

    def _observe(self, function: str, params: dict[str, Any], succeeded: bool) -> None:
        for hook in self.hooks:
            try:
                hook.observe(function, params, self.agent_id, succeeded)
            except Exception as exc:
                _warn(f"{type(hook).__name__}.observe failed: {exc}")

    # -- acting -------------------------------------------------------------------------------

    def _execute_sync(
        self,
        function: str,
        params: dict[str, Any],
        invoke: Callable[[], T],
        decision: Decision | None,
        record: Any,
    ) -> T:
        start = time.perf_counter()
        try:
            result = invoke()
        except BaseException as exc:
            self._record_outcome(function, params, decision, record, start, None, exc)
            raise
        self._record_outcome(function, params, decision, record, start, result, None)
        return result

    async def _execute_async(
        self,
        function: str,
        params: dict[str, Any],
        invoke: Callable[[], Awaitable[T]],
        decision: Decision | None,
        record: Any,
    ) -> T:
        start = time.perf_counter()
        try:
            result = await invoke()
        except BaseException as exc:
            self._record_outcome(function, params, decision, record, start, None, exc)
            raise
        self._record_outcome(function, params, decision, record, start, result, None)
        return result

    def _record_outcome(
        self,
        function: str,
        params: dict[str, Any],
        decision: Decision | None,
        record: Any,
        start: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        duration_ms = (time.perf_counter() - start) * 1000.0
        if error is None:
            outcome: dict[str, Any] = {
                "kind": "executed",
                "ts": time.time(),
                "raw_result": result,
                "data": {"duration_ms": round(duration_ms, 3)},
            }
        else:
            outcome = {
                "kind": "failed",
                "ts": time.time(),
                "data": {
                    "duration_ms": round(duration_ms, 3),
                    "error_type": type(error).__name__,
                    "raw_error": str(error),
                },
            }
        try:
            if decision is not None and record is None:
                # Allowed without approval: one queued item carries both events.
                event = self._base_event("allowed", function, params, decision)
                event["ts"] = outcome["ts"] - duration_ms / 1000.0  # when it was decided
                event["then"] = outcome
            else:
                event = outcome
                event["function"] = function
                event["agent_id"] = self.agent_id
                event["raw_params"] = dict(params)
                if record is not None:
                    event["request_id"] = record.id
                    event["digest"] = record.digest
                    event["policy_version"] = record.policy_version
                    event["rule_id"] = record.rule_id
                    event["value_at_risk"] = record.value_at_risk
            self._get_sink().emit(event)
        except Exception as exc:  # the call already ran; never mask its own result or error
            _warn(f"could not record the outcome of {function}: {exc}")
        if decision is not None and self.hooks:
            self._observe(function, params, error is None)

    def _abandon(self, function: str, params: dict[str, Any], assessed: bool) -> None:
        if not assessed:
            return
        for hook in self.hooks:
            try:
                hook.abandon(function, params, self.agent_id)
            except Exception as exc:
                _warn(f"{type(hook).__name__}.abandon failed: {exc}")

    def _block(
        self, function: str, params: dict[str, Any], decision: Decision
    ) -> SentinelBlockedError:
        event = self._base_event("blocked", function, params, decision)
        event["reason"] = decision.reason
        try:
            self._get_sink().emit_now(event)
        except Exception as exc:
            # The call is blocked either way; say that the record is missing.
            _warn(f"could not record the block of {function}: {exc}")
        return SentinelBlockedError(
            decision.reason, function, False, self.agent_id, rule_id=decision.rule_id
        )

    def _governance_failure(self, function: str, params: dict[str, Any], exc: Exception) -> None:
        """Fail secure (raise) or fail safe (record and return, so the call runs)."""
        what = (
            exc.args[0]
            if isinstance(exc, SentinelError) and exc.args
            else f"{type(exc).__name__}: {exc}"
        )
        secure = self.config.fail_mode == "secure"
        reason = (
            f"governance error, call blocked (fail_mode=secure): {what}"
            if secure
            else f"governance error, call allowed (fail_mode=safe): {what}"
        )
        event = {
            "kind": "governance_error" if secure else "fail_safe_passthrough",
            "ts": time.time(),
            "function": function,
            "agent_id": self.agent_id,
            "reason": reason,
            "raw_params": dict(params),
            "data": {"error_type": type(exc).__name__},
        }
        try:
            self._get_sink().emit_now(event)
        except Exception as sink_exc:
            _warn(f"could not record a governance error for {function}: {sink_exc}")
        if secure:
            raise SentinelBlockedError(reason, function, False, self.agent_id) from exc
        _warn(reason)

    def _check_sink(self) -> None:
        sink = self._sink
        if sink is not None and sink.failure and self.config.fail_mode == "secure":
            # Events are kept, but a call that cannot be audited must not run.
            try:
                sink.flush()
            except Exception:
                raise RuntimeError(sink.failure) from None

    def _check_binding(self, function: str, params: dict[str, Any], record: Any) -> None:
        """The function runs only with the arguments whose digest was approved."""
        now = digest(to_jsonable(params))
        if now != record.digest:
            reason = "arguments changed after approval (digest mismatch); not executed"
            event = {
                "kind": "blocked",
                "ts": time.time(),
                "function": function,
                "agent_id": self.agent_id,
                "request_id": record.id,
                "reason": reason,
                "digest": now,
                "value_at_risk": record.value_at_risk,
                "rule_id": record.rule_id,
                "policy_version": record.policy_version,
            }
            try:
                self._get_sink().emit_now(event)
            except Exception as exc:
                _warn(f"could not record a digest mismatch for {function}: {exc}")
            raise SentinelBlockedError(
                reason, function, False, self.agent_id, rule_id=record.rule_id, request_id=record.id
            )

    # -- approvals ------------------------------------------------------------------------------

    async def _approval(self, function: str, params: dict[str, Any], decision: Decision) -> Any:
        """Write the pending request, wait for its decision, and return the approved record.
        Raises SentinelDeniedError / SentinelTimeoutError / SentinelBlockedError otherwise."""
        from sentinel.store.models import NewRequest

        context = await self._context(params)
        # What hooks found (spend against a cap, the anomaly baseline) is context for the approver.
        for esc in decision.escalations:
            if esc.data:
                context = dict(context or {})
                context.setdefault("sentinel", {})[esc.source] = to_jsonable(esc.data)
        policy_version = decision.verdict.policy_version
        plain = to_jsonable(params)
        shown = self._redact(plain)
        timeout = decision.verdict.timeout_seconds or float(self.config.timeout_seconds or 300.0)
        rule_ids = tuple(m.rule_id for m in decision.verdict.matches)
        if decision.rule_id and decision.rule_id not in rule_ids:
            rule_ids = (decision.rule_id, *rule_ids)
        new = NewRequest(
            id=new_request_id(),
            function=function,
            # The real values are never stored: the digest binds them, the call runs with them.
            arguments=shown,
            display_arguments=shown,
            digest=digest(plain),
            timeout_seconds=timeout,
            agent_id=self.agent_id,
            context=self._redact(to_jsonable(context)) if context is not None else None,
            rule_id=decision.rule_id,
            rule_ids=rule_ids,
            reason=decision.reason,
            value_at_risk=decision.verdict.value_at_risk,
            risk_score=decision.risk_score,
            risk_explanation=decision.risk_explanation,
            policy_version=policy_version,
            channel=self.config.channel_name,
        )
        # Build the channel first: a misconfigured channel blocks the call before any row exists.
        channel = self._channel()
        store = _store_for(Path(self.config.db_path or ""))
        deadline = time.monotonic() + timeout
        record = await asyncio.to_thread(store.submit, new)
        _notify_pending(self.config, record, store)
        if channel is None and self.config.show_waiting_hint:
            _hint(record)
        try:
            record = await self._await_decision(store, record, new, context, deadline, channel)
        except asyncio.CancelledError:
            await asyncio.shield(
                asyncio.to_thread(store.cancel, record.id, "the waiting call was cancelled")
            )
            raise
        return self._interpret(function, record)

    async def _await_decision(
        self,
        store: Any,
        record: Any,
        new: Any,
        context: Any,
        deadline: float,
        channel: ApprovalInterface | None,
    ) -> Any:
        watcher = _watcher_for(Path(self.config.db_path or ""))
        row_future: asyncio.Future[Any] = asyncio.wrap_future(watcher.watch(record.id))
        waiting: set[asyncio.Future[Any]] = {row_future}
        channel_task: asyncio.Future[ApprovalResult] | None = None
        if channel is not None:
            request = ApprovalRequest(
                function_name=new.function,
                parameters=new.arguments,
                rule_id=new.rule_id or "default",
                reason=new.reason,
                agent_id=new.agent_id,
                context=context,
                request_id=record.id,
                display_parameters=new.display_arguments,
                digest=new.digest,
                rule_ids=list(new.rule_ids),
                value_at_risk=new.value_at_risk,
                risk_score=new.risk_score,
                risk_explanation=new.risk_explanation,
                timeout_seconds=max(0.0, deadline - time.monotonic()),
                created_at=record.created_at,
                policy_version=new.policy_version,
            )
            channel_task = asyncio.ensure_future(channel.request_approval(request))
            waiting.add(channel_task)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if row_future in done:
                    return row_future.result()
                if channel_task is not None and channel_task in done:
                    waiting.discard(channel_task)
                    outcome = await self._apply_channel_result(store, record, channel_task)
                    if outcome is not None:
                        return outcome
                    channel_task = None
                    if not waiting:
                        break
            # Deadline: expire by compare-and-set; if someone decided first, obey them.
            return await asyncio.to_thread(store.expire, record.id)
        finally:
            if channel_task is not None and not channel_task.done():
                channel_task.cancel()
            watcher.unwatch(record.id)

    async def _apply_channel_result(
        self, store: Any, record: Any, task: asyncio.Future[ApprovalResult]
    ) -> Any:
        """Write a channel's answer into the row (first decision wins). Returns the final record,
        or None when the channel gave no decision (time-out) and the row should be waited on."""
        try:
            result = task.result()
        except Exception as exc:
            return await asyncio.to_thread(
                store.cancel, record.id, f"approval channel failed: {type(exc).__name__}: {exc}"
            )
        if result.status in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
            operator = _channel_operator(self.config.channel_name, result.approved_by)
            try:
                return await asyncio.to_thread(
                    store.decide,
                    record.id,
                    result.status is ApprovalStatus.APPROVED,
                    operator,
                    result.reason,
                )
            except DecisionConflict as conflict:
                return conflict.record
        if result.status is ApprovalStatus.ERROR:
            return await asyncio.to_thread(
                store.cancel, record.id, f"approval channel error: {result.reason or 'unknown'}"
            )
        if result.status is ApprovalStatus.CANCELLED:
            return await asyncio.to_thread(
                store.cancel, record.id, result.reason or "cancelled by the channel"
            )
        return None  # TIMEOUT / PENDING: keep waiting on the row until our own deadline

    def _interpret(self, function: str, record: Any) -> Any:
        status = record.status
        if status == "approved":
            return record
        common: dict[str, Any] = {"rule_id": record.rule_id, "request_id": record.id}
        if status == "denied":
            who = record.decided_by or "an operator"
            why = record.decision_reason or "no reason given"
            raise SentinelDeniedError(
                f"denied by {who}: {why}",
                function,
                False,
                self.agent_id,
                decided_by=record.decided_by,
                **common,
            )
        if status == "expired":
            raise SentinelTimeoutError(
                function, record.expires_at - record.created_at, agent_id=self.agent_id, **common
            )
        reason = record.decision_reason or f"approval request ended as {status}"
        raise SentinelBlockedError(reason, function, False, self.agent_id, **common)

    def _channel(self) -> ApprovalInterface | None:
        channel = self.config.approval_interface
        if isinstance(channel, ApprovalInterface):
            return channel
        if channel == "terminal":
            from sentinel.approval.terminal import TerminalApprovalInterface

            return TerminalApprovalInterface.shared()
        if channel == "webhook":
            from sentinel.approval.webhook import WebhookApprovalInterface

            return WebhookApprovalInterface.from_config(self.config)
        return None  # "queue": the row itself is the channel

    async def _context(self, params: dict[str, Any]) -> dict[str, Any] | None:
        fn = self.context_fn
        if fn is None:
            return None
        if self._context_binder is None:
            value = fn()
        else:
            value = fn(**self._context_binder(params))
        if inspect.isawaitable(value):
            value = await value
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"context_fn must return a dict, got {type(value).__name__}")
        return dict(value)

    # -- events -------------------------------------------------------------------------------

    def _base_event(
        self, kind: str, function: str, params: dict[str, Any], decision: Decision
    ) -> dict[str, Any]:
        verdict = decision.verdict
        event: dict[str, Any] = {
            "kind": kind,
            "ts": time.time(),
            "function": function,
            "agent_id": self.agent_id,
            "rule_id": decision.rule_id,
            "policy_version": verdict.policy_version,
            "value_at_risk": verdict.value_at_risk,
            "raw_params": dict(params),
            "_redactor": self._current_redactor(),
        }
        if verdict.shadow or decision.escalations:
            data: dict[str, Any] = {}
            if verdict.shadow:
                data["shadow"] = [
                    {"rule_id": m.rule_id, "action": m.action.value, "message": m.message}
                    for m in verdict.shadow
                ]
            if decision.escalations:
                data["escalations"] = [
                    {
                        "source": e.source,
                        "action": e.action.value,
                        "reason": e.reason,
                        "risk_score": e.risk_score,
                    }
                    for e in decision.escalations
                ]
            event["data"] = data
        return event

    def _get_sink(self) -> EventSink:
        sink = self._sink
        if sink is None:
            path = Path(self.config.db_path or "").absolute()
            key = (path, bool(self.config.audit_sync))
            with _shared_lock:
                sink = _sinks.get(key)
                if sink is None:
                    sink = EventSink(
                        _StoreWriter(path),
                        redactor=self._current_redactor(),
                        sync=bool(self.config.audit_sync),
                    )
                    _sinks[key] = sink
            # Outside the lock: wiring the JSONL mirror and anchors opens the store, which takes
            # the same (non-reentrant) lock.
            from sentinel.audit import attach_config

            attach_config(sink, self.config, path)
            self._sink = sink
        return sink

    def _current_redactor(self) -> Redactor:
        policy = self.policy_source.current
        if self._redactor is None or self._redactor_version != policy.version:
            self._redactor = Redactor(getattr(policy, "redact_keys", ()))
            self._redactor_version = policy.version
        return self._redactor

    def _redact(self, value: Any) -> Any:
        return self._current_redactor().redact(value)

    def flush(self) -> None:
        """Write every queued event now."""
        if self._sink is not None:
            self._sink.flush()


# --- helpers -------------------------------------------------------------------------------------


class _StoreWriter:
    """Appends event batches to the store at ``path`` (opened on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, events: list[dict[str, Any]]) -> None:
        _store_for(self.path).append_events(events)


def _default_hooks(config: SentinelConfig) -> list[GuardHook]:
    hooks: list[GuardHook] = []
    if config.anomaly_detection:
        import importlib

        anomaly = importlib.import_module("sentinel.anomaly")
        hooks.append(anomaly.AnomalyHook.from_config(config))
    # Limits over time windows: the hook sits in this list only while the policy in force has
    # limit rules (hot reload adds or removes it), so guards without limits keep the fast path.
    from sentinel.limits import attach

    attach(config, hooks)
    return hooks


def _context_binder(
    fn: Callable[..., Any] | None,
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """How to call a context provider: with no arguments, or with the call's arguments (only the
    ones it accepts, unless it takes ``**kwargs``)."""
    if fn is None:
        return None
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if not params:
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return lambda call: dict(call)
    names = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return lambda call: {k: v for k, v in call.items() if k in names}


def _channel_operator(channel: str, approved_by: str | None) -> Any:
    from dataclasses import replace

    from sentinel.identity import current_operator

    operator = current_operator(channel=channel)
    if approved_by and approved_by != operator.account:
        operator = replace(operator, display_name=approved_by)
    return operator


def _notify_pending(config: SentinelConfig, record: Any, store: Any) -> None:
    """Tell people something waits (configured notifications; returns at once, never raises)."""
    try:
        from sentinel.notify import notify_pending
    except ImportError:  # pragma: no cover - part of the package
        return
    notify_pending(config, record, store)


def _hint(record: Any) -> None:
    short = record.id[:8]
    left = max(0, int(record.expires_at - time.time()))
    line = (
        f"sentinel: {safe_text(record.function, 60)} is waiting for approval "
        f"(request {short}, rule {safe_text(record.rule_id or 'default', 40)}, expires in {left}s); "
        f"decide with `sentinel tui` or `sentinel approve {short}` / `sentinel deny {short}`"
    )
    try:
        print(line, file=sys.stderr, flush=True)
    except Exception:
        pass


def _warn(message: str) -> None:
    import logging

    logging.getLogger("sentinel").warning(message)


__all__ = ["Decision", "Escalation", "Guard", "GuardHook"]

