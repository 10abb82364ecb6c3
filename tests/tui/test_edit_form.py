"""The edit form (``e``): Pilot tests on the real app over a real SQLite file, and SVG snapshots
of the form at 80x24 and 120x40 (a change and a value its schema refuses; the request decided
meanwhile). Update with ``pytest tests/tui/test_edit_form.py --snapshot-update``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, Static

from sentinel.store import OperatorIdentity, Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.edit_form import EditForm
from sentinel_tui.sample import SAMPLE_RULES, sample_id
from sentinel_tui.widgets.queue_table import QueueTable
from tests.tui import test_snapshots as shots

frozen_env = shots.frozen_env  # the seeded database and rules, frozen clock (same fixture)
TRANSFER = sample_id(3)  # transfer_funds 2750 → ACC-2002, "vendor payment"
BOB = OperatorIdentity("bob", 1001, 1001, "bob", "ops-2", None, channel="cli")


async def open_form(pilot: Any) -> EditForm:
    app: SentinelApp = pilot.app
    await shots._ready(pilot)
    for _ in range(8):
        if app.queue.card.request_id == TRANSFER:
            break
        await pilot.press("down")
    assert app.queue.card.request_id == TRANSFER
    await pilot.press("e")
    await shots._until(pilot, lambda: isinstance(app.screen, EditForm))
    await pilot.pause()
    form = app.screen
    assert isinstance(form, EditForm)
    return form


def field(form: EditForm, name: str) -> Input:
    return form.query_one(f"#edit-{form.names.index(name)}", Input)


def message(form: EditForm, name: str) -> str:
    return str(form.query_one(f"#edit-msg-{form.names.index(name)}", Static).render())


def status(form: EditForm) -> str:
    return str(form.query_one("#edit-status", Static).render())


async def type_into(pilot: Any, form: EditForm, name: str, text: str) -> None:
    box = field(form, name)
    box.value = text
    await pilot.pause()


async def test_e_opens_a_typed_form_and_approves_the_edited_call(frozen_env: Path) -> None:
    app = shots.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot)
        assert form.names == ["amount", "destination", "memo"]
        assert field(form, "amount").value == "2750"
        assert form.query_one("#approve", Button).disabled  # nothing changed yet
        await type_into(pilot, form, "amount", "400")
        assert "changed (was 2750)" in message(form, "amount")
        assert not form.query_one("#approve", Button).disabled
        form.query_one("#edit-reason", Input).value = "lowered to the invoice"
        await pilot.press("ctrl+s")
        await shots._until(pilot, lambda: not isinstance(app.screen, EditForm))
    with Store("sentinel.db") as store:
        rec = store.get(TRANSFER)
    assert rec.status == "approved" and rec.decision_reason == "lowered to the invoice"
    assert rec.edit is not None and rec.edit.values == {"amount": 400}
    assert [(c.name, c.before, c.after) for c in rec.edit.changes] == [("amount", 2750, 400)]


async def test_a_value_the_schema_refuses_is_named_and_nothing_is_decided(frozen_env: Path) -> None:
    app = shots.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot)
        await type_into(pilot, form, "amount", "lots")
        await type_into(pilot, form, "destination", "acc-1")
        assert "expects integer, got 'lots'" in message(form, "amount")
        assert "expects text matching ^ACC-[0-9]{4}$" in message(form, "destination")
        assert form.query_one("#approve", Button).disabled
        await pilot.press("ctrl+s")  # refused in the form: no worker, nothing written
        await pilot.pause(0.2)
        assert isinstance(app.screen, EditForm) and "fix amount" in status(form)
        await type_into(pilot, form, "amount", "-5")
        assert "expects a number above 0" in message(form, "amount")
    with Store("sentinel.db") as store:
        assert store.get(TRANSFER).is_pending


async def test_the_rules_refuse_an_edited_call_they_block(frozen_env: Path) -> None:
    Path("rules.yaml").write_text(
        SAMPLE_RULES + "  - id: huge\n    function_pattern: transfer*\n    conditions:\n"
        "      - {param: amount, operator: gt, value: 10000}\n    action: block\n"
        '    deny_hint: "split transfers above 10,000 into approved batches"\n'
    )
    app = shots.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot)
        await type_into(pilot, form, "amount", "20000")
        await pilot.press("ctrl+s")
        await shots._until(pilot, lambda: "Not decided" in status(form))
        assert "the edited call is blocked by rule huge" in status(form)
        assert isinstance(app.screen, EditForm)
    with Store("sentinel.db") as store:
        assert store.get(TRANSFER).is_pending


async def test_a_request_decided_meanwhile_is_not_decided_again(frozen_env: Path) -> None:
    app = shots.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot)
        await type_into(pilot, form, "amount", "400")
        with Store("sentinel.db") as store:  # another operator, elsewhere
            store.decide(TRANSFER, False, BOB, "not this vendor")
        await pilot.press("ctrl+s")
        await shots._until(pilot, lambda: form.closed_reason is not None)
        assert "was denied meanwhile" in status(form) and "Nothing was decided" in status(form)
        assert form.query_one("#approve", Button).disabled
        assert all(i.disabled for i in form.query(Input))
    with Store("sentinel.db") as store:
        rec = store.get(TRANSFER)
    assert rec.status == "denied" and rec.edit is None and rec.decided_by.startswith("bob@")


async def test_the_open_form_says_at_once_when_the_request_leaves_the_queue(
    frozen_env: Path,
) -> None:
    app = shots.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot)
        await type_into(pilot, form, "amount", "400")
        with Store("sentinel.db") as store:
            store.decide(TRANSFER, True, BOB, "elsewhere")
        await shots._until(pilot, lambda: form.closed_reason is not None)  # the poll saw it
        assert "was approved meanwhile (bob@ops-2)" in status(form)
        await pilot.press("ctrl+s")  # does nothing now
        await pilot.pause(0.2)
    with Store("sentinel.db") as store:
        rec = store.get(TRANSFER)
    assert rec.edit is None and rec.decision_reason == "elsewhere"


def _edit_steps(gone: bool) -> Any:
    async def run(pilot: Any) -> None:
        form = await open_form(pilot)
        await type_into(pilot, form, "amount", "400")
        if gone:
            with Store("sentinel.db") as store:
                store.decide(TRANSFER, True, BOB)
            await pilot.press("ctrl+s")
            await shots._until(pilot, lambda: form.closed_reason is not None)
            # The queue's own poll also notices the decision and says "Decided elsewhere": wait
            # for it, so that its toast is not shown after the clear (the snapshot then differed).
            queue = pilot.app.screen_stack[0].query_one(QueueTable)
            await shots._until(pilot, lambda: TRANSFER not in [k.value for k in queue.rows])
            pilot.app.clear_notifications()
        else:
            await type_into(pilot, form, "destination", "acc-1")
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", shots.SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("gone", [False, True], ids=["edit", "decided_meanwhile"])
def test_edit_form_snapshot(
    gone: bool, size: tuple[int, int], frozen_env: Path, snap_compare: Any
) -> None:
    assert snap_compare(shots.make_app(), terminal_size=size, run_before=_edit_steps(gone))
