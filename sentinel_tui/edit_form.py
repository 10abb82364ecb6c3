"""The edit form (``e`` on a card): change a request's arguments, then approve the edited call.

One :class:`~textual.widgets.Input` per parameter of the request's recorded schema, typed by it:
every keystroke is checked with :func:`sentinel.edits.typed_value` (no I/O) and the field says
what it expects when its text does not fit. Approving posts :class:`EditForm.Submitted`; the app
decides in a worker (the library's :class:`~sentinel.trust.decide.Decider`, which checks the
values against the schema and the edited call against the rules again, and records the decision
by compare-and-set) and hands the outcome back to :meth:`EditForm.outcome`. A request decided
meanwhile makes the form say so and decide nothing. Everything an agent supplied is shown through
:func:`sentinel_tui.render.safe`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from sentinel.edits import decimal_text, expected, typed_value
from sentinel.redact import MASK, safe_text
from sentinel.store.models import ArgumentEdit, RequestRecord
from sentinel_tui.render import safe


class EditForm(ModalScreen[ArgumentEdit | None]):
    """Edit the arguments of ``record`` and approve the edited call (dismissed with the
    recorded edit on success, None when cancelled)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="edit.cancel"),
        Binding("ctrl+s", "approve", "Approve edited", id="edit.approve"),
    ]

    class Submitted(Message):
        """Approve ``record`` with ``values`` (parameter → the text typed) and ``reason``."""

        def __init__(
            self, form: EditForm, record: RequestRecord, values: dict[str, str], reason: str | None
        ) -> None:
            super().__init__()
            self.form = form
            self.record = record
            self.values = values
            self.reason = reason

    def __init__(self, record: RequestRecord) -> None:
        super().__init__(classes="dialog")
        self.record = record
        schema = record.arg_schema or {}
        self._schema: dict[str, Any] = schema
        props = schema.get("properties") if isinstance(schema, dict) else None
        self._props: dict[str, Any] = dict(props) if isinstance(props, dict) else {}
        #: Parameters in the order of the arguments, then any only the schema names.
        self.names = list(dict.fromkeys([*record.arguments, *self._props]))
        self._busy = False
        self.closed_reason: str | None = None  # set when the request was decided meanwhile

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        rec = self.record
        with Vertical(id="edit-box") as box:
            box.border_title = "Edit, then approve"
            box.border_subtitle = "ctrl+s approves · esc cancels"
            head = Text(end="")
            head.append_text(safe(rec.function, 60, "bold"))
            head.append(f"  ({rec.id[:12]})  ", style="dim")
            head.append_text(safe(rec.agent_id or "—", 30))
            head.append("\n")
            head.append_text(safe(rec.reason or "", 160, "italic"))
            yield Static(head, id="edit-head")
            with VerticalScroll(id="edit-fields"):
                for i, name in enumerate(self.names):
                    prop = self._props.get(name)
                    value = rec.arguments.get(name)
                    masked = value == MASK
                    text = (
                        "" if value is None and name not in rec.arguments else decimal_text(value)
                    )
                    # Agent text with control or bidi characters is never put in an Input (it
                    # would reach the terminal): such a field is shown neutralised, read-only.
                    unsafe = safe_text(text, None) != text
                    with Horizontal(classes="edit-row"):
                        label = Text(safe_text(name, 24), style="bold", end="")
                        yield Label(label, classes="edit-name")
                        field = Input(
                            value=safe_text(text, 500) if unsafe else text,
                            id=f"edit-{i}",
                            placeholder=expected(prop, self._schema) if prop is not None else "",
                            compact=True,
                            disabled=masked or unsafe or prop is None,
                            classes="edit-input",
                        )
                        field.cursor_blink = False
                        yield field
                    why = (
                        "masked (a secret): cannot be edited" if masked
                        else "control characters: edit with sentinel approve --set" if unsafe
                        else "not in the recorded schema: cannot be edited" if prop is None
                        else expected(prop, self._schema)
                    )  # fmt: skip
                    yield Static(Text(why, style="dim"), id=f"edit-msg-{i}", classes="edit-msg")
            reason = Input(placeholder="reason (optional)", id="edit-reason", compact=True)
            reason.cursor_blink = False
            yield reason
            yield Static("", id="edit-status")
            with Horizontal(id="edit-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                approve = Button("Approve edited", id="approve", compact=True)
                approve.add_class("act-warning")
                yield approve

    def on_mount(self) -> None:
        for i in range(len(self.names)):
            field = self.query_one(f"#edit-{i}", Input)
            if not field.disabled:
                field.focus()
                break
        self._refresh_state()

    # -- checking as the operator types -------------------------------------------------------

    def problems(self) -> dict[str, str]:
        """Parameter → what is wrong with its text (only fields that do not fit)."""
        out: dict[str, str] = {}
        for i, name in enumerate(self.names):
            field = self.query_one(f"#edit-{i}", Input)
            if field.disabled:
                continue
            try:
                typed_value(field.value, self._props[name], self._schema)
            except ValueError as exc:
                out[name] = str(exc)
        return out

    def changes(self) -> dict[str, str]:
        """Parameter → the text typed, for fields that differ from the request."""
        out: dict[str, str] = {}
        for i, name in enumerate(self.names):
            field = self.query_one(f"#edit-{i}", Input)
            if field.disabled:
                continue
            try:
                value = typed_value(field.value, self._props[name], self._schema)
            except ValueError:
                out[name] = field.value
                continue
            if name not in self.record.arguments or self.record.arguments[name] != value:
                out[name] = field.value
        return out

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.disabled:
            return  # a read-only field (its initial value, or the form closed)
        if event.input.id and event.input.id.startswith("edit-") and event.input.id[5:].isdigit():
            i = int(event.input.id[5:])
            name = self.names[i]
            msg = self.query_one(f"#edit-msg-{i}", Static)
            try:
                value = typed_value(event.input.value, self._props[name], self._schema)
            except ValueError as exc:
                msg.update(Text(f"✗ {exc}", style="bold red"))
                event.input.add_class("-invalid")
            else:
                event.input.remove_class("-invalid")
                changed = name not in self.record.arguments or self.record.arguments[name] != value
                before = decimal_text(self.record.arguments.get(name))
                msg.update(
                    Text(f"✓ changed (was {safe_text(before, 40)})", style="bold yellow")
                    if changed
                    else Text(expected(self._props[name], self._schema), style="dim")
                )
        self._refresh_state()

    def _refresh_state(self) -> None:
        if self.closed_reason is not None:
            return
        problems, changes = self.problems(), self.changes()
        status = self.query_one("#edit-status", Static)
        button = self.query_one("#approve", Button)
        if problems:
            name = next(iter(problems))
            status.update(Text(f"fix {name}: {problems[name]}", style="red"))
        elif not changes:
            status.update(Text("change a value to approve an edited call", style="dim"))
        else:
            status.update(Text(f"{len(changes)} change(s): {', '.join(changes)}", style="yellow"))
        button.disabled = bool(problems) or not changes or self._busy

    # -- deciding ------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "approve":
            self.action_approve()
        else:
            self.dismiss(None)

    def action_approve(self) -> None:
        if self._busy or self.closed_reason is not None:
            return
        if self.problems() or not self.changes():
            self._refresh_state()
            return
        self._busy = True
        self._refresh_state()
        reason = self.query_one("#edit-reason", Input).value.strip() or None
        self.query_one("#edit-status", Static).update(Text("approving…", style="dim"))
        self.post_message(self.Submitted(self, self.record, self.changes(), reason))

    def outcome(self, ok: bool, record: RequestRecord | None, error: str | None) -> None:
        """The decision worker's answer: close on success; otherwise say why and decide nothing
        (a request decided meanwhile closes the form for good)."""
        self._busy = False
        if ok and record is not None and record.edit is not None:
            self.dismiss(record.edit)
            return
        status = self.query_one("#edit-status", Static)
        if record is not None and not record.is_pending:
            who = safe_text(record.decided_by or "the system", 60)
            self.closed_reason = f"already {record.status} by {who}"
            status.update(
                Text(
                    f"This request was {record.status} meanwhile ({who}). Nothing was decided.",
                    style="bold red",
                )
            )
            self.query_one("#approve", Button).disabled = True
            for field in self.query(Input):
                field.disabled = True
            self.query_one("#cancel", Button).label = "Close"
            self.query_one("#cancel", Button).focus()
            return
        status.update(Text(f"Not decided: {safe_text(error or 'failed', 300)}", style="bold red"))
        self._refresh_state()
        self.query_one("#edit-status", Static).update(
            Text(f"Not decided: {safe_text(error or 'failed', 300)}", style="bold red")
        )

    def request_gone(self, record: RequestRecord) -> None:
        """The queue no longer lists the request: it was decided, expired or cancelled."""
        self.outcome(False, record, None)

    def action_cancel(self) -> None:
        self.dismiss(None)
