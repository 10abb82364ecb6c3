"""Turn records into terminal-safe ``rich.text.Text``.

Every string an agent can influence (function names, argument keys and values, agent ids,
context, reasons, rule messages) goes through :func:`sentinel.redact.safe_text` and into a
``Text`` object, which Textual never parses as markup. Nothing here formats agent text into a
markup string.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.text import Text

from sentinel.redact import redact, safe_text
from sentinel.risk import RISK_MAX, risk_band
from sentinel.store.models import EventRecord, RequestRecord
from sentinel_tui.render_guard import (
    RISK_LEVELS,
    anomaly_of,
    guard_notes,
    guard_section,
    rendered_keys,
)

KIND_STYLES: dict[str, str] = {
    "approved": "green",
    "allowed": "green",
    "executed": "green",
    "denied": "bold red",
    "blocked": "red",
    "expired": "yellow",
    "cancelled": "yellow",
    "failed": "red",
    "governance_error": "bold red",
    "approval_requested": "cyan",
    "notification_failed": "bold red",
    "policy_rejected": "bold red",
    "policy_loaded": "cyan",
    "voted": "cyan",
    "escalated": "bold yellow",
    "approval_claimed": "green",
}


#: Short table labels for long event kinds (the detail pane shows the real kind).
KIND_LABELS: dict[str, str] = {
    "approval_requested": "requested",
    "governance_error": "gov_error",
    "fail_safe_passthrough": "passthrough",
    "anomaly_escalated": "anomaly",
    "notification_failed": "notify failed",
    "policy_loaded": "rules loaded",
    "policy_rejected": "rules invalid",
    "approval_claimed": "claimed",  # a parked (LangGraph interrupt) approval went ahead, once
}


#: ``blocked`` events whose data carries this ``refused`` value are approvals the waiting call
#: did not accept (see ``sentinel/guard.py``): shown apart from policy blocks.
UNTRUSTED_DECISION = "untrusted_decision"


def _data(event: EventRecord) -> Mapping[str, Any]:
    return event.data if isinstance(event.data, Mapping) else {}


def _vote_of(event: EventRecord) -> Mapping[str, Any]:
    vote = _data(event).get("vote")
    return vote if isinstance(vote, Mapping) else {}


def event_kind(event: EventRecord) -> tuple[str, str]:
    """(label, style) of an event in the History table: a vote shows its verdict, an approval
    the waiting call refused (``untrusted_decision``) is told apart from a policy block."""
    kind = event.kind
    if kind == "voted":
        verdict = _vote_of(event).get("verdict")
        if verdict == "approve":
            return "voted ✔", "green"
        if verdict == "deny":
            return "voted ✖", "red"
    if kind == "blocked" and _data(event).get("refused") == UNTRUSTED_DECISION:
        return "untrusted", "bold red"
    return KIND_LABELS.get(kind, kind), KIND_STYLES.get(kind, "")


def safe(value: Any, max_len: int | None = 200, style: str = "") -> Text:
    """One line of untrusted text as a ``Text`` (escapes made visible, length capped)."""
    return Text(safe_text("" if value is None else value, max_len), style=style, end="")


_LEVEL_ORDER = {"LOW": 0, "MED": 1, "HIGH": 2}
#: A value at risk from this fraction of ``confirm_value`` is ``MED`` (at or above it ``HIGH``).
VALUE_MED_FRACTION = 0.1


def risk_threshold(confirm_risk: float) -> float:
    """``confirm_risk`` on the store's 0–10 scale (a setting of 1 or less is read as the old
    0..1 fraction, so a ``tui.toml`` written for it keeps its meaning)."""
    return confirm_risk * RISK_MAX if 0 < confirm_risk <= 1 else confirm_risk


def risk_level(record: RequestRecord, confirm_value: float, confirm_risk: float) -> tuple[str, str]:
    """(level, why): the higher of the risk-score level and the value-at-risk level.

    The store's ``risk_score`` is the anomaly detector's 0–10: at or above ``confirm_risk``
    (default 7, the escalation threshold) it is HIGH, from half of that MED. The value at risk
    against ``confirm_value`` ranks big transfers too, so a huge but ordinary-looking transfer is
    never LOW."""
    levels: list[tuple[str, str]] = []
    score = record.risk_score
    if score is not None:
        levels.append(
            (risk_band(score, risk_threshold(confirm_risk)), f"risk {score:.1f}/{RISK_MAX:g}")
        )
    value = record.value_at_risk
    if value is not None and confirm_value > 0:
        med = confirm_value * VALUE_MED_FRACTION
        if value >= confirm_value:
            levels.append(("HIGH", f"value ≥ {format_value(confirm_value)}"))
        elif value >= med:
            levels.append(("MED", f"value ≥ {format_value(med)}"))
    if not levels:
        return "LOW", "no risk score; low value"
    best = max(levels, key=lambda lv: _LEVEL_ORDER[lv[0]])
    return (
        best
        if score is None or best[1].startswith("risk")
        else (best[0], f"{best[1]}; {levels[0][1]}")
    )


def risk_text(level: str) -> Text:
    glyph, style = RISK_LEVELS[level]
    return Text(f"{glyph} {level}", style=style, end="")


def format_value(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.2f}M"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_age(seconds: float | None) -> str:
    """Compact duration: ``42s``, ``5m``, ``3h12m``, ``2d4h``."""
    if seconds is None:
        return "—"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def format_time(ts: float | None, with_date: bool = False) -> str:
    if ts is None:
        return "—"
    dt = datetime.fromtimestamp(ts)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def pretty_value(value: Any) -> str:
    """Strings as they are; everything else as indented JSON. Caller makes it safe."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _field(text: Text, label: str, value: Text | str, label_width: int = 10) -> None:
    text.append(f"{label:<{label_width}} ", style="bold")
    if isinstance(value, Text):
        text.append_text(value)
    else:
        text.append(value)
    text.append("\n")


