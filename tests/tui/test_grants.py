"""``g`` (approve + standing grant, one decision) and the Grants view (``5``, ``r`` revokes),
against a real database and real waiting agent processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, RadioButton, Static

from sentinel.store import NewRequest, OperatorIdentity, Store
from sentinel.store.bounds import GrantBound
from sentinel.store.grants import NewGrant
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.grant_dialog import GrantDialog
from sentinel_tui.views.grants import GrantsView
from tests.tui.conftest import helper, notifications, wait_for

RID = "c3" * 16
ARGS = {"amount": 4200, "destination": "ACC-7", "memo": "rent for May"}
OPERATOR = OperatorIdentity("alice", 1000, 1000, "alice", "ops-1", None, channel="tui")


def make_app(db_path: Path, **kwargs: Any) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, operator=OPERATOR,
                       config=TuiConfig(bell=False, toast_new=False), **kwargs)


@pytest.fixture(autouse=True)
def _no_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unsigned decisions (no trusted operators), whatever the machine's configuration.
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(tmp_path / "none" / "operators.json"))
    monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(tmp_path / "none" / "operator-key.pem"))


def _dialog(app: SentinelApp) -> GrantDialog:
    screen = app.screen
    assert isinstance(screen, GrantDialog)
    return screen


def _problem(dialog: GrantDialog) -> str:
    return str(dialog.query_one("#grant-problem", Static).render())


async def _open(pilot: Any, app: SentinelApp, rid: str = RID) -> GrantDialog:
    await wait_for(pilot, lambda: app.queue.card.request_id == rid)
    await pilot.press("g")
    await wait_for(pilot, lambda: isinstance(app.screen, GrantDialog))
    await pilot.pause()
    return _dialog(app)


async def _confirm(pilot: Any, dialog: GrantDialog) -> None:
    dialog.query_one("#grant", Button).press()
    await pilot.pause()


def _store(db_path: Path) -> Store:
    return Store(db_path)


async def test_g_opens_the_dialog_prefilled_from_the_request(db_path, submit):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        texts = [field.value for _, field in dialog.bound_inputs()]
        assert texts == ["amount <= 4200", "destination == ACC-7", 'memo == "rent for May"', ""]
        assert all(on.value for on, _ in dialog.bound_inputs())
        assert dialog.query_one("#for-0", RadioButton).value  # 15 m: the shortest by default
        assert dialog.focused is dialog.query_one("#cancel", Button)  # Enter changes nothing
        head = str(dialog.query_one("#grant-head", Static).render())
        assert "payments-agent" in head and "transfer_funds" in head and RID[:8] in head
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, GrantDialog)
    assert _store(db_path).get(RID).is_pending
    assert _store(db_path).list_grants() == []


async def test_confirm_approves_and_creates_the_edited_grant_as_one_decision(db_path, submit):
    agent = submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        rows = dialog.bound_inputs()
        rows[0][1].value = "amount <= 5000"
        rows[1][1].value = "destination startswith ACC-"
        rows[2][0].value = False  # memo: dropped
        dialog.query_one("#for-1", RadioButton).value = True  # 1 h
        dialog.query_one("#grant-count", Input).value = "3"
        dialog.query_one("#grant-total", Input).value = "10000"
        before = app.clock()
        await _confirm(pilot, dialog)
        line = agent.expect("OUTCOME", timeout=60)  # the waiting call was woken, approved
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
        await wait_for(pilot, lambda: any("granted" in n for n in notifications(app)))
    assert line.startswith(f"OUTCOME {RID} approved alice@ops-1")
    (grant,) = _store(db_path).list_grants()
    assert grant.bounds == (GrantBound("amount", "lte", 5000),
                            GrantBound("destination", "startswith", "ACC-"))
    assert (grant.agent, grant.function, grant.request_id) == ("payments-agent", "transfer_funds", RID)
    assert (grant.max_count, grant.max_total, grant.status) == (3, 10000.0, "active")
    assert grant.expires_at is not None and before + 3600 <= grant.expires_at <= time.time() + 3600
    assert grant.created_by.startswith("alice@ops-1")
    kinds = [e.kind for e in _store(db_path).history(limit=10)]
    assert kinds[:2] == ["grant_created", "approved"] or kinds[:2] == ["approved", "grant_created"]


@pytest.mark.parametrize(("field", "text", "message"), [
    ("bound", "amount <= lots", "bound 1: amount <= needs a number, not 'lots'"),
    ("bound", "amount", "bound 1: 'amount' is not a bound"),
    ("bound", "memo == two words", "bound 1: memo: quote the text 'two words'"),
    ("count", "0", "count limit '0': write a whole number of calls, 1 or more"),
    ("total", "1e", "value limit '1e': write a number"),
])
async def test_bad_input_is_named_and_nothing_is_recorded(db_path, submit, field, text, message):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        if field == "bound":
            target = dialog.bound_inputs()[0][1]
        else:
            target = dialog.query_one(f"#grant-{field}", Input)
        target.value = text
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: message in _problem(dialog))  # a loaded machine is slow
        assert target.has_class("-invalid") and dialog.focused is target
        assert isinstance(app.screen, GrantDialog) and dialog.sent is None
        target.value = "amount <= 1" if field == "bound" else ""  # fixed: it may be sent now
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
    assert len(_store(db_path).list_grants()) == 1


async def test_two_bounds_on_one_parameter_are_refused(db_path, submit):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        dialog.bound_inputs()[-1][1].value = "amount <= 100"
        await _confirm(pilot, dialog)
        assert "two bounds on amount" in _problem(dialog)
    assert _store(db_path).get(RID).is_pending and _store(db_path).list_grants() == []


def _uncheck_all(dialog: GrantDialog) -> None:
    for on, _ in dialog.bound_inputs():
        on.value = False


async def test_a_grant_with_no_bound_needs_a_second_confirmation(db_path, submit):
    submit({"id": RID, "arguments": {**ARGS, "amount": 50_000}, "value": 50_000})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        _uncheck_all(dialog)
        await pilot.pause()
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: "Wide grant" in _problem(dialog))  # a loaded machine is slow
        # The library's rule and words (sentinel.grant_terms, as `sentinel grant create`).
        assert ("Wide grant: A grant for transfer_funds with no bound at all lets every call of "
                "payments-agent to it run without a person. Press again") in _problem(dialog)
        assert str(dialog.query_one("#grant", Button).label) == "Grant it anyway"
        assert dialog.focused is dialog.query_one("#cancel", Button)
        await pilot.pause(0.3)
        assert _store(db_path).get(RID).is_pending  # nothing yet
        # Changing the form takes the confirmation back.
        dialog.bound_inputs()[0][0].value = True
        await wait_for(
            pilot, lambda: str(dialog.query_one("#grant", Button).label) == "Approve + grant"
        )
        dialog.bound_inputs()[0][0].value = False
        await pilot.pause()
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: "Wide grant" in _problem(dialog))
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
    (grant,) = _store(db_path).list_grants()
    assert grant.bounds == () and _store(db_path).get(RID).status == "approved"


async def test_an_unbounded_value_is_wide_unless_a_value_limit_caps_it(db_path, submit):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        dialog.bound_inputs()[0][0].value = False  # amount: dropped; destination, memo kept
        await pilot.pause()
        await _confirm(pilot, dialog)
        assert ("Wide grant: The grant bounds no value parameter (amount, total, value) and "
                "sets no value limit") in _problem(dialog)
        dialog.query_one("#grant-total", Input).value = "5000"
        await pilot.pause()
        await _confirm(pilot, dialog)  # capped: not wide, one press
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
    (grant,) = _store(db_path).list_grants()
    assert [b.param for b in grant.bounds] == ["destination", "memo"] and grant.max_total == 5000


async def test_a_call_without_value_needs_no_value_bound(db_path, submit):
    submit({"id": RID, "function": "send_email", "agent": "email-agent",
            "arguments": {"to": "press@news.example.org", "subject": "Q3"}, "value": None})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        for on, field in dialog.bound_inputs():
            on.value = not field.value.startswith("subject")  # any subject
        await pilot.pause()
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
    (grant,) = _store(db_path).list_grants()
    assert [b.text() for b in grant.bounds] == ["to == press@news.example.org"]


async def test_a_request_decided_while_the_dialog_is_open_is_said_and_nothing_is_decided(
    db_path, submit
):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        assert "DECIDED" in helper("decide", str(db_path), RID, "deny", "bob")
        await wait_for(pilot, lambda: dialog.decided is not None)  # the poll saw it go
        text = _problem(dialog)
        assert f"Request {RID[:8]} was already denied by bob@otherhost" in text
        assert "Nothing was decided here and no grant was made" in text
        assert dialog.query_one("#grant", Button).disabled
        dialog.confirm()  # refused by the dialog itself
        await pilot.pause(0.3)
        assert dialog.sent is None
        await pilot.press("enter")  # Close (focused)
        await pilot.pause()
        assert not isinstance(app.screen, GrantDialog)
    assert _store(db_path).get(RID).status == "denied"
    assert _store(db_path).list_grants() == []


async def test_a_request_decided_before_confirm_but_unseen_is_refused_by_the_store(
    db_path, submit
):
    """The poll is off after the first load, so only the confirmation finds the conflict."""
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path, poll=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open(pilot, app)
        await pilot.pause(0.3)  # the check at opening saw it pending
        assert dialog.decided is None
        assert "DECIDED" in helper("decide", str(db_path), RID, "approve", "bob")
        await _confirm(pilot, dialog)
        await wait_for(pilot, lambda: dialog.decided is not None)
        assert "already approved by bob@otherhost" in _problem(dialog)
        assert isinstance(app.screen, GrantDialog)
    assert _store(db_path).list_grants() == []
    assert _store(db_path).get(RID).decided_by.startswith("bob@otherhost")


async def test_a_quorum_request_gets_no_grant_dialog(db_path):
    from sentinel.store.models import DecisionTerms

    with Store(db_path) as store:
        store.submit(NewRequest(id=RID, function="transfer_funds", arguments=ARGS, digest="0" * 64,
                                timeout_seconds=600, agent_id="payments-agent",
                                terms=DecisionTerms(quorum=2)))
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("g")
        await wait_for(pilot, lambda: any("needs 2 approvals" in n for n in notifications(app)))
        assert not isinstance(app.screen, GrantDialog)


async def test_a_rule_marked_grantable_false_gets_no_grant_dialog(db_path, tmp_path):
    """A grant for such a rule would never answer a call: ``g`` says so and opens nothing."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: "1.0"\ndefault_action: allow\nrules:\n'
        "  - id: wires\n    function_pattern: transfer_funds\n"
        "    action: require_approval\n    grantable: false\n"
    )
    with Store(db_path) as store:
        store.submit(NewRequest(id=RID, function="transfer_funds", arguments=ARGS, digest="0" * 64,
                                timeout_seconds=600, agent_id="payments-agent", rule_id="wires"))
    app = SentinelApp(db_path, rules, tick_interval=0, operator=OPERATOR,
                      config=TuiConfig(bell=False, toast_new=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.query_one("RulesView").info is not None)
        await pilot.press("g")
        await wait_for(pilot, lambda: any("grantable: false" in n for n in notifications(app)))
        assert not isinstance(app.screen, GrantDialog)
    assert _store(db_path).get(RID).status == "pending"


async def test_read_only_observers_have_no_g(db_path, submit):
    submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await pilot.press("g")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, GrantDialog)


