"""Two-line status bar: views and operator on top; live state, queue, policy and database below.

Repaints only when a value changes (no clock ticking), which keeps SSH sessions quiet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual.widget import Widget

from sentinel.redact import safe_text, shorten
from sentinel_tui.render import format_age, safe

VIEWS = (
    ("queue", "1 Queue"), ("history", "2 History"), ("metrics", "3 Metrics"), ("rules", "4 Rules"),
    ("grants", "5 Grants"),
)


@dataclass(frozen=True)
class StatusState:
    view: str = "queue"
    db_path: str = ""
    live: bool = True
    arrived_while_paused: int = 0
    pending: int | None = None
    oldest_age: float | None = None
    policy_version: str | None = None
    policy_valid: bool = True
    policy_error: str | None = None  # an invalid edit of the rules file (until fixed)
    operator: str = ""
    readonly: bool = False
    error: str | None = None
    signing_as: str | None = None  # the trusted operator decisions are signed as
    unsigned: str | None = None  # why decisions here are unsigned where signatures are expected


def _shorten_path(path: str, width: int) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _strip_dir(message: str) -> str:
    """``/long/path/rules.yaml:6: what`` → ``rules.yaml:6: what`` (the Rules view has the path)."""
    head, sep, rest = message.partition(": ")
    if sep and "/" in head:
        return head.rsplit("/", 1)[1] + sep + rest
    return message


class StatusBar(Widget):
    """The app's status bar. Set fields with :meth:`set`."""

    DEFAULT_CSS = """
    StatusBar { height: 2; dock: top; background: $panel; color: $text; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = StatusState()

    def set(self, **changes: Any) -> None:
        new = replace(self.state, **changes)
        if new != self.state:
            self.state = new
            self.refresh()

    def render(self) -> Text:
        s = self.state
        width = max(20, self.size.width)
        top = Text(end="")
        if width >= 100:
            top.append(" SENTINEL ", style="bold reverse")
        for name, label in VIEWS:
            top.append(" ")
            if name == s.view:
                top.append(f" {label} ", style="bold reverse")
            else:  # narrow: the other views unpadded, so the operator keeps its room at 80
                top.append(f" {label} " if width >= 100 else label, style="dim")
        right = Text(end="")
        if s.readonly:
            right.append("READ-ONLY ", style="bold yellow")
        if s.signing_as:
            right.append("✔ signing as ", style="green")
            right.append(shorten(safe_text(s.signing_as), 24), style="bold green")
            right.append("  ")
        right.append("op ", style="dim")
        # The operator identity is always shown, shortened from the right if it must be.
        room = max(8, width - top.cell_len - right.cell_len - 2)
        right.append(shorten(safe_text(s.operator or "?"), room))
        right.append(" ")
        gap = max(1, width - top.cell_len - right.cell_len)
        top.append(" " * gap)
        top.append_text(right)
        bottom = Text(" ", end="")
        if s.policy_error:
            # First on the line: an invalid edit must be seen even at 80 columns.
            bottom.append("✖ rules: ", style="bold red")
            room = 44 if width < 100 else 90
            shown = safe_text(_strip_dir(s.policy_error), None)
            bottom.append(shown if len(shown) <= room else shown[: room - 1] + "…", style="bold red")
            bottom.append(" │ ")
        if s.unsigned:
            # Before the rest, as an invalid rules file is: every approval here would be refused.
            bottom.append("⚠ unsigned: ", style="bold yellow")
            room = 56 if width < 100 else 90
            shown = safe_text(s.unsigned, None)
            bottom.append(shown if len(shown) <= room else shown[: room - 1] + "…", style="bold yellow")
            bottom.append(" │ ")
        if s.error:
            bottom.append("✖ ", style="bold red")
            bottom.append_text(safe(s.error, 70, "bold red"))
            bottom.append(" │ ")
        if s.live:
            bottom.append("● LIVE", style="bold green")
        else:
            bottom.append("‖ PAUSED", style="bold yellow")
            if s.arrived_while_paused:
                bottom.append(f" +{s.arrived_while_paused} new", style="bold yellow")
        bottom.append(" │ ")
        if s.pending is None:
            bottom.append("… pending")
        else:
            bottom.append(f"{s.pending} pending", style="bold" if s.pending else "")
            if s.oldest_age is not None:
                bottom.append(f" · oldest {format_age(s.oldest_age)}")
        bottom.append(" │ policy ")
        if s.policy_version:
            bottom.append(s.policy_version[:12], style="" if s.policy_valid else "bold red")
            if not s.policy_valid:
                bottom.append(" INVALID", style="bold red")
        else:
            bottom.append("—")
        bottom.append(" │ db ")
        room = max(12, width - bottom.cell_len - 1)
        bottom.append_text(safe(_shorten_path(s.db_path, room), None))
        top.no_wrap = bottom.no_wrap = True
        top.overflow = bottom.overflow = "ellipsis"
        return Text("\n", end="").join([top, bottom])
