"""``Decider``: what a person (or ``sentinel serve``) is refused before anything is written, and
that what it signs is what the waiting call's check counts. Real keys, a real database."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sentinel.errors import DecisionRefused
from sentinel.identity import os_groups
from sentinel.store import AsyncStore, NewRequest, RequestRecord, Store
from sentinel.store.models import DecisionTerms
from sentinel.trust import (
    OperatorKey,
    TrustedOperators,
    add_operator,
    generate_key,
    load_operators,
    revoke_operator,
    verify_decision,
)
from sentinel.trust.check import OwnRequest, tally
from sentinel.trust.decide import Decider

FINANCE = DecisionTerms(approvers=("finance",), self_approval=True)
STRICT = DecisionTerms(approvers=("finance",), self_approval=False)


class World:
    def __init__(self, tmp: Path, db: Path) -> None:
        folder = tmp / "etc-sentinel"
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
        self.ops_file = folder / "operators.json"
        self.tmp = tmp
        self.keys: dict[str, OperatorKey] = {}
        for name, groups in (("alice", ["finance"]), ("bob", ["finance"]), ("carol", ["ops"]),
                             ("sam", ["security"])):  # fmt: skip
            add_operator(self.ops_file, name, self.key(name).public_key, groups)
        add_operator(self.ops_file, "serve", self.key("serve").public_key, kind="service")
        self.store = Store(db)

    def key(self, name: str) -> OperatorKey:
        if name not in self.keys:
            self.keys[name] = generate_key(self.tmp / "keys" / name / "k.pem")
        return self.keys[name]

    @property
    def trusted(self) -> TrustedOperators:
        return load_operators(self.ops_file)

    def local(self, name: str) -> Decider:
        return Decider.local("cli", key_path=self.key(name).path, trusted=self.trusted)

    def submit(self, terms: DecisionTerms = FINANCE, requester: Any = None) -> RequestRecord:
        new = NewRequest(
            id=uuid.uuid4().hex, function="transfer_funds", arguments={"amount": 5000},
            digest="ab" * 32, timeout_seconds=60, rule_id="pay", terms=terms,
            requester=requester if requester is not None else {"account": "agent-user"},
        )  # fmt: skip
        return self.store.submit(new)

    def events(self, request_id: str) -> list[str]:
        return [e.kind for e in self.store.events_after(0, 10_000) if e.request_id == request_id]


@pytest.fixture
def world(tmp_path: Path, db_path: Path):
    w = World(tmp_path, db_path)
    yield w
    w.store.close()


def own(rec: RequestRecord, terms: DecisionTerms | None = None) -> OwnRequest:
    return OwnRequest(rec.id, rec.digest, rec.created_at, rec.expires_at,
                      terms or rec.terms, rec.requester)  # fmt: skip


def refused_and_nothing_written(world: World, decider: Decider, rec: RequestRecord,
                                approve: bool = True) -> str:  # fmt: skip
    with pytest.raises(DecisionRefused) as info:
        decider.decide(world.store, rec.id, approve)
    now = world.store.get(rec.id)
    assert now.votes == rec.votes and now.status == rec.status
    assert world.events(rec.id) == ["approval_requested"] + ["voted"] * len(rec.votes)
    why = decider.refusal(rec, approve)
    assert why == str(info.value)
    return why


# -- a trusted operator ---------------------------------------------------------------------------


def test_a_trusted_operator_signs_what_the_waiting_call_counts(world: World) -> None:
    alice = world.local("alice")
    # Named by the operators file's groups and by the OS groups of the account deciding.
    assert alice.signs and alice.name == "alice"
    assert alice.names == {"alice", "finance"} | os_groups("alice")  # the entry's, not root's
    rec = world.submit()
    done = alice.decide(world.store, rec.id, True, "fine")
    assert done.status == "approved"
    (vote,) = done.votes
    assert vote.operator == "alice" and vote.reason == "fine" and vote.account == alice.account
    assert vote.signature is not None
    who = verify_decision(world.trusted, vote.signature, request_id=rec.id, digest=rec.digest,
                          verdict="approve", operator="alice", decided_at=vote.decided_at,
                          expires_at=rec.expires_at, account=vote.account)  # fmt: skip
    assert who.name == "alice" and who.groups == ("finance",)
    assert tally(done, own(rec), world.trusted, time.time()).counted == ("alice",)
    assert world.events(rec.id) == ["approval_requested", "approved"]


async def test_decide_async_signs_and_refuses_the_same(world: World, db_path: Path) -> None:
    rec = world.submit()
    async with AsyncStore(db_path) as store:
        with pytest.raises(DecisionRefused, match="only finance may decide"):
            await world.local("carol").decide_async(store, rec.id, True)
        done = await world.local("bob").decide_async(store, rec.id, True)
    assert done.status == "approved" and done.votes[0].operator == "bob"
    assert tally(done, own(rec), world.trusted, time.time()).enough


# -- the refusals ---------------------------------------------------------------------------------


def test_not_an_approver(world: World) -> None:
    rec = world.submit()
    carol = world.local("carol")
    why = refused_and_nothing_written(world, carol, rec)
    groups = ", ".join(sorted({"ops"} | os_groups(carol.name)))
    assert why == (
        f"only finance may decide request {rec.id[:8]} (rule pay); "
        f"you are carol (groups: {groups})"
    )
    assert world.local("carol").refusal(rec, False) == why  # nor may she deny it


def test_own_request(world: World) -> None:
    alice = world.local("alice")
    rec = world.submit(STRICT, requester={"account": alice.account})
    why = refused_and_nothing_written(world, alice, rec)
    assert why == (
        f"request {rec.id[:8]} was made by you ({alice.account}); its rule forbids approving "
        "your own request"
    )
    assert alice.refusal(rec, False) is None  # denying one's own request is always allowed
    assert world.local("bob").refusal(rec, True) is not None  # same OS account as the agent
    relaxed = world.submit(FINANCE, requester={"account": alice.account})
    assert alice.refusal(relaxed, True) is None


def test_no_key(world: World, tmp_path: Path) -> None:
    missing = tmp_path / "nobody" / "operator-key.pem"
    nokey = Decider.local("cli", key_path=missing, trusted=world.trusted)
    assert not nokey.signs and nokey.key is None
    why = refused_and_nothing_written(world, nokey, world.submit())
    assert why.startswith(f"decisions must be signed (operators file {world.ops_file})")
    assert f"you have no operator key at {missing}" in why
    assert "sentinel operator init" in why


def test_key_not_trusted(world: World) -> None:
    stranger = world.local("mallory")
    assert not stranger.signs and stranger.entry is None
    why = refused_and_nothing_written(world, stranger, world.submit())
    assert why.startswith(f"your operator key {world.key('mallory').key_id} is not in the trusted")
    assert world.key("mallory").public_key in why  # what the admin would add


def test_revoked_key(world: World) -> None:
    revoke_operator(world.ops_file, "bob")
    bob = world.local("bob")
    assert not bob.signs
    why = refused_and_nothing_written(world, bob, world.submit())
    assert why.startswith("your operator key (bob) was revoked at ")


def test_already_voted(world: World) -> None:
    rec = world.submit(DecisionTerms(quorum=2, approvers=("finance",)))
    alice = world.local("alice")
    voted = alice.decide(world.store, rec.id, True)
    assert voted.is_pending
    why = refused_and_nothing_written(world, alice, voted, approve=False)
    assert why == (
        f"you already voted on request {rec.id[:8]} (approve): each operator counts once"
    )
    assert world.local("bob").decide(world.store, rec.id, True).status == "approved"


def test_escalation_lets_escalate_to_decide_after_the_wait(world: World) -> None:
    terms = DecisionTerms(approvers=("finance",), escalate_after=600.0, escalate_to=("security",))
    rec = world.submit(terms)
    sam = world.local("sam")
    assert "only finance may decide" in (sam.refusal(rec, True, now=rec.created_at + 10) or "")
    assert sam.refusal(rec, True, now=rec.created_at + 601) is None
    assert "only finance, security may decide" in (
        world.local("carol").refusal(rec, True, now=rec.created_at + 601) or ""
    )


def test_a_decided_request_is_not_refused_but_conflicts(world: World) -> None:
    """Refusals are for pending requests; a decided one raises the store's DecisionConflict."""
    from sentinel.errors import DecisionConflict

    rec = world.submit()
    world.local("alice").decide(world.store, rec.id, True)
    with pytest.raises(DecisionConflict) as info:
        world.local("carol").decide(world.store, rec.id, True)
    assert not isinstance(info.value, DecisionRefused)
    assert info.value.record.status == "approved"


