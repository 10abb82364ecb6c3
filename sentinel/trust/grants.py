"""Signed standing grants: an operator's Ed25519 signature over exactly the terms they granted.

The signed message is the canonical JSON of ``{"domain": "sentinel-grant-v1", **terms}`` where
the terms are :meth:`~sentinel.store.grants.GrantRecord.terms`: the grant id, agent, function,
bounds, expiry, caps, the rule and request it was made for, its creation time and the operator
name it is signed under. A signature copied onto another grant, or onto wider terms, does not
verify. The signature string has the decision format (``ed25519:<key id>:<base64>``), and the
domain tag keeps a grant signature from ever being valid as a decision (or the reverse).

A call about to run under a grant verifies the row's signature with :func:`verify_grant` against
the trusted operators *at the time of the call*: a grant whose signer's key was revoked since no
longer lets anything run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sentinel.errors import DecisionNotTrusted
from sentinel.normalize import canonical_text
from sentinel.store.grants import GrantRecord, NewGrant
from sentinel.trust.decision import SIGNATURE_RE, VerifiedOperator
from sentinel.trust.keys import PUBLIC_PREFIX, OperatorKey
from sentinel.trust.operators import TrustedOperators

GRANT_DOMAIN = "sentinel-grant-v1"


def grant_terms(new: NewGrant, signer: str) -> dict[str, Any]:
    """The terms of ``new`` as :meth:`GrantRecord.terms` will return them once stored."""
    if new.created_at is None:
        raise ValueError("a grant is signed with its creation time: set NewGrant.created_at")
    return {
        "id": new.id,
        "agent": new.agent,
        "function": new.function,
        "bounds": [b.to_dict() for b in new.bounds],
        "expires_at": new.expires_at,
        "max_count": new.max_count,
        "max_total": new.max_total,
        "rule_id": new.rule_id,
        "request_id": new.request_id,
        "created_at": new.created_at,
        "signer": signer,
    }


def grant_message(terms: Mapping[str, Any]) -> bytes:
    """The exact bytes a grant signature covers."""
    return canonical_text({"domain": GRANT_DOMAIN, **terms}).encode("utf-8")


def sign_grant(key: OperatorKey, new: NewGrant, signer: str) -> NewGrant:
    """``new`` signed by ``key`` as operator ``signer`` (``signer`` / ``signature`` set)."""
    sig = base64.b64encode(key.sign(grant_message(grant_terms(new, signer)))).decode("ascii")
    return replace(new, signer=signer, signature=f"{key.key_id}:{sig}")


def verify_grant(trusted: TrustedOperators, grant: GrantRecord, at: float) -> VerifiedOperator:
    """Check that a trusted operator, not revoked at ``at``, signed exactly this grant's terms.

    Raises :class:`~sentinel.errors.DecisionNotTrusted`: ``unsigned``, ``malformed``,
    ``unknown_key``, ``revoked``, ``operator_mismatch`` or ``mismatch`` (the row's terms are not
    what was signed)."""
    label = f"grant {grant.id!r}"
    if not grant.signature or not grant.signer:
        raise DecisionNotTrusted("unsigned", f"{label} carries no operator signature")
    match = SIGNATURE_RE.match(grant.signature)
    if match is None:
        raise DecisionNotTrusted("malformed", f"{label}: the signature is not 'ed25519:…'")
    key_id = PUBLIC_PREFIX + match.group(1)
    entry = trusted.by_key.get(key_id)
    if entry is None or entry.key is None:
        raise DecisionNotTrusted(
            "unknown_key", f"{label}: key {key_id} is not in the trusted operators file"
        )
    if entry.revoked_by(max(grant.created_at, at)):
        raise DecisionNotTrusted(
            "revoked", f"{label}: the key of operator {entry.name!r} was revoked at {entry.revoked_at}"
        )
    if entry.name != grant.signer and not entry.is_service:
        raise DecisionNotTrusted(
            "operator_mismatch",
            f"{label} names operator {grant.signer!r} but is signed with the key of {entry.name!r}",
        )
    try:
        entry.key.verify(
            base64.b64decode(match.group(2), validate=True), grant_message(grant.terms())
        )
    except (binascii.Error, ValueError):
        raise DecisionNotTrusted("malformed", f"{label}: bad base64") from None
    except Exception:  # cryptography's InvalidSignature
        raise DecisionNotTrusted(
            "mismatch",
            f"{label}: the signature by {entry.name!r} does not match the grant's terms "
            "(agent, function, bounds, expiry, caps or times differ from what was signed)",
        ) from None
    if entry.is_service:
        person = trusted.by_name.get(grant.signer)
        groups = person.groups if person is not None and not person.is_service else ()
        return VerifiedOperator(grant.signer, entry.key_id, groups, via=entry.name)
    return VerifiedOperator(entry.name, entry.key_id, entry.groups)


__all__ = ["GRANT_DOMAIN", "grant_message", "grant_terms", "sign_grant", "verify_grant"]
