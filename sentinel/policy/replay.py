"""Replay: what a candidate policy would have decided for the calls in the audit history.

Every recorded decision event carries the call's redacted arguments: ``allowed`` and ``blocked``
(``data["args"]``) and ``approval_requested`` (``data["arguments"]``). Replay evaluates the
candidate against each and reports the calls whose outcome would change — allow → approval,
approval → block, … — grouped by rule, with counts and value at risk.

What replay can see is what was recorded: allowed calls are in the history only when the guard
records them (``audit_log=True``, or when a shadow rule or a limit looked at them); arguments are
redacted (a condition on a secret parameter sees ``[REDACTED]``); and calls that a limit or the
anomaly detector escalated are counted apart, since their outcome did not come from the rules.

The command center calls :func:`replay_history` for the file being edited (``parse_policy`` of
the editor's text) before it is saved.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sentinel.policy.evaluate import Policy
from sentinel.policy.models import Action

#: Event kind → the action that was taken.
#: Days of history a replay reads by default (``sentinel rules replay --since``, the command
#: center's ``R``).
DEFAULT_SINCE_DAYS = 7

RECORDED_ACTIONS = {
    "allowed": Action.ALLOW,
    "blocked": Action.BLOCK,
    "approval_requested": Action.REQUIRE_APPROVAL,
}
#: Rule ids of escalations by guard hooks (their outcome did not come from the rules).
_HOOK_SOURCES = ("limit:", "limits", "anomaly")


@dataclass
class FlipGroup:
    """Calls whose outcome would change the same way because of the same rule.

    ``rule_id`` is the candidate's deciding rule (None: its default action decided);
    ``was_rules`` counts the rules that decided these calls when they were recorded."""

    before: str
    after: str
    rule_id: str | None
    count: int = 0
    value_at_risk: float = 0.0
    was_rules: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stricter(self) -> bool:
        return Action(self.after).strictness > Action(self.before).strictness

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "rule_id": self.rule_id,
            "count": self.count,
            "value_at_risk": self.value_at_risk,
            "was_rules": dict(self.was_rules),
            "examples": list(self.examples),
        }


@dataclass
class ReplayReport:
    """The outcome of a replay. ``flips`` are sorted: most calls first."""

    policy_version: str
    since: float | None
    events: int = 0  # decision events read
    evaluated: int = 0  # with arguments, decided by the rules
    unchanged: int = 0
    no_arguments: int = 0  # recorded without arguments (e.g. a digest-mismatch block)
    by_hooks: int = 0  # escalated by a limit or the anomaly detector
    flips: list[FlipGroup] = field(default_factory=list)
    seconds: float = 0.0
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def changed(self) -> int:
        return sum(g.count for g in self.flips)

    def transitions(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(before, after) → (calls, value at risk), over all rules."""
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for g in self.flips:
            n, v = out.get((g.before, g.after), (0, 0.0))
            out[(g.before, g.after)] = (n + g.count, v + g.value_at_risk)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "since": self.since,
            "events": self.events,
            "evaluated": self.evaluated,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "skipped": {"no_arguments": self.no_arguments, "decided_by_hooks": self.by_hooks},
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "transitions": [
                {"before": b, "after": a, "count": n, "value_at_risk": v}
                for (b, a), (n, v) in sorted(self.transitions().items())
            ],
            "flips": [g.to_dict() for g in self.flips],
            "seconds": round(self.seconds, 3),
        }


def replay_events(
    policy: Policy, events: Iterable[Any], *, since: float | None = None, examples: int = 3
) -> ReplayReport:
    """Replay decision events (``EventRecord`` objects; other kinds are ignored)."""
    started = time.perf_counter()
    report = ReplayReport(policy.version, since)
    groups: dict[tuple[str, str, str | None], FlipGroup] = {}
    evaluate = policy.evaluate
    for ev in events:
        before = RECORDED_ACTIONS.get(ev.kind)
        if before is None:
            continue
        report.events += 1
        if report.first_ts is None or ev.ts < report.first_ts:
            report.first_ts = ev.ts
        if report.last_ts is None or ev.ts > report.last_ts:
            report.last_ts = ev.ts
        rule = ev.rule_id or ""
        if rule.startswith(_HOOK_SOURCES):
            report.by_hooks += 1
            continue
        data = ev.data or {}
        args = data.get("args")
        if args is None:
            args = data.get("arguments")
        if not isinstance(args, dict) or not ev.function:
            report.no_arguments += 1
            continue
        report.evaluated += 1
        verdict = evaluate(ev.function, args, ev.agent_id)
        after = verdict.action
        if after is before:
            report.unchanged += 1
            continue
        key = (before.value, after.value, verdict.rule_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FlipGroup(before.value, after.value, verdict.rule_id)
        group.count += 1
        value = verdict.value_at_risk
        if value is None:
            value = ev.value_at_risk
        if value is not None:
            group.value_at_risk += value
        was = ev.rule_id or "(default)"
        group.was_rules[was] = group.was_rules.get(was, 0) + 1
        if len(group.examples) < examples:
            group.examples.append(
                {"seq": ev.seq, "ts": ev.ts, "function": ev.function, "agent_id": ev.agent_id}
            )
    report.flips = sorted(groups.values(), key=lambda g: (-g.count, g.before, g.after))
    report.seconds = time.perf_counter() - started
    return report


def iter_decisions(store: Any, *, since: float | None = None, page: int = 2000) -> Iterable[Any]:
    """Decision events from ``store`` (newest first), in pages."""
    from sentinel.store.models import HistoryFilter

    flt = HistoryFilter(kinds=tuple(RECORDED_ACTIONS), since=since)
    before: int | None = None
    while True:
        rows = store.history(flt, before_seq=before, limit=page)
        if not rows:
            return
        yield from rows
        if len(rows) < page:
            return
        before = rows[-1].seq


def replay_history(
    policy: Policy, store: Any, *, since: float | None = None, examples: int = 3
) -> ReplayReport:
    """Replay every decision recorded in ``store`` since ``since`` (epoch seconds; None = all)
    against ``policy``. ``store`` is a :class:`sentinel.store.Store` (read only)."""
    return replay_events(policy, iter_decisions(store, since=since), since=since, examples=examples)


__all__ = [
    "RECORDED_ACTIONS",
    "FlipGroup",
    "ReplayReport",
    "iter_decisions",
    "replay_events",
    "replay_history",
]
