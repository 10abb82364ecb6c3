"""View 1: pending requests beside (wide) or above (narrow) the card of the selected one.

The view never calls the app: decisions, the full-arguments screen and paging are messages the
app handles (it owns the dialogs, the workers and the poll)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable

from sentinel.store.models import RequestRecord
from sentinel_tui.config import TuiConfig
from sentinel_tui.widgets.card import RequestCard
from sentinel_tui.widgets.queue_table import QueueTable

#: Actions that change the queue; hidden and refused in read-only mode.
DECISION_ACTIONS = {
    "approve", "deny", "decide_with_reason", "mark", "approve_marked", "deny_marked", "edit", "grant",
}


class QueueView(Container):
    """The live queue. Decisions act on the card's request, captured at the key press."""

    BINDINGS = [
        Binding("a", "approve", "Approve", id="queue.approve"),
        Binding("d", "deny", "Deny", id="queue.deny"),
        Binding("space", "mark", "Mark", id="queue.mark"),
        Binding("v", "view_full", "Full args", id="queue.view"),
        Binding("e", "edit", "Edit, then approve…", show=False, id="queue.edit"),
        Binding("r", "decide_with_reason", "Decide with reason…", show=False, id="queue.reason"),
        Binding("A", "approve_marked", "Approve marked…", show=False, id="queue.approve_marked"),
        Binding("D", "deny_marked", "Deny marked…", show=False, id="queue.deny_marked"),
        Binding("u", "unmark_all", "Unmark all", show=False, id="queue.unmark"),
        Binding("g", "grant", "Approve + grant…", show=False, id="queue.grant"),
    ]

    class DecisionAsked(Message):
        """``a`` / ``d`` (``approve`` True / False) or ``r`` (``approve`` None: decide with a
        reason) on the request that was on the card at the key press (None: no request)."""

        def __init__(self, request_id: str | None, approve: bool | None) -> None:
            super().__init__()
            self.request_id = request_id
            self.approve = approve

    class GrantAsked(Message):
        """``g``: approve the card's request and grant more calls like it (the app opens the
        grant dialog); ``request_id`` None: no request."""

        def __init__(self, request_id: str | None) -> None:
            super().__init__()
            self.request_id = request_id

    class BatchAsked(Message):
        """``A`` / ``D``: decide the marked requests (after the app shows what they are)."""

        def __init__(self, ids: list[str], approve: bool) -> None:
            super().__init__()
            self.ids = ids
            self.approve = approve

    class ArgumentsAsked(Message):
        """``v``: show the full arguments of the card's request."""

        def __init__(self, record: RequestRecord | None) -> None:
            super().__init__()
            self.record = record

    class EditAsked(Message):
        """``e``: edit the card's request's arguments, then approve the edited call."""

        def __init__(self, request_id: str | None) -> None:
            super().__init__()
            self.request_id = request_id

    class OlderPageWanted(Message):
        """The cursor neared the end of the window: fetch the newest ``depth`` requests."""

        def __init__(self, depth: int) -> None:
            super().__init__()
            self.depth = depth

    def __init__(
        self,
        config: TuiConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        readonly: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config if config is not None else TuiConfig()
        self.clock = clock
        self.readonly = readonly
        self.records: dict[str, RequestRecord] = {}
        self._paging = False  # an older page was asked for and has not arrived yet
        self.marked: set[str] = set()
        self.total = 0

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
        if action in DECISION_ACTIONS and self.readonly:
            return False  # read-only observer: the keys do not exist
        return True

    # --- data ----------------------------------------------------------------------------------

    def apply(self, rows: list[RequestRecord], total: int = 0) -> None:
        """Show exactly ``rows`` (the newest pending requests, newest first: the window the poll
        fetched; ``total`` pending in all); keep the selection on the same request."""
        cfg = self.config
        self.total = max(total, len(rows))
        self._paging = False
        self.records = {r.id: r for r in rows}
        self.marked &= set(self.records)
        self.table.apply(rows, self.clock(), self.marked, cfg.confirm_value, cfg.confirm_risk)
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
        cfg = self.config
        self.card.show(
            record,
            self.clock(),
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
            self.table.refresh_ages(self.records, self.clock())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.sync_card()
        table = self.table
        if table.cursor_row >= table.row_count - 5:
            self.page_older()

    def page_older(self) -> bool:
        """Ask for the next (older) page of pending requests in the window; False when every
        pending request is already shown, the window is at ``pending_limit``, or a page is on
        its way."""
        cfg = self.config
        if self._paging or self.total <= len(self.records):
            return False
        if len(self.records) >= cfg.pending_limit:
            return False  # the window holds min(depth, limit) rows: the depth is at the limit
        self._paging = True
        self.post_message(
            self.OlderPageWanted(min(cfg.pending_limit, len(self.records) + max(1, cfg.queue_page)))
        )
        return True

    # --- actions -------------------------------------------------------------------------------

    def action_approve(self) -> None:
        self.post_message(self.DecisionAsked(self.card.request_id, approve=True))

    def action_deny(self) -> None:
        self.post_message(self.DecisionAsked(self.card.request_id, approve=False))

    def action_decide_with_reason(self) -> None:
        self.post_message(self.DecisionAsked(self.card.request_id, approve=None))

    def action_grant(self) -> None:
        self.post_message(self.GrantAsked(self.card.request_id))

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
        self.post_message(self.BatchAsked(sorted(self.marked), approve=True))

    def action_deny_marked(self) -> None:
        self.post_message(self.BatchAsked(sorted(self.marked), approve=False))

    def action_view_full(self) -> None:
        self.post_message(self.ArgumentsAsked(self.card.record))

    def action_edit(self) -> None:
        self.post_message(self.EditAsked(self.card.request_id))
