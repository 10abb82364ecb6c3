"""The live pending-request table: keyed by request id, updated by diff, selection kept by key.

The DataTable cursor is a row index; rows arriving or leaving would move it onto a different
request. :meth:`QueueTable.apply` records the selected request id before a change and puts the
cursor back on that id afterwards (k9s issue #334 is the bug this avoids).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from sentinel.store.models import RequestRecord
from sentinel_tui.render import format_value, risk_level, risk_text, safe

COLUMNS = (
    ("mark", " "),
    ("risk", "Risk"),
    ("age", "Age"),
    ("agent", "Agent"),
    ("function", "Function"),
    ("value", "Value"),
    ("rule", "Rule"),
)


class SortText(Text):
    """A table cell that carries its own sort key (the request's creation time)."""

    def __init__(self, text: str, sort_key: tuple[float, str], **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.sort_key = sort_key


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


class QueueTable(DataTable[Any]):
    """Pending requests, newest first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        # What each row currently shows (plain strings), so unchanged cells are not touched.
        self._shown: dict[str, tuple[str, ...]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # cursor outside the table while rows change
            return None
        return None if key.value is None else str(key.value)

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
        rows = list(rows)
        selected = self.selected_id
        prev_index = self.cursor_row
        wanted = {r.id for r in rows}
        reorder = False
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in wanted]:
                self.remove_row(key)
                del self._shown[key]
            for r in rows:
                cells = self._cells(r, now, r.id in marked, confirm_value, confirm_risk)
                plain = tuple(c.plain for c in cells)
                old = self._shown.get(r.id)
                if old is None:
                    self.add_row(*cells, key=r.id)
                    reorder = True
                elif old != plain:
                    for (col, _), cell, before, after in zip(
                        COLUMNS, cells, old, plain, strict=True
                    ):
                        if before != after:
                            self.update_cell(r.id, col, cell)
                self._shown[r.id] = plain
            if reorder:
                self.sort("age", key=lambda cell: cell.sort_key, reverse=True)
            if self.row_count:
                if selected is not None and selected in self._shown:
                    target = self.get_row_index(selected)
                else:
                    target = min(max(prev_index, 0), self.row_count - 1)
                if target != self.cursor_row:
                    self.move_cursor(row=target, animate=False, scroll=False)

    def refresh_ages(self, records: dict[str, RequestRecord], now: float) -> None:
        """Update only the age cells whose text changed."""
        for rid, shown in list(self._shown.items()):
            r = records.get(rid)
            if r is None:
                continue
            age = coarse_age(now - r.created_at)
            if age != shown[2]:
                self.update_cell(rid, "age", SortText(age, (r.created_at, r.id), end=""))
                self._shown[rid] = shown[:2] + (age,) + shown[3:]

    def set_mark(self, rid: str, marked: bool) -> None:
        shown = self._shown.get(rid)
        if shown is None:
            return
        mark = "●" if marked else " "
        self.update_cell(rid, "mark", Text(mark, style="bold magenta", end=""))
        self._shown[rid] = (mark,) + shown[1:]
