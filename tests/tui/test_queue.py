"""Behaviour of the live queue against a real database written by real agent processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button

from sentinel.store import Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.dialogs import DecisionDialog
from tests.tui.conftest import helper, notifications, wait_for

RID = "a1" * 16
RID2 = "b2" * 16


def make_app(db_path: Path, **kwargs: object) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, **kwargs)  # type: ignore[arg-type]


async def test_card_appears_and_a_approves_the_waiting_agent(db_path, protected):
    agent = protected(amount=5000, destination="ACC-7")  # a real @protect-ed call, waiting
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id is not None)
        card = app.queue.card.text.plain
        assert "transfer_funds" in card and "ACC-7" in card and "payments-agent" in card
        assert "large_transfer" in card and "expires" in card and "5,000" in card
        await pilot.press("a")
        line = agent.expect("RESULT", timeout=60)
    assert line == "RESULT transferred 5000 to ACC-7"  # the function ran and returned


async def test_d_denies_and_the_agent_sees_it(db_path, protected):
    agent = protected(amount=99_999, destination="ACC-9")  # high value: deny is still one key
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id is not None)
        await pilot.press("d")
        line = agent.expect("DENIED", timeout=60)
        assert not isinstance(app.screen, DecisionDialog)
    assert "@" in line  # SentinelDeniedError.decided_by names the operator


async def test_store_level_waiter_sees_the_decision(db_path, submit):
    agent = submit({"id": RID, "value": 120})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("a")
        line = agent.expect("OUTCOME")
    assert line.startswith(f"OUTCOME {RID} approved ")


async def test_selection_stays_on_the_same_request_while_rows_arrive_above(db_path, submit):
    ids = [f"{i:02d}" * 16 for i in range(1, 4)]
    submit(*({"id": rid, "age": 100 - i} for i, rid in enumerate(ids)))
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.table.row_count == 3)
        await pilot.press("down")  # newest first: ids[2], ids[1], ids[0] → on ids[1]
        assert app.queue.card.request_id == ids[1]
        newer = [f"{i:02d}" * 16 for i in range(4, 7)]
        submit(*({"id": rid} for rid in newer))  # created now: they sort above
        await wait_for(pilot, lambda: app.queue.table.row_count == 6)
        assert app.queue.table.selected_id == ids[1]
        assert app.queue.card.request_id == ids[1]
        assert app.queue.table.cursor_row == 4
        assert any("New approval request" in n.title for n in app._notifications)


async def test_conflict_shows_who_decided_first_and_changes_nothing(db_path, submit):
    submit({"id": RID, "value": 10})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("p")  # paused: the card stays although the row is decided elsewhere
        assert "DECIDED" in helper("decide", str(db_path), RID, "deny", "bob")
        await pilot.press("a")
        await wait_for(pilot, lambda: any("already denied by bob" in m for m in notifications(app)))
    rec = Store(db_path).get(RID)
    assert rec.status == "denied" and rec.decided_by is not None and rec.decided_by.startswith("bob@")


async def test_request_decided_elsewhere_leaves_and_toast_names_who(db_path, submit):
    submit({"id": RID, "value": 10}, {"id": RID2, "value": 20, "age": 50})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.table.row_count == 2)
        assert app.queue.card.request_id == RID
        helper("decide", str(db_path), RID, "approve", "carol")
        await wait_for(pilot, lambda: app.queue.table.row_count == 1)
        assert app.queue.card.request_id == RID2  # moved to the neighbour
        await wait_for(pilot, lambda: any("approved by carol@" in m for m in notifications(app)))


async def test_readonly_observer_cannot_decide(db_path, submit):
    submit({"id": RID, "value": 10})
    app = make_app(db_path, readonly=True)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        keys = {b.binding.id for b in app.screen.active_bindings.values()}
        assert "queue.approve" not in keys and "queue.deny" not in keys and "queue.mark" not in keys
        await pilot.press("a", "d", "space", "A", "D")
        await pilot.pause(0.5)
        assert "READ-ONLY" in str(app.status.render())
    assert Store(db_path).get(RID).status == "pending"


async def test_confirmation_defaults_to_cancel(db_path, submit):
    agent = submit({"id": RID, "value": 50_000})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionDialog))
        focused = app.focused
        assert isinstance(focused, Button) and focused.id == "cancel"
        await pilot.press("enter")  # Enter on the default button: nothing happens
        await wait_for(pilot, lambda: not isinstance(app.screen, DecisionDialog))
        assert Store(db_path).get(RID).status == "pending"
        await pilot.pause(app.config.debounce)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionDialog))
        await pilot.click("#dialog-reason")
        await pilot.press(*"checked invoice")
        await pilot.click("#approve")
        line = agent.expect("OUTCOME")
    assert line.startswith(f"OUTCOME {RID} approved") and line.endswith("| checked invoice")


async def test_double_press_decides_once(db_path, submit):
    submit({"id": RID, "value": 10}, {"id": RID2, "value": 10, "age": 50})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.table.row_count == 2)
        await pilot.press("a", "a")
        await wait_for(pilot, lambda: app.queue.table.row_count == 1)
        await pilot.pause(0.3)
    store = Store(db_path)
    assert store.get(RID).status == "approved"
    assert store.get(RID2).status == "pending"


async def test_mark_and_deny_marked_after_summary(db_path, submit):
    rid3 = "c3" * 16
    submit({"id": RID, "value": 10}, {"id": RID2, "value": 20, "age": 50},
           {"id": rid3, "value": 30, "age": 80})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.table.row_count == 3)
        await pilot.press("space", "space")  # marks RID and RID2 (space moves down)
        assert app.queue.marked == {RID, RID2}
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionDialog))
        await pilot.click("#deny")
        await wait_for(pilot, lambda: app.queue.table.row_count == 1)
    store = Store(db_path)
    assert [store.get(r).status for r in (RID, RID2, rid3)] == ["denied", "denied", "pending"]


async def test_ids_decided_here_are_forgotten_once_gone(db_path, submit):
    # Issue 20.8: the set of ids decided here grew by every decision for as long as the app ran.
    rid3 = "c3" * 16
    submit({"id": RID, "value": 10}, {"id": RID2, "value": 20, "age": 50},
           {"id": rid3, "value": 30, "age": 80})
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.table.row_count == 3)
        await pilot.press("a")
        await wait_for(pilot, lambda: app.queue.table.row_count == 2)
        await pilot.pause(0.5)  # past the double-press guard
        await pilot.press("a")
        await wait_for(pilot, lambda: app.queue.table.row_count == 1)
        await wait_for(pilot, lambda: not app._inflight)
        await pilot.pause(0.3)
        assert app._decided_here == set()
        assert [n.title for n in app._notifications if n.title == "Decided elsewhere"] == []


async def test_keys_can_be_remapped_from_the_config_file(db_path, submit, tmp_path):
    cfg = tmp_path / "tui.toml"
    cfg.write_text('bell = false\n[keymap]\n"queue.approve" = "y"\n')
    agent = submit({"id": RID, "value": 10})
    app = SentinelApp(db_path, None, keymap_path=cfg, tick_interval=0)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("a")  # no longer bound
        await pilot.pause(0.6)
        assert Store(db_path).get(RID).status == "pending"
        await pilot.press("y")
        line = agent.expect("OUTCOME")
    assert " approved " in line


async def test_pause_counts_arrivals_and_resume_applies_them(db_path, submit):
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.snapshot_count >= 1)
        await pilot.press("p")
        submit({"id": RID, "value": 10}, {"id": RID2, "value": 10})
        await wait_for(pilot, lambda: app.arrived_while_paused == 2)
        assert app.queue.table.row_count == 0
        assert "PAUSED +2 new" in str(app.status.render())
        await pilot.press("p")
        assert app.queue.table.row_count == 2


@pytest.mark.parametrize("bell", [True, False])
async def test_new_request_rings_the_bell_unless_turned_off(db_path, submit, bell):
    from sentinel_tui.config import TuiConfig

    app = SentinelApp(db_path, None, tick_interval=0, config=TuiConfig(bell=bell))
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]  # Textual's bell
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.snapshot_count >= 1)
        submit({"id": RID, "value": 10})
        await wait_for(pilot, lambda: RID in app.queue.records)
        await wait_for(pilot, lambda: any("New approval request" in n.title for n in app._notifications))
    assert len(rings) == (1 if bell else 0)


async def test_ages_are_current_on_coming_back_to_the_queue(db_path, submit):
    """The table's ages refresh every few ticks while the queue shows; coming back from another
    view they are brought up to date at once (they read '<1m' for a request minutes old)."""
    import time

    submit({"id": RID, "value": 10})
    now = [time.time()]
    app = make_app(db_path, clock=lambda: now[0])
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        table = app.queue.table
        assert str(table.get_cell(RID, "age")) == "<1m"
        await pilot.press("5")
        now[0] += 185
        await pilot.press("1")
        assert str(table.get_cell(RID, "age")) == "3m"


async def test_an_age_that_grows_longer_widens_its_column(db_path, submit):
    """'58m' → '1h01': the age column grows with it (it stayed three wide and cut the text)."""
    import time

    submit({"id": RID, "value": 10, "age": 3480, "timeout": 7200})
    now = [time.time()]
    app = make_app(db_path, clock=lambda: now[0])
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        table = app.queue.table
        assert str(table.get_cell(RID, "age")) == "58m"
        now[0] += 180
        app.queue.tick(ages=True)
        await pilot.pause()
        assert str(table.get_cell(RID, "age")) == "1h01"
        await wait_for(pilot, lambda: table.columns["age"].content_width >= len("1h01"))
