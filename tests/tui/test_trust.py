"""Signed decisions in the command center: who may decide on the card, refusals at the key press
(nothing recorded), quorum votes from two operators with their own keys, the signing indicator,
and the new audit events in History. Real SQLite files, real keys, real agent processes."""

from __future__ import annotations

import getpass
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sentinel.store import NewRequest, Store
from sentinel.store.models import DecisionTerms
from sentinel_tui.app import SentinelApp
from sentinel_tui.dialogs import DecisionDialog
from tests.tui.conftest import notifications, wait_for

RID = "c3" * 16
RID2 = "d4" * 16

QUORUM_RULES = """\
version: "1.0"
default_action: allow
rules:
  - id: two_person_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    approvers: [finance]
    quorum: 2
    self_approval: true
    message: "Transfer of {amount} needs two finance approvals"
"""


def make_app(db_path: Path, **kwargs: Any) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, sweep_interval=0, **kwargs)


def submit(db_path: Path, rid: str, terms: DecisionTerms, *, value: float = 500.0,
           mine: bool = False, age: float = 0.0) -> None:
    """A pending request waited on by this test process (alive: the sweeper leaves it)."""
    with Store(db_path) as store:
        store.submit(NewRequest(
            id=rid, function="transfer_funds", arguments={"amount": value, "destination": "ACC-1"},
            digest=hashlib.sha256(rid.encode()).hexdigest(), timeout_seconds=600.0,
            agent_id="payments-agent", rule_id="big_transfer", rule_ids=("big_transfer",),
            reason="needs approval", value_at_risk=value, terms=terms,
            requester={"account": getpass.getuser()} if mine else {"account": "payments-svc"},
            created_at=time.time() - age,
        ))


def votes(db_path: Path, rid: str) -> tuple[Any, ...]:
    with Store(db_path) as store:
        rec = store.get(rid)
    assert rec.status == "pending"
    return rec.votes


async def test_card_says_who_may_decide_and_how_far_the_quorum_is(db_path, operators):
    terms = DecisionTerms(quorum=2, approvers=("finance",), self_approval=False,
                          escalate_after=600.0, escalate_to=("security",))
    submit(db_path, RID, terms)
    now = [time.time()]
    app = make_app(db_path, clock=lambda: now[0])
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        card = app.queue.card.text.plain
        assert "approvers: finance" in card
        assert "self-approval off" in card
        assert "0 of 2 approvals" in card
        assert "escalates to security in 9m" in card or "escalates to security in 10m" in card
        now[0] += 601  # past escalate_after: security may decide too
        app.queue.tick(ages=False)
        assert "escalated to security" in app.queue.card.text.plain


async def test_a_default_request_shows_no_terms_line(db_path, operators):
    submit(db_path, RID, DecisionTerms())
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        card = app.queue.card.text.plain
    assert "approvers" not in card and "approvals" not in card and "self-approval" not in card


async def test_operator_outside_the_approvers_is_refused_before_the_dialog(db_path, operators):
    # Big enough to ask for confirmation: the refusal comes first, no dialog opens.
    submit(db_path, RID, DecisionTerms(approvers=("security",)), value=99_000)
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.signing is not None)
        await pilot.press("a")
        await wait_for(pilot, lambda: any("only security may decide" in m for m in notifications(app)))
        assert not isinstance(app.screen, DecisionDialog)
        msg = next(m for m in notifications(app) if "only security" in m)
        assert "you are tester" in msg and "Nothing was recorded" in msg
        await pilot.pause(app.config.debounce + 0.1)
        await pilot.press("d")  # deny is refused for the same reason
        await wait_for(pilot, lambda: sum("only security" in m for m in notifications(app)) == 2)
        assert app.queue.card.request_id == RID
    assert votes(db_path, RID) == ()


