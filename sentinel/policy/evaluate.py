"""Compiled evaluation: :class:`Policy` turns a call into a :class:`Verdict`.

At load every rule is compiled into a slotted :class:`CompiledRule` (globs and regexes compiled
with RE2, conditions into small node objects). Per call, the candidate rules for the
``(function, agent)`` pair come from a bounded cache, so the cost does not grow with the rules
that cannot match the function.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sentinel.normalize import exact, exact_params
from sentinel.policy.conditions import AllNode, Leaf, Node, Template, compile_condition
from sentinel.policy.models import Action, PolicyFile, Rule
from sentinel.policy.regex import GlobSet, fold
from sentinel.policy.values import (
    MISSING,
    PLAIN_NAMES,
    Call,
    NotANumber,
    fold_key,
    prepare_expected,
    remember_plain,
    to_decimal,
)
from sentinel.policy.verdict import ConditionTrace, RuleMatch, RuleTrace, Verdict
from sentinel.redact import Redactor
from sentinel.store.models import DecisionTerms

_lazy = Verdict._lazy


def _gate(leaves: tuple[Leaf, ...], strict: bool) -> tuple[str, str, int, Any] | None:
    """A condition of the rule that can be checked inline: ``(name, folded name, kind, bound)``.

    kind 0: an int value passes iff ``v > bound``; 1: iff ``v < bound``; 2: a str value passes
    iff ``v == bound``; 3: iff ``v in bound`` (a frozenset). Other values fall back to the full
    check, so the gate never changes a result — it only skips rules that certainly fail.
    """
    for leaf in leaves:
        if not leaf.simple:
            continue
        op, raw = leaf.op, leaf.raw
        name, folded = leaf.param, leaf.folded[0]
        if op in ("gt", "gte", "lt", "lte"):
            try:
                t = to_decimal(raw)
            except NotANumber:
                continue
            if t != t.to_integral_value():
                continue
            bound = int(t)
            if op == "gt":
                return (name, folded, 0, bound)
            if op == "gte":
                return (name, folded, 0, bound - 1)
            if op == "lt":
                return (name, folded, 1, bound)
            return (name, folded, 1, bound + 1)
        if op == "eq":
            expected = prepare_expected(raw)
            if type(expected) is str:
                return (name, folded, 2, expected)
        if op == "in":
            options = [prepare_expected(x) for x in raw]
            if options and all(type(x) is str for x in options):
                return (name, folded, 3, frozenset(options))
    return None


def describe_limit(limit: Any) -> str:
    """``sum of amount ≤ 5000 per 24h by agent`` / ``at most 10 calls per 1h by agent``."""
    per = ", ".join(limit.scopes)
    if limit.sum is not None:
        return f"sum of {limit.sum} at most {limit.max:g} per {limit.window} by {per}"
    return f"at most {limit.count} call(s) per {limit.window} by {per}"


def _order(hit: tuple[CompiledRule, str | None]) -> int:
    return hit[0].position


#: How many distinct (function, agent) pairs keep their candidate list cached.
CANDIDATE_CACHE_SIZE = 4096

_ACTIONS = {a.value: a for a in Action}


class CompiledRule:
    """A rule ready to evaluate (plain attributes; no validation on the hot path)."""

    __slots__ = (
        "rule", "id", "name", "action", "strictness", "priority", "order", "shadow", "strict",
        "globs", "agents", "cond", "template", "timeout", "_matches", "limit", "position", "leaves", "gate", "limit_seconds", "limit_cap",
    )  # fmt: skip

    def __init__(self, rule: Rule, order: int, is_secret: Callable[[str], bool]) -> None:
        self.rule = rule
        self.id = rule.id
        self.name = rule.name
        self.action = _ACTIONS[rule.action]
        self.strictness = self.action.strictness
        self.priority = rule.priority
        self.order = order
        self.shadow = rule.mode == "shadow"
        # block / approval rules read parameters conservatively (see values.py)
        self.strict = self.action is not Action.ALLOW
        self.globs = GlobSet(rule.patterns)
        agents = rule.agent_patterns
        self.agents = GlobSet(agents) if agents else None
        self.cond: Node | None = (
            AllNode(tuple(compile_condition(c) for c in rule.conditions))
            if rule.conditions
            else None
        )
        self.leaves: tuple[Leaf, ...] | None = None
        if self.cond is not None and all(type(c) is Leaf for c in self.cond.children):
            self.leaves = self.cond.children  # type: ignore[assignment]
        self.gate = _gate(self.leaves, self.strict) if self.leaves else None
        default = (
            f"Rule '{rule.id}'" + (f" ({rule.name})" if rule.name else "") + f": {rule.action}"
        )
        self.template = Template(rule.message or default, is_secret)
        self.timeout = rule.timeout_seconds
        self.limit = rule.limit
        # parsed once: a limit check reads them on every call it counts
        self.limit_seconds = rule.limit.seconds if rule.limit is not None else 0.0
        self.limit_cap = 0.0
        if rule.limit is not None:
            cap = rule.limit.count if rule.limit.count is not None else rule.limit.max
            self.limit_cap = float(cap or 0)
        self.position = 0  # index in evaluation order (set by Policy)
        # RuleMatch objects are immutable and often identical from call to call: reuse them.
        self._matches: dict[tuple[str, str | None], RuleMatch] = {}

    def to_match(self, error: str | None, call: Call) -> RuleMatch:
        """The :class:`RuleMatch` for this call (message rendered with its parameters)."""
        message = self.template.render(call)
        key = (message, error)
        hit = self._matches.get(key)
        if hit is None:
            hit = RuleMatch(
                self.id, self.name, self.action, message, self.priority, self.shadow, error
            )
            if len(self._matches) < 256:
                self._matches[key] = hit
        return hit

    def applies(self, folded_function: str, folded_agent: str) -> bool:
        """True when the rule's function (and agent) patterns match."""
        if not self.globs.matches(folded_function):
            return False
        return self.agents is None or self.agents.matches(folded_agent)

    def match(self, call: Call) -> tuple[bool, str | None]:
        """(matched, error). An unevaluable condition matches only for block / approval rules."""
        cond = self.cond
        if cond is None:
            return True, None
        strict = self.strict
        if self.leaves is not None:  # a flat list of conditions (the common case): no recursion
            error = None
            for leaf in self.leaves:
                r = leaf.check(call, strict)
                if r is False:
                    return False, None
                if r is not True and error is None:
                    error = r
            if error is None:
                return True, None
            return strict, error
        r = cond.check(call, strict)
        if r is True:
            return True, None
        if r is False:
            return False, None
        return self.strict, r


