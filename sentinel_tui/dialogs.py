"""Modal dialogs: decision confirmation (Cancel is the default), batch summary, help, full text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static


@dataclass(frozen=True)
class DialogResult:
    choice: str  # the id of the button pressed (never "cancel": Cancel dismisses with None)
    reason: str | None


class DecisionDialog(ModalScreen[DialogResult | None]):
    """Asks before deciding. Focus starts on Cancel, so Enter or Esc changes nothing."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("left", "app.focus_previous", "Previous", show=False, id="dialog.previous"),
        Binding("right", "app.focus_next", "Next", show=False, id="dialog.next"),
    ]

    def __init__(
        self,
        title: str,
        body: Text,
        choices: list[tuple[str, str, str]],
        *,
        ask_reason: bool = True,
        reason_placeholder: str = "reason (optional)",
    ) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._body = body
        self._choices = choices
        self._ask_reason = ask_reason
        self._placeholder = reason_placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box") as box:
            box.border_title = self._title
            with VerticalScroll(id="dialog-body"):
                yield Static(self._body)
            if self._ask_reason:
                yield Input(placeholder=self._placeholder, id="dialog-reason", compact=True)
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="default", compact=True)
                for choice_id, label, variant in self._choices:
                    # Colour only marks what a button does; focus (Cancel first) marks the default.
                    button = Button(label, id=choice_id, variant="default", compact=True)
                    button.add_class(f"act-{variant}")
                    yield button

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def _reason(self) -> str | None:
        if not self._ask_reason:
            return None
        text = self.query_one("#dialog-reason", Input).value.strip()
        return text or None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel" or event.button.id is None:
            self.dismiss(None)
        else:
            self.dismiss(DialogResult(event.button.id, self._reason()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in the reason field moves on to the buttons; it never decides by itself.
        event.stop()
        self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the current view, from the active bindings (so remapped keys show)."""

    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]], intro: Text) -> None:
        super().__init__(classes="dialog")
        self._rows = rows
        self._intro = intro

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = "Keys"
            yield Static(self._intro, id="help-intro")
            table: DataTable[Any] = DataTable(id="help-table", cursor_type="row", show_cursor=False)
            yield table
            yield Label(Text("esc closes", style="dim"))

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Key", "Does", "Binding id")
        for key, description, binding_id in self._rows:
            table.add_row(Text(key, style="bold"), Text(description), Text(binding_id, style="dim"))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)


class TextScreen(ModalScreen[None]):
    """A scrollable full view of a (terminal-safe) text, e.g. every argument unfolded."""

    BINDINGS = [Binding("escape,q,v", "close", "Close", id="text.close")]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="text-box") as box:
            box.border_title = self._title
            box.border_subtitle = "esc closes"
            yield Static(self._body)

    def on_mount(self) -> None:
        self.query_one("#text-box").focus()

    def action_close(self) -> None:
        self.dismiss(None)
