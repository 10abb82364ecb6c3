"""Forged decisions by an agent process that can write the database (issue 16).

Every test runs the waiting agent as a real process (``agents/waiter.py``: a ``@protect``-ed
``transfer_funds`` that appends to a marker file when it really runs) against a real operators
file and real Ed25519 keys. The forger is another real process writing the same database file
with plain ``sqlite3`` (``agents/forger.py``). Each forgery must end the same way: the function
never runs, the call raises SentinelBlockedError saying "decision not signed by a trusted
operator", and the audit holds a ``blocked`` event for the request with
``data.refused == "untrusted_decision"``. All processes run as the same OS account here, so
rules allow self-approval unless the test is about it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.arguments import CallArguments
from sentinel.errors import DecisionRefused
from sentinel.store import hints
from sentinel.trust import revoke_operator
from sentinel.trust.check import UNTRUSTED
from tests.trust.support import Lab

FINANCE = {"approvers": ["finance"], "self_approval": True}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    world = Lab(tmp_path)
    world.rules(**FINANCE)
    yield world
    world.close()


def test_a_genuine_signed_decision_lets_the_call_run(lab: Lab) -> None:
    agent = lab.waiter()
    rec = lab.pending()
    lab.decider("alice").decide(lab.store, rec.id, True, "looks fine")
    result = agent.next("result")
    assert result["outcome"] == "ran", result
    assert lab.ran() == ["5000 acct-9"]
    kinds = [e.kind for e in lab.events(rec.id)]
    assert kinds == ["approval_requested", "approved", "executed"], kinds
    (vote,) = lab.store.get(rec.id).votes
    assert vote.operator == "alice" and vote.signature and vote.signature.startswith("ed25519:")


@pytest.mark.parametrize("hint", [True, False], ids=["wake-hint", "polling"])
def test_raw_update_to_approved_with_no_vote(lab: Lab, hint: bool) -> None:
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(rec.id, mode="flip", hint=hint)
    lab.assert_refused(agent.next("result"), rec.id, "no approving vote was recorded")
    assert lab.store.get(rec.id).decided_by == "mallory"  # the row says approved; nothing ran


def test_a_vote_with_no_signature(lab: Lab) -> None:
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(rec.id, mode="unsigned", operator="alice")
    lab.assert_refused(agent.next("result"), rec.id, "alice: no signature")


def test_a_signature_copied_from_another_requests_approval(lab: Lab) -> None:
    agent = lab.waiter("5000:acct-1", "5000:acct-2")
    first = lab.pending()
    lab.decider("alice").decide(lab.store, first.id, True)
    assert agent.next("result")["outcome"] == "ran"
    second = lab.pending(exclude=(first.id,))
    lab.forge(second.id, mode="copy", **{"from": first.id})
    lab.assert_refused(
        agent.next("result"), second.id, "alice: mismatch", "does not match this decision",
        ran=("5000 acct-1",),
    )  # fmt: skip


def test_a_replayed_approval_of_an_earlier_identical_call(lab: Lab) -> None:
    agent = lab.waiter("5000:acct-9", "5000:acct-9")
    first = lab.pending()
    lab.decider("alice").decide(lab.store, first.id, True)
    assert agent.next("result")["outcome"] == "ran"
    second = lab.pending(exclude=(first.id,))
    assert second.digest == first.digest  # same arguments: only the request id differs
    forged = lab.forge(second.id, mode="replay", **{"from": first.id})
    assert forged["votes"] == [lab.store.get(first.id).votes[0].to_dict()]  # verbatim
    lab.assert_refused(
        agent.next("result"), second.id, "alice: mismatch", ran=("5000 acct-9",)
    )


def test_an_operator_approving_rewritten_arguments_does_not_approve_the_real_ones(
    lab: Lab,
) -> None:
    agent = lab.waiter("5000:acct-9")
    rec = lab.pending()
    innocent = {"amount": 10, "to": "acct-9"}
    digest = CallArguments.of(innocent).binding_digest
    lab.forge(rec.id, mode="rewrite", digest=digest, arguments=innocent)
    shown = lab.store.get(rec.id)
    assert shown.digest == digest and shown.arguments == innocent  # what alice is shown
    lab.decider("alice").decide(lab.store, rec.id, True)  # a genuine signature, other digest
    lab.assert_refused(
        agent.next("result"), rec.id, "alice: mismatch", "request id, argument digest"
    )


def test_the_same_operators_vote_twice_does_not_make_a_quorum_of_two(lab: Lab) -> None:
    lab.rules(quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    assert lab.decider("alice").decide(lab.store, rec.id, True).is_pending  # 1 of 2
    forged = lab.forge(rec.id, mode="duplicate")
    assert [v["operator"] for v in forged["votes"]] == ["alice", "alice"]
    lab.assert_refused(
        agent.next("result"), rec.id, "1 of 2 approval(s) count (alice)",
        "alice: already counted",
    )  # fmt: skip


def test_a_forged_vote_cannot_complete_a_quorum_with_a_genuine_one(lab: Lab) -> None:
    """The store counts the forged vote and finishes the request; the waiting call does not."""
    lab.rules(quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(rec.id, mode="unsigned", operator="bob", status="pending")
    done = lab.decider("alice").decide(lab.store, rec.id, True)
    assert done.status == "approved" and len(done.votes) == 2
    lab.assert_refused(agent.next("result"), rec.id, "1 of 2", "bob: no signature")


def test_the_rows_copy_of_the_terms_is_not_what_the_waiting_call_obeys(lab: Lab) -> None:
    lab.rules(quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    lab.decider("alice").decide(lab.store, rec.id, True)
    lab.forge(rec.id, mode="flip", columns={"terms": {"quorum": 1}})
    assert lab.store.get(rec.id).terms.quorum == 1  # the row now says one is enough
    lab.assert_refused(agent.next("result"), rec.id, "1 of 2 approval(s) count (alice)")


@pytest.mark.parametrize("when", ["now", "backdated"])
def test_a_key_revoked_while_the_call_waits(lab: Lab, when: str) -> None:
    """Bob's key is stolen: revoked after the request was made. A signature made with it now,
    or one back-dated to before the revocation, is refused."""
    agent = lab.waiter()
    rec = lab.pending()
    revoked_at = time.time()
    revoke_operator(lab.ops_file, "bob", at=revoked_at)
    spec = {"decided_at": "created"} if when == "backdated" else {}
    forged = lab.forge(rec.id, key="bob", mode="sign", operator="bob", **spec)
    if when == "backdated":
        assert forged["votes"][0]["decided_at"] < revoked_at
    lab.assert_refused(agent.next("result"), rec.id, "bob: revoked", "was revoked at")


def test_a_signature_by_an_unknown_key(lab: Lab) -> None:
    lab.key("mallory")  # a real key the operators file does not trust
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(rec.id, key="mallory", mode="sign", operator="alice")
    lab.assert_refused(
        agent.next("result"), rec.id, "alice: unknown_key", "is not in the trusted operators file"
    )


def test_a_trusted_operator_outside_the_approvers(lab: Lab) -> None:
    agent = lab.waiter()
    rec = lab.pending()
    with pytest.raises(DecisionRefused, match="only finance may decide"):
        lab.decider("carol").decide(lab.store, rec.id, True)
    assert lab.store.get(rec.id).votes == ()  # refused before anything was written
    lab.forge(rec.id, key="carol", mode="sign", operator="carol")  # her real key, written raw
    lab.assert_refused(
        agent.next("result"), rec.id, "carol: not among the approvers (finance)"
    )


@pytest.fixture
def no_self(lab: Lab) -> Lab:
    lab.rules(approvers=["finance"])  # self_approval defaults to false when approvers are named
    return lab


def test_the_agents_own_identity_under_no_self_approval(no_self: Lab) -> None:
    lab = no_self
    agent = lab.waiter()
    rec = lab.pending()
    assert rec.terms.self_approval is False
    with pytest.raises(DecisionRefused, match="was made by you"):
        lab.decider("alice").decide(lab.store, rec.id, True)
    # The vote's account is this OS account: the same as the agent's, which asked.
    lab.forge(rec.id, key="alice", mode="sign", operator="alice")
    lab.assert_refused(
        agent.next("result"), rec.id,
        "alice: the agent's own identity (the rule forbids self-approval)",
    )  # fmt: skip


def test_own_identity_hidden_by_rewriting_the_votes_account(no_self: Lab) -> None:
    lab = no_self
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(
        rec.id, key="alice", mode="sign", operator="alice", tamper={"account": "alice-laptop"}
    )
    lab.assert_refused(agent.next("result"), rec.id, "alice: mismatch")


def test_own_identity_hidden_by_rewriting_the_rows_requester(no_self: Lab) -> None:
    lab = no_self
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(
        rec.id, key="alice", mode="sign", operator="alice",
        columns={"requester": {"account": "someone-else"}},
    )  # fmt: skip
    assert lab.store.get(rec.id).requester == {"account": "someone-else"}
    lab.assert_refused(agent.next("result"), rec.id, "the agent's own identity")


def test_an_async_tool_runs_on_a_genuine_decision_and_not_on_a_forged_one(lab: Lab) -> None:
    agent = lab.waiter("5000:acct-1", "5000:acct-2", asynchronous=True)
    first = lab.pending()
    lab.decider("bob").decide(lab.store, first.id, True)
    assert agent.next("result")["outcome"] == "ran"
    second = lab.pending(exclude=(first.id,))
    lab.forge(second.id, mode="unsigned", operator="bob")
    lab.assert_refused(agent.next("result"), second.id, "bob: no signature", ran=("5000 acct-1",))


def test_a_genuine_denial_turned_into_an_approval(lab: Lab) -> None:
    """Bob really denied (deny_quorum 2 keeps the request open); the forger flips his verdict."""
    lab.rules(deny_quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    assert lab.decider("bob").decide(lab.store, rec.id, False, "no").is_pending
    forged = lab.forge(rec.id, mode="turn")
    assert [(v["operator"], v["verdict"]) for v in forged["votes"]] == [("bob", "approve")]
    lab.assert_refused(agent.next("result"), rec.id, "bob: mismatch")


@pytest.mark.parametrize("doubt", ["writable-by-others", "removed"])
def test_a_genuine_approval_is_refused_when_the_operators_file_is_in_doubt(
    lab: Lab, doubt: str
) -> None:
    """The waiting call reads the operators file again before trusting a decision: a file that
    became unsafe or vanished while it waited blocks the call (doubt never lowers protection)."""
    agent = lab.waiter()
    rec = lab.pending()
    alice = lab.decider("alice")  # loaded while the file was fine
    if doubt == "removed":
        lab.ops_file.unlink()
    else:
        lab.ops_file.chmod(0o666)
    alice.decide(lab.store, rec.id, True)
    lab.assert_refused(agent.next("result"), rec.id, "the operators file cannot be read")


def _account_with_a_group_of_its_own() -> tuple[str, str]:
    """An OS account on this host and an OS group it is in that this test's account is not
    (named otherwise than the account, so an operator name cannot match it by accident)."""
    import os
    import pwd

    from sentinel.identity import os_groups
    from sentinel.trust.operators import NAME_RE

    mine = os_groups(pwd.getpwuid(os.getuid()).pw_name)
    for entry in pwd.getpwall():
        if not NAME_RE.match(entry.pw_name):
            continue
        for group in sorted(os_groups(entry.pw_name) - mine - {entry.pw_name}):
            if NAME_RE.match(group):
                return entry.pw_name, group
    pytest.skip("no account with an OS group of its own on this host")


def test_a_trusted_operator_claiming_another_os_account_gains_none_of_its_groups(
    lab: Lab,
) -> None:
    """Carol (operators-file group ops) signs as an account in the OS group the rule names: the
    account in a vote is whatever its signer wrote, so it proves no membership."""
    account, group = _account_with_a_group_of_its_own()
    lab.rules(approvers=[group], self_approval=True)
    agent = lab.waiter()
    rec = lab.pending()
    lab.forge(rec.id, key="carol", mode="sign", operator="carol", account=account)
    lab.assert_refused(agent.next("result"), rec.id, f"carol: not among the approvers ({group})")


def test_an_operator_the_file_names_after_an_os_account_decides_for_its_os_groups(
    lab: Lab,
) -> None:
    """The positive side: the admin trusted the key under the account's name."""
    account, group = _account_with_a_group_of_its_own()
    lab.add(account)  # no operators-file groups: membership is the host's
    lab.rules(approvers=[group], self_approval=True)
    agent = lab.waiter()
    rec = lab.pending()
    assert group in lab.decider(account).names
    lab.decider(account).decide(lab.store, rec.id, True)
    assert agent.next("result")["outcome"] == "ran"
    assert lab.ran() == ["5000 acct-9"]


