"""The waiting call's check of a decision (``sentinel.trust.check``), with real keys.

Each vote is signed with a real Ed25519 key over the waiting call's own view of its request
(:class:`OwnRequest`), then altered the way a forger would; ``tally`` must count exactly the
votes a trusted, authorised, distinct operator signed for exactly this decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel.errors import DecisionNotTrusted, SentinelConfigError
from sentinel.store import RequestRecord
from sentinel.store.models import DecisionTerms, Vote
from sentinel.trust import (
    OperatorKey,
    TrustedOperators,
    add_operator,
    generate_key,
    load_operators,
    revoke_operator,
    sign_decision,
)
from sentinel.trust.check import (
    CLOCK_SKEW,
    UNTRUSTED,
    OwnRequest,
    check_approval,
    is_requester,
    signing_operators,
    tally,
)

T0 = 1_800_000_000.0  # the request's creation (a fixed clock: the check takes `now` as given)
# As a rule naming approvers gets by default: the agent's own identity may not approve.
FINANCE = DecisionTerms(approvers=("finance",), self_approval=False)


class World:
    def __init__(self, tmp: Path) -> None:
        folder = tmp / "etc-sentinel"
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
        self.ops_file = folder / "operators.json"
        self.tmp = tmp
        self.keys: dict[str, OperatorKey] = {}
        for name, groups in (("alice", ["finance"]), ("bob", ["finance"]), ("carol", ["ops"]),
                             ("sam", ["security"])):  # fmt: skip
            self.trust(name, groups)
        self.trust("serve", [], kind="service")
        self.key("mallory")  # real, never trusted

    def key(self, name: str) -> OperatorKey:
        if name not in self.keys:
            self.keys[name] = generate_key(self.tmp / "keys" / name / "k.pem")
        return self.keys[name]

    def trust(self, name: str, groups: list[str], kind: str = "operator") -> None:
        add_operator(self.ops_file, name, self.key(name).public_key, groups, kind=kind)

    @property
    def trusted(self) -> TrustedOperators:
        return load_operators(self.ops_file)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def own(terms: DecisionTerms = FINANCE, **over: Any) -> OwnRequest:
    fields: dict[str, Any] = dict(
        request_id="a" * 32, digest="d" * 64, created_at=T0, expires_at=T0 + 60, terms=terms,
        requester={"account": "agent-user", "uid": 1001},
    )  # fmt: skip
    fields.update(over)
    return OwnRequest(**fields)


def record(mine: OwnRequest, *votes: Vote) -> RequestRecord:
    """The row as the waiting call reads it: approved, with ``votes`` (whatever it says)."""
    return RequestRecord(
        id=mine.request_id, status="approved", function="transfer_funds",
        arguments={"amount": 5000}, digest=mine.digest, agent_id="agent", pid=1, host="h",
        context=None, rule_id="pay", rule_ids=("pay",), reason="", value_at_risk=None,
        risk_score=None, risk_explanation=None, policy_version=None, channel="queue",
        created_at=mine.created_at, expires_at=mine.expires_at, decided_at=T0 + 1,
        decided_by="someone", votes=votes,
    )  # fmt: skip


def signed(
    world: World, signer: str, mine: OwnRequest, *, operator: str | None = None,
    at: float = T0 + 1, verdict: str = "approve", account: str | None = "op-desk",
    groups: tuple[str, ...] = (), role: str | None = None, **signed_over: Any,
) -> Vote:  # fmt: skip
    """A vote by ``signer``'s key over ``mine`` (``signed_over`` replaces signed fields only)."""
    fields: dict[str, Any] = dict(
        request_id=mine.request_id, digest=mine.digest, verdict=verdict,
        operator=operator or signer, decided_at=at, expires_at=mine.expires_at, role=role,
        groups=groups, account=account,
    )  # fmt: skip
    fields.update(signed_over)
    sig = sign_decision(world.key(signer), **fields)
    return Vote(operator or signer, verdict, at, sig, role, groups, account)


