"""Which edits of a policy *widen* what is allowed (pure; no I/O).

A widening is a change after which some call could get a looser decision than before (allowed
where it was asked or blocked, asked where it was blocked, or counted against a higher limit).
The analysis is rule by rule and conservative in one direction only: a change it cannot prove
harmless (a rewritten pattern, an unfamiliar condition) is reported, while a change it can prove
tightens (a condition added to an allow rule, a lower ``lte`` bound, a new block rule) is not.

>>> from sentinel.policy import parse_policy
>>> old = parse_policy('''
... default_action: block
... rules: [{id: pay, function_pattern: "pay*", action: allow,
...          conditions: [{param: amount, operator: lte, value: 100}]}]''')
>>> new = parse_policy('''
... default_action: block
... rules: [{id: pay, function_pattern: "pay*", action: allow,
...          conditions: [{param: amount, operator: lte, value: 900}]}]''')
>>> [(w.rule_id, w.kind) for w in find_widenings(old, new)]
[('pay', 'condition')]
>>> find_widenings(new, old)
[]
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sentinel.policy.evaluate import Policy
from sentinel.policy.models import Action, Condition, Limit, Rule, parse_window
from sentinel.policy.values import NotANumber, to_decimal


@dataclass(frozen=True, slots=True)
class Widening:
    """One way an edit widens what is allowed. ``rule_id`` is None for a policy setting;
    ``kind`` is one of ``added``, ``removed``, ``disabled``, ``action``, ``condition``,
    ``pattern``, ``limit``, ``terms``, ``order``, ``default_action``, ``ordering``, ``anomaly``;
    ``reason`` says it for a person."""

    rule_id: str | None
    kind: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the ``widened`` list of a ``policy_loaded`` event)."""
        return {"rule_id": self.rule_id, "kind": self.kind, "reason": self.reason}


def _strictness(action: str) -> int:
    return Action(action).strictness


def _effective(rule: Rule) -> bool:
    """A rule that takes part in decisions (enabled and enforcing)."""
    return rule.enabled and rule.mode == "enforce"


def _key(node: Any) -> Any:
    return node.model_dump(mode="json", by_alias=True, exclude_defaults=True)


_LOWER = {"gt": True, "gte": False}  # operator -> strict bound
_UPPER = {"lt": True, "lte": False}


def _number(value: Any) -> Decimal | None:
    try:
        return to_decimal(value)
    except (NotANumber, TypeError, ValueError):
        return None


def _subset(a: Any, b: Any) -> bool:
    """True when every call condition ``a`` matches is also matched by ``b`` (provably)."""
    if _key(a) == _key(b):
        return True
    if not (isinstance(a, Condition) and isinstance(b, Condition)) or a.param != b.param:
        return False
    for table, larger_is_narrower in ((_LOWER, True), (_UPPER, False)):
        if a.operator in table and b.operator in table:
            x, y = _number(a.value), _number(b.value)
            if x is None or y is None:
                return False
            if x == y:  # same bound: the strict one is narrower
                return table[a.operator] or not table[b.operator]
            return (x > y) if larger_is_narrower else (x < y)
    if a.operator == b.operator == "in" and isinstance(a.value, list):
        return all(v in b.value for v in a.value)
    if a.operator == b.operator == "not_in" and isinstance(b.value, list):
        return all(v in a.value for v in b.value)
    return False


def _matches_narrower_or_same(old: list[Any], new: list[Any]) -> bool:
    """All-of conditions: the new list matches no call the old one does not (each old
    condition is implied by some new one)."""
    return all(any(_subset(n, o) for n in new) for o in old)


def _patterns(p: Any) -> set[str] | None:
    if p is None:
        return None
    return {p.lower()} if isinstance(p, str) else {x.lower() for x in p}


def _patterns_subset(a: Any, b: Any) -> bool:
    """Pattern lists ``a`` match no name that ``b`` does not (provably: ``a`` ⊆ ``b``)."""
    pa, pb = _patterns(a), _patterns(b)
    if pb is None or "*" in pb:  # b matches everything
        return True
    if pa is None:
        return False
    return all(any(_glob_within(x, y) for y in pb) for x in pa)