async def test_approving_your_own_request_is_refused_where_the_rule_forbids_it(db_path, operators):
    submit(db_path, RID, DecisionTerms(approvers=("finance",), self_approval=False), mine=True)
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.signing is not None)
        await pilot.press("a")
        await wait_for(pilot, lambda: any("forbids approving your own request" in m
                                          for m in notifications(app)))
        await pilot.pause(app.config.debounce + 0.1)
        assert votes(db_path, RID) == ()
        await pilot.press("d")  # denying your own request is allowed
        await wait_for(pilot, lambda: app.queue.card.request_id is None)
    with Store(db_path) as store:
        assert store.get(RID).status == "denied"


async def test_batch_approval_leaves_out_what_you_may_not_decide(db_path, operators):
    submit(db_path, RID, DecisionTerms(approvers=("security",)))
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.signing is not None)
        await pilot.press("space", "A")  # every marked request refused: no dialog at all
        await wait_for(pilot, lambda: any("only security may decide" in m for m in notifications(app)))
        assert not isinstance(app.screen, DecisionDialog)
        submit(db_path, RID2, DecisionTerms(approvers=("finance",)), age=-5)
        await wait_for(pilot, lambda: app.queue.table.row_count == 2)
        app.queue.marked = {RID, RID2}
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionDialog))
        body = app.screen._body.plain  # type: ignore[attr-defined]
        assert "Approve these 1 requests" in body and "left out" in body and RID[:8] in body
        await pilot.press("tab", "enter")  # the Approve all button
        await wait_for(pilot, lambda: app.queue.table.row_count == 1)
    with Store(db_path) as store:
        assert store.get(RID2).status == "approved"
        assert store.get(RID2).votes[0].operator == "tester" and store.get(RID2).votes[0].signature
    assert votes(db_path, RID) == ()


async def test_quorum_vote_then_a_second_operator_finishes_it(db_path, operators, agents, tmp_path):
    """A real @protect-ed call under a two-approval rule: tester's vote leaves it waiting and the
    card shows the progress; bob, with his own key, finishes it and the call runs (the waiting
    process checked both signatures)."""
    rules = tmp_path / "quorum-rules.yaml"
    rules.write_text(QUORUM_RULES)
    agent = agents("protect", str(db_path), str(rules), json.dumps({"amount": 5000, "destination": "ACC-7"}),
                   env=operators.env())
    agent.expect("CALLING")
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id is not None)
        rid = app.queue.card.request_id
        assert "0 of 2 approvals" in app.queue.card.text.plain
        await wait_for(pilot, lambda: app.status.state.signing_as == "tester")
        await pilot.press("a")
        await wait_for(pilot, lambda: any(
            m.startswith("voted: 1 of 2 approvals; waiting for another approver") for m in notifications(app)))
        assert app.queue.card.request_id == rid  # the card stays, updated
        assert "1 of 2 approvals — tester" in app.queue.card.text.plain
        await pilot.pause(app.config.debounce + 0.1)
        await pilot.press("a")  # a second vote by the same operator is refused, not recorded
        await wait_for(pilot, lambda: any("you already voted" in m for m in notifications(app)))
    assert rid is not None
    recorded = votes(db_path, rid)
    assert [(v.operator, v.verdict, bool(v.signature)) for v in recorded] == [("tester", "approve", True)]
    assert agent.proc.poll() is None  # still waiting for the second approval

    operators.use("bob")
    second = make_app(db_path)
    async with second.run_test() as pilot:
        await wait_for(pilot, lambda: second.queue.card.request_id == rid)
        await wait_for(pilot, lambda: second.status.state.signing_as == "bob")
        assert "1 of 2 approvals — tester" in second.queue.card.text.plain
        await pilot.press("a")
        line = agent.expect("RESULT", timeout=60)
    assert line == "RESULT transferred 5000 to ACC-7"
    with Store(db_path) as store:
        rec = store.get(rid)
    assert rec.status == "approved" and [v.operator for v in rec.votes] == ["tester", "bob"]


