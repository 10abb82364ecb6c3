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
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
    new_request_id,
)
from sentinel.approval.parked import Park, parked_request_id
from sentinel.arguments import CallArguments
from sentinel.audit.sink import EventSink, GuardEvent, allowed_record, executed_record
from sentinel.config import SentinelConfig
from sentinel.edits import argument_schema, coerce_arguments, edit_digest, schema_error
from sentinel.errors import (
    DecisionConflict,
    DecisionNotTrusted,
    EditRefused,
    SentinelApprovalPending,
    SentinelBlockedError,
    SentinelConfigError,
    SentinelDeniedError,
    SentinelError,
    SentinelTimeoutError,
    StoreError,
)
from sentinel.grant_gate import gate_for
from sentinel.identity import current_operator
from sentinel.normalize import Binder, UnbindableArgument, to_jsonable
from sentinel.policy import Action
from sentinel.policy.values import fold_key
from sentinel.redact import Redactor, safe_text
from sentinel.runtime import (
    Decision,
    Escalation,
    GovernedCall,
    GuardHook,
    HookSet,
    _shared_lock,
    _sinks,
    _store_for,
    _watcher_for,
    async_store_for,
    close_shared,
    location_of,
    store_at,
)
from sentinel.store.models import (
    ArgumentEdit,
    DecisionTerms,
    NewRequest,
    OperatorIdentity,
    RequestRecord,
)
from sentinel.trust.check import UNTRUSTED, OwnRequest, check_approval, signing_operators
from sentinel.trust.operators import TrustedOperators, load_operators

if TYPE_CHECKING:
    from sentinel.store.location import AnyAsyncStore, Location, SyncStore

T = TypeVar("T")

#: How a call runs with an operator's edit: ``rebind(values, edit)`` → (the whole edited
#: arguments as the rules see them, the invoke that runs the call with them). See
#: :meth:`Guard.run_sync`.
Rebind = Callable[[dict[str, Any], ArgumentEdit], tuple[Mapping[str, Any], Callable[[], Any]]]
#: The JSON Schema of a call's arguments, a function returning it (asked only when a request is
#: written), or None (unknown: an edit of the request is refused).
SchemaSource = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None

_ALLOW = Action.ALLOW
_BLOCK = Action.BLOCK
_APPROVE = Action.REQUIRE_APPROVAL


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


# --- the guard -------------------------------------------------------------------------------------