_WILD = frozenset("*?[")


def _glob_within(a: str, b: str) -> bool:
    """Every name glob ``a`` matches, glob ``b`` matches too (provable cases only)."""
    if a == b:
        return True
    if not _WILD & set(a):  # a literal name
        return fnmatch.fnmatchcase(a, b)
    head = b[:-1]
    return b.endswith("*") and not _WILD & set(head) and a.startswith(head)


def _limit_widenings(rid: str, old: Limit, new: Limit) -> list[Widening]:
    out: list[Widening] = []
    if (old.count is None) != (new.count is None) or old.sum != new.sum:
        return [Widening(rid, "limit", "the limit counts something else now")]
    if old.count is not None and new.count is not None and new.count > old.count:
        out.append(Widening(rid, "limit", f"limit raised from {old.count} to {new.count} calls"))
    if old.max is not None and new.max is not None and new.max > old.max:
        out.append(Widening(rid, "limit", f"limit raised from {old.max} to {new.max}"))
    if parse_window(new.window) < parse_window(old.window):
        out.append(Widening(rid, "limit", f"window shortened from {old.window} to {new.window}"))
    if set(new.scopes) != set(old.scopes):
        out.append(
            Widening(
                rid,
                "limit",
                f"counted per {', '.join(new.scopes)} (was "
                f"{', '.join(old.scopes)}): each scope gets its own allowance",
            )
        )
    return out


def _names(names: Any) -> str:
    return ", ".join(names)


def _terms_widenings(old: Rule, new: Rule) -> list[Widening]:
    """Who decides a require_approval rule's requests, compared: fewer approvals needed, more
    people (or anyone) allowed to approve, the agent allowed to approve itself, more denials
    needed to stop a call, or a wider set of deciders reached sooner after the escalation delay."""
    rid = new.id
    out: list[Widening] = []
    if new.quorum < old.quorum:
        out.append(Widening(rid, "terms", f"quorum lowered from {old.quorum} to {new.quorum}"))
    old_approvers, new_approvers = set(old.approvers or ()), set(new.approvers or ())
    if old_approvers and not new_approvers:
        out.append(
            Widening(
                rid,
                "terms",
                f"approvers removed (was {_names(old.approvers)}): any operator may approve",
            )
        )
    elif old_approvers and new_approvers - old_approvers:
        added = [a for a in new.approvers or () if a not in old_approvers]
        out.append(Widening(rid, "terms", f"approvers extended with {_names(added)}"))
    if new.allows_self_approval and not old.allows_self_approval:
        how = "self_approval turned on" if new.self_approval else "self_approval on by default"
        out.append(
            Widening(rid, "terms", f"{how}: the agent's own identity may approve its request")
        )
    if new.deny_quorum > old.deny_quorum:
        out.append(
            Widening(
                rid,
                "terms",
                f"deny_quorum raised from {old.deny_quorum} to {new.deny_quorum}: "
                "more denials are needed to stop a call",
            )
        )
    if new.grantable and not old.grantable:
        out.append(
            Widening(
                rid,
                "terms",
                "grantable turned on: a standing grant may now let its calls run without a person",
            )
        )
    if new_approvers:  # without approvers anyone decides at once: escalation changes nothing
        out.extend(_escalation_widenings(old, new, old_approvers))
    return out


def _escalation_widenings(old: Rule, new: Rule, old_approvers: set[str]) -> list[Widening]:
    """``escalate_after`` / ``escalate_to`` compared, where both rules name approvers (a rule
    without them let anyone decide at once: no escalation can widen that)."""
    rid = new.id
    new_after = new.escalate_seconds
    if new_after is None or not old_approvers:
        return []
    # Who the old rule let decide at any time.
    old_reach = old_approvers | set(old.escalate_to)
    gained = [n for n in new.escalate_to if n not in old_reach]
    old_after = old.escalate_seconds
    if old_after is None:
        if not gained:
            return []
        return [
            Widening(
                rid,
                "terms",
                f"escalation added: {_names(gained)} may decide after {new.escalate_after}",
            )
        ]
    out: list[Widening] = []
    if gained:
        out.append(Widening(rid, "terms", f"escalate_to extended with {_names(gained)}"))
    # Sooner matters for whoever the escalation reaches that the old approvers did not include.
    if new_after < old_after and set(new.escalate_to) - old_approvers:
        out.append(
            Widening(
                rid,
                "terms",
                f"escalate_after shortened from {old.escalate_after} to {new.escalate_after}",
            )
        )
    return out