async def test_confirm_dialog_says_who_decides_and_the_quorum(db_path, operators):
    submit(db_path, RID, DecisionTerms(quorum=2, approvers=("finance",)), value=99_000)
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.signing is not None)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionDialog))
        body = app.screen._body.plain  # type: ignore[attr-defined]
    assert "who    approvers: finance · 0 of 2 approvals" in body
    assert votes(db_path, RID) == ()  # the dialog was never answered


async def test_header_says_signing_as_the_trusted_operator(db_path, operators):
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.signing is not None)
        await wait_for(pilot, lambda: app.status.state.operator != "")
        top = app.status.render().plain.splitlines()[0]
        assert app.signing is not None and app.signing.signs
        assert "unsigned" not in app.status.render().plain
    assert "✔ signing as tester" in top


async def test_header_warns_when_signatures_are_expected_but_there_is_no_key(db_path, operators):
    operators.use("nobody")  # the operators file exists; this operator has no key
    submit(db_path, RID, DecisionTerms())
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.signing is not None)
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        bottom = app.status.render().plain.splitlines()[1]
        assert "⚠ unsigned: no trusted operator key — sentinel operator init" in bottom
        assert "signing as" not in app.status.render().plain
        await pilot.press("a")  # refused: the waiting call would never accept it
        await wait_for(pilot, lambda: any("decisions must be signed" in m for m in notifications(app)))
    assert votes(db_path, RID) == ()


async def test_no_operators_file_means_no_signing_indicator(db_path, monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(tmp_path / "none" / "operators.json"))
    monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(tmp_path / "none" / "key.pem"))
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.signing is not None)
        await pilot.pause()
        shown = app.status.render().plain
    assert app.signing is not None and not app.signing.expected
    assert "signing as" not in shown and "unsigned" not in shown


def _history_cells(app: SentinelApp) -> dict[str, tuple[str, str]]:
    view = app.history
    return {ev.kind + ":" + (ev.request_id or ""): view._cells(ev)[1] for ev in view.events.values()}


async def test_history_shows_votes_and_refused_untrusted_decisions(db_path, operators):
    with Store(db_path) as store:
        store.append_events([
            {"kind": "voted", "request_id": RID, "function": "transfer_funds", "actor": "tester@h",
             "data": {"vote": {"operator": "tester", "verdict": "approve", "signed": True},
                      "tally": {"approvals": 1, "denials": 0, "quorum": 2}}},
            {"kind": "voted", "request_id": RID2, "function": "transfer_funds", "actor": "bob@h",
             "data": {"vote": {"operator": "bob", "verdict": "deny", "signed": True}}},
            {"kind": "escalated", "request_id": RID, "function": "transfer_funds",
             "data": {"escalate_to": ["security"]}},
            {"kind": "blocked", "request_id": RID, "function": "transfer_funds",
             "reason": "decision not signed by a trusted operator: 0 of 1 approval(s) count",
             "data": {"refused": "untrusted_decision", "decided_by": "mallory@h",
                      "votes": [{"operator": "mallory", "verdict": "approve", "signed": False}]}},
        ])
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.history.events) == 4)
        cells = _history_cells(app)
        assert cells[f"voted:{RID}"][0] == "voted ✔"
        assert cells[f"voted:{RID2}"][0] == "voted ✖"
        assert cells[f"escalated:{RID}"][0] == "escalated"
        assert cells[f"blocked:{RID}"][0] == "untrusted"
        assert "red" in cells[f"blocked:{RID}"][1]
        await wait_for(pilot, lambda: app.history.table.cursor_row == 0)
        detail = app.history.detail.render()
        plain = detail.plain if hasattr(detail, "plain") else str(detail)
    # The newest (the refused approval) is selected: its detail names why it did not count.
    assert "refused" in plain and "decision not signed by a trusted operator" in plain
    assert "mallory approve (unsigned)" in plain


