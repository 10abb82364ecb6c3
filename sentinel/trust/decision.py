"""Signed decisions: an operator's Ed25519 signature over exactly what they decided.

The signed message is the canonical JSON (:func:`sentinel.normalize.canonical_text`) of::

    {"domain": "sentinel-decision-v1", "request_id": …, "digest": …, "verdict": …,
     "operator": …, "decided_at": …, "expires_at": …, "role": …, "groups": […]}

The domain tag keeps a decision signature from ever being valid for anything else (an audit
anchor, a later format), and every field is bound: a signature copied onto another request, onto
changed arguments (digest), onto the other verdict or onto another expiry does not verify.

A signature travels as one string, ``ed25519:<key id hex>:<base64 signature>``; the key id says
which trusted key to check it with (:mod:`sentinel.trust.operators`).

What this module does not decide: whether ``decided_at`` is plausible (the waiting call compares
it with its own clock and the row's time) and whether the operator may decide the rule
(``approvers``, quorum) — the next step builds those on :func:`verify_decision`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sentinel.errors import DecisionNotTrusted
from sentinel.normalize import canonical_text
from sentinel.trust.keys import PUBLIC_PREFIX, OperatorKey
from sentinel.trust.operators import TrustedOperators

DOMAIN = "sentinel-decision-v1"
#: What a decision can say. Edits, grants and quorum votes join this list when they are signed.
VERDICTS = ("approve", "deny")
SIGNATURE_RE = re.compile(r"ed25519:([0-9a-f]{16}):([A-Za-z0-9+/]{86}==)\Z")


@dataclass(frozen=True)
class SignedDecision:
    """The fields a decision signature covers (validated when built)."""

    request_id: str
    digest: str
    verdict: str
    operator: str
    decided_at: float
    expires_at: float | None
    role: str | None = None
    groups: tuple[str, ...] = ()
    account: str | None = None  # the deciding OS account, or token:<name> via the API

    def __post_init__(self) -> None:
        for name in ("request_id", "digest", "operator"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        for name in ("decided_at", "expires_at"):
            value = getattr(self, name)
            if value is None and name == "expires_at":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a time in seconds, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, not {value!r}")
            # 100 and 100.0 are the same time: one canonical form, so both sides agree.
            object.__setattr__(self, name, float(value))
        for name in ("role", "account"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, not {value!r}")
        groups = self.groups
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"groups must be a list of names, not {groups!r}")
        # Order and repeats carry no meaning: sorted and unique, so they cannot make a mismatch.
        object.__setattr__(self, "groups", tuple(sorted(set(groups))))

    def message(self) -> bytes:
        """The exact bytes signed."""
        return canonical_text(
            {
                "domain": DOMAIN,
                "request_id": self.request_id,
                "digest": self.digest,
                "verdict": self.verdict,
                "operator": self.operator,
                "decided_at": self.decided_at,
                "expires_at": self.expires_at,
                "role": self.role,
                "groups": list(self.groups),
                "account": self.account,
            }
        ).encode("utf-8")


@dataclass(frozen=True)
class VerifiedOperator:
    """Who made a decision whose signature verified: the operator's name, the key id, the groups
    the operators file gives them, and the role/groups the signature bound (an API token's).
    ``via`` names the service key that signed on the operator's behalf (``sentinel serve``)."""

    name: str
    key_id: str
    groups: tuple[str, ...]
    role: str | None = None
    signed_groups: tuple[str, ...] = ()
    via: str | None = None

    @property
    def names(self) -> frozenset[str]:
        """Everything an ``approvers:`` list can name this operator by: their name, their groups
        from the operators file and, when a service signed for them, the token's role and
        groups it bound (a service is trusted to say what its tokens are)."""
        names = {self.name, *self.groups}
        if self.via is not None:
            names.update(self.signed_groups)
            if self.role:
                names.add(self.role)
        return frozenset(names)


def sign_decision(
    key: OperatorKey,
    *,
    request_id: str,
    digest: str,
    verdict: str,
    operator: str,
    decided_at: float,
    expires_at: float | None,
    role: str | None = None,
    groups: Iterable[str] = (),
    account: str | None = None,
) -> str:
    """Sign a decision with ``key``; returns ``ed25519:<key id>:<base64 signature>``.

    Raises ValueError for a field that cannot be signed (empty id, unknown verdict, …)."""
    decision = SignedDecision(
        request_id, digest, verdict, operator, decided_at, expires_at, role, tuple(groups), account
    )
    sig = base64.b64encode(key.sign(decision.message())).decode("ascii")
    return f"{key.key_id}:{sig}"


def verify_decision(
    trusted: TrustedOperators,
    signature: str,
    *,
    request_id: str,
    digest: str,
    verdict: str,
    operator: str,
    decided_at: float,
    expires_at: float | None,
    role: str | None = None,
    groups: Iterable[str] = (),
    account: str | None = None,
    at: float | None = None,
) -> VerifiedOperator:
    """Check that a trusted, unrevoked operator signed exactly this decision.

    A key counts as revoked when it was revoked at or before ``decided_at`` — or before ``at``
    when given: the waiting call passes its own clock, so a stolen key revoked while a request
    waits cannot approve it with a back-dated time. A ``service`` key may sign for any operator
    name (``sentinel serve`` on behalf of a token); its decision's groups are those it bound.

    Raises :class:`~sentinel.errors.DecisionNotTrusted` saying why not: ``malformed`` (not a
    signature string, or fields that cannot have been signed), ``unknown_key``, ``revoked``
    (revoked at or before ``decided_at``), ``operator_mismatch`` (the key is another operator's),
    ``expired`` (decided after ``expires_at``) or ``mismatch`` (the signature is not over these
    fields: another request id, digest, verdict, operator, time, expiry, role or groups)."""
    match = SIGNATURE_RE.match(signature) if isinstance(signature, str) else None
    if match is None:
        raise DecisionNotTrusted(
            "malformed",
            f"signature {str(signature)[:40]!r} is not 'ed25519:<key id>:<base64 signature>'",
        )
    try:
        decision = SignedDecision(
            request_id,
            digest,
            verdict,
            operator,
            decided_at,
            expires_at,
            role,
            tuple(groups),
            account,
        )
    except ValueError as exc:
        raise DecisionNotTrusted("malformed", f"request {request_id!r}: {exc}") from None
    key_id = PUBLIC_PREFIX + match.group(1)
    entry = trusted.by_key.get(key_id)
    if entry is None or entry.key is None:
        raise DecisionNotTrusted(
            "unknown_key",
            f"request {request_id!r}: key {key_id} is not in the trusted operators file"
            + (f" {trusted.path}" if trusted.path is not None else ""),
        )
    checked_at = decision.decided_at if at is None else max(decision.decided_at, at)
    if entry.revoked_by(checked_at):
        raise DecisionNotTrusted(
            "revoked",
            f"request {request_id!r}: the key of operator {entry.name!r} was revoked at "
            f"{entry.revoked_at}, before "
            + (f"the decision at {decision.decided_at}" if at is None else "it was checked"),
        )
    if entry.name != decision.operator and not entry.is_service:
        raise DecisionNotTrusted(
            "operator_mismatch",
            f"request {request_id!r}: the decision names operator {decision.operator!r} but is "
            f"signed with the key of {entry.name!r}",
        )
    try:
        entry.key.verify(base64.b64decode(match.group(2), validate=True), decision.message())
    except (binascii.Error, ValueError):
        raise DecisionNotTrusted("malformed", f"request {request_id!r}: bad base64") from None
    except Exception:  # cryptography's InvalidSignature: the one outcome that matters here
        raise DecisionNotTrusted(
            "mismatch",
            f"request {request_id!r}: the signature by {entry.name!r} does not match this "
            "decision (request id, argument digest, verdict, times, role, groups or account "
            "differ from what was signed)",
        ) from None
    if decision.expires_at is not None and decision.decided_at > decision.expires_at:
        raise DecisionNotTrusted(
            "expired",
            f"request {request_id!r}: decided at {decision.decided_at}, after the request "
            f"expired at {decision.expires_at}",
        )
    if entry.is_service:
        person = trusted.by_name.get(decision.operator)
        if person is not None and not person.is_service and person.revoked_by(checked_at):
            raise DecisionNotTrusted(
                "revoked",
                f"request {request_id!r}: service {entry.name!r} signed for operator "
                f"{decision.operator!r}, whose key was revoked at {person.revoked_at}",
            )
        own = person.groups if person is not None and not person.is_service else ()
        return VerifiedOperator(
            decision.operator, entry.key_id, own, decision.role, decision.groups, via=entry.name
        )
    return VerifiedOperator(entry.name, entry.key_id, entry.groups, decision.role, decision.groups)
