"""Result types of policy evaluation.

:class:`Verdict` and :class:`RuleMatch` are immutable tuples with named fields: building one costs
~0.15 µs where a frozen dataclass costs ~1 µs, and an allowed call pays for one on every call.
A verdict is lazy where laziness is free: the messages of matching rules other than the deciding
one are rendered, and the value at risk is read from the arguments, only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sentinel.policy.models import Action

if TYPE_CHECKING:
    from sentinel.policy.values import Call

_new = tuple.__new__


class RuleMatch(tuple):
    """One rule that matched a call: ``(rule_id, name, action, message, priority, shadow, error)``."""

    __slots__ = ()

    def __new__(
        cls,
        rule_id: str,
        name: str | None,
        action: Action,
        message: str,
        priority: int,
        shadow: bool,
        error: str | None,
    ) -> RuleMatch:
        return _new(cls, (rule_id, name, action, message, priority, shadow, error))

    rule_id: str = property(itemgetter(0))  # type: ignore[assignment]
    name: str | None = property(itemgetter(1))  # type: ignore[assignment]
    action: Action = property(itemgetter(2))  # type: ignore[assignment]
    #: already rendered with the call's parameters
    message: str = property(itemgetter(3))  # type: ignore[assignment]
    priority: int = property(itemgetter(4))  # type: ignore[assignment]
    shadow: bool = property(itemgetter(5))  # type: ignore[assignment]
    #: a condition could not be evaluated (the rule matched out of caution)
    error: str | None = property(itemgetter(6))  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RuleMatch(rule_id={self[0]!r}, name={self[1]!r}, action={self[2]!r}, "
            f"message={self[3]!r}, priority={self[4]!r}, shadow={self[5]!r}, error={self[6]!r})"
        )


#: (rule, error) pairs whose RuleMatch is built on demand; ``rule.to_match(error, call)``.
LazyHits = tuple[tuple[Any, "str | None"], ...]


class Verdict(tuple):
    """The policy's decision for one call.

    Fields: ``action`` (the enforced action; shadow rules excluded), ``rule_id`` (the deciding
    rule, None = default action), ``reason``, ``matches`` (enforced rules that matched, deciding
    rule first), ``shadow`` (shadow-mode rules that matched: recorded, not enforced),
    ``policy_version`` (sha256 of the source bytes), ``timeout_seconds`` (per-rule approval
    timeout) and ``value_at_risk`` (from the policy's value parameters).
    """

    __slots__ = ()

    def __new__(
        cls,
        action: Action,
        rule_id: str | None,
        reason: str,
        matches: tuple[RuleMatch, ...],
        shadow: tuple[RuleMatch, ...],
        policy_version: str,
        timeout_seconds: float | None,
        value_at_risk: float | None,
    ) -> Verdict:
        """A verdict with every field given (tests, tools)."""
        return _new(
            cls,
            (action, rule_id, reason, policy_version, timeout_seconds,
             None, matches, shadow, None, value_at_risk, None),
        )  # fmt: skip

    @classmethod
    def _lazy(
        cls,
        action: Action,
        rule_id: str | None,
        reason: str,
        policy_version: str,
        timeout_seconds: float | None,
        decider: RuleMatch | None,
        others: LazyHits,
        shadow: LazyHits,
        call: Call | None,
        params: Mapping[str, Any],
        value_fn: Callable[[Mapping[str, Any]], float | None],
    ) -> Verdict:
        return _new(
            cls,
            (action, rule_id, reason, policy_version, timeout_seconds,
             decider, others, shadow, call, params, value_fn),
        )  # fmt: skip

    action: Action = property(itemgetter(0))  # type: ignore[assignment]
    rule_id: str | None = property(itemgetter(1))  # type: ignore[assignment]
    reason: str = property(itemgetter(2))  # type: ignore[assignment]
    policy_version: str = property(itemgetter(3))  # type: ignore[assignment]
    timeout_seconds: float | None = property(itemgetter(4))  # type: ignore[assignment]

    @property
    def matches(self) -> tuple[RuleMatch, ...]:
        """Enforced rules that matched, the deciding rule first."""
        decider, others = self[5], self[6]
        if self[10] is None:  # built with every field given
            return others
        rest = tuple(rule.to_match(error, self[8]) for rule, error in others)
        return (decider, *rest) if decider is not None else rest

    @property
    def shadow(self) -> tuple[RuleMatch, ...]:
        """Shadow-mode rules that matched (recorded, never enforced)."""
        hits = self[7]
        if self[10] is None or not hits:
            return hits
        return tuple(rule.to_match(error, self[8]) for rule, error in hits)

    @property
    def value_at_risk(self) -> float | None:
        """The first of the policy's value parameters holding a finite number."""
        fn = self[10]
        if fn is None:
            return self[9]
        return fn(self[9])

    @property
    def has_shadow(self) -> bool:
        """True when a shadow rule matched (without rendering its message)."""
        return bool(self[7])

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.action, self.rule_id, self.reason, self.matches, self.shadow,
            self.policy_version, self.timeout_seconds, self.value_at_risk,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Verdict(action={self.action!r}, rule_id={self.rule_id!r}, reason={self.reason!r}, "
            f"matches={self.matches!r}, shadow={self.shadow!r}, "
            f"policy_version={self.policy_version!r}, timeout_seconds={self.timeout_seconds!r}, "
            f"value_at_risk={self.value_at_risk!r})"
        )


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    """How one condition (or group) evaluated: ``result`` True / False / None (= error)."""

    text: str  # e.g. "amount gt 100" or "any of"
    result: bool | None
    error: str | None = None
    actual: str | None = None  # the parameter value seen, shortened (None for groups)
    children: tuple[ConditionTrace, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """Why one rule did or did not take part in a decision."""

    rule_id: str
    name: str | None
    action: Action
    priority: int
    mode: str  # "enforce" | "shadow"
    enabled: bool
    pattern_matched: bool
    agent_matched: bool
    conditions: tuple[ConditionTrace, ...]
    matched: bool  # the rule matched (including "matched because a condition errored")
    error: str | None
    decided: bool = False  # this rule decided the verdict
    note: str = field(default="")  # e.g. "disabled", "function name does not match"