def check(world: World, mine: OwnRequest, *votes: Vote, now: float = T0 + 2,
          trusted: TrustedOperators | None | str = "file") -> Any:  # fmt: skip
    file = world.trusted if trusted == "file" else trusted
    assert not isinstance(file, str)
    return tally(record(mine, *votes), mine, file, now)


# -- what counts ---------------------------------------------------------------------------------


def test_a_genuine_vote_counts(world: World) -> None:
    mine = own()
    result = check(world, mine, signed(world, "alice", mine))
    assert result.counted == ("alice",) and result.refused == () and result.enough
    assert check_approval(record(mine, signed(world, "alice", mine)), mine, world.trusted,
                          T0 + 2).counted == ("alice",)  # fmt: skip


def test_check_approval_refuses_short_of_the_quorum(world: World) -> None:
    mine = own(DecisionTerms(quorum=2, approvers=("finance",)))
    with pytest.raises(DecisionNotTrusted) as info:
        check_approval(record(mine, signed(world, "alice", mine)), mine, world.trusted, T0 + 2)
    assert info.value.reason == "untrusted"
    assert str(info.value).startswith(UNTRUSTED)
    assert "1 of 2 approval(s) count (alice)" in str(info.value)
    both = record(mine, signed(world, "alice", mine), signed(world, "bob", mine))
    assert check_approval(both, mine, world.trusted, T0 + 2).counted == ("alice", "bob")


def test_a_row_set_to_approved_with_no_vote(world: World) -> None:
    mine = own()
    with pytest.raises(DecisionNotTrusted, match="no approving vote was recorded"):
        check_approval(record(mine), mine, world.trusted, T0 + 2)


def test_denials_are_neither_counted_nor_refused(world: World) -> None:
    mine = own()
    result = check(world, mine, signed(world, "bob", mine, verdict="deny"))
    assert result.counted == () and result.refused == () and not result.enough


# -- why a vote does not count -------------------------------------------------------------------

Forge = Callable[[World, OwnRequest], Vote]