class Guard:
    """Decides and runs protected calls for one :class:`SentinelConfig`."""

    def __init__(
        self,
        config: SentinelConfig,
        context_fn: Callable[..., Any] | None = None,
        *,
        hooks: Iterable[GuardHook] | HookSet | None = None,
    ) -> None:
        self.config = config
        self.context_fn = context_fn
        self._context_binder = _context_binder(context_fn)
        self.policy_source = config.policy_source()  # loads the rules now: errors surface early
        if isinstance(hooks, HookSet):
            self.hook_set = hooks  # shared with the guard it was derived from
        elif hooks is not None:
            self.hook_set = HookSet(hooks)  # exactly these (no limits unless passed)
        else:
            self.hook_set = _default_hooks(config)
        self._sink: EventSink | None = None
        self._redactor: Redactor | None = None
        self._redactor_version: str | None = None
        self._plan_resets: list[Callable[[], None]] = []
        self.agent_id = config.agent_id
        self.record_allowed = bool(config.audit_log)
        #: (the config's db value, its GrantGate): resolved once, not per call.
        self._grant_gate: tuple[Any, Any, Any] | None = None

    # -- public entry points ------------------------------------------------------------------

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``func`` protected by this guard (sync or async, methods included).

        Each wrapper keeps a *plan* (see :func:`_plan_for`): what the policy in force says about
        this function before any argument is seen, so a plainly allowed call costs one attribute
        read (``source.current``, compared with the policy the plan was made for), at most one
        comparison, and no allocation. The plan is rebuilt when another policy is in force.
        Everything the plan cannot answer takes the full path through run_sync/run_async."""
        import functools

        binder = Binder(func)
        name = func.__name__
        source = self.policy_source
        plan: tuple[Any, ...] = _NO_PLAN

        def replan() -> tuple[Any, ...]:
            nonlocal plan
            plan = _plan_for(self, source.current, name, binder)
            return plan

        def forget() -> None:
            nonlocal plan
            plan = _NO_PLAN

        schema_cache: list[dict[str, Any] | None] = []

        def schema() -> dict[str, Any] | None:
            # Computed when the first request for this function is written, then kept.
            if not schema_cache:
                schema_cache.append(argument_schema(func, skip_first=binder._skip_first))
            return schema_cache[0]

        self._plan_resets.append(forget)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                policy, kind, index, size, gname, below, bound, strict = plan
                if source.current is not policy:
                    policy, kind, index, size, gname, below, bound, strict = replan()
                if kind:  # a plan is only made when the policy brings no hooks
                    if kind == _PLAN_ALLOW:
                        return await func(*args, **kwargs)
                    if kind == _PLAN_GATE and not kwargs and len(args) == size:
                        v = args[index]
                        if type(v) is int and (v <= bound if below else v >= bound):
                            return await func(*args, **kwargs)
                    params = binder.bind(args, kwargs)
                    if self._plainly_allowed(name, params):
                        return await func(*args, **kwargs)
                else:
                    params = binder.bind(args, kwargs)
                return await self.run_async(
                    name,
                    params,
                    lambda: func(*args, **kwargs),
                    rebind=_rebinder(binder, func, args, kwargs, params),
                    schema=schema,
                )

            async_wrapper.__signature__ = binder.signature  # type: ignore[attr-defined]
            async_wrapper.__sentinel_guard__ = self  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            policy, kind, index, size, gname, below, bound, strict = plan
            if source.current is not policy:
                policy, kind, index, size, gname, below, bound, strict = replan()
            if kind:  # a plan is only made when the policy brings no hooks
                if kind == _PLAN_ALLOW:
                    return func(*args, **kwargs)
                if kind == _PLAN_GATE and not kwargs and len(args) == size:
                    v = args[index]
                    if type(v) is int and (v <= bound if below else v >= bound):
                        return func(*args, **kwargs)
                params = binder.bind(args, kwargs)
                if self._plainly_allowed(name, params):
                    return func(*args, **kwargs)
            else:
                params = binder.bind(args, kwargs)
            return self.run_sync(
                name,
                params,
                lambda: func(*args, **kwargs),
                rebind=_rebinder(binder, func, args, kwargs, params),
                schema=schema,
            )

        sync_wrapper.__signature__ = binder.signature  # type: ignore[attr-defined]
        sync_wrapper.__sentinel_guard__ = self  # type: ignore[attr-defined]
        return sync_wrapper

    @property
    def hooks(self) -> tuple[GuardHook, ...]:
        """The escalation hooks for the policy in force now (see :class:`HookSet`)."""
        return self.hook_set(self.policy_source.current)

    @property
    def agent_id(self) -> str | None:
        """The agent this guard acts for (rules can target agents, so plans depend on it)."""
        return self._agent_id

    @agent_id.setter
    def agent_id(self, value: str | None) -> None:
        self._agent_id = value
        self._forget_plans()

    @property
    def record_allowed(self) -> bool:
        """Allowed calls (and their outcomes) are recorded when ``audit_log`` is on; blocks,
        approvals, errors and the outcome of approved calls are always recorded."""
        return self._record_allowed

    @record_allowed.setter
    def record_allowed(self, value: bool) -> None:
        self._record_allowed = bool(value)
        self._forget_plans()

    def _forget_plans(self) -> None:
        for forget in self._plan_resets:
            forget()  # plans depend on it: every wrapper makes a new one on its next call

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
        call = GovernedCall(function, params, self.agent_id)
        try:
            decision = self._decide(call)
        finally:
            self._abandon(call)
        if decision.action is _APPROVE:
            # A valid grant the call fits would let it run: say so (nothing is counted here; the
            # run counts it, or asks a person after all if the grant ended meanwhile).
            covering = self._covering_grant(call, decision)
            if covering is not None:
                reason = f"standing grant {covering.id[:12]} would let it run: {decision.reason}"
                return decision._replace(action=_ALLOW, reason=reason)
        return decision

    def decide(self, function: str, params: Mapping[str, Any]) -> Decision:
        """Evaluate the policy and the hooks for a call, without acting on it. Hooks may reserve
        capacity (limits) for the call; use :meth:`preview` to only ask."""
        return self._decide(GovernedCall(function, params, self.agent_id))

    def _decide(self, call: GovernedCall) -> Decision:
        """:meth:`decide` for a call token: the hooks that assess it are kept on it, so its
        outcome reaches exactly them (a reload meanwhile changes the hooks of later calls)."""
        function, params = call.function, call.params
        policy = self.policy_source.current
        raw = params.raw if params.__class__ is CallArguments else params  # a dict reads faster
        verdict = policy.evaluate(function, raw, self.agent_id)
        hooks = self.hook_set(policy)  # the hooks of the policy this call is decided under
        if not hooks:
            return Decision(verdict.action, verdict, verdict.reason, verdict.rule_id)
        action, reason, rule_id = verdict.action, verdict.reason, verdict.rule_id
        escalations: list[Escalation] = []
        for i, hook in enumerate(hooks):
            # Before assess: one that raises part-way may have reserved something to release.
            call.hooks = hooks[: i + 1]
            esc = hook.assess(call, verdict)
            if esc is None:
                continue
            escalations.append(esc)
            # Escalation only ever makes a verdict stricter; it never weakens a block.
            if esc.action.strictness > action.strictness:
                action, reason, rule_id = esc.action, esc.reason, esc.source
        return Decision(action, verdict, reason, rule_id, tuple(escalations))

    def _classify(self, call: GovernedCall) -> tuple[Decision, bool]:
        """Decide, raise for a block, and say whether an allowed call can take the fast path
        (nothing escalated, nothing to record)."""
        decision = self._decide(call)
        function, params = call.function, call.params
        if decision.action is _ALLOW:
            fast = (
                not self.record_allowed and not decision.escalations and not decision.verdict.shadow
            )
            if not fast:
                self._check_sink()
            return decision, fast
        if decision.action is _BLOCK:
            raise self._block(function, params, decision)
        granted = self._granted(call, decision)
        if granted is not None:
            self._check_sink()
            return granted, False
        return decision, False

    def _grant_gate_of(self) -> tuple[Any, Any]:
        """(the database location, its GrantGate), resolved once per configured database."""
        db = self.config.db
        cached = self._grant_gate
        if cached is None or cached[0] is not db:
            where = location_of(db)
            cached = self._grant_gate = (db, where, gate_for(where))
        return cached[1], cached[2]

    def _covering_grant(self, call: GovernedCall, decision: Decision) -> Any:
        """The grant that would let this call run now (nothing counted), or None; any error
        means None (the call asks a person)."""
        where, gate = self._grant_gate_of()
        try:
            trusted = signing_operators(self.config.require_signed_decisions)
            return gate.covers(
                store_at(where),
                self.policy_source.current,
                decision,
                call.function,
                CallArguments.of(call.params).raw,
                self.agent_id,
                trusted=trusted,
            )
        except Exception:
            return None

    def _granted(self, call: GovernedCall, decision: Decision) -> Decision | None:
        """The decision as allowed by a standing grant the call fits (the use counted and
        audited), or None: it goes for approval. Fail-secure: anything going wrong while
        checking grants (the store, an operators file that cannot be trusted) means no grant."""
        policy = self.policy_source.current
        where, gate = self._grant_gate_of()
        if gate.eligible(policy, decision) is None:
            return None
        function, params = call.function, call.params
        args = CallArguments.of(params)
        try:
            trusted = signing_operators(self.config.require_signed_decisions)
            use = gate.use(
                store_at(where),
                policy,
                decision,
                function,
                args.raw,
                self.agent_id,
                digest=args.binding_digest,
                trusted=trusted,
            )
        except Exception as exc:  # never a reason to run: the call asks a person instead
            _warn(f"standing grants could not be checked for {function} ({exc}); asking for approval")
            return None
        if use is None:
            return None
        grant = use.grant
        reason = f"standing grant {grant.id[:12]} by {grant.signer or grant.created_by}: {decision.reason}"
        return decision._replace(action=_ALLOW, reason=reason, grant=use)

    def _stopped(self, call: GovernedCall, exc: BaseException) -> None:
        """Governance ended without running the call: release what hooks hold, then re-raise a
        block or an interruption, or apply ``fail_mode`` to a governance error (returns only
        when the call may run under ``fail_mode="safe"``)."""
        self._abandon(call)
        if isinstance(exc, SentinelBlockedError) or not isinstance(exc, Exception):
            raise exc
        self._governance_failure(call.function, dict(call.params), exc)

    def run_sync(
        self,
        function: str,
        params: Mapping[str, Any],
        invoke: Callable[[], T],
        *,
        rebind: Rebind | None = None,
        schema: SchemaSource = None,
        park: Park | None = None,
    ) -> T:
        """Govern one synchronous call: ``invoke()`` runs the real function.

        ``schema`` is the JSON Schema of the arguments (or a function returning it), recorded
        with an approval request so an operator's edit can be typed and checked. ``rebind``
        runs an approval with edited arguments: ``rebind(values, edit)`` gets the new JSON values
        of the changed parameters and the :class:`~sentinel.store.models.ArgumentEdit`, and
        returns the whole edited arguments (as the rules should see them) and the invoke that
        runs the call with them; it raises :class:`~sentinel.errors.EditRefused` for a value the
        function refuses. Without ``rebind`` an edited approval is refused (blocked, audited):
        the call never runs with arguments other than the ones approved. With ``park``, a call
        needing approval does not wait: see :class:`~sentinel.approval.parked.Park`."""
        record = pre = None
        params = CallArguments.of(params)  # one value for the call's arguments, from here on
        call = GovernedCall(function, params, self.agent_id)
        try:
            decision, fast = self._classify(call)
            if decision.action is _APPROVE:
                record = _LoopThread.get().run(
                    self._approval(function, params, decision, schema, park)
                )
                self._check_binding(function, params, record)
                if record.edit is not None:
                    call, invoke, record = self._apply_edit(call, record, rebind, schema)
            elif not fast and decision.grant is None:  # a grant's use is recorded already
                pre = self._record_allowed_call(function, params, decision)
        except BaseException as exc:
            self._stopped(call, exc)
            return self._execute_sync(call, invoke, None, None)
        # The function runs outside the try: its own exceptions are never governance errors.
        if fast and not call.hooks:
            return invoke()
        if fast:  # allowed, nothing to record; hooks still learn that it ran
            try:
                result = invoke()
            except BaseException:
                self._observe(call, False)
                raise
            self._observe(call, True)
            return result
        return self._execute_sync(call, invoke, decision, record, pre)

    async def run_async(
        self,
        function: str,
        params: Mapping[str, Any],
        invoke: Callable[[], Awaitable[T]],
        *,
        rebind: Rebind | None = None,
        schema: SchemaSource = None,
        park: Park | None = None,
    ) -> T:
        """Govern one asynchronous call: ``await invoke()`` runs the real function. ``rebind``
        and ``schema`` as for :meth:`run_sync` (``rebind`` returns an invoke giving an
        awaitable); ``park`` as for :meth:`run_sync`."""
        record = pre = None
        params = CallArguments.of(params)  # one value for the call's arguments, from here on
        call = GovernedCall(function, params, self.agent_id)
        try:
            decision, fast = self._classify(call)
            if decision.action is _APPROVE:
                record = await self._approval(function, params, decision, schema, park)
                self._check_binding(function, params, record)
                if record.edit is not None:
                    call, invoke, record = self._apply_edit(call, record, rebind, schema)
            elif not fast and decision.grant is None:  # a grant's use is recorded already
                pre = self._record_allowed_call(function, params, decision)
        except BaseException as exc:
            self._stopped(call, exc)
            return await self._execute_async(call, invoke, None, None)
        if fast and not call.hooks:
            return await invoke()
        if fast:
            try:
                result = await invoke()
            except BaseException:
                self._observe(call, False)
                raise
            self._observe(call, True)
            return result
        return await self._execute_async(call, invoke, decision, record, pre)

    @staticmethod
    def _observe(call: GovernedCall, succeeded: bool) -> None:
        """The call ran: tell the hooks that assessed it (and only them, once)."""
        hooks, call.hooks = call.hooks, ()
        for hook in hooks:
            try:
                hook.observe(call, succeeded)
            except Exception as exc:
                _warn(f"{type(hook).__name__}.observe failed: {exc}")

    # -- acting -------------------------------------------------------------------------------

    def _execute_sync(
        self,
        call: GovernedCall,
        invoke: Callable[[], T],
        decision: Decision | None,
        record: Any,
        pre: list[Any] | None = None,
    ) -> T:
        start = time.perf_counter()
        try:
            result = invoke()
        except BaseException as exc:
            self._record_outcome(call, decision, record, start, None, exc, pre)
            raise
        self._record_outcome(call, decision, record, start, result, None, pre)
        return result

    async def _execute_async(
        self,
        call: GovernedCall,
        invoke: Callable[[], Awaitable[T]],
        decision: Decision | None,
        record: Any,
        pre: list[Any] | None = None,
    ) -> T:
        start = time.perf_counter()
        try:
            result = await invoke()
        except BaseException as exc:
            self._record_outcome(call, decision, record, start, None, exc, pre)
            raise
        self._record_outcome(call, decision, record, start, result, None, pre)
        return result

    def _record_outcome(
        self,
        call: GovernedCall,
        decision: Decision | None,
        record: Any,
        start: float,
        result: Any,
        error: BaseException | None,
        pre: list[Any] | None = None,
    ) -> None:
        function, params = call.function, call.params
        if error is None and pre is not None:
            # The common audited case: raw fields to the sink; the event is built on its writer
            # thread (same event, same hash).
            seconds = time.perf_counter() - start
            try:
                self._get_sink().emit(
                    executed_record(pre, time.time(), seconds, result, self._current_redactor())
                )
            except Exception as exc:  # the call already ran; never mask its own result
                _warn(f"could not record the outcome of {function}: {exc}")
            if decision is not None:
                self._observe(call, True)
            return
        duration_ms = round((time.perf_counter() - start) * 1000.0, 3)
        redactor = self._current_redactor()
        if error is None:
            event = GuardEvent(
                "executed", time.time(), data={"duration_ms": duration_ms, **_grant_data(decision)},
                result=result, redactor=redactor,
            )  # fmt: skip
        else:
            event = GuardEvent(
                "failed",
                time.time(),
                data={"duration_ms": duration_ms, "error_type": type(error).__name__,
                      **_grant_data(decision)},
                error=str(error),
                redactor=redactor,
            )
        if pre is not None:
            # Allowed without approval: the `allowed` event was recorded before the call ran;
            # the outcome takes the call's fields (digest, rule, agent) from it when both are
            # finalised (on the writer thread, in order), not on the caller's.
            event.outcome_of = pre
        else:
            event.function = function
            event.agent_id = self.agent_id
            event.arguments = CallArguments.of(params)
            if decision is not None and decision.grant is not None:  # ran under a grant
                event.rule_id = decision.rule_id
                event.policy_version = decision.verdict.policy_version
                event.value_at_risk = decision.verdict.value_at_risk
            if record is not None:
                event.request_id = record.id
                event.digest = record.digest
                event.policy_version = record.policy_version
                event.rule_id = record.rule_id
                event.value_at_risk = record.value_at_risk
                if record.edit is not None:  # ran with an operator's edit: say which
                    event.data = {**(event.data or {}), "edit": _edit_data(record.edit)}
        try:
            self._get_sink().emit(event)
        except Exception as exc:  # the call already ran; never mask its own result or error
            _warn(f"could not record the outcome of {function}: {exc}")
        if decision is not None:
            self._observe(call, error is None)

    def _record_allowed_call(
        self, function: str, params: Mapping[str, Any], decision: Decision
    ) -> list[Any]:
        """Record that an allowed call is about to run, before it runs. The sink writes it at
        once when it is synchronous or has never written yet (so a database that cannot be
        written blocks the first call instead of losing its record); otherwise it is queued.
        Raises when it cannot be recorded: a governance error, so ``fail_mode`` applies.
        The record holds the event's raw fields (see :func:`allowed_record`): the same fields
        as :meth:`_base_event`, the event itself is built on the sink's writer thread."""
        verdict = decision.verdict
        record = allowed_record(
            time.time(),
            function,
            self.agent_id,
            decision.rule_id,
            verdict.policy_version,
            verdict.value_at_risk,
            CallArguments.of(params),
            self._current_redactor(),
            self._event_data(decision),
        )
        self._get_sink().emit_before(record)
        return record

    @staticmethod
    def _abandon(call: GovernedCall) -> None:
        """The call will not run: tell the hooks that assessed it (and only them, once)."""
        hooks, call.hooks = call.hooks, ()
        for hook in hooks:
            try:
                hook.abandon(call)
            except Exception as exc:
                _warn(f"{type(hook).__name__}.abandon failed: {exc}")

    def _block(
        self, function: str, params: Mapping[str, Any], decision: Decision
    ) -> SentinelBlockedError:
        event = self._base_event("blocked", function, params, decision)
        event.reason = decision.reason
        try:
            self._get_sink().emit_now(event)
        except Exception as exc:
            # The call is blocked either way; say that the record is missing.
            _warn(f"could not record the block of {function}: {exc}")
        return SentinelBlockedError(
            decision.reason,
            function,
            False,
            self.agent_id,
            rule_id=decision.rule_id,
            hint=self._hint_for(decision.rule_id),
        )

    def _hint_for(self, rule_id: str | None) -> str | None:
        """The ``deny_hint`` of rule ``rule_id`` in the policy in force (None: none)."""
        try:
            hint: str | None = self.policy_source.current.hint_for(rule_id)
        except Exception:
            return None
        return hint

    def _governance_failure(self, function: str, params: Mapping[str, Any], exc: Exception) -> None:
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
        event = GuardEvent(
            "governance_error" if secure else "fail_safe_passthrough",
            time.time(),
            function,
            self.agent_id,
            reason=reason,
            data={"error_type": type(exc).__name__},
            arguments=CallArguments.of(params),
            redactor=self._current_redactor(),
        )
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

    def _check_binding(
        self, function: str, params: Mapping[str, Any], record: RequestRecord
    ) -> None:
        """The function runs only with the arguments whose digest was approved."""
        # Read again, not the digest computed when the request was made: the call must run
        # with exactly what was approved, and a mutable argument may have changed meanwhile.
        now = CallArguments.of(params).binding_digest_now()
        if now != record.digest:
            reason = "arguments changed after approval (digest mismatch); not executed"
            self._record_refused_approval(
                function, record.id, reason, now, record, "a digest mismatch"
            )
            raise SentinelBlockedError(
                reason, function, False, self.agent_id, rule_id=record.rule_id, request_id=record.id
            )

    def _record_refused_approval(
        self,
        function: str,
        request_id: str,
        reason: str,
        digest: str | None,
        request: Any,
        what: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Audit an approved request that is not executed after all, as a ``blocked`` event
        naming it (the row stays decided, so the request keeps one final event). Refused
        either way: a record that cannot be written is only warned about."""
        event = GuardEvent(
            "blocked",
            time.time(),
            function,
            self.agent_id,
            request_id=request_id,
            digest=digest,
            policy_version=request.policy_version,
            rule_id=request.rule_id,
            value_at_risk=request.value_at_risk,
            reason=reason,
            data=data,
        )
        try:
            self._get_sink().emit_now(event)
        except Exception as exc:
            _warn(f"could not record {what} of {function}: {exc}")

    def _apply_edit(
        self,
        call: GovernedCall,
        record: RequestRecord,
        rebind: Rebind | None,
        schema: SchemaSource,
    ) -> tuple[GovernedCall, Callable[[], Any], RequestRecord]:
        """An approval with edited arguments: check the edit, decide the edited call again and
        return its call token, its invoke and the record it runs under (the digest of the
        edited arguments). The original call will not run: its hooks are told so. Raises
        SentinelBlockedError (audited) when the edit cannot run: the policy blocks the edited
        call (an edit never turns a blocked call into an allowed one), a limit or anomaly
        escalation blocks it, a value does not fit the function, or nothing can run it."""
        edit = record.edit
        assert edit is not None
        function = call.function
        own_schema = _schema_of(schema)

        def refuse(reason: str, refused: str, rule_id: str | None = None) -> SentinelBlockedError:
            self._record_refused_approval(
                function,
                record.id,
                reason,
                record.digest,
                record,
                "a refused edit",
                {"refused": refused, "edit": _edit_data(edit)},
            )
            return SentinelBlockedError(
                reason,
                function,
                False,
                self.agent_id,
                rule_id=rule_id or record.rule_id,
                request_id=record.id,
                hint=self._hint_for(rule_id) if rule_id else None,
            )

        if not edit.values or edit.digest != edit_digest(record.digest, edit.values):
            raise refuse(
                "the approval's edit is unreadable or does not match its digest; not executed",
                "edit_malformed",
            )
        if rebind is None:
            raise refuse(
                f"an operator edited the arguments of {function}, but this call cannot be run "
                "with other arguments (no rebind given to the guard); not executed",
                "edit_unsupported",
            )
        props = (own_schema or {}).get("properties") if own_schema else None
        for name, value in edit.values.items():
            if isinstance(props, Mapping) and name not in props and name not in call.params:
                raise refuse(
                    f"the edit names an unknown parameter {name!r}; not executed", "edit_invalid"
                )
            why = (
                schema_error(props.get(name), value, own_schema)
                if isinstance(props, Mapping)
                else None
            )
            if why is not None:
                raise refuse(f"the edited value of {name!r} {why}; not executed", "edit_invalid")
        try:
            edited_params, invoke = rebind(dict(edit.values), edit)
        except (EditRefused, TypeError, ValueError) as exc:
            raise refuse(f"{exc}; not executed", "edit_invalid") from None
        edited = GovernedCall(function, CallArguments.of(edited_params), self.agent_id)
        self._abandon(call)  # the call as sent will not run
        try:
            again = self._decide(edited)
            digest_now = edited.params.binding_digest  # type: ignore[attr-defined]
        except BaseException:
            self._abandon(edited)
            raise
        if again.action is _BLOCK:
            self._abandon(edited)
            raise refuse(
                f"approval with edits refused: the edited call is blocked "
                f"({again.reason}); not executed",
                "edited_call_blocked",
                again.rule_id,
            )
        # The outcome is the edited call's: its digest and its value at risk (history and the
        # metrics would otherwise say the request's value ran).
        return edited, invoke, replace(
            record, digest=digest_now, value_at_risk=again.verdict.value_at_risk
        )

    # -- approvals ------------------------------------------------------------------------------

    async def _approval(
        self,
        function: str,
        params: Mapping[str, Any],
        decision: Decision,
        schema: SchemaSource = None,
        park: Park | None = None,
    ) -> RequestRecord:
        """Write the pending request, wait for its decision, and return the approved record.
        Raises SentinelDeniedError / SentinelTimeoutError / SentinelBlockedError otherwise."""
        context = await self._context(params)
        # What hooks found (spend against a cap, the anomaly baseline) is context for the approver.
        for esc in decision.escalations:
            if esc.data:
                context = dict(context or {})
                context.setdefault("sentinel", {})[esc.source] = to_jsonable(esc.data)
        policy_version = decision.verdict.policy_version
        args = CallArguments.of(params)
        try:
            bound = args.binding_digest
        except UnbindableArgument as exc:
            # A refusal, never a governance error: under fail_mode="safe" that would run a
            # call needing approval unasked, with arguments no approval could be bound to.
            raise self._refuse_unverifiable(
                function, params, decision, str(exc), "unbindable_arguments"
            ) from None
        shown = args.redacted(self._current_redactor())
        timeout = decision.verdict.timeout_seconds or float(self.config.timeout_seconds or 300.0)
        rule_ids = tuple(m.rule_id for m in decision.verdict.matches)
        if decision.rule_id and decision.rule_id not in rule_ids:
            rule_ids = (decision.rule_id, *rule_ids)
        new = NewRequest(
            id=new_request_id(),
            function=function,
            # The real values are never stored: the digest binds them, the call runs with them.
            arguments=shown,
            digest=bound,
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
            terms=self.policy_source.current.terms_for(decision.rule_id),
            requester=_requester(),
            arg_schema=_schema_of(schema),
        )
        if park is not None:
            new = replace(new, id=parked_request_id(park.key, function, bound), parked=True)
        # Build the channel first: a misconfigured channel blocks the call before any row exists.
        # A parked call has none: the queue is how it is decided.
        channel = self._channel() if park is None else None
        # Whether approvals must be signed, and by whom: an operators file that cannot be
        # trusted blocks the call here, before anyone is asked.
        try:
            signing = signing_operators(self.config.require_signed_decisions)
        except SentinelConfigError as exc:
            reason = (
                f"{UNTRUSTED}: the operators file cannot be read, so no approval could be "
                f"checked: {exc}"
            )
            raise self._refuse_unverifiable(
                function, params, decision, reason, "operators_file"
            ) from None
        db = location_of(self.config.db)
        store = async_store_for(db)  # this loop's store: awaited, no thread hop per statement
        deadline = time.monotonic() + timeout
        try:
            if park is not None:
                return await self._parked(function, new, store, db, signing, park)
            return await self._ask_and_wait(
                function, new, context, store, db, deadline, channel, signing
            )
        except StoreError as exc:
            if signing is None or self.config.fail_mode != "safe":
                raise  # a governance error: fail_mode decides (secure blocks)
            # Whoever can write the database can also lock or break it: with signed decisions
            # required, a queue that fails must not turn into fail_mode="safe" running the call.
            raise self._refuse_unverifiable(
                function,
                params,
                decision,
                f"the approval queue failed ({exc}); blocked although fail_mode=safe: with "
                "signed decisions required, a call that needs approval never runs unapproved",
                "queue_failed",
            ) from None

    async def _ask_and_wait(
        self,
        function: str,
        new: NewRequest,
        context: dict[str, Any] | None,
        store: AnyAsyncStore,
        db: Location,
        deadline: float,
        channel: ApprovalInterface | None,
        signing: TrustedOperators | None,
    ) -> RequestRecord:
        """Submit the request, wait for its decision, and check an approval (see _approval)."""
        record = await store.submit(new)
        # Notifications deliver on their own threads: they record failures through the sync store.
        _notify_pending(self.config, record, _store_for(db))
        if channel is None and self.config.show_waiting_hint:
            _hint(record)
        submitted = record  # our own copy of the expiry: a rewrite of the row cannot extend it
        try:
            record, by_channel = await self._await_decision(
                store, record, new, context, deadline, channel
            )
        except asyncio.CancelledError:
            await asyncio.shield(store.cancel(record.id, "the waiting call was cancelled"))
            raise
        if record.status == "approved":
            late = _late_approval(record, submitted.expires_at, deadline)
            if late is not None:
                raise self._refuse_late_approval(function, record, submitted, late)
            # An edited approval is signed over the edited call: the request's digest and the
            # new values, computed here (the row's copy of the edit digest is never trusted).
            own = OwnRequest(
                submitted.id,
                new.digest if record.edit is None else edit_digest(new.digest, record.edit.values),
                submitted.created_at,
                submitted.expires_at,
                new.terms,
                new.requester,
            )
            self._check_decision(function, record, own, signing, by_channel)
        return self._interpret(function, record)

    async def _parked(
        self,
        function: str,
        new: NewRequest,
        store: AnyAsyncStore,
        db: Location,
        signing: TrustedOperators | None,
        park: Park,
    ) -> RequestRecord:
        """A parked call: find or submit its request and obey the stored decision without
        waiting. Pending: raise SentinelApprovalPending. Approved: checked as a waiting call
        checks it (digest, signatures, expiry), then claimed once in the store; a second run of
        the same approval is refused. The expiry is the row's, never later than its creation
        plus the rule's timeout (a rewritten row cannot extend it)."""
        record = await store.submit(new)  # idempotent on the id: a re-run finds its request
        if record.function != new.function or record.digest != new.digest:
            reason = (
                f"queued request {record.id} is for other arguments than this call; not executed"
            )
            self._record_refused_approval(
                function, record.id, reason, new.digest, record, "a mismatched request"
            )
            raise SentinelBlockedError(
                reason, function, False, self.agent_id, rule_id=record.rule_id,
                request_id=record.id,
            )  # fmt: skip
        if record.is_pending and record.created_at == new.created_at:
            _notify_pending(self.config, record, _store_for(db))  # submitted just now
        expires_at = min(float(record.expires_at), record.created_at + new.timeout_seconds)
        if record.is_pending:
            if time.time() < expires_at:
                raise SentinelApprovalPending(replace(record, expires_at=expires_at), self.agent_id)
            record = _still_there(await store.expire(record.id), record.id)
        if park.probe or record.status != "approved":
            return self._interpret(function, record)
        decided_at = record.decided_at
        if not isinstance(decided_at, (int, float)) or decided_at >= expires_at:
            why = f"decided at {_utc(decided_at or 0.0)}, expired at {_utc(expires_at)}"
            raise self._refuse_late_approval(
                function, record, replace(record, expires_at=expires_at), why
            )
        own = OwnRequest(  # an edited approval is signed over the edited call (see _ask_and_wait)
            record.id,
            new.digest if record.edit is None else edit_digest(new.digest, record.edit.values),
            record.created_at,
            expires_at,
            new.terms,
            new.requester,
        )
        self._check_decision(function, record, own, signing, False)
        if not await store.claim(record.id, {"requester": new.requester}):
            reason = (
                f"the approval of request {record.id} was used already (the call ran, or another "
                "run of the same checkpoint took it); not executed again"
            )
            self._record_refused_approval(
                function, record.id, reason, new.digest, record, "a reused approval",
                {"refused": "approval_reused"},
            )  # fmt: skip
            raise SentinelBlockedError(
                reason, function, False, self.agent_id, rule_id=record.rule_id,
                request_id=record.id,
            )  # fmt: skip
        return record

    def pending_parked(
        self, function: str, params: Mapping[str, Any], key: str, schema: SchemaSource = None
    ) -> SentinelApprovalPending | None:
        """Whether a call parked under ``key`` would still wait: the pending exception (its
        request submitted when missing), or None when it needs no approval or its request is
        decided or expired now. Runs nothing, claims nothing; a caller uses it to stop a batch
        of calls before any of them runs. ``schema`` as for :meth:`run_sync` (recorded when
        this submits the request)."""
        decision = self.preview(function, params)
        if decision.action is not _APPROVE:
            return None
        try:
            _LoopThread.get().run(
                self._approval(
                    function, CallArguments.of(params), decision, schema, Park(key, True)
                )
            )
        except SentinelApprovalPending as exc:
            return exc
        except SentinelBlockedError:
            return None
        return None

    async def apending_parked(
        self, function: str, params: Mapping[str, Any], key: str, schema: SchemaSource = None
    ) -> SentinelApprovalPending | None:
        """:meth:`pending_parked` for async callers (waits on this loop)."""
        decision = self.preview(function, params)
        if decision.action is not _APPROVE:
            return None
        try:
            await self._approval(
                function, CallArguments.of(params), decision, schema, Park(key, True)
            )
        except SentinelApprovalPending as exc:
            return exc
        except SentinelBlockedError:
            return None
        return None

    def _refuse_unverifiable(
        self,
        function: str,
        params: Mapping[str, Any],
        decision: Decision,
        reason: str,
        refused: str,
    ) -> SentinelBlockedError:
        """Block (and audit, when the audit can still be written) a call whose approval could
        not be checked: the operators file is missing while required, or unsafe; or, with
        signing required, the queue failed. A block, not a governance error: under
        ``fail_mode="safe"`` a governance error runs the call, which here would skip the
        approval itself, not just a check of it (doubt never lowers protection)."""
        event = self._base_event("blocked", function, params, decision)
        event.reason = reason
        event.data = {**(event.data or {}), "refused": refused}
        try:
            self._get_sink().emit_now(event)
        except Exception as sink_exc:
            _warn(f"could not record the block of {function}: {sink_exc}")
        return SentinelBlockedError(
            reason, function, False, self.agent_id, rule_id=decision.rule_id
        )

    def _check_decision(
        self,
        function: str,
        record: RequestRecord,
        own: OwnRequest,
        signing: TrustedOperators | None,
        by_channel: bool,
    ) -> None:
        """Run only on an approval this call can trust (see :mod:`sentinel.trust.check`);
        otherwise audit the refusal and block with "decision not signed by a trusted operator".

        An in-process channel's answer (terminal, webhook, a custom ApprovalInterface) came from
        code the developer configured, not from the database: it is taken as given, except that
        it cannot say which operator approved, so it never satisfies ``approvers`` or a quorum."""
        try:
            if by_channel:
                if not own.terms.is_default:
                    raise DecisionNotTrusted(
                        "untrusted",
                        f"the {self.config.channel_name} channel cannot say which operator "
                        f"approved, and rule {record.rule_id!r} names who decides "
                        f"({_describe_terms(own.terms)}): decide it in the queue",
                    )
                return
            if signing is not None:
                # Read again: a key revoked while this call waited must not approve it.
                signing = load_operators(signing.path)
            check_approval(record, own, signing, time.time())
        except (DecisionNotTrusted, SentinelConfigError) as exc:
            reason = str(exc)
            if isinstance(exc, SentinelConfigError):
                reason = f"{UNTRUSTED}: the operators file cannot be read: {exc}"
            data = {
                "refused": "untrusted_decision",
                "decided_by": record.decided_by,
                "votes": [
                    {"operator": v.operator, "verdict": v.verdict, "signed": bool(v.signature)}
                    for v in record.votes
                ],
                "signed_mode": signing is not None,
            }
            self._record_refused_approval(
                function, record.id, reason, own.digest, record, "an untrusted decision", data
            )
            raise SentinelBlockedError(
                reason,
                function,
                False,
                self.agent_id,
                rule_id=record.rule_id,
                request_id=record.id,
            ) from None

    def _refuse_late_approval(
        self, function: str, record: RequestRecord, submitted: RequestRecord, why: str
    ) -> SentinelTimeoutError:
        """An approval that came after the request's expiry: audit why and treat it as expired.

        The row stays ``approved`` (a decided row never changes), so the refusal is its own
        ``blocked`` event naming the request; the request keeps exactly one final event."""
        reason = f"approved after its expiry ({why}); not executed, treated as expired"
        data = {
            "refused": "approved_after_expiry",
            "expires_at": submitted.expires_at,
            "decided_at": record.decided_at,
            "decided_by": record.decided_by,
        }
        self._record_refused_approval(
            function, record.id, reason, submitted.digest, submitted, "a late approval", data
        )
        return SentinelTimeoutError(
            function,
            submitted.expires_at - submitted.created_at,
            agent_id=self.agent_id,
            rule_id=submitted.rule_id,
            request_id=record.id,
            reason=reason,
        )

    async def _await_decision(
        self,
        store: AnyAsyncStore,
        record: RequestRecord,
        new: NewRequest,
        context: dict[str, Any] | None,
        deadline: float,
        channel: ApprovalInterface | None,
    ) -> tuple[RequestRecord, bool]:
        """The final record, and whether this process's own channel decided it."""
        watcher = _watcher_for(self.config.db)
        row_future: asyncio.Future[RequestRecord] = asyncio.wrap_future(watcher.watch(record.id))
        waiting: set[asyncio.Future[Any]] = {row_future}
        # Its own task, never waited on: the decision wakes this call the moment it lands.
        escalation: asyncio.Future[None] | None = None
        terms = new.terms
        if (
            terms.escalate_after is not None
            and terms.escalate_to
            and record.created_at + terms.escalate_after < record.expires_at
        ):
            escalation = asyncio.ensure_future(self._escalate_when_due(store, record, terms))
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
                display_parameters=new.arguments,
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
                    return row_future.result(), False
                if channel_task is not None and channel_task in done:
                    waiting.discard(channel_task)
                    outcome = await self._apply_channel_result(store, record, channel_task)
                    if outcome is not None:
                        return outcome
                    channel_task = None
                    if not waiting:
                        break
            # Deadline: expire by compare-and-set; if someone decided first, obey them.
            return _still_there(await store.expire(record.id), record.id), False
        finally:
            if channel_task is not None and not channel_task.done():
                channel_task.cancel()
            if escalation is not None and not escalation.done():
                escalation.cancel()
            watcher.unwatch(record.id)

    async def _escalate_when_due(
        self, store: AnyAsyncStore, record: RequestRecord, terms: DecisionTerms
    ) -> None:
        """At ``created_at + escalate_after`` (the clock the signed decision times are checked
        against), record once that nobody decided and tell the notification targets who may
        decide now. Widens nothing itself: the check counts ``escalate_to`` by the signed times.
        A failure is only warned about (a missed notice never lets a call through)."""
        if terms.escalate_after is None:
            return
        due = record.created_at + terms.escalate_after
        while (left := due - time.time()) > 0:
            await asyncio.sleep(left)
        try:
            escalated = await store.escalate(
                record.id,
                terms.escalate_to,
                may_decide=terms.may_decide(terms.escalate_after),
            )
        except Exception as exc:
            _warn(f"could not record the escalation of request {record.id}: {exc}")
            return
        if escalated is None:  # decided, expired or escalated meanwhile: nothing to announce
            return
        # Announce with this call's own terms, not whatever the row says of them.
        _notify_escalated(
            self.config,
            replace(escalated, terms=terms),
            _store_for(self.config.db),
        )

    async def _apply_channel_result(
        self, store: AnyAsyncStore, record: RequestRecord, task: asyncio.Future[ApprovalResult]
    ) -> tuple[RequestRecord, bool] | None:
        """Write a channel's answer into the row (first decision wins). Returns the final record,
        or None when the channel gave no decision (time-out) and the row should be waited on."""
        try:
            result = task.result()
        except Exception as exc:
            return _still_there(
                await store.cancel(
                    record.id, f"approval channel failed: {type(exc).__name__}: {exc}"
                ),
                record.id,
            ), False
        if result.status in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
            operator = _channel_operator(self.config.channel_name, result.approved_by)
            try:
                decided = await store.decide(
                    record.id,
                    result.status is ApprovalStatus.APPROVED,
                    operator,
                    result.reason,
                )
            except DecisionConflict as conflict:
                first: RequestRecord = conflict.record
                return first, False  # someone decided in the queue first: checked as theirs
            if decided.is_pending:  # one vote of a quorum: the others decide in the queue
                return None
            return decided, True
        if result.status is ApprovalStatus.ERROR:
            return _still_there(
                await store.cancel(
                    record.id, f"approval channel error: {result.reason or 'unknown'}"
                ),
                record.id,
            ), False
        if result.status is ApprovalStatus.CANCELLED:
            return _still_there(
                await store.cancel(record.id, result.reason or "cancelled by the channel"),
                record.id,
            ), False
        return None  # TIMEOUT / PENDING: keep waiting on the row until our own deadline

    def _interpret(self, function: str, record: RequestRecord) -> RequestRecord:
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
                hint=self._hint_for(record.rule_id),
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

    async def _context(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        fn = self.context_fn
        if fn is None:
            return None
        if self._context_binder is None:
            value = fn()
        else:
            value = fn(**self._context_binder(dict(params)))
        if inspect.isawaitable(value):
            value = await value
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"context_fn must return a dict, got {type(value).__name__}")
        return dict(value)

    # -- events -------------------------------------------------------------------------------

    def _base_event(
        self, kind: str, function: str, params: Mapping[str, Any], decision: Decision
    ) -> GuardEvent:
        verdict = decision.verdict
        return GuardEvent(
            kind,
            time.time(),
            function,
            self.agent_id,
            policy_version=verdict.policy_version,
            rule_id=decision.rule_id,
            value_at_risk=verdict.value_at_risk,
            data=self._event_data(decision),
            arguments=CallArguments.of(params),
            redactor=self._current_redactor(),
        )

    @staticmethod
    def _event_data(decision: Decision) -> dict[str, Any] | None:
        """The ``data`` of an event about ``decision``: its shadow matches and escalations,
        and the standing grant it ran under."""
        verdict = decision.verdict
        if verdict.has_shadow or decision.escalations or decision.grant is not None:
            data: dict[str, Any] = {}
            if decision.grant is not None:
                data["grant_id"] = decision.grant.grant.id
                data["grant_use"] = decision.grant.n
                data["grant_event_seq"] = decision.grant.seq
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
            return data
        return None

    def _get_sink(self) -> EventSink:
        sink = self._sink
        if sink is None or sink.closed:  # closed by close_shared(): open a fresh one
            path = location_of(self.config.db)
            key = (path, bool(self.config.audit_sync))
            with _shared_lock:
                sink = _sinks.get(key)
                if sink is None or sink.closed:
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


# What a wrapper knows about its function under one policy (see Guard.wrap): a tuple, so a
# thread swapping in a new plan can never leave another thread reading half of it.
# (policy, kind, gate index, positional count, gate name, gate is "<=", gate bound, strict)
_PLAN_FULL = 0  # every call takes the full path (recording, limits, approval, blocks…)
_PLAN_EVAL = 1  # evaluate each call; plainly allowed ones run at once
_PLAN_GATE = 2  # one integer comparison on one positional argument rejects every rule
_PLAN_ALLOW = 3  # no rule can apply and the default allows: run without looking at arguments
_NO_PLAN: tuple[Any, ...] = (None, _PLAN_FULL, 0, -1, "", True, 0, False)


def _plan_for(guard: Guard, policy: Any, function: str, binder: Binder) -> tuple[Any, ...]:
    """The plan for ``function`` under ``policy``. Anything that could need more than "run it"
    (recording allowed calls, limit rules, a default other than allow, shadow rules, conditions
    the gate cannot settle) is left to per-call evaluation or the full path: a plan only ever
    skips work whose answer is known to be "allowed, nothing to record"."""
    try:
        if guard.record_allowed or policy.has_limits or guard.hook_set(policy):
            return (policy, _PLAN_FULL, 0, -1, "", True, 0, False)
        if policy.default_action is not _ALLOW:
            return (policy, _PLAN_EVAL, 0, -1, "", True, 0, False)
        cands = policy.candidates(function, guard.agent_id)
        if cands.empty and not cands.limits:
            return (policy, _PLAN_ALLOW, 0, -1, "", True, 0, False)
        reject = cands.reject
        names = binder._pos_names
        if (
            reject is not None
            and not cands.limits
            and binder._fast
            and reject[0] in names
            and reject[1] in (0, 1)
            and type(reject[2]) is int
            # A strict rule also sees a differently-cased spelling of its parameter; the gate
            # answers for itself only when every parameter name is its own fold.
            and (not cands.reject_strict or all(fold_key(n) == n for n in names))
        ):
            index = names.index(reject[0])
            if not (binder._skip_first and index == 0):
                return (
                    policy, _PLAN_GATE, index, len(names), reject[0], reject[1] == 0,
                    reject[2], cands.reject_strict,
                )  # fmt: skip
    except Exception:
        pass  # no shortcut: evaluating each call handles (and reports) whatever went wrong
    return (policy, _PLAN_EVAL, 0, -1, "", True, 0, False)


class _StoreWriter:
    """Appends event batches to the store at ``path`` (opened on first write)."""

    def __init__(self, path: Location) -> None:
        self.path = path

    def __call__(self, events: list[dict[str, Any]]) -> None:
        _store_for(self.path).append_events(events)


def _default_hooks(config: SentinelConfig) -> HookSet:
    fixed: list[GuardHook] = []
    if config.anomaly_detection:
        import importlib

        anomaly = importlib.import_module("sentinel.anomaly")
        fixed.append(anomaly.AnomalyHook.from_config(config))
    # Limits over time windows: in the set only for a policy with limit rules, so guards without
    # limits keep the fast path.
    from sentinel.limits import hook_for

    return HookSet(fixed, hook_for(config))


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


#: Seconds past its expiry within which an approval that reaches the waiting call is still obeyed.
#: The longest a waiting call normally takes to see a committed decision is the watcher's fallback
#: check (1 s), so an approval made in time is never lost to a slow wake-up; one that reaches the
#: call later is refused whatever its ``decided_at`` says. A writer who could commit an approval
#: within this second could as well have committed it before the expiry: the grace gives such a
#: writer nothing (forged decisions are a separate matter: operator signatures).
LATE_APPROVAL_GRACE = 1.0


def _still_there(record: RequestRecord | None, request_id: str) -> RequestRecord:
    """The request's row after a compare-and-set. None means the row is gone from the database
    (the schema forbids deleting it, so someone replaced or rewrote the file): a governance
    error, never a call that runs."""
    if record is None:
        raise StoreError(
            f"approval request {request_id} is no longer in the database (file replaced?)"
        )
    return record


def _late_approval(record: RequestRecord, expires_at: float, deadline: float) -> str | None:
    """Why an approved ``record`` came too late to obey, or None when it is in time.

    ``expires_at`` is the expiry the waiting call submitted (a rewrite of the row's own column
    can only shorten it), ``deadline`` the call's monotonic deadline. Late: decided at or after
    the expiry (the store's compare-and-set never writes that), or seen by this process more than
    :data:`LATE_APPROVAL_GRACE` seconds past the expiry on its own wall clock or its own monotonic
    clock (a row's ``decided_at`` is whatever its writer chose to put there).
    """
    try:
        row_expiry = float(record.expires_at)
    except (TypeError, ValueError):
        row_expiry = expires_at
    if row_expiry == row_expiry:  # not NaN
        expires_at = min(expires_at, row_expiry)
    decided_at = record.decided_at
    if isinstance(decided_at, (int, float)) and decided_at >= expires_at:
        return f"decided at {_utc(decided_at)}, expired at {_utc(expires_at)}"
    now = time.time()
    if now > expires_at + LATE_APPROVAL_GRACE:
        return (
            f"the approval reached the waiting call at {_utc(now)}, expired at {_utc(expires_at)}"
        )
    late = time.monotonic() - deadline
    if late > LATE_APPROVAL_GRACE:
        return f"the approval reached the waiting call {late:.1f}s after its deadline"
    return None


def _grant_data(decision: Decision | None) -> dict[str, Any]:
    """The outcome event's link to the standing grant a call ran under (empty: none)."""
    if decision is None or decision.grant is None:
        return {}
    return {"grant_id": decision.grant.grant.id, "grant_use": decision.grant.n}


def _requester() -> dict[str, Any]:
    """Who is asking: this process's OS account (from the kernel), host and pid."""
    me = current_operator("agent")
    return {"account": me.account, "uid": me.uid, "host": me.host, "pid": os.getpid()}


def _describe_terms(terms: DecisionTerms) -> str:
    parts = []
    if terms.approvers:
        parts.append(f"approvers: {', '.join(terms.approvers)}")
    if terms.quorum > 1:
        parts.append(f"quorum: {terms.quorum}")
    if not terms.self_approval:
        parts.append("no self-approval")
    return "; ".join(parts) or "default"


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _channel_operator(channel: str, approved_by: str | None) -> OperatorIdentity:
    from dataclasses import replace

    operator = current_operator(channel=channel)
    if approved_by and approved_by != operator.account:
        operator = replace(operator, display_name=approved_by)
    return operator


def _notify_pending(config: SentinelConfig, record: RequestRecord, store: SyncStore) -> None:
    """Tell people something waits (configured notifications; returns at once, never raises)."""
    try:
        from sentinel.notify import notify_pending
    except ImportError:  # pragma: no cover - part of the package
        return
    notify_pending(config, record, store)


def _notify_escalated(config: SentinelConfig, record: RequestRecord, store: SyncStore) -> None:
    """Tell the notification targets a request was escalated (returns at once, never raises)."""
    try:
        from sentinel.notify import notify_escalated
    except ImportError:  # pragma: no cover - part of the package
        return
    notify_escalated(config, record, store)


def _schema_of(schema: SchemaSource) -> dict[str, Any] | None:
    """The schema a request records (a failure to compute one records none: never a block)."""
    try:
        value = schema() if callable(schema) else schema
    except Exception as exc:
        _warn(f"could not compute the argument schema: {exc}")
        return None
    return dict(value) if isinstance(value, Mapping) else None


def _edit_data(edit: ArgumentEdit) -> dict[str, Any]:
    """What an event records of an edit: who changed which fields from what to what."""
    return {
        "changes": [c.to_dict() for c in edit.changes],
        "operator": edit.operator,
        "label": edit.label,
        "edit_digest": edit.digest,
    }


def _rebinder(
    binder: Binder, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
    params: Mapping[str, Any],
) -> Rebind:  # fmt: skip
    """The :data:`Rebind` of a call to ``func`` made with ``args`` / ``kwargs``: edited values
    are validated with the function's own annotations and put in place of the ones given."""

    def rebind(
        values: dict[str, Any], edit: ArgumentEdit
    ) -> tuple[Mapping[str, Any], Callable[[], Any]]:
        typed = coerce_arguments(func, values)
        bound = binder.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        var_kw = binder._var_kw
        for name, value in typed.items():
            if name in bound.arguments and name not in (var_kw, binder._var_pos):
                bound.arguments[name] = value
            elif var_kw is not None:
                bound.arguments.setdefault(var_kw, {})[name] = value
            else:
                raise EditRefused(f"{func.__name__} has no parameter {name!r}", parameter=name)
        call_args, call_kwargs = bound.args, bound.kwargs
        return {**params, **typed}, lambda: func(*call_args, **call_kwargs)

    return rebind


def _hint(record: RequestRecord) -> None:
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


__all__ = ["Decision", "Escalation", "Guard", "GuardHook", "HookSet", "close_shared"]
