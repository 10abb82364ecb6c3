"""Limits over time windows: rate limits and cumulative sums, enforced by the guard.

A rule with ``limit:`` in the rules file is a *limit rule*::

    - id: daily_spend
      function_pattern: "transfer_*"
      limit: {sum: amount, max: 5000, window: 24h, per: agent}
      action: require_approval          # what happens to a call that would exceed the limit

    - id: email_rate
      function_pattern: send_email
      limit: {count: 20, window: 1h, per: [agent, to]}
      action: block

Its function / agent patterns and ``conditions`` select the calls it counts. The guard's
:class:`LimitsHook` checks each such call against the counters in the store and reserves it in
the same write transaction (``BEGIN IMMEDIATE``: concurrent calls in any number of processes
cannot both slip under a cap). The reservation counts for the whole window: a call that ran
(approved ones included; one that raised still ran) needs nothing more written, and so does one
whose process died before reporting an outcome (doubt never lowers protection); a call that did
not run (blocked, denied, expired, cancelled, governance error) releases it. A call that would exceed the limit escalates
to the rule's ``action`` — escalation only ever makes a verdict stricter — and the approver sees
the spend so far, the cap and what this call would make it (``context["sentinel"]["limit:<id>"]``).

:func:`remaining` gives a ``context_fn`` the allowance left. Any error while checking (the
database unavailable, say) raises, which the guard treats as a governance error (``fail_mode``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentinel.policy import Action, Verdict
from sentinel.policy.evaluate import CompiledRule, Policy
from sentinel.policy.regex import fold
from sentinel.policy.values import MISSING, Call, NotANumber, Uneval, resolve, to_decimal
from sentinel.redact import MASK, Redactor
from sentinel.runtime import Escalation, GovernedCall, location_of, store_for
from sentinel.store.limits import LimitCheck, LimitUsage

if TYPE_CHECKING:
    from sentinel.store.location import DbValue, SyncStore


@dataclass(frozen=True)
class LimitStatus:
    """One limit as it stands for a call: for ``remaining()`` and the approver's card."""

    rule_id: str
    kind: str  # "count" | "sum"
    param: str | None  # the summed parameter (sum limits)
    window: str
    scope: str  # "agent=bot-1, destination=acme"
    used: float  # every call counted in the window (reserved calls included)
    cap: float
    this_call: float  # what this call adds (1 for a rate limit)
    exceeded: bool

    @property
    def remaining(self) -> float:
        """What is left under the cap before this call."""
        return max(0.0, self.cap - self.used)

    @property
    def would_be(self) -> float:
        return self.used + self.this_call

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "kind": self.kind,
            "param": self.param,
            "window": self.window,
            "per": self.scope,
            "used": _num(self.used),
            "cap": _num(self.cap),
            "this_call": _num(self.this_call),
            "would_be": _num(self.would_be),
            "remaining": _num(self.remaining),
            "exceeded": self.exceeded,
        }

    def sentence(self) -> str:
        """``daily_spend: 4200 of 5000 amount used in 24h (agent=bot-1); this call (1000)
        would make it 5200``."""
        what = f"{self.param}" if self.kind == "sum" else "calls"
        text = (
            f"limit {self.rule_id}: {_num(self.used)} of {_num(self.cap)} {what} used in "
            f"{self.window} ({self.scope})"
        )
        if self.exceeded:
            text += f"; this call ({_num(self.this_call)}) would make it {_num(self.would_be)}"
        return text


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 6)


class _Planned:
    """A limit rule that applies to a call, with the counter key and the amount it adds."""

    __slots__ = ("rule", "key", "scope", "amount", "problem")

    def __init__(
        self, rule: CompiledRule, key: str, scope: str, amount: float, problem: str | None
    ):
        self.rule = rule
        self.key = key
        self.scope = scope
        self.amount = amount
        self.problem = problem  # the amount could not be read (doubt: the limit escalates)


def _scope_value(scope: str, function: str, agent_id: str | None, call: Call) -> str:
    if scope == "agent":
        return agent_id or ""
    if scope == "function":
        return fold(function)
    if scope == "global":
        return "*"
    path = tuple(scope.split("."))
    try:
        value = resolve(call, path, tuple(fold(p) for p in path), True, scope)
    except Uneval:
        return "<ambiguous>"
    if value is MISSING:
        return "<missing>"
    try:
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


_BUILT_IN_SCOPES = frozenset(("agent", "function", "global"))


