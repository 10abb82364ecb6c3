"""View 1: pending requests beside (wide) or above (narrow) the card of the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable

from sentinel.store.models import RequestRecord
from sentinel_tui.widgets.card import RequestCard
from sentinel_tui.widgets.queue_table import QueueTable

if TYPE_CHECKING:
    from sentinel_tui.app import SentinelApp

#: Actions that change the queue; hidden and refused in read-only mode.
DECISION_ACTIONS = {"approve", "deny", "decide_with_reason", "mark", "approve_marked", "deny_marked"}


class QueueView(Container):
    """The live queue. Decisions act on the card's request, captured at the key press."""

    BINDINGS = [
        Binding("a", "approve", "Approve", id="queue.approve"),
        Binding("d", "deny", "Deny", id="queue.deny"),
        Binding("space", "mark", "Mark", id="queue.mark"),
        Binding("v", "view_full", "Full args", id="queue.view"),
        Binding("r", "decide_with_reason", "Decide with reason…", show=False, id="queue.reason"),
        Binding("A", "approve_marked", "Approve marked…", show=False, id="queue.approve_marked"),
        Binding("D", "deny_marked", "Deny marked…", show=False, id="queue.deny_marked"),
        Binding("u", "unmark_all", "Unmark all", show=False, id="queue.unmark"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.records: dict[str, RequestRecord] = {}
        self.marked: set[str] = set()
        self.total = 0

    @property
    def sapp(self) -> SentinelApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        table = QueueTable(id="queue-table")
        table.border_title = "Pending"
        yield table
        card = RequestCard(id="card")
        card.border_title = "Request"
        yield card

    @property
    def table(self) -> QueueTable:
        return self.query_one(QueueTable)

    @property
    def card(self) -> RequestCard:
        return self.query_one(RequestCard)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in DECISION_ACTIONS and self.sapp.readonly:
            return False  # read-only observer: the keys do not exist
        return True

    # --- data ----------------------------------------------------------------------------------

    def apply(self, rows: list[RequestRecord]) -> None:
        """Show exactly ``rows`` (the pending requests); keep the selection on the same request."""
        app = self.sapp
        self.total = len(rows)
        limit = app.config.table_rows
        if limit and len(rows) > limit:
            # The store lists oldest first; the table keeps the newest (what just arrived).
            rows = sorted(rows, key=lambda r: (r.created_at, r.id))[-limit:]
        self.records = {r.id: r for r in rows}
        self.marked &= set(self.records)
        self.table.apply(
            rows, app.clock(), self.marked, app.config.confirm_value, app.config.confirm_risk
        )
        self._retitle()
        self.sync_card(force=True)

    def _retitle(self) -> None:
        title = f"Pending {self.total:,}"
        if self.total > len(self.records):
            title += f" · newest {len(self.records):,} shown"
        if self.marked:
            title += f" · {len(self.marked)} marked"
        self.table.border_title = title

    def sync_card(self, force: bool = False) -> None:
        """Point the card at the table's selected request (refreshing it when ``force``)."""
        rid = self.table.selected_id
        record = self.records.get(rid) if rid else None
        if not force and record is not None and record.id == self.card.request_id:
            return
        self.render_card(record)

    def render_card(self, record: RequestRecord | None) -> None:
        cfg = self.sapp.config
        self.card.show(
            record,
            self.sapp.clock(),
            confirm_value=cfg.confirm_value,
            confirm_risk=cfg.confirm_risk,
            fold_chars=cfg.fold_chars,
            marked=record is not None and record.id in self.marked,
        )

    def tick(self, ages: bool) -> None:
        """Coarse refresh of time-dependent text (countdown on the card, ages in the table)."""
        if self.card.record is not None:
            self.render_card(self.card.record)
        if ages:
            self.table.refresh_ages(self.records, self.sapp.clock())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.sync_card()

    # --- actions -------------------------------------------------------------------------------

    def action_approve(self) -> None:
        self.sapp.request_decision(self.card.request_id, approve=True)

    def action_deny(self) -> None:
        self.sapp.request_decision(self.card.request_id, approve=False)

    def action_decide_with_reason(self) -> None:
        self.sapp.request_decision_with_reason(self.card.request_id)

    def action_mark(self) -> None:
        rid = self.card.request_id
        if rid is None:
            return
        if rid in self.marked:
            self.marked.discard(rid)
        else:
            self.marked.add(rid)
        self.table.set_mark(rid, rid in self.marked)
        self._retitle()
        self.render_card(self.card.record)
        # Marking moves on, as in htop: space space space marks a run of requests.
        self.table.action_cursor_down()

    def action_unmark_all(self) -> None:
        for rid in list(self.marked):
            self.table.set_mark(rid, False)
        self.marked.clear()
        self._retitle()
        self.render_card(self.card.record)

    def action_approve_marked(self) -> None:
        self.sapp.request_batch(sorted(self.marked), approve=True)

    def action_deny_marked(self) -> None:
        self.sapp.request_batch(sorted(self.marked), approve=False)

    def action_view_full(self) -> None:
        self.sapp.show_full(self.card.record)