def _mapping_block(
    text: Text, mapping: Mapping[str, Any] | None, fold_chars: int, folded: list[str]
) -> None:
    if not mapping:
        text.append("  (none)\n", style="dim")
        return
    for key, value in mapping.items():
        text.append("  ")
        text.append_text(safe(key, 60, "bold cyan"))
        text.append(": ")
        shown = safe_text(pretty_value(value), None, multiline=True)
        if len(shown) > fold_chars:
            folded.append(str(key))
            head = shown[:fold_chars]
            text.append(head.replace("\n", "\n    "))
            text.append(
                f" … folded, {len(shown) - fold_chars:,} more chars (v shows all)", "dim italic"
            )
        else:
            text.append(shown.replace("\n", "\n    "))
        text.append("\n")


#: Below this many columns the card's "who decides" parts take their short forms.
TERMS_NARROW = 40


def _names(names: Any, room: int) -> str:
    """``a, b, c`` within ``room`` columns (``a, +2 more`` when they do not fit)."""
    names = [safe_text(n, 40) for n in names]
    text = ", ".join(names)
    if len(text) <= room or len(names) < 2:
        return text
    for keep in range(len(names) - 1, 0, -1):
        short = ", ".join(names[:keep]) + f", +{len(names) - keep} more"
        if len(short) <= room:
            return short
    return f"{names[0]}, +{len(names) - 1} more"


def vote_progress(record: RequestRecord) -> str:
    """``1 of 2 approvals`` (and denials towards a deny quorum), for toasts."""
    terms = record.terms
    approvals = len(record.approvals)
    text = f"{approvals} of {terms.quorum} approvals"
    denials = len(record.votes) - approvals
    if denials and terms.deny_quorum > 1:
        text += f", {denials} of {terms.deny_quorum} denials"
    return text


def decision_terms(record: RequestRecord, now: float, width: int | None = None) -> list[Text]:
    """Who may decide ``record`` and how far its quorum is, as short parts for the card:
    ``approvers: finance``, ``self-approval off``, ``escalated to security``,
    ``1 of 2 approvals — alice``. Empty for a request any one operator may decide.
    ``width`` (the card's columns) chooses the short forms and how many names fit."""
    terms = record.terms
    if terms.is_default:
        return []
    narrow = width is not None and width < TERMS_NARROW
    room = max(12, (width or 80) - 12)
    parts: list[Text] = []
    if terms.approvers:
        part = Text("by " if narrow else "approvers: ", style="dim", end="")
        part.append(_names(terms.approvers, room), style="bold")
        parts.append(part)
    if not terms.self_approval:
        parts.append(
            Text("no self-approval" if narrow else "self-approval off", style="yellow", end="")
        )
    if terms.escalate_after is not None and terms.escalate_to:
        # The row says so once the waiting call recorded the escalation; until then the age does.
        to = _names(record.escalated_to or terms.escalate_to, room)
        age = now - record.created_at
        if record.escalated_at is not None or age >= terms.escalate_after:
            parts.append(
                Text(f"↑ {to}" if narrow else f"escalated to {to}", style="bold yellow", end="")
            )
        else:
            left = format_age(terms.escalate_after - age)
            parts.append(
                Text(
                    f"↑ {to} in {left}" if narrow else f"escalates to {to} in {left}",
                    style="dim",
                    end="",
                )
            )
    approvals = record.approvals
    if terms.quorum > 1:
        got = (
            f"{len(approvals)}/{terms.quorum} ✔"
            if narrow
            else f"{len(approvals)} of {terms.quorum} approvals"
        )
        part = Text(got, style="bold cyan", end="")
        if approvals:
            part.append(" — ")
            part.append(_names([v.operator for v in approvals], room))
        parts.append(part)
    denials = [v for v in record.votes if not v.approves]
    if terms.deny_quorum > 1 and denials:
        got = (
            f"{len(denials)}/{terms.deny_quorum} ✖"
            if narrow
            else f"{len(denials)} of {terms.deny_quorum} denials"
        )
        part = Text(got, style="bold red", end="")
        part.append(" — ")
        part.append(_names([v.operator for v in denials], room))
        parts.append(part)
    return parts


