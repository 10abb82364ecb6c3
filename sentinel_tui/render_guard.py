"""The guard's own notes on a request, made readable for the card.

The guard puts what its hooks found into ``request.context["sentinel"]``: the anomaly detector's
assessment under ``"anomaly"`` (score 0–10, explanation, the baseline behind it) and each limit's
standing under ``"limit:<rule id>"`` / ``"limits"`` (``{"limits": [{"used", "cap", "this_call",
"would_be", ...}]}``). This module turns them into ``rich.text.Text``: a score line, a text
sparkline of the baseline with the new value marked, and one line per limit — never raw JSON.

The context is stored with the request, so nothing here trusts its shape: numbers are checked,
text goes through :func:`sentinel.redact.safe_text` (via :func:`sentinel_tui.render.safe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from sentinel.risk import RISK_ESCALATE, RISK_MAX, RiskBand, risk_band

#: Risk levels (:func:`sentinel.risk.risk_band`): glyph, style. Never colour alone: the word and
#: glyph carry the meaning. The queue table and the card's anomaly section both use them.
RISK_LEVELS: dict[RiskBand, tuple[str, str]] = {
    "HIGH": ("▲", "bold red"),
    "MED": ("◆", "yellow"),
    "LOW": ("▽", "green"),
}

#: Eight heights, lowest first (a sparkline needs no colour to be read).
BLOCKS = "▁▂▃▄▅▆▇█"
#: Most baseline points drawn (the detector sends at most 30).
SPARK_POINTS = 30
#: Context keys under ``"sentinel"`` this module renders (the card shows the rest as context).
LIMIT_PREFIX = "limit"


def _num(value: Any) -> float | None:
    """A finite number, or None (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def fmt_num(x: float) -> str:
    """``5,000``, ``70``, ``12.5``, ``0.125``."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.1f}"
    return f"{x:.3g}"


def guard_notes(context: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``context["sentinel"]`` when it is a mapping, else an empty one."""
    notes = (context or {}).get("sentinel") if isinstance(context, Mapping) else None
    return notes if isinstance(notes, Mapping) else {}


def anomaly_of(context: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    data = guard_notes(context).get("anomaly")
    return data if isinstance(data, Mapping) else None


def limits_of(context: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Every limit status the guard attached (``limit:<id>`` and ``limits`` entries)."""
    out: list[Mapping[str, Any]] = []
    for key, value in guard_notes(context).items():
        if not str(key).startswith(LIMIT_PREFIX) or not isinstance(value, Mapping):
            continue
        items = value.get("limits")
        if isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
            out.extend(i for i in items if isinstance(i, Mapping))
        elif "cap" in value:
            out.append(value)
    return out


def rendered_keys(context: Mapping[str, Any] | None) -> set[str]:
    """Keys of ``context["sentinel"]`` shown by :func:`guard_section` (hidden from raw context)."""
    keys: set[str] = set()
    for key, value in guard_notes(context).items():
        if key == "anomaly" and isinstance(value, Mapping):
            keys.add(key)
        elif str(key).startswith(LIMIT_PREFIX) and isinstance(value, Mapping):
            keys.add(str(key))
    return keys


def sparkline(baseline: Sequence[Any], value: Any = None) -> Text:
    """The baseline as ``▁▂▃…`` scaled between its min and max, then ``┃`` and the new value's
    block on the same scale (``⇡``/``⇣`` when it lies beyond the baseline's range).

    The new value is set apart by the ``┃`` separator, its own style and the arrow, so it reads
    the same without colour. The caller prints min / median / max next to it."""
    points = [x for x in (_num(v) for v in list(baseline)[-SPARK_POINTS:]) if x is not None]
    new = _num(value)
    text = Text(end="")
    if not points:
        return text
    lo, hi = min(points), max(points)
    span = hi - lo

    def block(x: float) -> str:
        if span <= 0:
            return BLOCKS[3]
        pos = (min(max(x, lo), hi) - lo) / span
        return BLOCKS[min(len(BLOCKS) - 1, int(pos * (len(BLOCKS) - 1) + 0.5))]

    text.append("".join(block(x) for x in points), style="cyan")
    if new is not None:
        text.append(" ┃", style="dim")
        if new > hi:
            text.append("█⇡", style="bold red")
        elif new < lo:
            text.append("▁⇣", style="bold red")
        else:
            text.append(block(new) + "◂", style="bold yellow")
    return text


def _median(points: list[float]) -> float:
    s = sorted(points)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def anomaly_section(data: Mapping[str, Any], safe: Any) -> Text:
    """Score, action, thresholds, explanation, the sparkline with labels, other findings."""
    text = Text(end="")
    score = _num(data.get("score"))
    escalate = _num(data.get("escalate_at"))
    block = _num(data.get("block_at"))
    text.append("anomaly ", style="bold")
    if score is None:
        text.append("risk ?", style="bold")
    else:
        band = risk_band(score, escalate if escalate is not None else RISK_ESCALATE)
        style = RISK_LEVELS[band][1]
        top = int(RISK_MAX)
        bar = int(round(max(0.0, min(score, RISK_MAX))))
        text.append(f"{score:.1f}/{top} ", style=style)
        text.append("■" * bar + "□" * (top - bar), style=style)
    action = data.get("action")
    if isinstance(action, str) and action:
        text.append("  → ")
        text.append_text(safe(action.replace("_", " "), 40, "bold"))
    limits = []
    if escalate is not None:
        limits.append(f"approval ≥{fmt_num(escalate)}")
    if block is not None:
        limits.append(f"block ≥{fmt_num(block)}")
    if limits:
        text.append(f"  ({', '.join(limits)})", style="dim")
    text.append("\n")
    explanation = data.get("explanation")
    if explanation:
        text.append("  ")
        text.append_text(safe(explanation, 400))
        text.append("\n")
    baseline = data.get("baseline")
    if isinstance(baseline, Sequence) and not isinstance(baseline, (str, bytes)):
        points = [x for x in (_num(v) for v in baseline) if x is not None]
        if points:
            param = data.get("param")
            text.append("  ")
            text.append_text(safe(param if isinstance(param, str) else "value", 30, "bold cyan"))
            text.append(f" last {len(points[-SPARK_POINTS:])}: ", style="dim")
            text.append_text(sparkline(points, data.get("value")))
            text.append("\n  ")
            median = _num(data.get("median"))
            median = median if median is not None else _median(points)
            text.append(
                f"min {fmt_num(min(points))} · median {fmt_num(median)} · max {fmt_num(max(points))}",
                style="dim",
            )
            new = _num(data.get("value"))
            if new is not None:
                text.append(" · new ", style="dim")
                text.append(fmt_num(new), style="bold")
                if new > max(points):
                    text.append(" (above the range ⇡)", style="bold")
                elif new < min(points):
                    text.append(" (below the range ⇣)", style="bold")
            text.append("\n")
    findings = data.get("findings")
    if isinstance(findings, Sequence) and not isinstance(findings, (str, bytes)):
        main = str(explanation or "")
        for f in findings:
            if not isinstance(f, Mapping):
                continue
            expl = f.get("explanation")
            if not expl or str(expl) in main:
                continue  # the headline explanation already says it
            risk = _num(f.get("risk"))
            text.append("  • ")
            text.append_text(safe(f.get("kind") or "finding", 20, "dim"))
            if risk is not None:
                text.append(f" {risk:.1f}", style="dim")
            text.append(": ")
            text.append_text(safe(expl, 300))
            text.append("\n")
    return text


def limit_line(status: Mapping[str, Any], safe: Any) -> Text:
    """Two lines: ``limit daily_spend (sum of amount in 24h, agent=bot-1)`` and a 20-cell bar
    (used ``█``, this call ``▒``, room ``░``) with ``4,200 used + 1,000 this call → 5,200 of
    5,000  ✖ OVER THE CAP``."""
    text = Text(end="")
    used, cap = _num(status.get("used")), _num(status.get("cap"))
    this = _num(status.get("this_call"))
    would = _num(status.get("would_be"))
    if would is None and used is not None and this is not None:
        would = used + this
    exceeded = bool(status.get("exceeded")) or (
        would is not None and cap is not None and would > cap
    )
    text.append("limit ", style="dim")
    text.append_text(safe(status.get("rule") or "?", 40, "bold"))
    text.append(" ")
    if used is None or cap is None:
        text.append("(no figures)", style="dim")
        return text
    kind = status.get("kind")
    what = status.get("param") if kind == "sum" else "calls"
    text.append("(")
    text.append_text(safe(f"sum of {what}" if kind == "sum" else "calls", 40))
    window = status.get("window")
    if window:
        text.append(" in ")
        text.append_text(safe(window, 20))
    scope = status.get("per")
    if scope:
        text.append(", ")
        text.append_text(safe(scope, 60))
    text.append(")\n  ")
    width = 20
    scale = max(cap, would or 0.0, 1e-9)
    u = min(width, int(round(used / scale * width)))
    t = min(width - u, int(round((this or 0.0) / scale * width))) if this else 0
    text.append("█" * u, style="cyan")
    text.append("▒" * t, style="bold red" if exceeded else "bold yellow")
    text.append("░" * (width - u - t), style="dim")
    text.append(f" {fmt_num(used)} used")
    if this is not None and would is not None:
        text.append(f" + {fmt_num(this)} this call → {fmt_num(would)}")
    text.append(f" of {fmt_num(cap)}")
    if exceeded:
        text.append("  ✖ OVER THE CAP", style="bold red")
    else:
        remaining = cap - (would if would is not None else used)
        text.append(f"  ✔ {fmt_num(max(0.0, remaining))} left", style="green")
    return text


def guard_section(context: Mapping[str, Any] | None, safe: Any) -> Text:
    """The anomaly assessment and limit standings of a request (empty when it has none)."""
    text = Text(end="")
    anomaly = anomaly_of(context)
    if anomaly is not None:
        text.append_text(anomaly_section(anomaly, safe))
    for status in limits_of(context):
        text.append_text(limit_line(status, safe))
        text.append("\n")
    return text
