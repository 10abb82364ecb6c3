"""``sentinel rules …``: validate a rules file and explain decisions.

Subcommands (each a small function, so ``test`` and ``replay`` can be added alongside):

* ``sentinel rules check [PATH]`` — validate, list the rules in evaluation order, run the
  file's test cases. Exit 0 when valid, 1 when not (errors on stderr).
* ``sentinel rules explain FUNCTION key=value … [--agent ID] [--rules PATH]`` — the verdict
  for one call and, for every rule, whether and why it matched.
* ``sentinel rules test [PATH]`` — run the file's ``tests:`` cases: each case, the rule that
  decided it, and rule coverage (rules no case reaches). Exit 0 all pass, 1 otherwise.
* ``sentinel rules replay NEW.yaml [--since 7d] [--db PATH] [--json]`` — what a candidate policy
  would change for the calls recorded in the audit history.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.errors import PolicyError
from sentinel.policy.replay import DEFAULT_SINCE_DAYS
from sentinel.redact import safe_text


def register(subparsers: Any) -> None:
    """Add the ``rules`` command group to the ``sentinel`` parser."""
    parser = subparsers.add_parser(
        "rules",
        help="validate and explain rules files",
        description="Validate a rules file and explain how it decides calls.",
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")

    check = sub.add_parser("check", help="validate a rules file and run its test cases")
    check.add_argument(
        "path", nargs="?", help="rules file (default: $SENTINEL_RULES_PATH or ./rules.yaml)"
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    check.set_defaults(func=cmd_check)

    explain = sub.add_parser("explain", help="show how the rules decide one call")
    explain.add_argument("function", help="function (tool) name")
    explain.add_argument(
        "params", nargs="*", metavar="key=value", help="arguments; values are JSON when they parse"
    )
    explain.add_argument("--agent", default=None, help="agent id")
    explain.add_argument("--rules", dest="path", default=None, help="rules file")
    explain.set_defaults(func=cmd_explain)

    test = sub.add_parser("test", help="run a rules file's test cases and show rule coverage")
    test.add_argument(
        "path", nargs="?", help="rules file (default: $SENTINEL_RULES_PATH or ./rules.yaml)"
    )
    test.add_argument(
        "--require-coverage",
        action="store_true",
        help="also fail (exit 1) when a rule is reached by no case",
    )
    test.set_defaults(func=cmd_test)

    replay = sub.add_parser(
        "replay", help="show what a candidate rules file would change for recorded calls"
    )
    replay.add_argument("path", help="the candidate rules file")
    since = f"{DEFAULT_SINCE_DAYS}d"
    replay.add_argument(
        "--since",
        default=since,
        help=f"how far back: 24h, 7d, an ISO date, or 'all' (default {since})",
    )
    add_db_option(replay)
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.add_argument(
        "--examples", type=int, default=3, help="example calls shown per group (default 3)"
    )
    replay.set_defaults(func=cmd_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def default_rules_path(path: str | None) -> Path:
    """``path``, else ``$SENTINEL_RULES_PATH``, else ``./rules.yaml``."""
    return Path(path or os.environ.get("SENTINEL_RULES_PATH") or "rules.yaml")


def _load(path: Path) -> Any:
    from sentinel.policy import load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        print(f"error: {safe_text(str(exc))}", file=sys.stderr)
        problems = getattr(exc, "problems", None) or []
        if len(problems) > 1:
            print("all problems:", file=sys.stderr)
            for problem in problems:
                print(f"  {safe_text(problem)}", file=sys.stderr)
        return None


def _patterns(globs: tuple[str, ...] | None) -> str:
    return ",".join(globs) if globs else "*"


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the rules file; print the rules in evaluation order and the test results."""
    from sentinel.policy.conditions import describe
    from sentinel.policy.loader import case_label, run_case

    path = default_rules_path(args.path)
    policy = _load(path)
    if policy is None:
        return 1
    if args.quiet:
        return 0
    rules = policy.rules
    print(
        f"{safe_text(str(path))}: valid — {len(rules)} rule(s), default {policy.default_action.value}, "
        f"ordering {policy.ordering}, version {policy.version[:12]}"
    )
    if rules:
        rows: list[tuple[str, ...]] = [
            ("#", "id", "action", "prio", "mode", "function", "conditions")
        ]
        for i, rule in enumerate(rules, 1):
            conds = " and ".join(describe(c) for c in rule.conditions) or "(always)"
            mode = rule.mode if rule.enabled else "disabled"
            pattern = _patterns(rule.patterns)
            if rule.agent_patterns:
                pattern += f" [agent {_patterns(rule.agent_patterns)}]"
            rows.append((str(i), rule.id, rule.action, str(rule.priority), mode, pattern, conds))
        _table(rows)
    cases = policy.model.tests
    if cases:
        print(f"tests: {len(cases)} case(s)")
        for i, case in enumerate(cases):
            problem = run_case(policy, case)
            mark = "ok  " if problem is None else "FAIL"
            detail = f"{case.call.function} -> {case.expect.action}"
            if "rule" in case.expect.model_fields_set:
                detail += f" (rule {case.expect.rule})"
            print(f"  {mark} {safe_text(case_label(case, i))}: {safe_text(detail)}")
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(safe_text(c, 160) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  " + "  ".join(cells).rstrip())


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` → (key, value); the value is JSON when it parses (``5000``, ``true``, ``[1]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the verdict for one call and every rule's trace."""
    try:
        params = dict(parse_assignment(p) for p in args.params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    policy = _load(default_rules_path(args.path))
    if policy is None:
        return 1
    verdict = policy.evaluate(args.function, params, args.agent)
    print(f"call:    {safe_text(args.function)}({safe_text(json.dumps(params, default=str), 300)})")
    if args.agent:
        print(f"agent:   {safe_text(args.agent)}")
    print(
        f"verdict: {verdict.action.value.upper()}"
        + (f" by rule {verdict.rule_id}" if verdict.rule_id else " (default action)")
    )
    print(f"reason:  {safe_text(verdict.reason, 500)}")
    if verdict.value_at_risk is not None:
        print(f"value at risk: {verdict.value_at_risk:g}")
    if verdict.timeout_seconds is not None:
        print(f"approval timeout: {verdict.timeout_seconds:g}s")
    if verdict.action.value == "require_approval":
        who = describe_terms(policy.terms_for(verdict.rule_id))
        if who:
            print(f"who decides: {safe_text(who, 300)}")
    for m in verdict.shadow:
        print(f"shadow:  rule {m.rule_id} would {m.action.value}: {safe_text(m.message, 300)}")
    print("rules (evaluation order):")
    for trace in policy.explain(args.function, params, args.agent):
        if trace.decided:
            status = "DECIDED"
        elif trace.matched:
            status = "matched (shadow)" if trace.mode == "shadow" else "matched"
        else:
            status = "no"
        line = f"  {status:<16} {trace.rule_id}  {trace.action.value}  prio {trace.priority}"
        if trace.note:
            line += f"  — {trace.note}"
        print(safe_text(line, 400))
        for cond in trace.conditions:
            _print_condition(cond, 6)
    return 0


def describe_terms(terms: Any) -> str:
    """A rule's decision terms in one line (empty for the default: any one operator)."""
    if terms.is_default:
        return ""
    parts = [f"{', '.join(terms.approvers)}" if terms.approvers else "any operator"]
    if terms.quorum > 1:
        parts.append(f"{terms.quorum} approvals needed")
    if terms.deny_quorum > 1:
        parts.append(f"{terms.deny_quorum} denials end it")
    if not terms.self_approval:
        parts.append("not the agent's own identity")
    if terms.escalate_after is not None and terms.escalate_to:
        parts.append(
            f"after {terms.escalate_after:g}s also {', '.join(terms.escalate_to)} (escalation)"
        )
    return "; ".join(parts)


def _print_condition(cond: Any, indent: int) -> None:
    result = "error" if cond.result is None else ("true" if cond.result else "false")
    text = f"{' ' * indent}{cond.text}: {result}"
    if cond.actual is not None:
        text += f"   (value: {cond.actual})"
    if cond.error:
        text += f"   [{cond.error}]"
    print(safe_text(text, 400))
    for child in cond.children:
        _print_condition(child, indent + 2)


# --- rules test ------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    """Run the file's test cases; print each, the deciding rule, and rule coverage."""
    from sentinel.limits import plan
    from sentinel.policy import load_policy
    from sentinel.policy.loader import case_label, run_case

    path = default_rules_path(args.path)
    try:
        policy = load_policy(path, run_tests=False)  # the cases are run and reported here
    except PolicyError as exc:
        print(f"error: {safe_text(str(exc))}", file=sys.stderr)
        return 1
    cases = policy.model.tests
    print(f"{safe_text(str(path))}: {len(cases)} test case(s), {len(policy.rules)} rule(s)")
    reached: set[str] = set()
    failed = 0
    for i, case in enumerate(cases):
        call = case.call
        verdict = policy.evaluate(call.function, call.args, call.agent)
        for m in (*verdict.matches, *verdict.shadow):
            reached.add(m.rule_id)
        for p in plan(policy, call.function, call.args, call.agent):
            reached.add(p.rule.id)
        problem = run_case(policy, case)
        failed += problem is not None
        mark = "ok  " if problem is None else "FAIL"
        args_text = json.dumps(call.args, default=str, ensure_ascii=False)
        who = f" [agent {call.agent}]" if call.agent else ""
        decided = f"rule {verdict.rule_id}" if verdict.rule_id else "the default action"
        print(
            safe_text(
                f"  {mark} {case_label(case, i)}: {call.function}({args_text}){who} -> "
                f"{verdict.action.value} by {decided}",
                400,
            )
        )
        if problem is not None:
            print(safe_text(f"       {problem}", 400))
        extra = [m.rule_id for m in verdict.matches[1:]]
        if extra:
            print(safe_text(f"       also matched: {', '.join(extra)}", 400))
        if verdict.shadow:
            print(safe_text(f"       shadow: {', '.join(m.rule_id for m in verdict.shadow)}", 400))
    enabled = [r for r in policy.rules if r.enabled]
    missed = [r.id for r in enabled if r.id not in reached]
    covered = len(enabled) - len(missed)
    print(f"coverage: {covered}/{len(enabled)} enabled rule(s) reached by a case")
    if missed:
        print(safe_text("  not reached: " + ", ".join(missed), 2000))
    disabled = [r.id for r in policy.rules if not r.enabled]
    if disabled:
        print(safe_text("  disabled (not counted): " + ", ".join(disabled), 2000))
    if failed:
        print(f"{failed} of {len(cases)} case(s) FAILED", file=sys.stderr)
        return 1
    if missed and args.require_coverage:
        print(f"{len(missed)} rule(s) reached by no case", file=sys.stderr)
        return 1
    print("all cases pass" if cases else "no test cases (add `tests:` to the file)")
    return 0


# --- rules replay ----------------------------------------------------------------------------------


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d`` / ``24h`` / ``90m`` → epoch seconds that long ago; an ISO date or time as is;
    ``all`` (or None) → None (everything)."""
    from datetime import datetime

    from sentinel.policy.models import parse_window

    if text is None or text.strip().lower() in ("", "all"):
        return None
    now = time.time() if now is None else now
    try:
        return now - parse_window(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"--since: cannot read {text!r}; write e.g. 24h, 7d, 2026-11-01 or all"
        ) from None


def cmd_replay(args: argparse.Namespace) -> int:
    """Evaluate a candidate policy against recorded calls; print what would change."""
    from sentinel.errors import StoreError
    from sentinel.policy import load_policy
    from sentinel.policy.replay import replay_history
    from sentinel.store.location import open_store

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.path)
    except PolicyError as exc:
        print(f"error: {safe_text(str(exc))}", file=sys.stderr)
        return 1
    try:
        store = open_store(args.db, create=False, source="--db")
    except StoreError as exc:
        print(f"error: {safe_text(str(exc))}", file=sys.stderr)
        return 1
    try:
        report = replay_history(policy, store, since=since, examples=max(0, args.examples))
    except StoreError as exc:
        print(f"error: {safe_text(str(exc))}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        out = report.to_dict()
        out["path"] = str(args.path)
        out["db"] = str(store.path)
        print(json.dumps(out, indent=2, default=str))
        return 0
    _print_replay(report, args.path, store.path)
    return 0


def _when(ts: float | None) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts is not None else "-"


def _money(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}".rstrip("0").rstrip(".")


def _print_replay(report: Any, path: str, db: Any) -> None:
    span = "all recorded history" if report.since is None else f"since {_when(report.since)}"
    print(
        safe_text(f"replay of {path} (version {report.policy_version[:12]}) against {db}, {span}")
    )
    print(
        f"  {report.events} decision(s) recorded ({_when(report.first_ts)} .. {_when(report.last_ts)}); "
        f"{report.evaluated} replayed: {report.unchanged} unchanged, {report.changed} would change"
    )
    if report.no_arguments or report.by_hooks:
        print(
            f"  skipped: {report.no_arguments} without arguments, "
            f"{report.by_hooks} escalated by limits/anomaly detection (not decided by rules)"
        )
    if not report.flips:
        print("no recorded call would be decided differently")
    else:
        print("would change:")
        for (before, after), (n, value) in sorted(
            report.transitions().items(), key=lambda kv: -kv[1][0]
        ):
            print(f"  {before} -> {after}: {n} call(s), value at risk {_money(value)}")
        print("by rule:")
        rows: list[tuple[str, ...]] = [
            ("rule", "change", "calls", "value at risk", "was decided by")
        ]
        for g in report.flips:
            was = ", ".join(
                f"{r} ({n})" for r, n in sorted(g.was_rules.items(), key=lambda kv: -kv[1])
            )
            rows.append(
                (
                    g.rule_id or "(default action)",
                    f"{g.before} -> {g.after}",
                    str(g.count),
                    _money(g.value_at_risk),
                    was,
                )
            )
        _table(rows)
        shown = [g for g in report.flips if g.examples]
        if shown:
            print("examples:")
            for g in shown:
                for ex in g.examples:
                    agent = f" agent {ex['agent_id']}" if ex.get("agent_id") else ""
                    print(
                        safe_text(
                            f"  #{ex['seq']} {_when(ex['ts'])} {ex['function']}{agent}: "
                            f"{g.before} -> {g.after} ({g.rule_id or 'default action'})",
                            300,
                        )
                    )
    print(
        "note: replay sees what was recorded: allowed calls only when audit_log is on (or a "
        "shadow rule or limit looked at them); arguments are redacted."
    )
