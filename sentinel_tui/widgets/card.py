"""The approval card: the request the operator is reading. Decisions act on *its* id."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from sentinel.store.models import RequestRecord
from sentinel_tui.render import request_card

EMPTY = Text(
    "No pending requests.\n\nNew requests appear here within a fraction of a second.",
    style="dim",
    end="",
)


class RequestCard(VerticalScroll):
    """Shows one request. ``request_id`` is what ``a``/``d`` decide."""

    can_focus = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record: RequestRecord | None = None
        self._body = Static(EMPTY, id="card-body")
        self.text: Text = EMPTY  # what the card shows now (tests read it)
        self._shown: tuple[float, dict[str, Any]] | None = None  # the last show()'s arguments
        self._width: int | None = None

    @property
    def request_id(self) -> str | None:
        return None if self.record is None else self.record.id

    def compose(self) -> Any:
        yield self._body

    def show(
        self,
        record: RequestRecord | None,
        now: float,
        *,
        confirm_value: float,
        confirm_risk: float,
        fold_chars: int,
        marked: bool = False,
    ) -> None:
        changed = record is None or self.record is None or record.id != self.record.id
        self.record = record
        options = {"confirm_value": confirm_value, "confirm_risk": confirm_risk,
                   "fold_chars": fold_chars, "marked": marked}
        self._shown = (now, options)
        width = self._body.size.width
        self._width = width if width > 0 else None
        if record is None:
            self.border_title = "Request"
            self.text = EMPTY
            self._body.update(EMPTY)
        else:
            self.border_title = f"Request {record.id[:12]}"
            self.text = request_card(
                record,
                now,
                confirm_value=confirm_value,
                confirm_risk=confirm_risk,
                fold_chars=fold_chars,
                marked=marked,
                width=self._width,
            )
            self._body.update(self.text)
        if changed:
            self.scroll_home(animate=False)

    def on_resize(self) -> None:
        # The "who decides" line packs its parts to the card's width: lay it out again.
        width = self._body.size.width
        if self.record is not None and self._shown is not None and width > 0 and width != self._width:
            now, options = self._shown
            self.show(self.record, now, **options)
