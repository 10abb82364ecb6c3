"""View 4: the active policy in evaluation order, hit counts, source, load time, validity, what
the last reload changed, an invalid edit's error, and a replay of the file on disk."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from sentinel.policy.replay import DEFAULT_SINCE_DAYS
from sentinel_tui.data import PolicyInfo, ReplayInfo
from sentinel_tui.render import format_time, format_value, safe

if TYPE_CHECKING:
    from sentinel.policy.diff import PolicyDiff
    from sentinel.policy.widening import Widening

ACTION_STYLES = {"block": "bold red", "require_approval": "yellow", "allow": "green"}
#: Days of history the ``R`` replay reads (the same default as ``sentinel rules replay``).
REPLAY_DAYS = DEFAULT_SINCE_DAYS


def _short(value: Any, width: int = 60) -> str:
    """A JSON-ish rendering of a diff value (the caller makes it terminal-safe)."""
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def diff_text(diff: PolicyDiff, changed_at: float | None) -> Text:
    """Rules added (+), removed (-) and changed (~, field by field) by the last reload."""
    text = Text(end="")
    text.append("last change ", style="bold")
    text.append(format_time(changed_at, with_date=True) if changed_at else "—")
    text.append(f"  {(diff.old_version or '—')[:12]} → {diff.new_version[:12]}: ", style="dim")
    text.append(diff.summary())
    text.append("\n")
    if diff.is_empty:
        text.append("  no rule or setting changed (comments or tests only)\n", style="dim")
    for rid in diff.added:
        text.append("  + ", style="bold green")
        text.append_text(safe(rid, 60, "bold"))
        text.append(" added\n")
    for rid in diff.removed:
        text.append("  - ", style="bold red")
        text.append_text(safe(rid, 60, "bold"))
        text.append(" removed\n")
    for change in diff.changed:
        text.append("  ~ ", style="bold yellow")
        text.append_text(safe(change.rule_id, 60, "bold"))
        text.append(" changed\n")
        for f in change.fields:
            text.append("      ")
            text.append_text(safe(f.field, 30, "cyan"))
            text.append(" ")
            text.append_text(safe(_short(f.old), 80))
            text.append(" → ")
            text.append_text(safe(_short(f.new), 80, "bold"))
            text.append("\n")
    for f in diff.settings:
        text.append("  ~ setting ", style="bold yellow")
        text.append_text(safe(f.field, 30, "cyan"))
        text.append(" ")
        text.append_text(safe(_short(f.old), 80))
        text.append(" → ")
        text.append_text(safe(_short(f.new), 80, "bold"))
        text.append("\n")
    return text


def widened_text(widened: tuple[Widening, ...]) -> Text:
    """The ways the last change widens what is allowed (``sentinel.policy.widening``)."""
    text = Text(end="")
    text.append(f"▲ WIDENED BY THIS EDIT ({len(widened)})", style="bold red")
    text.append(" — calls may now be allowed that were asked or blocked\n", style="bold")
    for w in widened:
        text.append("  ▲ ", style="bold red")
        text.append_text(safe(w.rule_id or "(policy)", 60, "bold"))
        text.append(" ")
        text.append_text(safe(w.reason, 200))
        text.append("\n")
    return text


def replay_text(info: ReplayInfo) -> Text:
    """What the file on disk would change against the recorded decisions, grouped by rule."""
    text = Text(end="")
    text.append("replay ", style="bold")
    text.append_text(safe(info.path.name, 80))
    if info.error is not None:
        text.append(" — the file cannot be replayed: ", style="bold red")
        text.append_text(safe(info.error, 400, "red"))
        text.append("\n")
        return text
    report = info.report
    assert report is not None
    text.append(f" ({(info.candidate_version or '?')[:12]}", style="dim")
    text.append(", the active policy)" if info.same_as_active else ", not yet active)", style="dim")
    text.append(f" against {report.events:,} decisions of the last {REPLAY_DAYS} days: ")
    if report.changed:
        text.append(f"{report.changed:,} would change", style="bold yellow")
    else:
        text.append("nothing would change", style="bold green")
    text.append(f", {report.unchanged:,} the same", style="dim")
    skipped = report.no_arguments + report.by_hooks
    if skipped:
        text.append(f", {skipped:,} not replayable (no arguments or decided by a limit/anomaly)", style="dim")
    text.append("\n")
    for before, after in sorted(report.transitions()):
        n, value = report.transitions()[(before, after)]
        arrow = "▲ stricter" if _strictness(after) > _strictness(before) else "▽ looser"
        text.append(f"  {before} → {after}", style="bold")
        text.append(f"  {arrow}: {n:,} calls, value {format_value(value)}\n")
    for g in report.flips:
        text.append("    ")
        text.append_text(safe(g.rule_id or "(default action)", 60, "bold cyan"))
        text.append(f"  {g.before} → {g.after}: {g.count:,} calls, value {format_value(g.value_at_risk)}")
        was = ", ".join(f"{r} ×{n}" for r, n in sorted(g.was_rules.items()))
        if was:
            text.append("  was ", style="dim")
            text.append_text(safe(was, 120, "dim"))
        text.append("\n")
    return text


def _strictness(action: str) -> int:
    return {"allow": 0, "require_approval": 1, "block": 2}.get(action, 1)


class RulesView(Container):
    """The policy; ``e`` edits it in $EDITOR, ``r`` reloads and validates, ``R`` replays the
    file on disk against history."""

    BINDINGS = [
        Binding("e", "edit", "Edit rules", id="rules.edit"),
        Binding("r", "reload", "Validate", id="rules.reload"),
        Binding("R", "replay", "Replay file", id="rules.replay"),
    ]

    class EditAsked(Message):
        """``e``: open the rules file in the editor, then reload it."""

    class ReloadAsked(Message):
        """``r``: re-validate the rules file now and say the outcome even if unchanged."""

    class ReplayAsked(Message):
        """``R``: replay the file on disk against the last ``window`` seconds of history."""

        def __init__(self, window: float) -> None:
            super().__init__()
            self.window = window

    def __init__(self, *, has_rules_file: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.has_rules_file = has_rules_file  # without one, edit and replay are greyed out
        self.info: PolicyInfo | None = None
        self.hits: dict[str, int] = {}
        self.replay: ReplayInfo | None = None
        self.replay_running = False

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading policy…", style="dim"), id="rules-header")
        with VerticalScroll(id="rules-notes"):
            yield Static(Text(end=""), id="rules-notes-body")
        table: DataTable[Any] = DataTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Rules (evaluation order)"
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("#", "Id", "Action", "Function", "Prio", "State", "Hits", "Name")
        self.query_one("#rules-notes").display = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit", "replay") and not self.has_rules_file:
            return None  # shown greyed out: no rules file was given
        return True

    def set_hits(self, hits: dict[str, int]) -> None:
        if hits != self.hits:
            self.hits = dict(hits)
            self._redraw()

    def apply(self, info: PolicyInfo | None) -> None:
        self.info = info
        self._redraw()

    def apply_replay(self, info: ReplayInfo | None) -> None:
        self.replay = info
        self.replay_running = False
        self._redraw_notes()

    @property
    def notes_text(self) -> Text:
        """What the notes pane shows (problem, last change, replay); tests read it."""
        info = self.info
        text = Text(end="")
        if info is not None and info.problem is not None:
            p = info.problem
            text.append("✖ INVALID EDIT", style="bold red")
            if info.version:
                text.append(f" — the last good policy ({info.version[:12]}) is still shown", style="bold")
            text.append("\n  file ", style="dim")
            text.append_text(safe(p.file, 200))
            text.append("  line ", style="dim")
            text.append("?" if p.line is None else str(p.line), style="bold")
            text.append("\n  what ", style="dim")
            text.append_text(safe(p.what, 600, "red"))
            text.append("\n")
        if info is not None and info.diff is not None:
            text.append_text(diff_text(info.diff, info.changed_at))
            if info.widened:
                text.append_text(widened_text(info.widened))
        if self.replay_running:
            text.append("replay running…\n", style="italic")
        elif self.replay is not None:
            text.append_text(replay_text(self.replay))
        return text

    def _redraw_notes(self) -> None:
        notes = self.notes_text
        pane = self.query_one("#rules-notes")
        pane.display = bool(notes.plain)
        self.query_one("#rules-notes-body", Static).update(notes)

    def _redraw(self) -> None:
        info = self.info
        header = Text(end="")
        table = self.query_one(DataTable)
        table.clear()
        self._redraw_notes()
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
            if info.widened:
                header.append("  ▲ widened by this edit", style="bold red")
        else:
            header.append("✖ INVALID: ", style="bold red")
            header.append_text(safe(info.error or "unknown error", 600, "red"))
        self.query_one("#rules-header", Static).update(header)
        diff = info.diff
        added = set(diff.added) if diff is not None else set()
        changed = {c.rule_id for c in diff.changed} if diff is not None else set()
        widened = {w.rule_id for w in info.widened}
        for rule in info.rules:
            state = "on" if rule.enabled else "off"
            if rule.shadow:
                state += " (shadow)"
            if rule.id in added:
                state += " +new"
            elif rule.id in changed:
                state += " ~changed"
            if rule.id in widened:
                state += " ▲widened"
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
        self.post_message(self.EditAsked())

    def action_reload(self) -> None:
        self.post_message(self.ReloadAsked())

    def action_replay(self) -> None:
        self.replay_running = True
        self._redraw_notes()
        self.post_message(self.ReplayAsked(REPLAY_DAYS * 86_400))
