"""View 2: the audit trail, newest first, paged from the store, filtered with ``/``.

The view never calls the app: it asks for a page with a :class:`HistoryView.PageWanted` message
(the app's worker answers with ``HistoryPage``, given to :meth:`HistoryView.apply_page`)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from sentinel.redact import safe_text
from sentinel.store.models import EventRecord
from sentinel_tui.config import TuiConfig
from sentinel_tui.render import (
    event_detail,
    event_kind,
    format_time,
    format_value,
)
from sentinel_tui.widgets.event_table import Cell, Column, EventTable

COLUMNS = (
    Column("time", "Time"),
    Column("kind", "Event"),
    Column("function", "Function"),
    Column("agent", "Agent"),
    Column("value", "Value", "right"),
    Column("actor", "By"),
)

FILTER_HELP = "filter: text  status:denied  fn:transfer*  agent:billing  value:>1000  (enter keeps, esc clears)"


class HistoryView(Container):
    """Events table + detail pane. Scrolling near the end loads the next older page."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="history.clear"),
        Binding("g", "top", "Newest", show=False, id="history.top"),
    ]

    class PageWanted(Message):
        """Fetch a page of events for the filter ``query``: the newest (``before_seq`` None)
        or the next older one."""

        def __init__(self, query: str, before_seq: int | None) -> None:
            super().__init__()
            self.query = query
            self.before_seq = before_seq

    def __init__(self, page_size: int = TuiConfig.history_page, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size  # events per page (a shorter page is the last one)
        self.events: dict[int, EventRecord] = {}
        self.query_text = ""
        self.exhausted = False
        # A page is being fetched. Not ``loading``: that is Textual's reactive which covers the
        # whole view with a LoadingIndicator (mounted and removed, a full layout, per page).
        self.page_loading = False
        self._detail_seq: int | None = None  # the event the detail pane shows
        self._detail_size = (-1, -1)  # its text's (wrap width, lines)

    def compose(self) -> ComposeResult:
        yield Input(placeholder=FILTER_HELP, id="history-filter", compact=True)
        table = EventTable(COLUMNS, id="history-table")
        table.border_title = "History"
        yield table
        with VerticalScroll(id="history-detail") as detail:
            detail.border_title = "Event"
            yield Static(Text("Select an event.", style="dim"), id="history-detail-body")

    def on_mount(self) -> None:
        self.filter_input.display = False

    @property
    def table(self) -> EventTable:
        return self.query_one("#history-table", EventTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#history-filter", Input)

    # --- data ----------------------------------------------------------------------------------

    def apply_page(self, query: str, events: list[EventRecord], append: bool, error: str | None) -> None:
        if query != self.query_text:
            return  # a stale answer for a filter the operator has already changed
        self.page_loading = False
        table = self.table
        if error:
            table.border_title = "History — filter error"
            self._detail_seq = None
            self._update_detail(Text(error, style="bold red"))
            return
        selected = self._selected_seq()
        if not append:
            table.clear()
            self.events.clear()
        self.exhausted = len(events) < self.page_size
        rows = []
        for ev in events:
            if ev.seq in self.events:
                continue
            self.events[ev.seq] = ev
            rows.append((ev.seq, self._cells(ev)))
        table.add_rows(rows)
        title = f"History {len(self.events)}{'' if self.exhausted else '+'}"
        if query:
            title += " · filter "
        table.border_title = title
        table.border_subtitle = query[:60] if query else ""
        if selected is not None and selected in self.events:
            table.move_cursor(row=table.get_row_index(selected), scroll=False)
        self._show_selected()

    @property
    def detail(self) -> Static:
        return self.query_one("#history-detail-body", Static)

    def _cells(self, ev: EventRecord) -> tuple[Cell, ...]:
        return (
            Cell(format_time(ev.ts)),
            Cell(*event_kind(ev)),
            Cell(safe_text(ev.function or "—", 18)),
            Cell(safe_text(ev.agent_id or "—", 14)),
            Cell(format_value(ev.value_at_risk)),
            Cell(safe_text((ev.actor or "").split(" ")[0], 14)),
        )

    def _selected_seq(self) -> int | None:
        return self.table.selected_key

    def _show_selected(self) -> None:
        seq = self._selected_seq()
        ev = self.events.get(seq) if seq is not None else None
        if ev is not None and seq == self._detail_seq:
            return  # already shown (audit events never change): a page load keeps the pane as is
        self._detail_seq = seq if ev is not None else None
        if ev is None:
            self._update_detail(Text("No events match." if not self.events else "", style="dim"))
        else:
            self._update_detail(event_detail(ev))

    def _update_detail(self, text: Text) -> None:
        """Show ``text`` in the detail pane; a text as tall as the one shown repaints the pane
        alone, without laying out the whole screen (a layout costs 10-20 ms at 120x40, and it
        landed on the frame that shows the next page after ``ctrl+end``)."""
        detail = self.detail
        width = detail.size.width
        height = len(text.wrap(self.app.console, width)) if width > 0 else -1
        same = height >= 0 and (width, height) == self._detail_size
        self._detail_size = (width, height)
        detail.update(text, layout=not same)

    def on_event_table_row_highlighted(self, event: EventTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()
        table = self.table
        if not self.exhausted and not self.page_loading and table.cursor_row >= table.row_count - 10:
            oldest = min(self.events) if self.events else None
            self.page_loading = True
            self.post_message(self.PageWanted(self.query_text, before_seq=oldest))

    def reload(self) -> None:
        """Fetch the newest page again (new events arrived, or the filter changed)."""
        self.page_loading = True
        self.post_message(self.PageWanted(self.query_text, before_seq=None))

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