# -- no operators file: unsigned, as before ------------------------------------------------------


def test_without_an_operators_file_decisions_are_unsigned(world: World, tmp_path: Path) -> None:
    empty = load_operators(tmp_path / "etc-sentinel" / "none.json", missing_ok=True)
    me = Decider.local("cli", key_path=world.key("alice").path, trusted=empty)
    assert not me.signing_expected and not me.signs and me.name == me.operator.account
    rec = world.submit(DecisionTerms())
    assert me.refusal(rec, True) is None
    (vote,) = me.decide(world.store, rec.id, True).votes
    assert vote.signature is None and vote.operator == me.operator.account


# -- sentinel serve's service key ------------------------------------------------------------------


def test_a_service_key_signs_for_a_token(world: World) -> None:
    svc = Decider.service(world.key("serve"), world.trusted, operator_name="ann",
                          token="ann-tok", role="approver", groups=["finance"])  # fmt: skip
    assert svc.signs and svc.name == "ann" and {"finance", "approver"} <= svc.names
    rec = world.submit()
    done = svc.decide(world.store, rec.id, True)
    (vote,) = done.votes
    assert vote.account == "token:ann-tok" and vote.groups == ("finance",)
    assert tally(done, own(rec), world.trusted, time.time()).counted == ("ann",)


def test_a_persons_key_is_no_service_key(world: World) -> None:
    fake = Decider.service(world.key("alice"), world.trusted, operator_name="ann",
                           token="ann-tok", role=None, groups=["finance"])  # fmt: skip
    assert not fake.signs
    why = refused_and_nothing_written(world, fake, world.submit())
    assert "this server has no trusted service key" in why
