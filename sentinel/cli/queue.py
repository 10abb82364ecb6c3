"""Operator commands for the approval queue: pending, show, approve, deny, history.

Every command takes ``--db PATH`` (default: ``$SENTINEL_DB``, ``$SENTINEL_HOME/sentinel.db`` or
``./.sentinel/sentinel.db``). Errors are one line on stderr and exit status 1. Everything an agent
supplied is printed through :func:`sentinel.redact.safe_text`, and only the redacted copy of the
arguments is ever shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.errors import (
    DecisionConflict,
    DecisionRefused,
    RequestNotFound,
    SentinelConfigError,
    StoreError,
)
from sentinel.redact import safe_text

ID_WIDTH = 12


# --- formatting --------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    neg = seconds < 0
    s = int(abs(seconds))
    if s < 60:
        text = f"{s}s"
    elif s < 3600:
        text = f"{s // 60}m{s % 60:02d}s"
    elif s < 86400:
        text = f"{s // 3600}h{(s % 3600) // 60:02d}m"
    else:
        text = f"{s // 86400}d{(s % 86400) // 3600:02d}h"
    return f"-{text}" if neg else text


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v):,}"


def _t(value: Any, width: int | None = None) -> str:
    """Agent-supplied text made terminal-safe (and cut to ``width``)."""
    if value is None or value == "":
        return "-"
    return safe_text(value, width)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _escalation(rec: Any) -> str:
    """``escalated to security at …`` for an escalated request, else ``""``."""
    if rec.escalated_at is None:
        return ""
    to = ", ".join(rec.escalated_to) or "-"
    return f"escalated to {_t(to, 80)} at {_when(rec.escalated_at)}"


def _request_json(rec: Any) -> dict[str, Any]:
    """A request for ``--json`` output (:meth:`RequestRecord.to_dict`: arguments redacted)."""
    return dict(rec.to_dict())


def _event_json(ev: Any) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "ts": ev.ts,
        "kind": ev.kind,
        "request_id": ev.request_id,
        "agent_id": ev.agent_id,
        "function": ev.function,
        "rule_id": ev.rule_id,
        "value_at_risk": ev.value_at_risk,
        "actor": ev.actor,
        "reason": ev.reason,
        "digest": ev.digest,
        "policy_version": ev.policy_version,
        "data": ev.data,
        "hash": ev.hash,
    }


def _print_json(obj: Any) -> None:
    # ensure_ascii: control, bidi and other non-ASCII characters become \u escapes (terminal-safe).
    print(json.dumps(obj, indent=2, ensure_ascii=True, default=str))


def _err(message: str) -> int:
    print(f"sentinel: error: {safe_text(message, 2000)}", file=sys.stderr)
    return 1


# --- store access ------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Any:
    from sentinel.store.location import open_store

    return open_store(args.db, create=False, source="--db")


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        store = _open(args)
    except StoreError as exc:
        return _err(str(exc))
    try:
        return int(body(store, args))
    except DecisionConflict as exc:
        return _err(str(exc))
    except DecisionRefused as exc:
        return _err(f"refused: {exc}; nothing was recorded")
    except (RequestNotFound, StoreError, ValueError, SentinelConfigError) as exc:
        return _err(str(exc))
    finally:
        store.close()


def _sweep(store: Any) -> None:
    """Best effort: cancel requests whose agent died, so nobody approves a call nobody waits for."""
    try:
        store.sweep()
    except StoreError:
        pass


# --- commands ----------------------------------------------------------------------------


def _pending(store: Any, args: argparse.Namespace) -> int:
    _sweep(store)
    records = store.list_pending(args.limit)
    if args.json:
        _print_json([_request_json(r) for r in records])
        return 0
    if not records:
        print("no pending requests")
        return 0
    now = time.time()
    rows = [
        [
            r.id[:ID_WIDTH],
            _duration(now - r.created_at),
            _t(r.agent_id, 20),
            _t(r.host, 20),
            _t(r.function, 32),
            _value(r.value_at_risk),
            _t(r.rule_id, 24),
            _duration(r.expires_at - now) if r.expires_at > now else "expired",
        ]
        for r in records
    ]
    headers = ["ID", "AGE", "AGENT", "HOST", "FUNCTION", "VALUE", "RULE", "EXPIRES IN"]
    if any(r.escalated_at is not None for r in records):
        headers.append("ESCALATION")
        for row, r in zip(rows, records, strict=True):
            row.append(_escalation(r))
    print(_table(headers, rows))
    print(
        f"\n{len(records)} pending — decide with: sentinel approve ID | sentinel deny ID (or sentinel tui)"
    )
    return 0


def _show(store: Any, args: argparse.Namespace) -> int:
    rec = store.get(args.id)
    if args.json:
        _print_json(_request_json(rec))
        return 0
    now = time.time()
    lines = [
        ("request", rec.id),
        ("status", rec.status),
        ("function", _t(rec.function)),
        ("agent", _t(rec.agent_id)),
        ("host", _t(rec.host)),
        ("process", f"pid {rec.pid} on {_t(rec.host)}"),
        ("created", f"{_when(rec.created_at)} ({_duration(now - rec.created_at)} ago)"),
        (
            "expires",
            f"{_when(rec.expires_at)} (in {_duration(rec.expires_at - now)})"
            if rec.is_pending
            else _when(rec.expires_at),
        ),
        ("rule", _t(rec.rule_id)),
        ("rules matched", _t(", ".join(rec.rule_ids)) if rec.rule_ids else "-"),
        ("reason", _t(rec.reason)),
        ("value at risk", _value(rec.value_at_risk)),
        ("risk score", "-" if rec.risk_score is None else f"{rec.risk_score:.2f}"),
        ("risk", _t(rec.risk_explanation)),
        ("digest", rec.digest),
        ("policy", _t((rec.policy_version or "")[:12])),
        ("channel", _t(rec.channel)),
    ]
    if not rec.terms.is_default:
        from sentinel.cli.rules import describe_terms

        lines.append(("who decides", _t(describe_terms(rec.terms), 300)))
        if rec.votes:
            got = len(rec.approvals)
            lines.append(("approvals", f"{got} of {rec.terms.quorum}"))
    if rec.escalated_at is not None:
        ago = _duration(now - rec.escalated_at)
        lines.append(("escalation", f"{_escalation(rec)} ({ago} ago)"))
    if not rec.is_pending:
        lines += [
            ("decided", _when(rec.decided_at)),
            ("decided by", _t(rec.decided_by)),
            ("decision reason", _t(rec.decision_reason)),
        ]
        op = rec.operator or {}
        if op.get("ssh_client"):
            lines.append(("ssh client", _t(op["ssh_client"]) + " (unverified)"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.rjust(width)}: {value}")
    print("arguments (redacted):")
    _print_mapping(rec.arguments)
    if rec.edit is not None:
        who = rec.edit.label or rec.edit.operator or "an operator"
        print(f"approved with edits by {_t(who, 200)}:")
        for change in rec.edit.changes:
            before = json.dumps(change.before, ensure_ascii=False, default=str)
            after = json.dumps(change.after, ensure_ascii=False, default=str)
            print(f"  {_t(change.name, 80)}: {_t(before, 500)} → {_t(after, 500)}")
    if rec.context:
        print("context:")
        _print_mapping(rec.context)
    return 0


#: Longest rendering of one argument in ``sentinel show`` (each value is cut on its own, so one
#: huge argument can never hide the others).
_VALUE_LIMIT = 2000


def _print_mapping(values: Any) -> None:
    if not isinstance(values, dict):
        print("  " + safe_text(json.dumps(values, ensure_ascii=False, default=str), _VALUE_LIMIT))
        return
    for key, value in values.items():
        shown = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
        name = json.dumps(str(key), ensure_ascii=False)
        print(f"  {safe_text(name, 80)}: {safe_text(shown, _VALUE_LIMIT)}")


def _decide(approve: bool) -> Any:
    def run(store: Any, args: argparse.Namespace) -> int:
        from sentinel.trust.decide import Decider

        _sweep(store)
        if approve and getattr(args, "grant", None):
            if getattr(args, "set", None):
                raise ValueError("--grant with --set: approve the edited call first, then grant")
            from sentinel.cli.grant import approve_with_grant

            return approve_with_grant(store, args)
        decider = Decider.local("cli")
        edits = _assignments(getattr(args, "set", None))
        policy = _edit_policy(args) if edits is not None else None
        rec = decider.decide(store, args.id, approve, args.reason, edits=edits, policy=policy)
        agent = f" (agent {_t(rec.agent_id)})" if rec.agent_id else ""
        signed = " (signed)" if decider.signs else ""
        if rec.is_pending:  # a vote towards a quorum
            got = len(rec.approvals)
            print(
                f"voted {'approve' if approve else 'deny'} on {rec.id}: {_t(rec.function)}{agent}"
                f"{signed} — {got} of {rec.terms.quorum} approvals; still pending"
            )
            return 0
        verb = "approved" if approve else "denied"
        if rec.edit is not None:
            verb = f"approved with edits ({_t(rec.edit.describe(), 300)})"
        print(
            f"{verb} {rec.id}: {_t(rec.function)}{agent} — decided by {_t(rec.decided_by)} at "
            f"{_when(rec.decided_at)}{signed}"
        )
        return 0

    return run


def _assignments(items: list[str] | None) -> dict[str, str] | None:
    """``--set NAME=VALUE`` options as ``{name: value text}`` (typed later by the request's
    schema); None when there are none. A name given twice is an error naming it."""
    if not items:
        return None
    from sentinel.edits import parse_assignment

    out: dict[str, str] = {}
    for item in items:
        name, value = parse_assignment(item)
        if name in out:
            raise ValueError(f"--set {name}: given twice; nothing decided")
        out[name] = value
    return out


def _edit_policy(args: argparse.Namespace) -> Any:
    """The policy an edit is checked against before it is recorded (--rules, else
    $SENTINEL_RULES_PATH, else ./rules.yaml when present); None when there is none here (the
    waiting call evaluates the edited call against its own policy in any case)."""
    import os
    from pathlib import Path

    from sentinel.policy.loader import load_policy

    given = getattr(args, "rules", None) or os.environ.get("SENTINEL_RULES_PATH")
    path = Path(given) if given else Path("rules.yaml")
    if not given and not path.exists():
        return None
    return load_policy(path)


def _hosts(store: Any, events: list[Any]) -> dict[str, str]:
    """The host each shown event's request came from (request id → host): from the page's own
    ``approval_requested`` events, else read from the request (once per request)."""
    hosts: dict[str, str] = {}
    for e in events:
        host = (e.data or {}).get("host") if e.kind == "approval_requested" else None
        if e.request_id and isinstance(host, str):
            hosts[e.request_id] = host
    for rid in {e.request_id for e in events if e.request_id} - hosts.keys():
        try:
            hosts[rid] = store.get(rid).host
        except (RequestNotFound, StoreError):
            pass  # pruned or never a request: no host to show
    return hosts


def _history(store: Any, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sentinel.store import HistoryFilter

    flt = HistoryFilter.parse(args.filter or "")
    if args.status:
        flt = replace(
            flt, kinds=tuple(s.strip().lower() for s in args.status.split(",") if s.strip())
        )
    if args.function:
        flt = replace(flt, function=args.function)
    if args.agent:
        flt = replace(flt, agent=args.agent)
    events = store.history(flt, before_seq=args.before, limit=args.limit)
    hosts = _hosts(store, events)
    if args.json:
        _print_json([dict(_event_json(e), host=hosts.get(e.request_id or "")) for e in events])
        return 0
    if not events:
        print("no events")
        return 0
    rows = [
        [
            str(e.seq),
            datetime.fromtimestamp(e.ts, UTC).strftime("%m-%d %H:%M:%S"),
            e.kind,
            _t(e.agent_id, 16),
            _t(hosts.get(e.request_id or ""), 16),
            _t(e.function, 28),
            _value(e.value_at_risk),
            _t(e.actor, 24) if e.actor else _t(e.rule_id, 24),
            (e.request_id or "-")[:ID_WIDTH],
            _t(e.reason, 40),
        ]
        for e in events
    ]
    print(
        _table(
            [
                "SEQ",
                "TIME (UTC)",
                "KIND",
                "AGENT",
                "HOST",
                "FUNCTION",
                "VALUE",
                "BY / RULE",
                "REQUEST",
                "REASON",
            ],
            rows,
        )
    )
    if len(events) == args.limit:
        print(f"\nmore: sentinel history --before {events[-1].seq} --limit {args.limit}")
    return 0


# --- registration ------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _add_db(p: argparse.ArgumentParser) -> None:
    add_db_option(p)


def register(subparsers: Any) -> None:
    """Add pending, show, approve, deny and history to the ``sentinel`` parser."""
    p = subparsers.add_parser("pending", help="list requests waiting for a decision")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--limit", type=_positive, default=1000, help="at most N requests (default 1000)"
    )
    p.set_defaults(func=lambda a: _run(a, _pending))

    p = subparsers.add_parser("show", help="everything about one request")
    p.add_argument("id", metavar="ID", help="request id or a unique prefix of it")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lambda a: _run(a, _show))

    for name, approve in (("approve", True), ("deny", False)):
        p = subparsers.add_parser(name, help=f"{name} a pending request")
        p.add_argument("id", metavar="ID", help="request id or a unique prefix of it")
        p.add_argument("--reason", "-r", help="why (recorded with the decision)")
        if approve:
            p.add_argument(
                "--set",
                action="append",
                metavar="NAME=VALUE",
                help="approve the call with this argument changed (typed by the request's "
                "schema; repeat for more): --set amount=400",
            )
            p.add_argument(
                "--rules",
                metavar="PATH",
                help="rules an edited call is checked against before it is approved "
                "(default: $SENTINEL_RULES_PATH, else ./rules.yaml when present)",
            )
            p.add_argument(
                "--grant",
                metavar="DURATION",
                help="also create a standing grant from this request, for 15m, 1h, 8h … or "
                "forever (bounded by the request's values unless --where is given)",
            )
            from sentinel.cli.grant import add_grant_options

            add_grant_options(p, create=False, rules=False)
        _add_db(p)
        handler = _decide(approve)
        p.set_defaults(func=lambda a, f=handler: _run(a, f))

    p = subparsers.add_parser("history", help="recorded events, newest first")
    _add_db(p)
    p.add_argument(
        "--limit", "-n", type=_positive, default=50, help="at most N events (default 50)"
    )
    p.add_argument(
        "--status", "--kind", help="only these kinds, comma-separated (approved,denied,blocked…)"
    )
    p.add_argument("--function", "-f", help="function name or glob (transfer*)")
    p.add_argument("--agent", "-a", help="agent id or glob")
    p.add_argument(
        "--filter",
        "-q",
        metavar="QUERY",
        help='filter text, e.g. "status:denied value:>1000 fn:pay*"',
    )
    p.add_argument("--before", type=int, metavar="SEQ", help="only events older than SEQ (paging)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lambda a: _run(a, _history))
