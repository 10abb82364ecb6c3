"""View 3: value protected, counts, approval latency, queue state, hourly trends, top rules."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static

from sentinel.store.models import MetricsSnapshot
from sentinel_tui.render import format_age, format_value, safe

COUNT_KINDS = ("allowed", "blocked", "approved", "denied", "expired", "cancelled")
TREND_KINDS = ("approval_requested", "approved", "denied", "blocked")


def _latency(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f}s" if seconds < 60 else format_age(seconds)


class MetricsView(VerticalScroll):
    """Numbers from :meth:`sentinel.store.Store.metrics`; refreshed by a worker on data changes."""

    can_focus = True

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading metrics…", style="dim"), id="metrics-headline")
        yield Static("", id="metrics-counts")
        yield Label(Text("last 24 hours, per hour", style="bold"), id="metrics-trend-title")
        for kind in TREND_KINDS:
            with Horizontal(classes="trend"):
                yield Label(Text(kind.replace("_", " ")), classes="trend-label", id=f"label-{kind}")
                yield Sparkline([0] * 24, id=f"spark-{kind}", summary_function=max)
        yield Static("", id="metrics-rules")

    def apply(self, m: MetricsSnapshot) -> None:
        head = Text(end="")
        head.append("VALUE PROTECTED  ", style="bold")
        head.append(f"today {format_value(m.value_protected_today)}", style="bold green")
        head.append("   ·   ")
        head.append(f"all time {format_value(m.value_protected)}", style="bold green")
        head.append("\nblocked + denied + expired calls, by their value at risk", style="dim")
        self.query_one("#metrics-headline", Static).update(head)

        body = Text(end="")
        body.append(f"{'':<10}{'today':>10}{'all time':>12}\n", style="bold")
        for kind in COUNT_KINDS:
            body.append(
                f"{kind:<10}{m.counts_today.get(kind, 0):>10,}{m.counts.get(kind, 0):>12,}\n"
            )
        body.append("\napproval latency  ", style="bold")
        body.append(f"p50 {_latency(m.latency_p50)}   p95 {_latency(m.latency_p95)}\n")
        body.append("pending now       ", style="bold")
        body.append(f"{m.pending}")
        if m.oldest_pending_age is not None:
            body.append(f"   oldest {format_age(m.oldest_pending_age)}")
        if m.anomalies:
            body.append(f"\nanomaly escalations {m.anomalies}")
        self.query_one("#metrics-counts", Static).update(body)

        for kind in TREND_KINDS:
            data = m.hourly.get(kind, [0] * 24)
            spark = self.query_one(f"#spark-{kind}", Sparkline)
            spark.data = [float(x) for x in data] or [0.0]
            self.query_one(f"#label-{kind}", Label).update(
                Text(f"{kind.replace('_', ' '):<19}{sum(data):>6,} ", end="")
            )

        rules = Text("top rules by hits\n", style="bold", end="")
        if not m.top_rules:
            rules.append("  (no rule hits yet)\n", style="dim")
        for rule_id, hits in m.top_rules[:10]:
            rules.append(f"  {hits:>7,}  ")
            rules.append_text(safe(rule_id, 60))
            rules.append("\n")
        self.query_one("#metrics-rules", Static).update(rules)


