"""View 2: the audit trail, newest first, paged from the store, filtered with ``/``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, Input, Static

from sentinel.store.models import EventRecord
from sentinel_tui.render import (
    KIND_LABELS,
    KIND_STYLES,
    event_detail,
    format_time,
    format_value,
    safe,
)

if TYPE_CHECKING:
    from sentinel_tui.app import SentinelApp

FILTER_HELP = "filter: text  status:denied  fn:transfer*  agent:billing  value:>1000  (enter keeps, esc clears)"


class HistoryView(Container):
    """Events table + detail pane. Scrolling near the end loads the next older page."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="history.clear"),
        Binding("g", "top", "Newest", show=False, id="history.top"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: dict[int, EventRecord] = {}
        self.query_text = ""
        self.exhausted = False
        self.loading = False

    @property
    def sapp(self) -> SentinelApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Input(placeholder=FILTER_HELP, id="history-filter", compact=True)
        table: DataTable[Any] = DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "History"
        yield table
        with VerticalScroll(id="history-detail") as detail:
            detail.border_title = "Event"
            yield Static(Text("Select an event.", style="dim"), id="history-detail-body")

    def on_mount(self) -> None:
        table = self.table
        for key, label in (
            ("time", "Time"),
            ("kind", "Event"),
            ("function", "Function"),
            ("agent", "Agent"),
            ("value", "Value"),
            ("actor", "By"),
        ):
            table.add_column(label, key=key)
        self.filter_input.display = False

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#history-table", DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#history-filter", Input)

    # --- data ----------------------------------------------------------------------------------

    def apply_page(self, query: str, events: list[EventRecord], append: bool, error: str | None) -> None:
        if query != self.query_text:
            return  # a stale answer for a filter the operator has already changed
        self.loading = False
        table = self.table
        if error:
            table.border_title = "History — filter error"
            self.detail.update(Text(error, style="bold red"))
            return
        selected = self._selected_seq()
        if not append:
            table.clear()
            self.events.clear()
        page = self.sapp.config.history_page
        self.exhausted = len(events) < page
        for ev in events:
            if ev.seq in self.events:
                continue
            self.events[ev.seq] = ev
            table.add_row(*self._cells(ev), key=str(ev.seq))
        title = f"History {len(self.events)}{'' if self.exhausted else '+'}"
        if query:
            title += " · filter "
        table.border_title = title
        table.border_subtitle = query[:60] if query else ""
        if selected is not None and str(selected) in {str(k) for k in self.events}:
            table.move_cursor(row=table.get_row_index(str(selected)), scroll=False)
        self._show_selected()

    @property
    def detail(self) -> Static:
        return self.query_one("#history-detail-body", Static)

    def _cells(self, ev: EventRecord) -> list[Text]:
        return [
            Text(format_time(ev.ts), end=""),
            Text(KIND_LABELS.get(ev.kind, ev.kind), style=KIND_STYLES.get(ev.kind, ""), end=""),
            safe(ev.function or "—", 18),
            safe(ev.agent_id or "—", 14),
            Text(format_value(ev.value_at_risk), justify="right", end=""),
            safe((ev.actor or "").split(" ")[0], 14),
        ]

    def _selected_seq(self) -> int | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return None if key.value is None else int(key.value)

    def _show_selected(self) -> None:
        seq = self._selected_seq()
        ev = self.events.get(seq) if seq is not None else None
        if ev is None:
            self.detail.update(Text("No events match." if not self.events else "", style="dim"))
        else:
            self.detail.update(event_detail(ev))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()
        table = self.table
        if not self.exhausted and not self.loading and table.cursor_row >= table.row_count - 10:
            oldest = min(self.events) if self.events else None
            self.loading = True
            self.sapp.load_history(self.query_text, before_seq=oldest)

    def reload(self) -> None:
        """Fetch the newest page again (new events arrived, or the filter changed)."""
        self.loading = True
        self.sapp.load_history(self.query_text, before_seq=None)

    # --- filter --------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.filter_input.display = True
        self.filter_input.focus()

    def action_clear_filter(self) -> None:
        box = self.filter_input
        if box.value:
            box.value = ""  # Changed → reload
        box.display = False
        self.table.focus()

    def action_top(self) -> None:
        self.table.move_cursor(row=0)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.filter_input.display = False
        self.table.focus()
