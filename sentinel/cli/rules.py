"""``sentinel rules …``: validate a rules file and explain decisions.

Subcommands (each a small function, so ``test`` and ``replay`` can be added alongside):

* ``sentinel rules check [PATH]`` — validate, list the rules in evaluation order, run the
  file's test cases. Exit 0 when valid, 1 when not (errors on stderr).
* ``sentinel rules explain FUNCTION key=value … [--agent ID] [--rules PATH]`` — the verdict
  for one call and, for every rule, whether and why it matched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sentinel.errors import PolicyError
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
