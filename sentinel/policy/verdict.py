"""Result types of policy evaluation: plain frozen dataclasses, cheap to build and to pass around."""

from __future__ import annotations

from dataclasses import dataclass, field

from sentinel.policy.models import Action


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched a call."""

    rule_id: str
    name: str | None
    action: Action
    message: str  # already rendered with the call's parameters
    priority: int
    shadow: bool
    error: str | None  # a condition could not be evaluated (the rule matched out of caution)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's decision for one call."""

    action: Action  # the enforced action (shadow rules excluded)
    rule_id: str | None  # the deciding rule (None = default action)
    reason: str  # human sentence
    matches: tuple[RuleMatch, ...]  # enforced rules that matched, deciding rule first
    shadow: tuple[RuleMatch, ...]  # shadow-mode rules that matched (recorded, not enforced)
    policy_version: str  # sha256 of the source bytes
    timeout_seconds: float | None  # per-rule approval timeout override
    value_at_risk: float | None  # from the policy's value parameters


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
