"""Quorums: the store's vote operations, and operators deciding in real processes at once.

The first part drives :meth:`Store.decide` directly on a real database (votes, DuplicateVote,
quorum and deny-quorum transitions, the ``voted`` then final events). The second runs the
waiting agent and the operators as separate processes (``agents/waiter.py``,
``agents/decider.py``) with real keys, released at the same moment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.errors import DecisionConflict, DuplicateVote
from sentinel.store import NewRequest, OperatorIdentity, RequestRecord, Store, ops
from sentinel.store.models import DecisionTerms, Vote
from tests.trust.support import Lab

FINANCE = {"approvers": ["finance"], "self_approval": True}


def person(account: str, display: str | None = None) -> OperatorIdentity:
    return OperatorIdentity(account, 1000, None, None, "test-host", None, display_name=display)


def vote(name: str, verdict: str = "approve", reason: str | None = None) -> Vote:
    return Vote(name, verdict, time.time(), account=name, channel="test", reason=reason)


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


def submit(
    store: Store, terms: DecisionTerms, timeout: float = 60.0, age: float = 0.0
) -> RequestRecord:
    new = NewRequest(
        id=uuid.uuid4().hex, function="transfer_funds", arguments={"amount": 5000},
        digest="ab" * 32, timeout_seconds=timeout, rule_id="pay", terms=terms,
        requester={"account": "agent-user"}, created_at=time.time() - age,
    )  # fmt: skip
    return store.submit(new)


def kinds(store: Store, request_id: str) -> list[tuple[str, Any]]:
    """(kind, data) of the request's events, oldest first."""
    out = []
    after = 0
    while batch := store.events_after(after, 1000):
        out += [(e.kind, e.data) for e in batch if e.request_id == request_id]
        after = batch[-1].seq
    return out


# -- the store's vote operations -------------------------------------------------------------


def test_a_quorum_of_two_is_voted_then_approved(store: Store) -> None:
    rec = submit(store, DecisionTerms(quorum=2, approvers=("finance",)))
    first = store.decide(rec.id, True, person("alice"), "ok", vote=vote("alice"))
    assert first.is_pending and [v.operator for v in first.votes] == ["alice"]
    assert first.decided_at is None and first.decided_by is None
    done = store.decide(rec.id, True, person("bob"), "ok too", vote=vote("bob"))
    assert done.status == "approved"
    assert [v.operator for v in done.votes] == ["alice", "bob"]
    assert done.decided_by == person("bob").label
    events = kinds(store, rec.id)
    assert [k for k, _ in events] == ["approval_requested", "voted", "approved"]
    voted, approved = events[1][1], events[2][1]
    assert voted["vote"] == {"operator": "alice", "verdict": "approve", "signed": False}
    assert voted["tally"] == {"approvals": 1, "denials": 0, "quorum": 2}
    assert approved["tally"] == {"approvals": 2, "denials": 0, "quorum": 2}
    assert store.get(rec.id).votes == done.votes  # what was returned is what is stored


def test_the_same_operator_cannot_vote_twice(store: Store) -> None:
    rec = submit(store, DecisionTerms(quorum=2))
    store.decide(rec.id, True, person("alice"), vote=vote("alice"))
    before = kinds(store, rec.id)
    for verdict in (True, False):  # a second approval, or changing one's mind to deny
        with pytest.raises(DuplicateVote, match="operator 'alice' already voted") as info:
            again = vote("alice", "approve" if verdict else "deny")
            store.decide(rec.id, verdict, person("alice"), vote=again)
        assert info.value.record.is_pending
    now = store.get(rec.id)
    assert now.is_pending and [v.operator for v in now.votes] == ["alice"]
    assert kinds(store, rec.id) == before  # nothing recorded


def test_one_os_account_is_one_unsigned_voter_whatever_name_it_shows(store: Store) -> None:
    """Unsigned votes are named by the OS account: a second display name is not a second vote."""
    rec = submit(store, DecisionTerms(quorum=2))
    store.decide(rec.id, True, person("ops", display="Alice"))
    with pytest.raises(DuplicateVote):
        store.decide(rec.id, True, person("ops", display="Bob"))
    assert [v.operator for v in store.get(rec.id).votes] == ["ops"]


def test_one_deny_ends_a_quorum_request(store: Store) -> None:
    rec = submit(store, DecisionTerms(quorum=2))
    store.decide(rec.id, True, person("alice"), vote=vote("alice"))
    done = store.decide(rec.id, False, person("bob"), "no", vote=vote("bob", "deny", "no"))
    assert done.status == "denied" and done.decision_reason == "no"
    assert [k for k, _ in kinds(store, rec.id)] == ["approval_requested", "voted", "denied"]
    with pytest.raises(DecisionConflict) as info:
        store.decide(rec.id, True, person("carol"), vote=vote("carol"))
    assert not isinstance(info.value, DuplicateVote) and info.value.record.status == "denied"


def test_deny_quorum_two_needs_two_denials(store: Store) -> None:
    rec = submit(store, DecisionTerms(deny_quorum=2))
    one = store.decide(rec.id, False, person("bob"), vote=vote("bob", "deny"))
    assert one.is_pending and one.votes[0].verdict == "deny"
    two = store.decide(rec.id, False, person("carol"), vote=vote("carol", "deny"))
    assert two.status == "denied"
    assert [k for k, _ in kinds(store, rec.id)] == ["approval_requested", "voted", "denied"]


