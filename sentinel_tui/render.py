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
}


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


def risk_level(
    record: RequestRecord, confirm_value: float, confirm_risk: float
) -> tuple[str, str]:
    """(level, why): the higher of the risk-score level and the value-at-risk level.

    The store's ``risk_score`` is the anomaly detector's 0–10: at or above ``confirm_risk``
    (default 7, the escalation threshold) it is HIGH, from half of that MED. The value at risk
    against ``confirm_value`` ranks big transfers too, so a huge but ordinary-looking transfer is
    never LOW."""
    levels: list[tuple[str, str]] = []
    score = record.risk_score
    if score is not None:
        levels.append((risk_band(score, risk_threshold(confirm_risk)), f"risk {score:.1f}/{RISK_MAX:g}"))
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
    return best if score is None or best[1].startswith("risk") else (best[0], f"{best[1]}; {levels[0][1]}")


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
            text.append(f" … folded, {len(shown) - fold_chars:,} more chars (v shows all)", "dim italic")
        else:
            text.append(shown.replace("\n", "\n    "))
        text.append("\n")


def request_card(
    record: RequestRecord,
    now: float,
    *,
    confirm_value: float,
    confirm_risk: float,
    fold_chars: int,
    marked: bool = False,
) -> Text:
    """The approval card: everything an operator needs to decide, terminal-safe.

    Dense on purpose: at 80x24 the first lines must already show what is asked and why.
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
    text.append("agent ", style="dim")
    text.append_text(safe(record.agent_id or "—", 60))
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


def _context_rest(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The context without what :func:`guard_section` already showed readably."""
    if not context:
        return {}
    shown = rendered_keys(context)
    if not shown:
        return dict(context)
    rest = dict(context)
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
        text.append(safe_text(pretty_value(redact(record.context)), FULL_VIEW_CHARS, multiline=True))
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
    if event.data:
        text.append("\ndata\n", style="bold underline")
        text.append(safe_text(pretty_value(redact(event.data)), 20_000, multiline=True))
        text.append("\n")
    text.append(f"\nhash {event.hash[:16]}  prev {event.prev_hash[:16]}\n", style="dim")
    return text


def now() -> float:
    return time.time()
