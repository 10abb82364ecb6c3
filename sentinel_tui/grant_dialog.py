"""``g`` on a card: approve the request and grant more calls like it, as one decision.

The dialog starts as narrow as the request (:func:`sentinel.grant_bounds.suggest_bounds`): each
argument is a bound the later calls must fit, which the operator may edit (``amount <= 5000``,
``destination startswith ACC-``) or drop (unchecked, or emptied). Then how long (15 m, 1 h, 8 h,
until revoked) and, optionally, how many calls and how much value in all.

It never writes: Confirm posts :class:`GrantDialog.Confirmed` and the app's worker records the
decision; the app then closes the dialog, or tells it the request was decided meanwhile
(:meth:`GrantDialog.show_decided`), and then nothing is decided and no grant is made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from sentinel.grant_bounds import Bound, parse_bound, suggest_bounds
from sentinel.grant_terms import DEFAULT_VALUE_PARAMS, WideGrant, draft
from sentinel.store.bounds import GrantBound
from sentinel.store.grants import NewGrant
from sentinel.store.models import RequestRecord
from sentinel_tui.render import format_time, format_value, safe

#: The durations offered: label, and the ``--for`` text of ``sentinel grant create``. The first
#: (the shortest) is the default: a grant lasts longer only when the operator says so.
DURATIONS: tuple[tuple[str, str], ...] = (
    ("15 m", "15m"), ("1 h", "1h"), ("8 h", "8h"), ("until revoked", "forever"),
)


@dataclass(frozen=True)
class GrantDraft:
    """What the operator confirmed: approve ``request_id`` and create ``grant`` (built by
    :func:`sentinel.grant_terms.draft`, as ``sentinel grant create`` and the API build theirs:
    the same checks, the same wide-grant rule)."""

    request_id: str
    grant: NewGrant

    @property
    def where(self) -> list[str]:
        """The bounds as ``--where`` texts."""
        return [_text(b) for b in self.grant.bounds]


def _text(b: GrantBound) -> str:
    return Bound(b.param, b.op, tuple(b.value) if b.op == "in" else b.value).text


def wide_text(exc: WideGrant) -> str:
    """The library's reason a grant is wide, in the dialog's words (no command-line flags)."""
    text = str(exc).split(": add ", 1)[0].replace("--max-total", "value limit")
    return text[:1].upper() + text[1:]


def parse_count(text: str) -> int | None:
    """The count limit as typed (empty: none). Raises ValueError naming what is wrong."""
    text = text.strip().replace("_", "")
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"count limit {text!r}: write a whole number of calls, 1 or more")
    return int(text)


def parse_total(text: str) -> float | None:
    """The cumulative value limit as typed (empty: none). Raises ValueError naming what is
    wrong."""
    text = text.strip().replace("_", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"value limit {text!r}: write a number, e.g. 2000") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"value limit {text!r}: write a number above 0")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value limit {text!r} is too large")
    return number


class GrantDialog(ModalScreen[GrantDraft | None]):
    """Approve + standing grant. Focus starts on Cancel; Esc changes nothing."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="grant.cancel"),
    ]

    class Confirmed(Message):
        """The operator confirmed ``draft``: record the approval and the grant as one
        decision, then call :meth:`GrantDialog.finish` or :meth:`GrantDialog.show_decided`."""

        def __init__(self, dialog: GrantDialog, draft: GrantDraft) -> None:
            super().__init__()
            self.dialog = dialog
            self.draft = draft

    def __init__(
        self,
        record: RequestRecord,
        *,
        clock: Callable[[], float] = time.time,
        value_params: Sequence[str] = DEFAULT_VALUE_PARAMS,
    ) -> None:
        """``value_params``: the policy's value parameters (what a grant must bound or cap
        by value, or be confirmed as wide); ``clock``: when the grant starts (tests freeze
        it)."""
        super().__init__(classes="dialog")
        self.record = record
        self.clock = clock
        self.value_params = tuple(value_params)
        self.suggestion = suggest_bounds(record.arguments)
        #: The operator saw the wide-grant warning and may now confirm it.
        self._wide_ok = False
        self.sent: GrantDraft | None = None  # confirmed, the decision on its way
        self.decided: RequestRecord | None = None  # decided elsewhere (nothing was recorded)

    @property
    def request_id(self) -> str:
        return self.record.id

    # --- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        r = self.record
        with Vertical(id="grant-box") as box:
            box.border_title = "Approve and grant"
            box.border_subtitle = "esc cancels"
            head = Text(end="")
            head.append("agent     ")
            head.append_text(safe(r.agent_id or "—", 40, "bold"))
            head.append("\nfunction  ")
            head.append_text(safe(r.function, 40, "bold"))
            head.append(f"   request {r.id[:8]}", style="dim")
            if r.value_at_risk is not None:
                head.append(f"   value {format_value(r.value_at_risk)}")
            yield Static(head, id="grant-head")
            yield Label(
                Text("Later calls must fit every checked bound (edit, or uncheck to drop):",
                     style="bold"),
                id="grant-bounds-title",
            )
            with VerticalScroll(id="grant-bounds"):
                for i, bound in enumerate(self.suggestion.bounds):
                    with Horizontal(classes="grant-bound"):
                        yield Checkbox("", True, id=f"bound-on-{i}", compact=True)
                        yield Input(bound.text, id=f"bound-{i}", compact=True,
                                    select_on_focus=False)
                with Horizontal(classes="grant-bound"):
                    yield Checkbox("", True, id="bound-on-new", compact=True)
                    yield Input(placeholder="add a bound: PARAM OP VALUE (<= == startswith in)",
                                id="bound-new", compact=True)
                if self.suggestion.skipped:
                    left = Text("not bounded: ", style="dim", end="")
                    left.append_text(Text(", ".join(
                        f"{safe(p, 30).plain} ({why})" for p, why in self.suggestion.skipped[:4]
                    ), style="dim"))
                    yield Static(left, id="grant-skipped")
            with Horizontal(id="grant-for"):
                yield Label("for ", classes="grant-label")
                with RadioSet(id="grant-duration", compact=True):
                    for i, (label, _) in enumerate(DURATIONS):
                        yield RadioButton(label, i == 0, id=f"for-{i}", compact=True)
            with Horizontal(id="grant-limits"):
                yield Label("at most ", classes="grant-label")
                yield Input(placeholder="any number of", id="grant-count", compact=True,
                            restrict=r"[0-9_]*")
                yield Label(" calls, ", classes="grant-label")
                yield Input(placeholder="any", id="grant-total", compact=True,
                            restrict=r"[0-9._eE+-]*")
                yield Label(" value in all", classes="grant-label")
            yield Static("", id="grant-problem")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="default", compact=True)
                confirm = Button("Approve + grant", id="grant", variant="default", compact=True)
                confirm.add_class("act-warning")
                yield confirm

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    # --- reading the form ---------------------------------------------------------------------

    def bound_inputs(self) -> list[tuple[Checkbox, Input]]:
        rows = []
        for row in self.query(".grant-bound"):
            rows.append((row.query_one(Checkbox), row.query_one(Input)))
        return rows

    def read(self, confirm: bool = False) -> GrantDraft:
        """The form as a draft. Raises ValueError naming the field at fault (and focuses it),
        or :class:`~sentinel.grant_terms.WideGrant` (unless ``confirm``)."""
        bounds: list[Bound] = []
        for n, (on, field) in enumerate(self.bound_inputs(), 1):
            field.remove_class("-invalid")
            if not on.value or not field.value.strip():
                continue
            try:
                bounds.append(parse_bound(field.value))
            except ValueError as exc:
                field.add_class("-invalid")
                field.focus()
                raise ValueError(f"bound {n}: {exc}") from None
        params = [b.param for b in bounds]
        twice = sorted({p for p in params if params.count(p) > 1})
        if twice:
            raise ValueError(f"two bounds on {', '.join(twice)}: keep one (every bound must hold)")
        index = self.query_one(RadioSet).pressed_index
        duration = DURATIONS[index if index >= 0 else 0][1]
        limits = []
        for field_id, parse in (("#grant-count", parse_count), ("#grant-total", parse_total)):
            field = self.query_one(field_id, Input)
            field.remove_class("-invalid")
            try:
                limits.append(parse(field.value))
            except ValueError:
                field.add_class("-invalid")
                field.focus()
                raise
        count, total = limits
        r = self.record
        built = draft(
            agent=r.agent_id, function=r.function, wheres=[b.text for b in bounds],
            duration=duration, count=count, max_total=total,
            # The request's arguments say whether its calls carry a value; with no bound they
            # would be taken as the bounds instead (and no bound is wide anyway).
            arguments=r.arguments if bounds else None,
            value_at_risk=r.value_at_risk, rule_id=r.rule_id, request_id=r.id,
            value_params=self.value_params, confirm=confirm, now=self.clock(),
        )
        return GrantDraft(r.id, built.grant)

    def _problem(self, text: Text | str, style: str = "bold red") -> None:
        shown = text if isinstance(text, Text) else Text(text, style=style, end="")
        self.query_one("#grant-problem", Static).update(shown)

    # --- events ----------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "grant":
            self.confirm()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter moves on; it never confirms by itself
        self.focus_next()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._rearm()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._rearm()

    def _rearm(self) -> None:
        if self._wide_ok and self.decided is None and self.sent is None:
            self._wide_ok = False
            self.query_one("#grant", Button).label = "Approve + grant"
            self._problem("")

    def confirm(self) -> None:
        """Check the form; post :class:`Confirmed` (or say what is wrong, or ask once more for
        a grant with no bound on a high-value request)."""
        if self.decided is not None or self.sent is not None:
            return
        try:
            grant = self.read(confirm=self._wide_ok)
        except WideGrant as exc:
            self._wide_ok = True
            self._problem(Text(f"Wide grant: {wide_text(exc)}. Press again to grant it anyway.",
                               style="bold yellow", end=""))
            self.query_one("#grant", Button).label = "Grant it anyway"
            self.query_one("#cancel", Button).focus()
            return
        except ValueError as exc:
            self._problem(str(exc))
            return
        self.sent = grant
        self.query_one("#grant", Button).disabled = True
        self._problem(Text("recording…", style="dim", end=""))
        self.post_message(self.Confirmed(self, grant))

    def finish(self) -> None:
        """The approval and the grant were recorded: close."""
        self.dismiss(self.sent)

    def failed(self, why: str) -> None:
        """Nothing was recorded (refused, or the store failed): say why; the form may be sent
        again."""
        self.sent = None
        self.query_one("#grant", Button).disabled = False
        self._problem(f"{why}. Nothing was recorded.")

    def show_decided(self, record: RequestRecord) -> None:
        """The request was decided (or expired) elsewhere: say who and when; nothing here
        decides any more."""
        self.decided = record
        self.sent = None
        who = safe(record.decided_by or "the system", 80).plain
        when = format_time(record.decided_at) if record.decided_at else "?"
        text = Text(end="")
        text.append(f"Request {record.id[:8]} was already {record.status}", style="bold red")
        if record.status in ("approved", "denied"):
            text.append(f" by {who} at {when}", style="bold red")
        text.append(". Nothing was decided here and no grant was made.", style="bold red")
        self._problem(text)
        self.query_one("#grant", Button).disabled = True
        cancel = self.query_one("#cancel", Button)
        cancel.label = "Close"
        cancel.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
