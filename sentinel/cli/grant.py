"""``sentinel grant create | list | show | revoke`` and ``sentinel approve ID --grant DURATION``.

A standing grant lets the calls of one agent to one function that fit its bounds run without
waiting for a person, for a while (see :mod:`sentinel.grant_gate` for exactly when). Grants are
signed with the operator's key when decisions are signed. Errors are one line on stderr and exit
status 1; a wide grant (no bound, or no bound on the value) needs ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.redact import safe_text

ID_WIDTH = 12


def _t(value: Any, width: int = 200) -> str:
    return safe_text("" if value is None else str(value), width)


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "until revoked"
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _used(g: Any) -> str:
    text = str(g.used_count) + (f"/{g.max_count}" if g.max_count is not None else "")
    if g.max_total is not None:
        text += f" ({g.used_total:g}/{g.max_total:g})"
    elif g.used_total:
        text += f" ({g.used_total:g})"
    return text


def _policy(args: argparse.Namespace) -> Any:
    """The policy of ``--rules``, ``$SENTINEL_RULES_PATH`` or ./rules.yaml, or None (no file)."""
    import os
    from pathlib import Path

    given = getattr(args, "rules", None) or os.environ.get("SENTINEL_RULES_PATH")
    path = Path(given) if given else Path("rules.yaml")
    if not path.exists():
        return None
    from sentinel.policy.loader import load_policy

    return load_policy(path)


def _value_params(policy: Any) -> tuple[str, ...]:
    """The value parameters of ``policy`` (from :func:`_policy`), else the defaults."""
    from sentinel.grant_terms import DEFAULT_VALUE_PARAMS

    return tuple(getattr(policy, "value_params", None) or DEFAULT_VALUE_PARAMS)


def _print_grant_line(g: Any) -> None:
    print(f"grant {g.id}: {_t(g.agent) or '(no agent id)'} → {_t(g.function)}: "
          f"{_t(g.describe(), 400)}")  # fmt: skip


# --- commands ------------------------------------------------------------------------------


def _create(store: Any, args: argparse.Namespace) -> int:
    from sentinel.grant_terms import draft
    from sentinel.trust.decide import Decider

    built = draft(
        agent=args.agent,
        function=args.function,
        wheres=args.where,
        duration=args.duration,
        count=args.count,
        max_total=args.max_total,
        reason=args.reason,
        value_params=_value_params(_policy(args)),
        confirm=args.yes,
    )
    decider = Decider.local("cli")
    grant = decider.create_grant(store, built.grant)
    print(grant.id)
    signed = " (signed)" if grant.signature else ""
    print(f"created{signed}: {_t(grant.describe(), 400)}", file=sys.stderr)
    return 0


def _list(store: Any, args: argparse.Namespace) -> int:
    _expire(store)
    now = time.time()
    grants = store.list_grants("active" if args.active else None, args.limit)
    if args.json:
        print(json.dumps([g.to_dict(now) for g in grants], indent=2, ensure_ascii=True))
        return 0
    if not grants:
        print("no standing grants")
        return 0
    rows = [
        [g.id[:ID_WIDTH], g.state(now), _t(g.agent, 20) or "-", _t(g.function, 30),
         _t("; ".join(b.text() for b in g.bounds) or "(no bounds)", 50), _used(g),
         _left(g.time_left(now)) if g.state(now) == "active" else "-",
         _t(g.signer or g.created_by, 24)]
        for g in grants
    ]  # fmt: skip
    headers = ["ID", "STATE", "AGENT", "FUNCTION", "BOUNDS", "USED", "LEFT", "BY"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _show(store: Any, args: argparse.Namespace) -> int:
    _expire(store)
    now = time.time()
    g = store.get_grant(args.id)
    uses = store.grant_uses(g.id, args.uses)
    if args.json:
        out = g.to_dict(now)
        out["uses"] = [
            {"n": u.n, "ts": u.ts, "agent": u.agent, "digest": u.digest, "value": u.value,
             "event_seq": u.event_seq}
            for u in uses
        ]  # fmt: skip
        print(json.dumps(out, indent=2, ensure_ascii=True))
        return 0
    print(f"grant      {g.id}")
    print(f"state      {g.state(now)}" + (f" ({_t(g.end_reason)})" if g.end_reason else ""))
    print(f"agent      {_t(g.agent) or '(no agent id)'}")
    print(f"function   {_t(g.function)}")
    for b in g.bounds or ():
        print(f"bound      {_t(b.text(), 300)}")
    if not g.bounds:
        print("bound      (none: every call of this agent to this function)")
    print(f"uses       {_used(g)}")
    print(f"time left  {_left(g.time_left(now))}")
    print(f"created    {_utc(g.created_at)} by {_t(g.created_by)}"
          + (f", signed as {_t(g.signer)}" if g.signature else ", unsigned"))  # fmt: skip
    if g.request_id:
        print(f"from       request {g.request_id}")
    if g.ended_at is not None:
        print(f"ended      {_utc(g.ended_at)}" + (f" by {_t(g.ended_by)}" if g.ended_by else ""))
    for u in uses:
        shown = "" if u.value is None else f" value {u.value:g}"
        print(f"use #{u.n:<4} {_utc(u.ts)} {_t(u.agent) or '-'}{shown} (event {u.event_seq})")
    return 0


def _revoke(store: Any, args: argparse.Namespace) -> int:
    from sentinel.identity import current_operator

    g = store.revoke_grant(args.id, current_operator("cli"), args.reason)
    print(f"revoked grant {g.id}: {_t(g.function)} for {_t(g.agent) or '(no agent id)'} "
          f"after {_used(g)} use(s)")  # fmt: skip
    return 0


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _expire(store: Any) -> None:
    from sentinel.errors import StoreError

    try:
        store.expire_grants()  # expired grants are recorded as such when noticed
    except StoreError:
        pass


def approve_with_grant(store: Any, args: argparse.Namespace) -> int:
    """``sentinel approve ID --grant DURATION [--where …] [--count N] [--max-total X]``."""
    from sentinel.grant_terms import draft, not_grantable
    from sentinel.trust.decide import Decider

    record = store.get(args.id)
    policy = _policy(args)
    why = not_grantable(policy, record.rule_id)
    if why is not None:
        raise ValueError(
            f"request {record.id[:8]}: {why}; nothing was recorded (approve it without --grant)"
        )
    built = draft(
        agent=record.agent_id,
        function=record.function,
        wheres=args.where,
        duration=args.grant,
        count=args.count,
        max_total=args.max_total,
        arguments=record.arguments,
        value_at_risk=record.value_at_risk,
        rule_id=record.rule_id,
        request_id=record.id,
        reason=args.reason,
        value_params=_value_params(policy),
        confirm=args.yes,
    )
    for note in built.notes:
        print(f"note: {_t(note, 300)}", file=sys.stderr)
    decider = Decider.local("cli")
    rec, grant = decider.approve_with_grant(store, record.id, built.grant, args.reason)
    signed = " (signed)" if decider.signs else ""
    print(f"approved {rec.id}: {_t(rec.function)} — decided by {_t(rec.decided_by)}{signed}")
    _print_grant_line(grant)
    return 0


def add_grant_options(p: argparse.ArgumentParser, *, create: bool, rules: bool = True) -> None:
    """The grant-shaping options (``--where``, ``--count``, ``--max-total``, ``--yes``)."""
    p.add_argument(
        "--where",
        action="append",
        metavar="BOUND",
        help="a bound every call must fit, PARAM OP VALUE (repeat for more): 'amount <= 500', "
        "'destination in {ACC-1, ACC-2}', \"memo startswith 'inv-'\""
        + ("" if create else "; default: the request's own values (numbers <=, text ==)"),
    )
    p.add_argument("--count", type=int, metavar="N", help="at most N calls under the grant")
    p.add_argument(
        "--max-total",
        type=float,
        metavar="X",
        help="at most X in total of the policy's value parameter (amount) over all calls",
    )
    p.add_argument(
        "--yes", action="store_true", help="confirm a wide grant (no bound, or no value bound)"
    )
    if rules:
        p.add_argument(
            "--rules", metavar="PATH", help="rules whose value_params name the value parameter"
        )


def _run(args: argparse.Namespace, body: Any) -> int:
    from sentinel.cli.queue import _run as run_with_store

    return run_with_store(args, body)


def register(subparsers: Any) -> None:
    """Add ``grant create | list | show | revoke`` to the ``sentinel`` parser."""
    top = subparsers.add_parser("grant", help="standing grants: calls that run without waiting")
    sub = top.add_subparsers(dest="grant_command", metavar="SUBCOMMAND")
    top.set_defaults(func=lambda a: (top.print_help(), 2)[1])

    p = sub.add_parser("create", help="grant an agent's calls to a function within bounds")
    p.add_argument("--agent", required=True, help="the agent id ('' for calls without one)")
    p.add_argument("--function", required=True, help="the function name, exactly")
    p.add_argument(
        "--for",
        dest="duration",
        required=True,
        metavar="DURATION",
        help="how long: 15m, 1h, 8h, 2d … or forever (until revoked)",
    )
    p.add_argument("--reason", "-r", help="why (recorded with the grant)")
    add_grant_options(p, create=True)
    add_db_option(p)
    p.set_defaults(func=lambda a: _run(a, _create))

    p = sub.add_parser("list", help="standing grants, newest first")
    p.add_argument("--active", action="store_true", help="only grants still active")
    p.add_argument("--limit", type=int, default=200, help="at most N grants (default 200)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_db_option(p)
    p.set_defaults(func=lambda a: _run(a, _list))

    p = sub.add_parser("show", help="one grant and its uses")
    p.add_argument("id", metavar="ID", help="grant id or a unique prefix of it")
    p.add_argument("--uses", type=int, default=20, help="show the last N uses (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_db_option(p)
    p.set_defaults(func=lambda a: _run(a, _show))

    p = sub.add_parser("revoke", help="end a grant now (a later call no longer matches it)")
    p.add_argument("id", metavar="ID", help="grant id or a unique prefix of it")
    p.add_argument("--reason", "-r", help="why (recorded)")
    add_db_option(p)
    p.set_defaults(func=lambda a: _run(a, _revoke))


__all__ = ["add_grant_options", "approve_with_grant", "register"]