def _strict_rule_narrowed(old: Rule, new: Rule) -> list[Widening]:
    """A block / require_approval / limit rule that now catches fewer calls."""
    rid = new.id
    out: list[Widening] = []
    if not _patterns_subset(old.function_pattern, new.function_pattern):
        out.append(
            Widening(rid, "pattern", "function_pattern no longer covers every function it did")
        )
    if not _patterns_subset(old.agent_pattern, new.agent_pattern):
        out.append(Widening(rid, "pattern", "agent_pattern no longer covers every agent it did"))
    # A strict rule catches more with fewer conditions: each new condition must be implied by
    # an old one (new ⊇ old).
    if not all(any(_subset(o, n) for o in old.conditions) for n in new.conditions):
        what = {"block": "blocks", "require_approval": "asks for approval on"}.get(new.action)
        if new.limit is not None:
            what = "counts"
        out.append(
            Widening(
                rid, "condition", f"{what} fewer calls (a condition added or its threshold moved)"
            )
        )
    return out


def _allow_rule_broadened(old: Rule, new: Rule) -> list[Widening]:
    """An allow rule that now lets more calls through."""
    rid = new.id
    out: list[Widening] = []
    if not _patterns_subset(new.function_pattern, old.function_pattern):
        out.append(Widening(rid, "pattern", "allows functions it did not (function_pattern)"))
    if not _patterns_subset(new.agent_pattern, old.agent_pattern):
        out.append(Widening(rid, "pattern", "allows agents it did not (agent_pattern)"))
    if not _matches_narrower_or_same(list(old.conditions), list(new.conditions)):
        out.append(Widening(rid, "condition", "allow condition removed or loosened"))
    return out


def _added_widens(rule: Rule, default: str, first_match: bool, later_stricter: bool) -> bool:
    if rule.limit is not None:
        return False  # a new limit only ever escalates
    if _strictness(rule.action) < _strictness(default):
        return True
    return first_match and later_stricter


