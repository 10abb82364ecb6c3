"""The waiting call's check of a decision: which votes count, and whether they are enough.

Run by the process whose call waits, with what *it* knows of its own request — the id, the
digest of the real arguments, its own expiry, the terms of the rule that asked and who it is —
never with what the row says of them: whoever can write the database can write the row. A vote
counts when (signed mode) a trusted operator's key signed exactly this decision and was not
revoked before the check, and (always) the operator may decide the rule (``approvers``, after
``escalate_after`` also ``escalate_to``), is not the agent itself where ``self_approval`` is
off, and has not been counted already.

What signed mode trusts: the operators file (readable by agents, writable only by its admin,
see :mod:`sentinel.trust.operators`) and the operators' private keys. What unsigned mode
trusts: everyone who can write the database — the votes' names and groups are taken as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sentinel.errors import DecisionNotTrusted, SentinelConfigError
from sentinel.identity import os_groups
from sentinel.store.models import DecisionTerms, RequestRecord, Vote
from sentinel.trust.decision import verify_decision
from sentinel.trust.operators import TrustedOperators, load_operators

#: Seconds a signed decision time may lie before the request's creation or after the check:
#: clocks of the deciding and the waiting host differ a little; more is a replay or a forgery.
CLOCK_SKEW = 5.0
#: The reason every refused approval is given (the details follow it).
UNTRUSTED = "decision not signed by a trusted operator"


@dataclass(frozen=True)
class OwnRequest:
    """What the waiting call knows of its own request (never read back from the row)."""

    request_id: str
    digest: str
    created_at: float
    expires_at: float
    terms: DecisionTerms = field(default_factory=DecisionTerms)
    requester: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Tally:
    """The outcome of a check: who counted and why each other vote did not."""

    counted: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]  # (operator as written, why it does not count)
    needed: int

    @property
    def enough(self) -> bool:
        return len(self.counted) >= self.needed

    def explain(self) -> str:
        got = f"{len(self.counted)} of {self.needed} approval(s) count"
        if self.counted:
            got += f" ({', '.join(self.counted)})"
        if not self.refused:
            return got + "; no approving vote was recorded (the row was set to approved directly)"
        why = "; ".join(f"{who or '?'}: {reason}" for who, reason in self.refused)
        return f"{got}; refused: {why}"


def signing_operators(setting: bool | None) -> TrustedOperators | None:
    """The trusted operators decisions must be signed by, or None when they need not be.

    ``setting`` is :attr:`SentinelConfig.require_signed_decisions`: True requires the operators
    file (a missing or unsafe file is an error), False never signs, None (the default) requires
    signatures once the operators file exists. Raises SentinelConfigError for a file that exists
    but cannot be trusted: the caller blocks (doubt never lowers protection)."""
    if setting is False:
        return None
    trusted = load_operators(missing_ok=setting is None)
    if setting is None and not trusted.operators:
        return None
    if setting and not trusted.active_people():
        raise SentinelConfigError(
            f"require_signed_decisions is on but the operators file {trusted.path} trusts "
            "no operator: nobody could approve",
            hint="add one: sentinel operator add NAME --key 'ed25519:…'",
        )
    return trusted


def is_requester(vote: Vote, name: str, requester: Mapping[str, Any] | None) -> bool:
    """Whether ``vote`` (counted as ``name``) was cast by the identity that asked."""
    if not requester:
        return False
    account, token = requester.get("account"), requester.get("token")
    mine = {str(account)} if account else set()
    if token:
        mine.update({f"token:{token}", str(token)})
    return bool(mine & {name, vote.operator, vote.account or ""})


def tally(
    record: RequestRecord,
    own: OwnRequest,
    trusted: TrustedOperators | None,
    now: float,
) -> Tally:
    """Count the approving votes of ``record`` that ``own``'s terms accept (see the module)."""
    terms = own.terms
    counted: list[str] = []
    refused: list[tuple[str, str]] = []
    for vote in record.votes:
        if not vote.approves:
            continue
        name, names, why = _identify(vote, own, trusted, now)
        if why is None:
            allowed = terms.may_decide(vote.decided_at - own.created_at)
            if allowed and not names & set(allowed):
                why = f"not among the approvers ({', '.join(allowed)})"
            elif not terms.self_approval and is_requester(vote, name, own.requester):
                why = "the agent's own identity (the rule forbids self-approval)"
            elif name in counted:
                why = "already counted (each operator counts once)"
        if why is None:
            counted.append(name)
        else:
            refused.append((vote.operator, why))
    return Tally(tuple(counted), tuple(refused), max(1, terms.quorum))


def _identify(
    vote: Vote, own: OwnRequest, trusted: TrustedOperators | None, now: float
) -> tuple[str, frozenset[str], str | None]:
    """(name, what approvers can name it by, why it does not count or None). Besides what the
    operators file and a service bind, an operator is named by the OS groups this host gives the
    account of their name in the operators file (looked up here). Never by the groups of the
    vote's ``account``: a signer writes whatever account they like there, so it proves no
    membership — an operator outside the approvers would name an account inside them."""
    if trusted is None:
        names = {vote.operator, *vote.groups, *os_groups(vote.account)}
        if vote.role:
            names.add(vote.role)
        return vote.operator, frozenset(names), None
    if not vote.signature:
        return vote.operator, frozenset(), "no signature"
    if vote.decided_at < own.created_at - CLOCK_SKEW:
        return vote.operator, frozenset(), "signed before the request existed (a replay)"
    if vote.decided_at > now + CLOCK_SKEW:
        return vote.operator, frozenset(), "signed with a time in the future"
    try:
        who = verify_decision(
            trusted,
            vote.signature,
            request_id=own.request_id,
            digest=own.digest,
            verdict="approve",
            operator=vote.operator,
            decided_at=vote.decided_at,
            expires_at=own.expires_at,
            role=vote.role,
            groups=vote.groups,
            account=vote.account,
            at=now,
        )
    except DecisionNotTrusted as exc:
        return vote.operator, frozenset(), f"{exc.reason}: {exc.detail}"
    # A service signs for a token's name, which the admin never bound to an OS account.
    host_groups = os_groups(who.name) if who.via is None else frozenset()
    return who.name, who.names | host_groups, None


def check_approval(
    record: RequestRecord,
    own: OwnRequest,
    trusted: TrustedOperators | None,
    now: float,
) -> Tally:
    """The tally of an approved ``record``; raises DecisionNotTrusted (reason ``untrusted``, its
    message starting with :data:`UNTRUSTED`) when the counted approvals are short of the
    quorum."""
    if trusted is None and own.terms.is_default:
        # Unsigned and nobody in particular must decide: the row's word is taken, as before.
        return Tally((record.decided_by or "?",), (), 1)
    result = tally(record, own, trusted, now)
    if not result.enough:
        raise DecisionNotTrusted("untrusted", result.explain())
    return result