async def test_web_child_signs_with_the_key_of_the_user_running_it(db_path, operators, monkeypatch):
    """``sentinel tui --web`` runs the same app per browser tab in a child process that
    textual-serve starts with the server's environment: the same operator key signs."""
    from textual_serve.app_service import AppService

    from sentinel_tui import web

    submit(db_path, RID, DecisionTerms(approvers=("finance",)))
    env = AppService("true", write_bytes=None, write_str=None, close=None,  # type: ignore[arg-type]
                     download_manager=None, debug=False)._build_environment()  # type: ignore[arg-type]
    assert env["SENTINEL_OPERATOR_KEY"] == str(operators.keys["tester"])
    made: list[SentinelApp] = []
    monkeypatch.setattr(SentinelApp, "run", lambda self, *a, **k: made.append(self) or 0)
    assert web.main(["--child", "--db", str(db_path)]) == 0
    app = made[0]
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        await wait_for(pilot, lambda: app.status.state.signing_as == "tester")
        await pilot.press("a")
        await wait_for(pilot, lambda: app.queue.card.request_id is None)
    with Store(db_path) as store:
        rec = store.get(RID)
    assert rec.status == "approved"
    (vote,) = rec.votes
    assert vote.operator == "tester" and vote.signature and vote.channel == "web"



def test_terms_take_short_forms_in_a_narrow_card() -> None:
    from sentinel.store.models import RequestRecord, Vote
    from sentinel_tui.render import decision_terms

    terms = DecisionTerms(quorum=2, approvers=("finance", "treasury-leads", "security-oncall"),
                          self_approval=False, escalate_after=60.0, escalate_to=("security",))
    rec = RequestRecord(
        id=RID, status="pending", function="transfer_funds", arguments={}, digest="0" * 64,
        agent_id=None, pid=1, host="h", context=None, rule_id="r", rule_ids=("r",), reason="",
        value_at_risk=None, risk_score=None, risk_explanation=None, policy_version=None,
        channel="queue", created_at=1000.0, expires_at=2000.0, terms=terms,
        votes=(Vote("bob", "approve", 1010.0),),
    )
    wide = [p.plain for p in decision_terms(rec, 1030.0, 76)]
    assert wide == ["approvers: finance, treasury-leads, security-oncall", "self-approval off",
                    "escalates to security in 30s", "1 of 2 approvals — bob"]
    narrow = [p.plain for p in decision_terms(rec, 1090.0, 30)]
    assert narrow == ["by finance, +2 more", "no self-approval", "↑ security", "1/2 ✔ — bob"]
    # Recorded on the row by the waiting call: escalated, whatever this terminal's clock says.
    recorded = replace(rec, escalated_at=1055.0, escalated_to=("security",))
    assert "escalated to security" in [p.plain for p in decision_terms(recorded, 1030.0, 76)]


async def test_a_key_trusted_while_the_command_center_runs_counts_without_a_restart(
    db_path, operators, monkeypatch
):
    from sentinel.trust import add_operator, generate_key

    key = generate_key(operators.folder / "keys" / "dora" / "operator-key.pem")
    monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(key.path))  # dora's key, not trusted yet
    submit(db_path, RID, DecisionTerms())
    app = SentinelApp(db_path, None, tick_interval=0, sweep_interval=0.05)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.signing is not None)
        await wait_for(pilot, lambda: app.queue.card.request_id == RID)
        assert "unsigned" in app.status.render().plain
        add_operator(operators.path, "dora", key.public_key, ["finance"])  # the admin trusts it
        await wait_for(pilot, lambda: app.signing is not None and app.signing.signs)
        assert "signing as dora" in app.status.render().plain
        await pilot.press("a")
        await wait_for(pilot, lambda: app.queue.card.request_id != RID)
    with Store(db_path) as store:
        [vote] = store.get(RID).votes
    assert vote.operator == "dora" and vote.signature
