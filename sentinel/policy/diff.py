"""What changed between two policies, rule by rule and field by field (pure; no I/O).

The command center's Rules view shows this after a reload; ``sentinel rules replay`` uses it to
name the rules a candidate adds, removes or changes.

>>> from sentinel.policy import parse_policy
>>> old = parse_policy('rules: [{id: a, function_pattern: "x*", action: block}]')
>>> new = parse_policy('rules: [{id: a, function_pattern: "x*", action: require_approval}]')
>>> d = diff_policies(old, new)
>>> [(c.rule_id, [(f.field, f.old, f.new) for f in c.fields]) for c in d.changed]
[('a', [('action', 'block', 'require_approval')])]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentinel.policy.evaluate import Policy

#: Policy-level settings compared besides the rules.
_SETTINGS = ("default_action", "ordering", "value_params", "redact_keys")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a rule (or a policy setting) that differs: JSON-like ``old`` / ``new``
    values; ``None`` on one side means the field is absent (default) there."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule present in both policies whose definition or position changed."""

    rule_id: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """Rules added, removed and changed (by id), settings changed, and the two versions."""

    old_version: str | None
    new_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[RuleChange, ...]
    settings: tuple[FieldChange, ...]
    tests_before: int
    tests_after: int

    @property
    def is_empty(self) -> bool:
        """True when no rule and no setting changed (a comment or test edit, say)."""
        return not (self.added or self.removed or self.changed or self.settings)

    def summary(self) -> str:
        """``+1 rule(s), -0, 2 changed`` style one-liner."""
        parts = [f"+{len(self.added)} added", f"-{len(self.removed)} removed"]
        parts.append(f"{len(self.changed)} changed")
        if self.settings:
            parts.append("settings: " + ", ".join(f.field for f in self.settings))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (events, ``--json`` output)."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [
                {
                    "rule_id": c.rule_id,
                    "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields],
                }
                for c in self.changed
            ],
            "settings": [{"field": f.field, "old": f.old, "new": f.new} for f in self.settings],
        }


def _rule_fields(rule: Any) -> dict[str, Any]:
    return dict(rule.model_dump(mode="json", by_alias=True, exclude_defaults=True))


def diff_policies(old: Policy | None, new: Policy) -> PolicyDiff:
    """Compare ``old`` (None: nothing before) with ``new``.

    Rules are matched by id. A changed rule lists every top-level field that differs
    (``conditions`` and ``limit`` compare as whole values) and ``position`` when its place in
    evaluation order moved.
    """
    old_rules = {r.id: (i, r) for i, r in enumerate(old.rules)} if old is not None else {}
    new_rules = {r.id: (i, r) for i, r in enumerate(new.rules)}
    added = tuple(rid for rid in new_rules if rid not in old_rules)
    removed = tuple(rid for rid in old_rules if rid not in new_rules)
    changed: list[RuleChange] = []
    for rid, (pos, rule) in new_rules.items():
        if rid not in old_rules:
            continue
        old_pos, old_rule = old_rules[rid]
        a, b = _rule_fields(old_rule), _rule_fields(rule)
        fields = [
            FieldChange(key, a.get(key), b.get(key))
            for key in dict.fromkeys([*a, *b])
            if a.get(key) != b.get(key)
        ]
        if old_pos != pos:
            # Only report a move that is not just the echo of rules added or removed before it.
            before_old = [r for r in list(old_rules)[:old_pos] if r in new_rules]
            before_new = [r for r in list(new_rules)[:pos] if r in old_rules]
            if before_old != before_new:
                fields.append(FieldChange("position", old_pos + 1, pos + 1))
        if fields:
            changed.append(RuleChange(rid, tuple(fields)))
    settings: list[FieldChange] = []
    if old is not None:
        for name in _SETTINGS:
            a_val, b_val = getattr(old.model, name), getattr(new.model, name)
            if a_val != b_val:
                settings.append(FieldChange(name, a_val, b_val))
    return PolicyDiff(
        old.version if old is not None else None,
        new.version,
        added,
        removed,
        tuple(changed),
        tuple(settings),
        len(old.model.tests) if old is not None else 0,
        len(new.model.tests),
    )


__all__ = ["FieldChange", "PolicyDiff", "RuleChange", "diff_policies"]
