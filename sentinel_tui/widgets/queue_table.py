"""The live pending-request table: keyed by request id, updated by diff, selection kept by key
(see :class:`~sentinel_tui.widgets.keyed_table.KeyedTable`)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from sentinel.store.models import RequestRecord
from sentinel_tui.render import format_value, risk_level, risk_text, safe
from sentinel_tui.widgets.keyed_table import KeyedTable, SortText

__all__ = ["QueueTable", "SortText", "coarse_age"]


def coarse_age(seconds: float) -> str:
    """Table ages change at most once a minute (fewer repaints over SSH); the card is precise."""
    s = max(0, int(seconds))
    if s < 60:
        return "<1m"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


class QueueTable(KeyedTable):
    """Pending requests, newest first."""

    COLUMNS = (
        ("mark", " "),
        ("risk", "Risk"),
        ("age", "Age"),
        ("agent", "Agent"),
        ("function", "Function"),
        ("value", "Value"),
        ("rule", "Rule"),
    )
    SORT_COLUMN = "age"

    def _cells(
        self, r: RequestRecord, now: float, marked: bool, confirm_value: float, confirm_risk: float
    ) -> list[Text]:
        level, _ = risk_level(r, confirm_value, confirm_risk)
        rule = r.rule_id or (r.rule_ids[0] if r.rule_ids else "default")
        return [
            Text("●" if marked else " ", style="bold magenta", end=""),
            risk_text(level),
            SortText(coarse_age(now - r.created_at), (r.created_at, r.id), end=""),
            safe(r.agent_id or "—", 16),
            safe(r.function, 22, "bold"),
            Text(format_value(r.value_at_risk), justify="right", end=""),
            safe(rule, 16),
        ]

    def apply(
        self,
        rows: Iterable[RequestRecord],
        now: float,
        marked: set[str],
        confirm_value: float,
        confirm_risk: float,
    ) -> None:
        """Make the table show exactly ``rows``; keep the cursor on the same request."""
        self.show_rows(
            (r.id, self._cells(r, now, r.id in marked, confirm_value, confirm_risk)) for r in rows
        )

    def refresh_ages(self, records: dict[str, RequestRecord], now: float) -> None:
        """Update only the age cells whose text changed."""
        for rid in list(self._shown):
            r = records.get(rid)
            if r is not None:
                age = coarse_age(now - r.created_at)
                self.set_cell(rid, "age", SortText(age, (r.created_at, r.id), end=""))

    def set_mark(self, rid: str, marked: bool) -> None:
        self.set_cell(rid, "mark", Text("●" if marked else " ", style="bold magenta", end=""))