# --- the Grants view -----------------------------------------------------------------------------

BOB = OperatorIdentity("bob", 1001, None, None, "ops-2", None, channel="cli")


def _grant(db_path: Path, gid: str, created_at: float, **terms: Any) -> None:
    with Store(db_path) as store:
        store.create_grant(NewGrant("payments-agent", "transfer_funds", id=gid,
                                    created_at=created_at, **terms), BOB)


async def test_grants_view_lists_use_and_time_left_and_r_revokes(db_path):
    now = time.time()
    _grant(db_path, "g1" * 16, now - 100, bounds=(GrantBound("amount", "lte", 500),),
           expires_at=now + 3000, max_count=5, max_total=2000)
    _grant(db_path, "g2" * 16, now - 50)  # until revoked, no bound
    with Store(db_path) as store:
        store.consume_grant("payments-agent", "transfer_funds", {"amount": 300}, 300.0,
                            only=["g1" * 16])
    app = make_app(db_path, poll=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        view = app.query_one(GrantsView)
        await wait_for(pilot, lambda: len(view.grants) == 2)
        table = view.table
        assert table.selected_id == "g2" * 16  # newest first
        row = [str(c) for c in table.get_row("g1" * 16)]
        assert row[0] == "active" and row[5] == "amount <= 500"
        assert row[4] == "1/5 calls · 300/2,000" and row[1].startswith(("49m", "50m"))
        assert [str(c) for c in table.get_row("g2" * 16)][4:] == ["0 calls", "none"]
        assert str(table.get_row("g2" * 16)[1]) == "∞"
        await pilot.press("down")
        assert table.selected_id == "g1" * 16
        # A new grant arrives: the cursor stays on g1 (by key, not by row index).
        _grant(db_path, "g3" * 16, now)
        await wait_for(pilot, lambda: len(view.grants) == 3)
        assert table.selected_id == "g1" * 16 and table.cursor_row == 2
        await pilot.press("r")
        await wait_for(pilot, lambda: view.grants["g1" * 16].status == "revoked")
        assert str(table.get_row("g1" * 16)[0]) == "revoked"
        assert table.columns["status"].content_width >= len("revoked")  # widened, not cut
        assert table.selected_id == "g1" * 16
        assert any("Revoked grant g1g1g1g1" in n for n in notifications(app))
        await pilot.press("r")  # already revoked: said, nothing written
        await pilot.pause(0.2)
        assert any("already revoked" in n for n in notifications(app))
    grant = _store(db_path).get_grant("g1" * 16)
    assert grant.status == "revoked" and grant.ended_by.startswith("alice@ops-1")
    assert _store(db_path).consume_grant(
        "payments-agent", "transfer_funds", {"amount": 10}, 10.0, only=["g1" * 16]
    ) is None


async def test_grants_view_shows_expired_and_exhausted(db_path):
    now = time.time()
    _grant(db_path, "e1" * 16, now - 100, expires_at=now + 0.5)
    _grant(db_path, "x1" * 16, now - 90, max_count=1)
    with Store(db_path) as store:
        store.consume_grant("payments-agent", "transfer_funds", {}, None, only=["x1" * 16])
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        view = app.query_one(GrantsView)
        await wait_for(pilot, lambda: len(view.grants) == 2)
        assert str(view.table.get_row("x1" * 16)[0]) == "exhausted"
        await pilot.pause(0.7)
        view.tick()
        assert str(view.table.get_row("e1" * 16)[0]) == "expired"
        assert str(view.table.get_row("e1" * 16)[1]) == "—"
        assert view.table.selected_id == "x1" * 16  # newest first
        await pilot.press("r")  # it ended: said, nothing written
        await wait_for(pilot, lambda: any("already exhausted" in n for n in notifications(app)))
    assert {g.id: g.state(time.time()) for g in _store(db_path).list_grants()} == {
        "e1" * 16: "expired", "x1" * 16: "exhausted"}


async def test_read_only_observers_cannot_revoke(db_path):
    _grant(db_path, "g1" * 16, time.time())
    app = make_app(db_path, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        view = app.query_one(GrantsView)
        await wait_for(pilot, lambda: len(view.grants) == 1)
        await pilot.press("r")
        await pilot.pause(0.3)
    assert _store(db_path).get_grant("g1" * 16).status == "active"



async def test_a_signing_operator_signs_the_grant_with_the_decision(db_path, submit, operators):
    from sentinel.trust import load_operators
    from sentinel.trust.grants import verify_grant

    agent = submit({"id": RID, "arguments": ARGS, "value": 4200})
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.status.state.signing_as == "tester")
        dialog = await _open(pilot, app)
        await _confirm(pilot, dialog)
        agent.expect("OUTCOME", timeout=60)
        await wait_for(pilot, lambda: not isinstance(app.screen, GrantDialog))
    (grant,) = _store(db_path).list_grants()
    assert grant.signer == "tester" and grant.signature
    assert verify_grant(load_operators(), grant, time.time()).name == "tester"
    approved = _store(db_path).get(RID)
    assert approved.votes[0].operator == "tester" and approved.votes[0].signature
