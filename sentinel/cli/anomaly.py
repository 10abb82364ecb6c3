"""``sentinel anomaly baseline`` (what the detector believes is normal) and ``sentinel anomaly
reset`` (clear baselines; recorded as an ``anomaly_reset`` event)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.errors import StoreError
from sentinel.redact import safe_text


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    from sentinel.anomaly.score import fmt

    return fmt(x)


def _age(ts: float) -> str:
    s = max(0, int(time.time() - ts))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def _line(v: Any) -> str:
    who = f"{safe_text(v.agent or '(no agent)', 40)} / {safe_text(v.function, 60)}"
    if v.kind == "number":
        recent = ", ".join(_num(x) for x in v.recent)
        return (
            f"{who}  {safe_text(v.param, 40)} (number): {v.size:,} values in window, "
            f"{v.n:,} learned; median {_num(v.median)}, MAD {_num(v.mad)}, "
            f"range {_num(v.lo)}..{_num(v.hi)}; recent: {recent}; updated {_age(v.updated_at)}"
        )
    if v.kind == "category":
        if v.capped:
            known = "too many different values to track (first-seen detection off)"
        else:
            known = ", ".join(f"'{safe_text(s, 40)}' ×{c}" for s, c in v.known_values)
            known = f"{v.size:,} known values: {known}"
        return f"{who}  {safe_text(v.param, 40)} (text): {v.n:,} learned; {known}"
    rate = "not known yet" if v.per_minute is None else f"{v.per_minute:.3g} calls a minute"
    return f"{who}  call rate: {v.n:,} calls learned; usual {rate}"


def _baseline(args: argparse.Namespace) -> int:
    from sentinel.anomaly import describe

    views = describe(_db(args), args.function, args.agent)
    if args.json:
        print(json.dumps([v.to_dict() for v in views], indent=2))
        return 0
    if not views:
        print("no baselines yet (they grow from calls that ran, with anomaly detection on)")
        return 0
    for v in views:
        print(_line(v))
    return 0


def _reset(args: argparse.Namespace) -> int:
    from sentinel.anomaly import reset

    if args.function is None and args.agent is None and not args.all:
        print(
            "sentinel anomaly reset: name --function and/or --agent, or pass --all to clear "
            "every baseline",
            file=sys.stderr,
        )
        return 2
    n = reset(_db(args), args.function, args.agent, reason=args.reason)
    scope = []
    if args.function is not None:
        scope.append(f"function {safe_text(args.function, 60)}")
    if args.agent is not None:
        scope.append(f"agent {safe_text(args.agent or '(none)', 40)}")
    print(f"cleared {n} baseline(s) ({', '.join(scope) or 'all'}); recorded as anomaly_reset")
    return 0


def _db(args: argparse.Namespace) -> Any:
    from sentinel.store.location import parse_or_default

    return parse_or_default(args.db, source="--db")


def _run(args: argparse.Namespace, fn: Any) -> int:
    try:
        code: int = fn(args)
        return code
    except StoreError as exc:
        print(f"sentinel anomaly: {exc}", file=sys.stderr)
        return 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", "-f", help="only this function (exact name)")
    p.add_argument(
        "--agent", "-a", help="only this agent id (exact; an empty string means no agent id)"
    )
    add_db_option(p)


def register(subparsers: Any) -> None:
    """Add ``anomaly baseline`` and ``anomaly reset`` to the ``sentinel`` parser."""
    group = subparsers.add_parser("anomaly", help="anomaly detection baselines")
    sub = group.add_subparsers(dest="anomaly_command", metavar="COMMAND")
    group.set_defaults(func=lambda a: (group.print_help(), 2)[1])

    p = sub.add_parser("baseline", help="print what the detector believes is normal")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lambda a: _run(a, _baseline))

    p = sub.add_parser("reset", help="clear baselines (recorded in the audit log)")
    _common(p)
    p.add_argument("--all", action="store_true", help="clear every baseline")
    p.add_argument("--reason", "-r", help="why (recorded with the event)")
    p.set_defaults(func=lambda a: _run(a, _reset))


__all__ = ["register"]