def _pack(text: Text, parts: list[Text], width: int | None) -> None:
    """Append ``parts`` joined by `` · ``, starting a new line rather than splitting a part."""
    used = 0
    for i, part in enumerate(parts):
        if i:
            if width is not None and used + 3 + part.cell_len > width:
                text.append("\n")
                used = 0
            else:
                text.append(" · ", style="dim")
                used += 3
        text.append_text(part)
        used += part.cell_len
    text.append("\n")


def request_card(
    record: RequestRecord,
    now: float,
    *,
    confirm_value: float,
    confirm_risk: float,
    fold_chars: int,
    marked: bool = False,
    width: int | None = None,
) -> Text:
    """The approval card: everything an operator needs to decide, terminal-safe.

    Dense on purpose: at 80x24 the first lines must already show what is asked and why, and
    who may decide it (``width``: the card's columns, for the short forms).
    """
    text = Text(end="")
    level, why = risk_level(record, confirm_value, confirm_risk)
    text.append_text(safe(record.function, 120, "bold"))
    text.append("  ")
    text.append_text(risk_text(level))
    text.append(f"  value {format_value(record.value_at_risk)}", style="bold")
    if marked:
        text.append("  ● marked", style="bold magenta")
    text.append("\n")
    mcp = mcp_line(record.context)
    if mcp is not None:
        text.append_text(mcp)
    text.append("agent ", style="dim")
    text.append_text(safe(record.agent_id or "—", 60))
    # Which machine asked: with agents on many hosts (PostgreSQL), the name alone is ambiguous.
    text.append("  host ", style="dim")
    text.append_text(safe(record.host or "—", 40))
    left = record.time_left(now)
    text.append("  waiting ", style="dim")
    text.append(format_age(now - record.created_at))
    text.append("  expires ", style="dim")
    if left > 0:
        text.append(f"in {format_age(left)}", style="bold yellow" if left < 60 else "")
    else:
        text.append("now (overdue)", style="bold yellow")
    text.append("\n")
    rules = list(record.rule_ids) or ([record.rule_id] if record.rule_id else [])
    text.append("rule ", style="dim")
    text.append_text(safe(", ".join(rules) if rules else "(default action)", 200))
    text.append(" — ", style="dim")
    text.append_text(safe(record.reason or "no reason given", 500))
    text.append("\n")
    terms = decision_terms(record, now, width)
    if terms:
        _pack(text, terms, width)
    guard = guard_section(record.context, safe)
    if guard.plain:
        # The anomaly score, its baseline and limit standings come before the arguments: at
        # 80x24 they must be on screen without scrolling.
        text.append_text(guard)
    folded: list[str] = []
    text.append("arguments", style="bold underline")
    text.append(f"  digest {record.digest[:12]}\n", style="dim")
    _mapping_block(text, record.arguments, fold_chars, folded)
    if anomaly_of(record.context) is None:
        text.append("risk ", style="dim")
        text.append(f"{level} ({why})")
        if record.risk_explanation:
            text.append(" — ")
            text.append_text(safe(record.risk_explanation, 400))
        text.append("\n")
    context = _context_rest(record.context)
    if context:
        text.append("context", style="bold underline")
        text.append(" (supplied by the agent)\n", style="dim")
        _mapping_block(text, context, fold_chars, folded)
    return text


def mcp_line(context: Mapping[str, Any] | None) -> Text | None:
    """``mcp · server · tool  client NAME VERSION`` for a call that came through the MCP proxy
    (``context["mcp"]``, written by ``sentinel mcp``; untrusted like all context)."""
    facts = context.get("mcp") if isinstance(context, Mapping) else None
    if not isinstance(facts, Mapping):
        return None
    line = Text(end="")
    line.append("mcp", style="bold cyan")
    line.append(" · ", style="dim")
    line.append_text(safe(facts.get("server") or "?", 60, "bold"))
    line.append(" · ", style="dim")
    line.append_text(safe(facts.get("tool") or "?", 80, "bold"))
    client = facts.get("client")
    if client:
        line.append("  client ", style="dim")
        line.append_text(safe(client, 60))
        version = facts.get("client_version")
        if version:
            line.append(" ")
            line.append_text(safe(version, 30))
    transport = facts.get("transport")
    if transport:
        line.append("  via ", style="dim")
        line.append_text(safe(transport, 20))
    line.append("\n")
    return line