class _Candidates:
    """The rules that can apply to one (function, agent) pair, and what to answer when none do."""

    __slots__ = ("enforced", "shadow", "limits", "empty", "reject", "reject_strict")

    def __init__(
        self,
        enforced: tuple[CompiledRule, ...],
        shadow: tuple[CompiledRule, ...],
        limits: tuple[CompiledRule, ...],
    ) -> None:
        self.enforced = enforced
        self.shadow = shadow
        self.limits = limits
        self.empty = not enforced and not shadow
        # When every rule is gated by a threshold on the same parameter (``amount gt …`` in
        # each): one comparison rejects them all at once. ``reject`` = (name, kind, bound).
        self.reject: tuple[str, int, int] | None = None
        self.reject_strict = False
        rules = enforced + shadow
        gates = [r.gate for r in rules]
        if rules and all(g is not None and g[2] in (0, 1) for g in gates):
            names = {(g[0], g[1], g[2]) for g in gates if g is not None}
            if len(names) == 1:
                name, folded, kind = next(iter(names))
                if name == folded:  # exact and folded lookups agree on a plain call
                    bounds = [g[3] for g in gates if g is not None]
                    self.reject = (name, kind, min(bounds) if kind == 0 else max(bounds))
                    self.reject_strict = any(r.strict for r in rules)


#: The largest finite float, and its exact decimal value: a number beyond it is "huge".
_FMAX = sys.float_info.max
_DMAX = Decimal(_FMAX)


