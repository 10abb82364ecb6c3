"""View 5: standing grants — who may do what without asking, how much of it is used, how long
it lasts — beside the card of the selected one. ``r`` revokes it at once.

The view never calls the app: the app's worker hands it the grants (:meth:`GrantsView.apply`)
and revoking is a :class:`GrantsView.RevokeAsked` message the app's worker carries out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from sentinel_tui.render import format_age, format_time, format_value, safe
from sentinel_tui.widgets.keyed_table import KeyedTable, SortText

#: Characters of the bounds column (longer ones end in an ellipsis).
BOUNDS_CHARS = 34
STATUS_STYLE = {
    "active": "bold green", "expired": "dim", "revoked": "bold red", "exhausted": "yellow",
}
EMPTY = Text(
    "No grants.\n\ng on a request's card approves it and grants more calls like it.",
    style="dim", end="",
)


def grant_status(grant: Any, now: float) -> str:
    """active / expired / revoked / exhausted, as of ``now`` (an active grant past its end or
    its caps reads as such before the store's sweep records it)."""
    status = str(grant.status)
    if status != "active":
        return status
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    if grant.max_count is not None and grant.used_count >= grant.max_count:
        return "exhausted"
    if grant.max_total is not None and grant.used_total >= grant.max_total:
        return "exhausted"
    return "active"


def time_left(grant: Any, now: float) -> str:
    """How long an active grant lasts ("until revoked" without an end); "—" once it ended."""
    if grant_status(grant, now) != "active":
        return "—"
    if grant.expires_at is None:
        return "∞"
    left = grant.expires_at - now
    if left < 60:
        return f"{max(0, int(left))}s"
    if left < 3600:
        return f"{int(left // 60)}m{int(left % 60):02d}s"
    return format_age(left)


def bound_texts(grant: Any) -> list[str]:
    """Each bound as its ``--where`` text."""
    return [b.text() for b in grant.bounds]


def use_text(grant: Any) -> str:
    """Use so far against the limits: ``3/5 calls · 1,200/2,000`` (``3 calls`` without caps)."""
    count = f"{grant.used_count:,}" + (f"/{grant.max_count:,}" if grant.max_count is not None else "")
    text = f"{count} call{'s' if (grant.max_count or grant.used_count) != 1 else ''}"
    if grant.max_total is not None:
        text += f" · {format_value(grant.used_total)}/{format_value(grant.max_total)}"
    elif grant.used_total:
        text += f" · {format_value(grant.used_total)}"
    return text


def _when(ts: float, now: float) -> str:
    """A time of day, with the date when it is not within a day of ``now``."""
    return format_time(ts, with_date=abs(ts - now) >= 86_400)


def grant_card(grant: Any, now: float) -> Text:
    """Everything about one grant, terminal-safe."""
    status = grant_status(grant, now)
    text = Text(end="")

    def field(label: str, value: Text | str) -> None:
        text.append(f"{label:<10}", style="bold")
        text.append_text(value if isinstance(value, Text) else Text(value, end=""))
        text.append("\n")

    field("status", Text(status, style=STATUS_STYLE.get(status, ""), end=""))
    field("agent", safe(grant.agent or "—", 60))
    field("function", safe(grant.function, 60, "bold"))
    bounds = bound_texts(grant)
    if bounds:
        text.append("bounds\n", style="bold")
        for b in bounds:
            text.append("  ")
            text.append_text(safe(b, 200))
            text.append("\n")
    else:
        field("bounds", Text("none: any arguments", style="bold yellow", end=""))
    field("used", use_text(grant))
    if grant.expires_at is None:
        field("until", "revoked")
    else:
        until = _when(grant.expires_at, now)
        field("until", f"{until} · {time_left(grant, now)} left" if status == "active" else until)
    field("granted", _when(grant.created_at, now))
    field("by", safe(grant.created_by or "?", 80))
    signer = getattr(grant, "signer", None)
    field("signed", safe(signer, 60) if signer else Text("no", style="dim", end=""))
    if getattr(grant, "request_id", None):
        field("from", f"request {grant.request_id[:12]}" +
              (f" (rule {grant.rule_id})" if getattr(grant, "rule_id", None) else ""))
    if getattr(grant, "ended_at", None):
        ended = Text(_when(grant.ended_at, now), end="")
        if getattr(grant, "ended_by", None):
            ended.append(" by ")
            ended.append_text(safe(grant.ended_by, 80))
        if getattr(grant, "end_reason", None):
            ended.append(": ")
            ended.append_text(safe(grant.end_reason, 120))
        field("ended", ended)
    text.append(f"\nid {grant.id}", style="dim")
    return text


def _cut(value: str, chars: int, style: str = "") -> Text:
    """Terminal-safe ``value`` in at most ``chars`` characters (an ellipsis marks a cut)."""
    text = safe(value, None, style)
    if len(text.plain) > chars:
        text = text[: chars - 1]
        text.append("…")
    return text


class GrantsTable(KeyedTable):
    """Grants keyed by id, newest first; updated by diff, the selection kept by key."""

    COLUMNS = (
        ("status", "Status"),
        ("left", "Left"),
        ("agent", "Agent"),
        ("function", "Function"),
        ("used", "Used"),
        ("bounds", "Bounds"),  # last: the widest; the card shows every bound whole
    )
    SORT_COLUMN = "status"

    def _cells(self, g: Any, now: float) -> list[Text]:
        status = grant_status(g, now)
        bounds = bound_texts(g)
        return [
            SortText(status, (g.created_at, g.id), style=STATUS_STYLE.get(status, ""), end=""),
            Text(time_left(g, now), justify="right", end=""),
            _cut(g.agent or "—", 16),
            _cut(g.function, 20, "bold"),
            Text(use_text(g), end=""),
            _cut("; ".join(bounds), BOUNDS_CHARS) if bounds
            else Text("none", style="yellow", end=""),
        ]

    def apply(self, grants: Iterable[Any], now: float) -> None:
        """Show exactly ``grants`` (newest first); keep the cursor on the same grant."""
        self.show_rows((g.id, self._cells(g, now)) for g in grants)


class GrantsView(Container):
    """The grants table and the card of the selected grant."""

    BINDINGS = [
        Binding("r", "revoke", "Revoke", id="grants.revoke"),
    ]

    class RevokeAsked(Message):
        """``r``: revoke the selected grant now (``grant_id`` None: none selected)."""

        def __init__(self, grant_id: str | None) -> None:
            super().__init__()
            self.grant_id = grant_id

    def __init__(
        self, clock: Callable[[], float] = time.time, *, readonly: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.readonly = readonly
        self.grants: dict[str, Any] = {}
        self.loaded = False

    def compose(self) -> ComposeResult:
        table = GrantsTable(id="grants-table")
        table.border_title = "Grants"
        yield table
        with VerticalScroll(id="grant-card") as card:
            card.border_title = "Grant"
            yield Static(EMPTY, id="grant-card-body")

    @property
    def table(self) -> GrantsTable:
        return self.query_one(GrantsTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "revoke" and self.readonly:
            return False
        return True

    def apply(self, grants: list[Any]) -> None:
        """Show ``grants`` (newest first)."""
        self.loaded = True
        self.grants = {g.id: g for g in grants}
        now = self.clock()
        self.table.apply(grants, now)
        active = sum(1 for g in grants if grant_status(g, now) == "active")
        self.table.border_title = f"Grants · {active} active of {len(grants)}"
        self.sync_card()

    def tick(self) -> None:
        """Time left moves: refresh the table and the card."""
        if self.grants:
            self.table.apply(list(self.grants.values()), self.clock())
            self.sync_card()

    def sync_card(self) -> None:
        gid = self.table.selected_id
        grant = self.grants.get(gid) if gid else None
        body = self.query_one("#grant-card-body", Static)
        card = self.query_one("#grant-card")
        if grant is None:
            card.border_title = "Grant"
            body.update(EMPTY if not self.grants else Text("Select a grant.", style="dim"))
            return
        card.border_title = f"Grant {grant.id[:12]}"
        body.update(grant_card(grant, self.clock()))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.sync_card()

    def action_revoke(self) -> None:
        self.post_message(self.RevokeAsked(self.table.selected_id))