REFUSALS: dict[str, tuple[Forge, str]] = {
    "no signature": (
        lambda w, m: Vote("alice", "approve", T0 + 1, None, account="op-desk"), "no signature"),
    "malformed": (
        lambda w, m: Vote("alice", "approve", T0 + 1, "ed25519:zz", account="op-desk"),
        "malformed"),
    "replay (signed before the request)": (
        lambda w, m: signed(w, "alice", m, at=T0 - CLOCK_SKEW - 0.5),
        "signed before the request existed (a replay)"),
    "signed in the future": (
        lambda w, m: signed(w, "alice", m, at=T0 + 2 + CLOCK_SKEW + 0.5),
        "signed with a time in the future"),
    "unknown key": (lambda w, m: signed(w, "mallory", m, operator="alice"), "unknown_key"),
    "another operator's key": (
        lambda w, m: signed(w, "carol", m, operator="alice"), "operator_mismatch"),
    "other request id": (
        lambda w, m: signed(w, "alice", m, request_id="b" * 32), "mismatch"),
    "other digest": (lambda w, m: signed(w, "alice", m, digest="e" * 64), "mismatch"),
    "other expiry": (
        lambda w, m: signed(w, "alice", m, expires_at=m.expires_at + 3600), "mismatch"),
    "deny signature on an approve": (
        lambda w, m: dataclasses.replace(signed(w, "alice", m, verdict="deny"), verdict="approve"),
        "mismatch"),
    "account rewritten": (
        lambda w, m: dataclasses.replace(signed(w, "alice", m), account="elsewhere"),
        "mismatch"),
    "time rewritten": (
        lambda w, m: dataclasses.replace(signed(w, "alice", m), decided_at=T0 + 1.5),
        "mismatch"),
    "groups added": (
        lambda w, m: dataclasses.replace(signed(w, "carol", m), groups=("finance",)),
        "mismatch"),
    "decided after expiry": (
        lambda w, m: signed(w, "alice", m, at=m.expires_at + 1), "expired"),
    "outside the approvers": (
        lambda w, m: signed(w, "carol", m), "not among the approvers (finance)"),
    "own identity": (
        lambda w, m: signed(w, "alice", m, account="agent-user"),
        "the agent's own identity (the rule forbids self-approval)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_reason(world: World, case: str) -> None:
    forge, why = REFUSALS[case]
    mine = own()
    now = mine.expires_at + 2 if case == "decided after expiry" else T0 + 2
    result = check(world, mine, forge(world, mine), now=now)
    assert result.counted == () and not result.enough, result
    ((who, reason),) = result.refused
    assert why in reason, reason
    with pytest.raises(DecisionNotTrusted, match=UNTRUSTED):
        check_approval(record(mine, forge(world, mine)), mine, world.trusted, now)


def test_each_operator_counts_once(world: World) -> None:
    mine = own(DecisionTerms(quorum=2, approvers=("finance",)))
    vote = signed(world, "alice", mine)
    later = signed(world, "alice", mine, at=T0 + 1.25)  # a second real signature, same person
    result = check(world, mine, vote, vote, later)
    assert result.counted == ("alice",) and not result.enough
    assert [r for _, r in result.refused] == ["already counted (each operator counts once)"] * 2


def test_revoked_keys(world: World) -> None:
    mine = own()
    vote = signed(world, "bob", mine, at=T0 + 1)
    revoke_operator(world.ops_file, "bob", at=T0 + 3)
    # decided before the revocation, checked after it: a stolen key could back-date, so refused
    late = check(world, mine, vote, now=T0 + 4)
    assert late.counted == () and "revoked" in late.refused[0][1]
    # checked before the revocation takes effect: it counts
    assert check(world, mine, vote, now=T0 + 2).counted == ("bob",)


def test_clock_skew_bounds(world: World) -> None:
    """A decider's clock may be a few seconds behind or ahead of the waiting host's."""
    mine = own(DecisionTerms(quorum=2, approvers=("finance",)))
    behind = signed(world, "alice", mine, at=T0 - CLOCK_SKEW + 0.5)
    ahead = signed(world, "bob", mine, at=T0 + 2 + CLOCK_SKEW - 0.5)
    assert check(world, mine, behind, ahead, now=T0 + 2).counted == ("alice", "bob")
    too_early = signed(world, "alice", mine, at=T0 - CLOCK_SKEW - 0.01)
    too_late = signed(world, "bob", mine, at=T0 + 2 + CLOCK_SKEW + 0.01)
    result = check(world, mine, too_early, too_late, now=T0 + 2)
    assert result.counted == ()
    assert [r for _, r in result.refused] == [
        "signed before the request existed (a replay)", "signed with a time in the future"
    ]


def test_the_agents_own_identity_may_approve_when_the_rule_allows_it(world: World) -> None:
    mine = own(DecisionTerms(approvers=("finance",), self_approval=True))
    assert check(world, mine, signed(world, "alice", mine, account="agent-user")).enough
    strict = own()
    assert not check(world, strict, signed(world, "alice", strict, account="agent-user")).enough


def test_the_requester_is_the_waiting_calls_not_the_rows(world: World) -> None:
    """A row rewritten to name someone else as requester changes nothing: ``own`` decides."""
    mine = own()
    vote = signed(world, "alice", mine, account="agent-user")
    row = dataclasses.replace(record(mine, vote), requester={"account": "someone-else"})
    assert not tally(row, mine, world.trusted, T0 + 2).enough
    terms_row = dataclasses.replace(record(mine, signed(world, "carol", mine)),
                                    terms=DecisionTerms())  # fmt: skip
    assert not tally(terms_row, mine, world.trusted, T0 + 2).enough  # the row's terms: ignored


def test_is_requester_matches_account_and_token() -> None:
    vote = Vote("ann", "approve", T0, account="token:ann-tok")
    assert is_requester(vote, "ann", {"token": "ann-tok"})
    assert is_requester(Vote("x", "approve", T0, account="agent-user"), "x",
                        {"account": "agent-user"})  # fmt: skip
    assert not is_requester(vote, "ann", {"account": "agent-user"})
    assert not is_requester(vote, "ann", None)


# -- escalation ----------------------------------------------------------------------------------

ESCALATING = DecisionTerms(approvers=("finance",), escalate_after=10.0, escalate_to=("security",))


def test_escalation_widens_the_approvers_after_escalate_after(world: World) -> None:
    mine = own(ESCALATING)
    before = signed(world, "sam", mine, at=T0 + 5)
    assert check(world, mine, before, now=T0 + 6).refused[0][1] == (
        "not among the approvers (finance)"
    )
    after = signed(world, "sam", mine, at=T0 + 11)
    assert check(world, mine, after, now=T0 + 12).counted == ("sam",)
    assert check(world, mine, signed(world, "alice", mine, at=T0 + 11), now=T0 + 12).enough


def test_escalation_uses_the_signed_decision_time_not_the_check_time(world: World) -> None:
    mine = own(ESCALATING)
    early = signed(world, "sam", mine, at=T0 + 5)
    # checked long after escalate_after: still decided before it, so still refused
    assert check(world, mine, early, now=T0 + 14).counted == ()
    # moving the recorded time past escalate_after breaks the signature
    moved = dataclasses.replace(early, decided_at=T0 + 11)
    assert "mismatch" in check(world, mine, moved, now=T0 + 14).refused[0][1]


# -- the service key (sentinel serve, for API tokens) --------------------------------------------


def test_a_service_key_signs_for_a_token_with_the_groups_it_binds(world: World) -> None:
    mine = own()
    vote = signed(world, "serve", mine, operator="ann", groups=("finance",), role="approver",
                  account="token:ann-tok")  # fmt: skip
    assert check(world, mine, vote).counted == ("ann",)
    other = signed(world, "serve", mine, operator="ann", groups=("ops",), account="token:ann-tok")
    assert "not among the approvers" in check(world, mine, other).refused[0][1]
    mine_token = own(requester={"token": "ann-tok"})
    own_vote = signed(world, "serve", mine_token, operator="ann", groups=("finance",),
                      account="token:ann-tok")  # fmt: skip
    assert "own identity" in check(world, mine_token, own_vote).refused[0][1]


def test_a_service_key_cannot_sign_for_a_revoked_person(world: World) -> None:
    mine = own()
    revoke_operator(world.ops_file, "bob", at=T0)
    vote = signed(world, "serve", mine, operator="bob", groups=("finance",))
    assert "revoked" in check(world, mine, vote).refused[0][1]


# -- unsigned mode --------------------------------------------------------------------------------


def test_unsigned_mode_takes_the_rows_word_only_for_default_terms(world: World) -> None:
    mine = own(DecisionTerms())
    plain = record(mine)
    assert check_approval(plain, mine, None, T0 + 2).counted == ("someone",)
    named = own()
    written = Vote("x", "approve", T0 + 1, groups=("finance",), account="x")
    assert tally(record(named, written), named, None, T0 + 2).counted == ("x",)
    nobody = Vote("y", "approve", T0 + 1, account="y")
    assert not tally(record(named, nobody), named, None, T0 + 2).enough
    mine2 = own(DecisionTerms(quorum=2))
    twice = record(mine2, written, written)
    with pytest.raises(DecisionNotTrusted, match="already counted"):
        check_approval(twice, mine2, None, T0 + 2)


def test_signing_operators(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(world.ops_file))
    assert signing_operators(False) is None
    trusted = signing_operators(None)
    assert trusted is not None and "alice" in trusted.by_name
    missing = tmp_path / "etc-sentinel" / "none.json"
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(missing))
    assert signing_operators(None) is None  # no file: unsigned, as before
    with pytest.raises(SentinelConfigError, match="does not exist"):
        signing_operators(True)
    for name in ("alice", "bob", "carol", "sam"):
        revoke_operator(world.ops_file, name)
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(world.ops_file))
    with pytest.raises(SentinelConfigError, match="trusts no operator"):
        signing_operators(True)
    world.ops_file.chmod(0o666)  # writable by anyone: an agent could trust its own key
    with pytest.raises(SentinelConfigError, match="operators file refused"):
        signing_operators(None)