def _as_float(v: Any) -> float | None:
    """A finite float from a number or numeric string, else None. Never raises.

    A number beyond the float range (``10**400``, ``"1e400"``, ``Decimal("1e400")``) is clamped to
    the largest float of its sign, so the value at risk reads as huge rather than failing (a
    governance error would let the call through under ``fail_mode="safe"``). NaN, ±infinity and
    non-numbers have no value (None).
    """
    if v is None:
        return None
    try:
        kind = type(v)
        if kind is float:
            return v if math.isfinite(v) else None
        if kind is int:
            try:
                return float(v)
            except OverflowError:
                return _FMAX if v > 0 else -_FMAX
        d = to_decimal(exact(v))  # a subclass is read as the builtin value it holds
        if d > _DMAX:
            return _FMAX
        if d < -_DMAX:
            return -_FMAX
        return float(d)
    except Exception:  # NotANumber, or anything a hostile value raises: no value known
        return None


class Policy:
    """A loaded, validated, compiled rules file. Immutable; swap the whole object to reload.

    Attributes: ``version`` (sha256 hex of the file bytes), ``source`` (Path or None),
    ``loaded_at`` (epoch seconds), ``default_action``, ``ordering``, ``value_params``,
    ``redact_keys``, ``rules`` (pydantic :class:`Rule` models in evaluation order) and
    ``model`` (the whole :class:`PolicyFile`).
    """

    def __init__(
        self,
        model: PolicyFile,
        *,
        version: str,
        source: Path | None = None,
        loaded_at: float | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.source = source
        self.loaded_at = time.time() if loaded_at is None else loaded_at
        self.default_action = _ACTIONS[model.default_action]
        self.ordering: Literal["strictest", "first_match"] = model.ordering
        self.value_params: tuple[str, ...] = tuple(model.value_params)
        self.redact_keys: tuple[str, ...] = tuple(model.redact_keys)
        self._value_folded = frozenset(fold(n) for n in self.value_params)
        ordered = sorted(enumerate(model.rules), key=lambda p: (-p[1].priority, p[0]))
        self.rules: tuple[Rule, ...] = tuple(r for _, r in ordered)
        self._redactor = Redactor(self.redact_keys)
        secret = self._redactor.is_secret_key
        self._compiled = tuple(CompiledRule(r, i, secret) for i, r in ordered)
        for position, compiled in enumerate(self._compiled):
            compiled.position = position
        self._active = tuple(c for c in self._compiled if c.rule.enabled)
        #: Enabled limit rules (counted by :mod:`sentinel.limits`, never matched as verdicts).
        self.limit_rules = tuple(c for c in self._active if c.limit is not None)
        self.has_limits = bool(self.limit_rules)
        # Without agent patterns the candidates depend on the function name alone: the cache is
        # keyed by the raw name, so a call no rule targets costs one dict lookup.
        self._by_agent = any(c.agents is not None for c in self._active)
        self._cache: dict[Any, _Candidates] = {}
        self._default_reason = f"no rule matched; default action is {self.default_action.value}"
        self._terms = {r.id: _terms_of(r) for r in self.rules if r.action == "require_approval"}
        self._hints = {r.id: r.deny_hint for r in self.rules if r.deny_hint}

    @property
    def redactor(self) -> Redactor:
        """The redactor of this policy (the default secret names plus ``redact_keys``)."""
        return self._redactor

    def terms_for(self, rule_id: str | None) -> DecisionTerms:
        """Who may decide a request made by rule ``rule_id`` (default terms for no rule, an
        anomaly escalation or an unknown id)."""
        terms = self._terms.get(rule_id or "")
        return terms if terms is not None else DecisionTerms()

    def hint_for(self, rule_id: str | None) -> str | None:
        """The ``deny_hint`` of rule ``rule_id``: what the model reads when a call it stopped is
        blocked or denied (None: the rule has none, or no such rule)."""
        return self._hints.get(rule_id or "")

    def __repr__(self) -> str:
        src = str(self.source) if self.source else "<string>"
        return f"<Policy {src} {self.version[:12]} rules={len(self.rules)}>"

    # -- evaluation --------------------------------------------------------------------------

    def candidates(self, function: str, agent_id: str | None = None) -> _Candidates:
        """The enabled rules whose patterns match this function and agent (cached)."""
        key: Any = (function, agent_id) if self._by_agent else function
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        name, agent = fold(function), fold(agent_id or "")
        chosen = [c for c in self._active if c.applies(name, agent)]
        rules = [c for c in chosen if c.limit is None]
        hit = _Candidates(
            tuple(c for c in rules if not c.shadow),
            tuple(c for c in rules if c.shadow),
            tuple(c for c in chosen if c.limit is not None),
        )
        if len(self._cache) >= CANDIDATE_CACHE_SIZE:
            self._cache.clear()  # bounded; callers with unbounded distinct names just recompute
        self._cache[key] = hit
        return hit

    def evaluate(
        self, function: str, params: Mapping[str, Any], agent_id: str | None = None
    ) -> Verdict:
        """Decide one call. Never raises for odd parameter values: doubt matches block rules.

        Values are read as the exact builtins they hold (:func:`sentinel.normalize.exact`), so a
        subclass overriding comparisons or conversions cannot change the verdict. The inline
        checks below accept only exact ``int``/``str`` values; everything else is normalised when
        the call's full check is built (so the common call pays nothing for it).
        """
        cands = self._cache.get((function, agent_id) if self._by_agent else function)
        if cands is None:
            cands = self.candidates(function, agent_id)
        if cands.empty:
            return _lazy(
                self.default_action, None, self._default_reason, self.version, None,
                None, (), (), None, params, self._value_at_risk,
            )  # fmt: skip
        reject = cands.reject
        if reject is not None:
            v = params.get(reject[0], MISSING)
            if (
                type(v) is int
                and (v <= reject[2] if reject[1] == 0 else v >= reject[2])
                and (not cands.reject_strict or PLAIN_NAMES.issuperset(params))
            ):
                return _lazy(
                    self.default_action, None, self._default_reason, self.version, None,
                    None, (), (), None, params, self._value_at_risk,
                )  # fmt: skip
        call: Call | None = None  # built only when a rule needs its full check
        best: CompiledRule | None = None
        best_error: str | None = None
        others: list[tuple[CompiledRule, str | None]] = []
        first_match = self.ordering == "first_match"
        plain: bool | None = None
        for rule in cands.enforced:
            gate = rule.gate
            if gate is not None:
                # One condition checked inline (no calls) when the value makes it definite: a
                # false condition rejects the whole rule. Anything unusual takes the full path.
                if rule.strict:
                    if plain is None:
                        # every name already its own fold (the usual case: one C-level check)
                        plain = PLAIN_NAMES.issuperset(params)
                        if not plain:
                            call = Call(exact_params(params))
                            plain = call.plain()
                    v = params.get(gate[1], MISSING) if plain else MISSING
                else:
                    v = params.get(gate[0], MISSING)
                kind = gate[2]
                if kind == 0:
                    if type(v) is int and v <= gate[3]:
                        continue
                elif kind == 1:
                    if type(v) is int and v >= gate[3]:
                        continue
                elif type(v) is str:
                    if kind == 2:
                        if v != gate[3]:
                            continue
                    elif v not in gate[3]:
                        continue
            if call is None:
                call = Call(exact_params(params))
            matched, error = rule.match(call)
            if not matched:
                continue
            if best is None:
                best, best_error = rule, error
                if first_match:
                    break
            elif rule.strictness > best.strictness:
                others.append((best, best_error))
                best, best_error = rule, error
            else:
                others.append((rule, error))
        shadow: tuple[tuple[CompiledRule, str | None], ...] = ()
        if cands.shadow:
            if call is None:
                call = Call(exact_params(params))
            shadow = tuple(
                (rule, error)
                for rule in cands.shadow
                for matched, error in (rule.match(call),)
                if matched
            )
        if best is None:
            return _lazy(
                self.default_action, None, self._default_reason, self.version, None,
                None, (), shadow, call, params, self._value_at_risk,
            )  # fmt: skip
        assert call is not None  # a rule matched, so its full check built the call
        if len(others) > 1:  # keep evaluation order among the rest (the decider moved out)
            others.sort(key=_order)
        decider = best.to_match(best_error, call)
        reason = decider.message
        if best_error:
            reason += f" (matched because a condition could not be evaluated: {best_error})"
        return _lazy(
            best.action, best.id, reason, self.version, best.timeout,
            decider, tuple(others), shadow, call, params, self._value_at_risk,
        )  # fmt: skip

    def blocks_always(self, function: str, agent_id: str | None = None) -> bool:
        """True when every call of ``function`` (by ``agent_id``) is blocked whatever its
        arguments: an enforced ``block`` rule without conditions decides it, or nothing but
        conditional block rules and a ``block`` default can. Limits and escalation hooks can only
        be stricter, so they never change a True answer. (The MCP proxy's ``--hide-blocked``.)"""
        enforced = self.candidates(function, agent_id).enforced
        if self.ordering == "first_match":
            for rule in enforced:  # in evaluation order: the first one that matches decides
                if rule.cond is None:
                    return rule.action is Action.BLOCK
                if rule.action is not Action.BLOCK:
                    return False  # it may match and decide otherwise
            return self.default_action is Action.BLOCK
        if any(r.action is Action.BLOCK and r.cond is None for r in enforced):
            return True
        return self.default_action is Action.BLOCK and all(
            r.action is Action.BLOCK for r in enforced
        )

    def _value_at_risk(self, params: Mapping[str, Any]) -> float | None:
        for name in self.value_params:
            f = _as_float(params.get(name))
            if f is not None:
                return f
        # Not under its exact name: look for `Amount`, `ＡＭＯＵＮＴ`… (block rules see those too).
        for key in params:
            if key in PLAIN_NAMES:  # already folded: the exact lookup above covered it
                continue
            folded = fold_key(key)
            if folded == key:
                remember_plain(key)
            elif folded in self._value_folded:
                f = _as_float(params[key])
                if f is not None:
                    return f
        return None

    # -- explanation -------------------------------------------------------------------------

    def explain(
        self, function: str, params: Mapping[str, Any], agent_id: str | None = None
    ) -> list[RuleTrace]:
        """Every rule, in evaluation order, with whether and why it matched this call."""
        params = exact_params(params)
        verdict = self.evaluate(function, params, agent_id)
        call = Call(params)
        name, agent = fold(function), fold(agent_id or "")
        traces: list[RuleTrace] = []
        stopped = False  # first_match: rules after the decider were not consulted
        for rule in self._compiled:
            enabled = rule.rule.enabled
            pattern_ok = rule.globs.matches(name)
            agent_ok = rule.agents is None or rule.agents.matches(agent)
            conds: tuple[ConditionTrace, ...] = ()
            matched, error, note = False, None, ""
            if not enabled:
                note = "disabled"
            elif not pattern_ok:
                note = "function name does not match"
            elif not agent_ok:
                note = "agent does not match"
            else:
                if rule.cond is not None:
                    conds = tuple(child.trace(call, rule.strict) for child in rule.cond.children)  # type: ignore[union-attr]
                matched, error = rule.match(call)
                if error and matched:
                    note = "matched because a condition could not be evaluated"
                elif error:
                    note = "not matched: a condition could not be evaluated (allow rules need certainty)"
                elif rule.cond is None:
                    note = "no conditions: matches every call it targets"
                elif not matched:
                    note = "a condition does not hold"
                if (
                    matched
                    and rule.limit is None
                    and not rule.shadow
                    and verdict.rule_id not in (None, rule.id)
                    and not stopped
                ):
                    how = "it came first" if self.ordering == "first_match" else "strictest wins"
                    note = (note + "; " if note else "") + f"rule {verdict.rule_id} decided ({how})"
                if rule.shadow and matched:
                    note = (note + "; " if note else "") + "shadow: recorded, not enforced"
                if rule.limit is not None:
                    lim = describe_limit(rule.limit)
                    note = (
                        f"limit rule ({lim}): calls it matches are counted; over the limit the "
                        f"call escalates to {rule.action.value}" + (f"; {note}" if note else "")
                    )
                elif stopped and not rule.shadow:
                    note = (note + "; " if note else "") + "not consulted (first_match)"
            decided = rule.id == verdict.rule_id and not rule.shadow
            if decided and self.ordering == "first_match":
                stopped = True
            traces.append(
                RuleTrace(
                    rule.id,
                    rule.name,
                    rule.action,
                    rule.priority,
                    rule.rule.mode,
                    enabled,
                    pattern_ok,
                    agent_ok,
                    conds,
                    matched,
                    error,
                    decided,
                    note,
                )  # fmt: skip
            )
        return traces


def _terms_of(rule: Rule) -> DecisionTerms:
    return DecisionTerms(
        quorum=rule.quorum,
        approvers=tuple(rule.approvers or ()),
        self_approval=rule.allows_self_approval,
        deny_quorum=rule.deny_quorum,
        escalate_after=rule.escalate_seconds,
        escalate_to=tuple(rule.escalate_to),
    )