def test_deny_quorum_two_then_one_approval_approves(store: Store) -> None:
    rec = submit(store, DecisionTerms(deny_quorum=2))
    store.decide(rec.id, False, person("bob"), vote=vote("bob", "deny"))
    done = store.decide(rec.id, True, person("alice"), vote=vote("alice"))
    assert done.status == "approved" and [v.verdict for v in done.votes] == ["deny", "approve"]


def test_a_vote_after_expiry_is_refused_and_not_counted(store: Store) -> None:
    rec = submit(store, DecisionTerms(quorum=2), timeout=5, age=10)  # expired, not yet marked
    with pytest.raises(DecisionConflict) as info:
        store.decide(rec.id, True, person("alice"), vote=vote("alice"))
    assert info.value.record.status == "expired"
    now = store.get(rec.id)
    assert now.status == "expired" and now.votes == ()
    events = kinds(store, rec.id)
    assert [k for k, _ in events] == ["approval_requested", "expired"]
    assert events[1][1] == {"by": "expiry"}


def test_a_votes_verdict_must_match_the_decision(store: Store) -> None:
    rec = submit(store, DecisionTerms(quorum=2))
    with pytest.raises(ValueError, match="does not match approve=True"):
        store.decide(rec.id, True, person("alice"), vote=vote("alice", "deny"))
    with pytest.raises(ValueError):
        ops.cast_vote(False, person("alice"), None, vote("alice", "maybe"), time.time())
    assert store.get(rec.id).votes == ()


# -- operators in real processes ----------------------------------------------------------------


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    world = Lab(tmp_path)
    yield world
    world.close()


@pytest.mark.parametrize("round_", [1, 2])
def test_two_operators_approving_at_the_same_moment(lab: Lab, round_: int) -> None:
    lab.rules(quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    results = lab.race(rec.id, ("alice", "approve"), ("bob", "approve"))
    assert [r["event"] for r in results] == ["decided", "decided"], results
    assert sorted(r["status"] for r in results) == ["approved", "pending"]
    result = agent.next("result")
    assert result["outcome"] == "ran", result
    assert lab.ran() == ["5000 acct-9"]  # once
    row = lab.store.get(rec.id)
    assert row.status == "approved"
    assert sorted(v.operator for v in row.votes) == ["alice", "bob"]
    assert all(v.signature for v in row.votes)
    events = [e.kind for e in lab.events(rec.id)]
    assert events == ["approval_requested", "voted", "approved", "executed"], events


def test_one_of_two_approvals_then_expiry(lab: Lab) -> None:
    lab.rules(timeout=3.0, quorum=2, **FINANCE)  # room for the decider to start first
    agent = lab.waiter()
    rec = lab.pending()
    (alone,) = lab.race(rec.id, ("alice", "approve"))
    assert alone == {"event": "decided", "status": "pending", "votes": 1}
    result = agent.next("result")
    assert result["outcome"] == "expired" and result["error"] == "SentinelTimeoutError", result
    assert not lab.marker.exists()
    row = lab.store.get(rec.id)
    assert row.status == "expired" and [v.operator for v in row.votes] == ["alice"]
    assert [e.kind for e in lab.events(rec.id)] == ["approval_requested", "voted", "expired"]


@pytest.mark.parametrize("round_", [1, 2])
def test_approve_and_deny_racing_on_a_quorum_of_two(lab: Lab, round_: int) -> None:
    lab.rules(quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    approve, deny = lab.race(rec.id, ("alice", "approve"), ("bob", "deny"))
    assert deny == {"event": "decided", "status": "denied", "votes": deny["votes"]}
    if approve["event"] == "decided":  # alice first: her vote stands, bob's deny ends it
        assert approve["status"] == "pending" and deny["votes"] == 2
    else:  # bob first: alice finds it decided
        assert approve["error"] == "DecisionConflict" and approve["status"] == "denied"
        assert deny["votes"] == 1
    result = agent.next("result")
    assert result["outcome"] == "denied" and result["error"] == "SentinelDeniedError", result
    assert not lab.marker.exists()
    events = [e.kind for e in lab.events(rec.id)]
    assert events.count("denied") == 1 and "approved" not in events, events
    assert lab.store.get(rec.id).status == "denied"


def test_a_vote_after_expiry_from_another_process(lab: Lab) -> None:
    lab.rules(timeout=1.0, quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    assert agent.next("result")["outcome"] == "expired"
    (late,) = lab.race(rec.id, ("alice", "approve"))
    assert late["error"] == "DecisionConflict" and late["status"] == "expired", late
    row = lab.store.get(rec.id)
    assert row.status == "expired" and row.votes == ()
    assert [e.kind for e in lab.events(rec.id)] == ["approval_requested", "expired"]
    assert not lab.marker.exists()


def test_deny_quorum_two_keeps_the_request_pending_after_one_deny(lab: Lab) -> None:
    lab.rules(deny_quorum=2, **FINANCE)
    agent = lab.waiter()
    rec = lab.pending()
    (first,) = lab.race(rec.id, ("bob", "deny"))
    assert first == {"event": "decided", "status": "pending", "votes": 1}
    assert lab.store.get(rec.id).is_pending
    (second,) = lab.race(rec.id, ("alice", "deny"))
    assert second["status"] == "denied" and second["votes"] == 2
    result = agent.next("result")
    assert result["outcome"] == "denied" and "alice says so" in result["message"], result
    assert not lab.marker.exists()
    assert [e.kind for e in lab.events(rec.id)] == ["approval_requested", "voted", "denied"]