def _scope_parts(
    scopes: Any, function: str, agent_id: str | None, call: Call, redactor: Redactor
) -> tuple[list[str], list[str]]:
    """The counter key's parts and the parts shown to people (approver, reason, audit).

    A limit per a secret parameter (``per: [api_key]``) counts each value apart but stores and
    shows only a digest of it: the counter key lives in the database, the shown scope in the
    request's reason and the audit events. Other values are shown with secrets in text masked."""
    key_parts: list[str] = []
    shown: list[str] = []
    for scope in scopes:
        value = _scope_value(scope, function, agent_id, call)
        if scope not in _BUILT_IN_SCOPES and any(
            redactor.is_secret_key(part) for part in scope.split(".")
        ):
            value = f"{MASK} sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}"
            key_parts.append(f"{scope}={value}")
            shown.append(key_parts[-1])
        else:
            key_parts.append(f"{scope}={value}")
            shown.append(f"{scope}={redactor.redact_text(value)}")
    return key_parts, shown


def plan(
    policy: Policy, function: str, params: Mapping[str, Any], agent_id: str | None
) -> list[_Planned]:
    """The limit rules that count this call (patterns and conditions match), with their keys."""
    rules = policy.candidates(function, agent_id).limits
    if not rules:
        return []
    call = Call(params)
    out: list[_Planned] = []
    for rule in rules:
        matched, _error = rule.match(call)  # limit rules read conservatively: doubt counts
        if not matched:
            continue
        limit = rule.limit
        assert limit is not None
        parts, shown = _scope_parts(limit.scopes, function, agent_id, call, policy.redactor)
        scope = ", ".join(shown)
        problem = None
        if limit.sum is not None:
            amount = 0.0
            path = tuple(limit.sum.split("."))
            try:
                value = (
                    params.get(limit.sum, MISSING) if type(params.get(limit.sum)) is int else None
                )
                if value is None or value is MISSING:  # not a plain int under its exact name
                    value = resolve(call, path, tuple(fold(p) for p in path), True, limit.sum)
                if value is MISSING:
                    problem = f"parameter '{limit.sum}' is missing"
                else:
                    amount = float(to_decimal(value))
                    if amount < 0:
                        problem = f"{limit.sum} is negative ({_num(amount)})"
                        amount = 0.0
            except (Uneval, NotANumber, OverflowError) as exc:
                problem = f"{limit.sum}: {exc}"
            kind = f"sum:{limit.sum}"
        else:
            amount = 1.0
            kind = "count"
        key = f"{rule.id}|{kind}|" + "&".join(parts)
        out.append(_Planned(rule, key, scope, amount, problem))
    return out


def _cap(rule: CompiledRule) -> float:
    return rule.limit_cap


def _check(p: _Planned) -> LimitCheck:
    return LimitCheck(p.key, p.rule.limit_seconds, p.rule.limit_cap, p.amount)


def _status(p: _Planned, usage: LimitUsage | None) -> LimitStatus:
    limit = p.rule.limit
    assert limit is not None
    used = usage.used if usage is not None else 0.0
    exceeded = p.problem is not None or (usage is not None and usage.exceeded)
    return LimitStatus(
        p.rule.id,
        "sum" if limit.sum is not None else "count",
        limit.sum,
        str(limit.window),
        p.scope,
        used,
        _cap(p.rule),
        p.amount,
        exceeded,
    )


# --- stores ------------------------------------------------------------------------------------


def _store(path: DbValue) -> SyncStore:
    # The guard's store for this database: one write connection per process, so a limit check
    # never waits on this process's own event writer (two connections would contend for the
    # database's write lock, and SQLite's busy handler sleeps in milliseconds).
    return store_for(path)


# --- the guard hook ----------------------------------------------------------------------------


