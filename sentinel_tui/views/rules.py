"""View 4: the active policy in evaluation order, hit counts, source, load time, validity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable, Static

from sentinel_tui.data import PolicyInfo
from sentinel_tui.render import format_time, safe

if TYPE_CHECKING:
    from sentinel_tui.app import SentinelApp

ACTION_STYLES = {"block": "bold red", "require_approval": "yellow", "allow": "green"}


class RulesView(Container):
    """Read-only display of the policy; ``e`` edits it in $EDITOR, ``r`` reloads and validates."""

    BINDINGS = [
        Binding("e", "edit", "Edit rules", id="rules.edit"),
        Binding("r", "reload", "Reload", id="rules.reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.info: PolicyInfo | None = None
        self.hits: dict[str, int] = {}

    @property
    def sapp(self) -> SentinelApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading policy…", style="dim"), id="rules-header")
        table: DataTable[Any] = DataTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Rules (evaluation order)"
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("#", "Id", "Action", "Function", "Prio", "State", "Hits", "Name")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit" and self.sapp.data.rules_path is None:
            return None  # shown greyed out: no rules file was given
        return True

    def set_hits(self, hits: dict[str, int]) -> None:
        if hits != self.hits:
            self.hits = dict(hits)
            self._redraw()

    def apply(self, info: PolicyInfo | None) -> None:
        self.info = info
        self._redraw()

    def _redraw(self) -> None:
        info = self.info
        header = Text(end="")
        table = self.query_one(DataTable)
        table.clear()
        if info is None:
            header.append("No rules file given. ", style="bold")
            header.append("Start with --rules PATH to show the policy here.", style="dim")
            self.query_one("#rules-header", Static).update(header)
            return
        header.append("source   ", style="bold")
        header.append_text(safe(str(info.path), 200))
        header.append("\nloaded   ", style="bold")
        header.append(format_time(info.loaded_at, with_date=True))
        header.append("\nversion  ", style="bold")
        header.append(info.version[:12] if info.version else "—")
        header.append("\nstatus   ", style="bold")
        if info.valid:
            header.append(f"✔ valid, {len(info.rules)} rules", style="bold green")
            if info.default_action:
                header.append(f", default action {info.default_action}")
        else:
            header.append("✖ INVALID: ", style="bold red")
            header.append_text(safe(info.error or "unknown error", 600, "red"))
        self.query_one("#rules-header", Static).update(header)
        for rule in info.rules:
            state = "on" if rule.enabled else "off"
            if rule.shadow:
                state += " (shadow)"
            table.add_row(
                Text(str(rule.position), style="dim"),
                safe(rule.id, 28, "bold"),
                Text(rule.action, style=ACTION_STYLES.get(rule.action, "")),
                safe(rule.pattern, 28),
                Text("" if rule.priority is None else str(rule.priority)),
                Text(state),
                Text(f"{self.hits.get(rule.id, 0):,}", justify="right"),
                safe(rule.name or "", 60),
                key=rule.id,
            )

    def action_edit(self) -> None:
        self.sapp.edit_rules()

    def action_reload(self) -> None:
        self.sapp.load_policy()
