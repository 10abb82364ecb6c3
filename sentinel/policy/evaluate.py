"""Compiled evaluation: :class:`Policy` turns a call into a :class:`Verdict`.

At load every rule is compiled into a slotted :class:`CompiledRule` (globs and regexes compiled
with RE2, conditions into small node objects). Per call, the candidate rules for the
``(function, agent)`` pair come from a bounded cache, so the cost does not grow with the rules
that cannot match the function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sentinel.policy.conditions import AllNode, Node, Template, compile_condition
from sentinel.policy.models import Action, PolicyFile, Rule
from sentinel.policy.regex import GlobSet, fold
from sentinel.policy.values import (
    PLAIN_NAMES,
    Call,
    NotANumber,
    fold_key,
    remember_plain,
    to_decimal,
)
from sentinel.policy.verdict import ConditionTrace, RuleMatch, RuleTrace, Verdict
from sentinel.redact import Redactor

#: How many distinct (function, agent) pairs keep their candidate list cached.
CANDIDATE_CACHE_SIZE = 4096

_ACTIONS = {a.value: a for a in Action}


class CompiledRule:
    """A rule ready to evaluate (plain attributes; no validation on the hot path)."""

    __slots__ = (
        "rule", "id", "name", "action", "strictness", "priority", "order", "shadow", "strict",
        "globs", "agents", "cond", "template", "timeout", "_matches",
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
        default = (
            f"Rule '{rule.id}'" + (f" ({rule.name})" if rule.name else "") + f": {rule.action}"
        )
        self.template = Template(rule.message or default, is_secret)
        self.timeout = rule.timeout_seconds
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
        if self.cond is None:
            return True, None
        r = self.cond.check(call, self.strict)
        if r is True:
            return True, None
        if r is False:
            return False, None
        return self.strict, r


@dataclass(frozen=True, slots=True)
class _Candidates:
    enforced: tuple[CompiledRule, ...]
    shadow: tuple[CompiledRule, ...]


def _as_float(v: Any) -> float | None:
    """A finite float from a number or numeric string, else None."""
    if v is None:
        return None
    kind = type(v)
    if kind is int or kind is float:
        f = float(v)
    else:
        try:
            f = float(to_decimal(v))
        except (NotANumber, OverflowError):
            return None
    return f if math.isfinite(f) else None


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
        self._active = tuple(c for c in self._compiled if c.rule.enabled)
        self._cache: dict[tuple[str, str | None], _Candidates] = {}
        self._default_reason = f"no rule matched; default action is {self.default_action.value}"

    def __repr__(self) -> str:
        src = str(self.source) if self.source else "<string>"
        return f"<Policy {src} {self.version[:12]} rules={len(self.rules)}>"

    # -- evaluation --------------------------------------------------------------------------

    def candidates(self, function: str, agent_id: str | None = None) -> _Candidates:
        """The enabled rules whose patterns match this function and agent (cached)."""
        key = (function, agent_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        name, agent = fold(function), fold(agent_id or "")
        chosen = [c for c in self._active if c.applies(name, agent)]
        hit = _Candidates(
            tuple(c for c in chosen if not c.shadow), tuple(c for c in chosen if c.shadow)
        )
        if len(self._cache) >= CANDIDATE_CACHE_SIZE:
            self._cache.clear()  # bounded; callers with unbounded distinct names just recompute
        self._cache[key] = hit
        return hit

    def evaluate(
        self, function: str, params: Mapping[str, Any], agent_id: str | None = None
    ) -> Verdict:
        """Decide one call. Never raises for odd parameter values: doubt matches block rules."""
        cands = self.candidates(function, agent_id)
        value = self._value_at_risk(params)
        if not cands.enforced and not cands.shadow:
            return Verdict(
                self.default_action, None, self._default_reason, (), (), self.version, None, value
            )
        call = Call(params)
        hits: list[tuple[CompiledRule, str | None]] = []
        best: CompiledRule | None = None
        first_match = self.ordering == "first_match"
        for rule in cands.enforced:
            matched, error = rule.match(call)
            if matched:
                hits.append((rule, error))
                if best is None or rule.strictness > best.strictness:
                    best = rule
                if first_match:
                    break
        shadow: tuple[RuleMatch, ...] = ()
        if cands.shadow:
            shadow = tuple(
                rule.to_match(error, call)
                for rule in cands.shadow
                for matched, error in (rule.match(call),)
                if matched
            )
        if best is None:
            return Verdict(
                self.default_action,
                None,
                self._default_reason,
                (),
                shadow,
                self.version,
                None,
                value,
            )
        ordered = [h for h in hits if h[0] is best] + [h for h in hits if h[0] is not best]
        matches = tuple(rule.to_match(error, call) for rule, error in ordered)
        decider = matches[0]
        reason = decider.message
        if decider.error:
            reason += f" (matched because a condition could not be evaluated: {decider.error})"
        return Verdict(
            best.action, best.id, reason, matches, shadow, self.version, best.timeout, value
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
                if stopped and not rule.shadow:
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