class LimitsHook:
    """Checks and reserves limit counters for each call (a :class:`sentinel.guard.GuardHook`)."""

    def __init__(self, policy_source: Any, db_path: DbValue, *, approval_timeout: float = 300.0):
        self.policy_source = policy_source
        self.db_path = location_of(db_path)
        self.approval_timeout = float(approval_timeout)
        # A call's reservations are kept on its token (``call.notes[self]``) until its outcome.
        self._store: Any = None

    @classmethod
    def from_config(cls, config: Any) -> LimitsHook:
        return cls(
            config.policy_source(),
            config.db_path,
            approval_timeout=float(config.timeout_seconds or 300.0),
        )

    def assess(self, call: GovernedCall, verdict: Verdict) -> Any:
        function, params, agent_id = call.function, call.params, call.agent_id
        policy: Policy = self.policy_source.current
        if not policy.has_limits or verdict.action is Action.BLOCK:
            return None  # a blocked call never runs: nothing to count
        planned = plan(policy, function, params, agent_id)
        if not planned:
            return None
        countable = [p for p in planned if p.problem is None]
        usages: dict[str, LimitUsage] = {}
        if countable:
            checks = [_check(p) for p in countable]
            store = self._store
            if store is None or store.closed:  # closed by close_shared()
                store = self._store = _store(self.db_path)
            result: list[LimitUsage] = store.limit_reserve(checks)
            call.notes[self] = [u.reservation for u in result if u.reservation is not None]
            usages = {u.key: u for u in result}
        if (
            verdict.action is Action.ALLOW
            and all(p.problem is None for p in planned)
            and not any(u.exceeded for u in usages.values())
        ):
            return None  # allowed and within every limit: nothing to add (the call is counted)
        statuses = [_status(p, usages.get(p.key)) for p in planned]
        worst: tuple[_Planned, LimitStatus] | None = None
        shadow = []
        for p, s in zip(planned, statuses, strict=True):
            if s.exceeded:
                if p.rule.shadow:
                    shadow.append(s)
                elif worst is None or p.rule.strictness > worst[0].rule.strictness:
                    worst = (p, s)
        if worst is None and not shadow and verdict.action is Action.ALLOW:
            return None  # allowed and within every limit: nothing to add (the call is counted)
        data = {"limits": [s.to_dict() for s in statuses]}
        if worst is None:
            # Within every enforced limit: no stricter action, but the standing of each limit is
            # context for an approver, and a shadow limit's overrun is recorded with the call.
            reason = "; ".join(s.sentence() for s in statuses)
            if shadow:
                reason = "shadow " + reason
            return Escalation(Action.ALLOW, reason, "limits", data=data)
        p, s = worst
        reason = s.sentence()
        if p.problem is not None:
            reason = f"limit {p.rule.id}: {p.problem}; the limit cannot be checked, so it applies"
        return Escalation(p.rule.action, reason, f"limit:{p.rule.id}", data=data)

    def observe(self, call: GovernedCall, succeeded: bool) -> None:
        """The call ran: its reservation already counts for the whole window (even when the
        call raised: it may have had effects), so there is nothing to write — forget it."""
        call.notes.pop(self, None)

    def abandon(self, call: GovernedCall) -> None:
        """The call did not run: release its reservations."""
        reservations = call.notes.pop(self, None)
        if reservations:
            _store(self.db_path).limit_release(reservations)


def hook_for(config: Any) -> LimitsHook:
    """The :class:`LimitsHook` of a guard; the guard's :class:`~sentinel.guard.HookSet` uses it
    only under a policy with limit rules. Also records policy reloads in the guard's database."""
    source = config.policy_source()
    source.record_events_to(config.db_path)
    return LimitsHook.from_config(config)


# --- for context providers ---------------------------------------------------------------------


def status(
    config: Any, function: str, agent_id: str | None = None, params: Mapping[str, Any] | None = None
) -> list[LimitStatus]:
    """Every limit that counts this call, as it stands now (nothing is reserved)."""
    policy: Policy = config.policy_source().current
    agent = agent_id if agent_id is not None else config.agent_id
    planned = plan(policy, function, params or {}, agent)
    countable = [p for p in planned if p.problem is None]
    usages: dict[str, LimitUsage] = {}
    if countable:
        checks = [_check(p) for p in countable]
        usages = {u.key: u for u in _store(config.db).limit_usage(checks)}
    return [_status(p, usages.get(p.key)) for p in planned]


def remaining(
    config: Any, function: str, agent_id: str | None = None, params: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The allowance left under each limit that counts this call, for a ``context_fn``::

        def context(amount, destination):
            left = sentinel.limits.remaining(config, "transfer_funds",
                                             params={"amount": amount, "destination": destination})
            return {"daily_limit_remaining": left["daily_spend"]["remaining"]}

    Returns ``{rule_id: {"remaining", "used", "cap", "window", "per", "kind", …}}`` (empty when
    no limit applies). ``agent_id`` defaults to the configuration's; ``params`` decides which
    counters (``per: destination``) and conditions apply.
    """
    return {s.rule_id: s.to_dict() for s in status(config, function, agent_id, params)}


__all__ = ["LimitStatus", "LimitsHook", "attach", "plan", "remaining", "status"]