@pytest.mark.parametrize("fail_mode", ["secure", "safe"])
@pytest.mark.parametrize("problem", ["required-but-missing", "writable-by-others"])
def test_an_operators_file_in_doubt_blocks_before_anyone_is_asked(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, fail_mode: str, problem: str
) -> None:
    """No decision could be checked, so the call is blocked whatever fail_mode says: under
    "safe" it used to run as a governance error, skipping the approval altogether."""
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError
    from sentinel.protect import protect

    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(lab.ops_file))
    required = problem == "required-but-missing"
    if required:
        lab.ops_file.unlink()
    else:
        lab.ops_file.chmod(0o666)
    ran: list[int] = []

    @protect(SentinelConfig(
        rules_path=lab.rules_path, db_path=lab.db, fail_mode=fail_mode, show_waiting_hint=False,
        require_signed_decisions=True if required else None, hot_reload=False,
    ))  # fmt: skip
    def transfer_funds(amount: int, to: str) -> None:
        ran.append(amount)

    with pytest.raises(SentinelBlockedError, match="operators file") as info:
        transfer_funds(5000, "acct-9")
    assert type(info.value) is SentinelBlockedError and str(info.value).count(UNTRUSTED) == 1
    assert ran == []
    assert lab.store.list_pending() == []  # nobody was asked
    events = [e for e in lab.store.events_after(0, 100) if e.function == "transfer_funds"]
    assert [e.kind for e in events] == ["blocked"]
    assert events[0].data is not None and events[0].data["refused"] == "operators_file"


def test_the_forgers_wake_up_datagram_is_the_librarys() -> None:
    """The forger sends hints without importing Sentinel; it must address what waiters bind."""
    import hashlib

    lock = "/tmp/x/live/123.lock"
    ours = b"\0sentinel-hint:" + hashlib.sha256(lock.encode()).hexdigest()[:40].encode()
    assert hints.address(lock) == ours