def find_widenings(old: Policy | None, new: Policy) -> list[Widening]:
    """Every way ``new`` allows more than ``old`` (empty when the edit keeps or tightens).

    Kinds reported: a new rule looser than the default action (or, under ``first_match``, placed
    before a stricter rule); a block / approval / limit rule removed, disabled or put in shadow
    mode; an action lowered; an approval rule's decision terms loosened (quorum lowered,
    approvers extended or removed, self-approval turned on, deny quorum raised, escalation
    added, sooner or to more people); an allow rule whose conditions or patterns were loosened, or a strict
    rule whose conditions or patterns were narrowed; a limit raised, its window shortened or its
    scope changed; ``default_action`` loosened; ``ordering`` switched to ``first_match``; anomaly
    escalation switched off or its thresholds raised. ``old`` None (nothing before): nothing.
    """
    if old is None:
        return []
    om, nm = old.model, new.model
    out: list[Widening] = []
    if _strictness(nm.default_action) < _strictness(om.default_action):
        out.append(
            Widening(
                None,
                "default_action",
                f"default_action loosened from {om.default_action} to {nm.default_action}",
            )
        )
    if om.ordering == "strictest" and nm.ordering == "first_match":
        out.append(
            Widening(
                None,
                "ordering",
                "ordering switched to first_match: an earlier looser rule now wins "
                "over a later stricter one",
            )
        )
    first_match = nm.ordering == "first_match"
    old_rules = {r.id: r for r in om.rules if _effective(r)}
    new_list = [r for r in nm.rules if _effective(r)]
    all_old = {r.id: r for r in om.rules}
    for pos, rule in enumerate(new_list):
        rid = rule.id
        before = old_rules.get(rid)
        later_stricter = any(
            r.limit is None and _strictness(r.action) > _strictness(rule.action)
            for r in new_list[pos + 1 :]
        )
        if before is None:
            if _added_widens(rule, nm.default_action, first_match, later_stricter):
                was = all_old.get(rid)
                verb = "re-enabled" if was is not None else "new"
                out.append(
                    Widening(
                        rid, "added", f"{verb} {rule.action} rule for {', '.join(rule.patterns)}"
                    )
                )
            continue
        if _strictness(rule.action) < _strictness(before.action):
            out.append(
                Widening(rid, "action", f"action lowered from {before.action} to {rule.action}")
            )
        if (before.limit is None) != (rule.limit is None):
            if before.limit is not None:
                out.append(Widening(rid, "limit", "limit removed"))
            continue
        if before.limit is not None and rule.limit is not None:
            out.extend(_limit_widenings(rid, before.limit, rule.limit))
        if rule.action == before.action == "require_approval":
            out.extend(_terms_widenings(before, rule))
        if rule.limit is not None or rule.action != "allow":
            out.extend(_strict_rule_narrowed(before, rule))
        elif before.action == "allow":
            out.extend(_allow_rule_broadened(before, rule))
        # An action lowered *to* allow was reported above; its conditions then widen too,
        # which the "action" widening already says.
    if first_match and om.ordering == "first_match":
        out.extend(_order_widenings(list(old_rules.values()), new_list))
    new_ids = {r.id for r in new_list}
    for rid, rule in old_rules.items():
        if rid in new_ids or (rule.action == "allow" and rule.limit is None):
            continue
        gone = next((r for r in nm.rules if r.id == rid), None)
        if gone is None:
            reason = f"{rule.action} rule removed"
            kind = "removed"
        elif not gone.enabled:
            reason, kind = f"{rule.action} rule disabled", "disabled"
        else:
            reason, kind = f"{rule.action} rule put in shadow mode (no longer enforced)", "disabled"
        out.append(Widening(rid, kind, reason))
    out.extend(_anomaly_widenings(om.anomaly, nm.anomaly))
    return out


def _order_widenings(old: list[Rule], new: list[Rule]) -> list[Widening]:
    """Under first_match: a looser rule that now comes before a stricter one it followed."""
    old_pos = {r.id: i for i, r in enumerate(old)}
    out: list[Widening] = []
    for i, a in enumerate(new):
        for b in new[i + 1 :]:
            if a.id in old_pos and b.id in old_pos and old_pos[a.id] > old_pos[b.id]:
                if (
                    a.limit is None
                    and b.limit is None
                    and (_strictness(a.action) < _strictness(b.action))
                ):
                    out.append(
                        Widening(
                            a.id,
                            "order",
                            f"{a.action} rule now evaluated before "
                            f"{b.action} rule {b.id!r} (first_match)",
                        )
                    )
    return out


def _anomaly_widenings(old: Any, new: Any) -> list[Widening]:
    if old is None or not old.enabled:
        return []
    if new is None or not new.enabled:
        return [Widening(None, "anomaly", "anomaly escalation switched off")]
    out: list[Widening] = []
    for name in ("escalate", "block"):
        a, b = getattr(old, name), getattr(new, name)
        if a is not None and (b is None or b > a):
            out.append(
                Widening(
                    None,
                    "anomaly",
                    f"anomaly {name} threshold raised from {a} to "
                    f"{b if b is not None else 'the default'}",
                )
            )
    return out


def summarize(widenings: list[Widening]) -> str:
    """One line for a log or event reason: ``widened: pay (allow condition removed…); …``."""
    return "; ".join(
        f"{w.rule_id}: {w.reason}" if w.rule_id is not None else w.reason for w in widenings
    )


__all__ = ["Widening", "find_widenings", "summarize"]