_MCP_SHOWN = frozenset({"server", "tool", "client", "client_version", "transport"})


def _mcp_keys(context: Mapping[str, Any]) -> set[str]:
    """The keys of ``context["mcp"]`` (a key set no line shows when it is not a mapping)."""
    facts = context.get("mcp")
    if not isinstance(facts, Mapping):
        return {"\0not shown"} if "mcp" in context else set()
    return {str(k) for k in facts}


def _context_rest(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The context without what :func:`guard_section` and :func:`mcp_line` already showed
    readably."""
    if not context:
        return {}
    shown = rendered_keys(context)
    rest = dict(context)
    if _MCP_SHOWN.issuperset(_mcp_keys(context)):
        rest.pop("mcp", None)  # every fact is on the mcp line
    if not shown:
        return rest
    notes = {k: v for k, v in guard_notes(context).items() if k not in shown}
    if notes:
        rest["sentinel"] = notes
    else:
        rest.pop("sentinel", None)
    return rest


#: Characters of one value shown in the full view: enough to review anything a person can read,
#: while a 10 MB argument cannot freeze the app while it is laid out (the digest binds the rest).
FULL_VIEW_CHARS = 100_000


def full_arguments(record: RequestRecord) -> Text:
    """Every argument and the context, unfolded (still redacted and escaped)."""
    text = Text(end="")
    text.append_text(safe(record.function, 200, "bold"))
    text.append(f"\nrequest {record.id}\n\n", style="dim")
    text.append("arguments\n", style="bold underline")
    for key, value in (record.arguments or {}).items():
        text.append_text(safe(key, 200, "bold cyan"))
        text.append(":\n")
        text.append(safe_text(pretty_value(value), FULL_VIEW_CHARS, multiline=True))
        text.append("\n\n")
    if record.context:
        text.append("context\n", style="bold underline")
        text.append(
            safe_text(pretty_value(redact(record.context)), FULL_VIEW_CHARS, multiline=True)
        )
        text.append("\n")
    return text


def event_detail(event: EventRecord) -> Text:
    """The whole audit event, including who decided and why."""
    text = Text(end="")
    text.append(f"#{event.seq} ", style="bold")
    text.append(event.kind, style=KIND_STYLES.get(event.kind, "bold"))
    text.append(f"  {format_time(event.ts, with_date=True)}\n")
    rows: list[tuple[str, Any]] = [
        ("request", event.request_id),
        ("function", event.function),
        ("agent", event.agent_id),
        ("value", format_value(event.value_at_risk) if event.value_at_risk is not None else None),
        ("rule", event.rule_id),
        ("by", event.actor),
        ("reason", event.reason),
        ("policy", (event.policy_version or "")[:12] or None),
        ("digest", (event.digest or "")[:16] or None),
    ]
    for label, value in rows:
        if value is None or value == "":
            continue
        _field(text, label, safe(value, 500), 9)
    _decision_fields(text, event)
    if event.data:
        text.append("\ndata\n", style="bold underline")
        text.append(safe_text(pretty_value(redact(event.data)), 20_000, multiline=True))
        text.append("\n")
    text.append(f"\nhash {event.hash[:16]}  prev {event.prev_hash[:16]}\n", style="dim")
    return text


def _decision_fields(text: Text, event: EventRecord) -> None:
    """The readable part of a vote, an escalation or a refused approval (the data follows)."""
    data = _data(event)
    vote = _vote_of(event)
    if vote:
        shown = safe(f"{vote.get('operator') or '?'} {vote.get('verdict') or '?'}", 120)
        shown.append(" (signed)" if vote.get("signed") else " (unsigned)", style="dim")
        _field(text, "vote", shown, 9)
    tally = data.get("tally")
    if isinstance(tally, Mapping) and "quorum" in tally:
        _field(text, "tally", f"{tally.get('approvals', 0)} of {tally.get('quorum')} approvals", 9)
    if event.kind == "escalated":
        to = data.get("escalate_to") or data.get("to")
        if isinstance(to, (list, tuple)) and to:
            _field(text, "to", safe(", ".join(str(t) for t in to), 200, "bold yellow"), 9)
    if data.get("refused") == UNTRUSTED_DECISION:
        _field(
            text,
            "refused",
            safe(event.reason or "decision not signed by a trusted operator", 500, "bold red"),
            9,
        )
        for v in data.get("votes") or ():
            if isinstance(v, Mapping):
                line = safe(f"{v.get('operator') or '?'} {v.get('verdict') or '?'}", 120)
                line.append(" (signed)" if v.get("signed") else " (unsigned)", style="dim")
                _field(text, "vote", line, 9)


def now() -> float:
    return time.time()
