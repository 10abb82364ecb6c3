"""Decision signatures: every forgery an agent with the database could try is refused, and why."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from sentinel.errors import DecisionNotTrusted, SentinelError
from sentinel.normalize import canonical_text
from sentinel.trust import (
    DOMAIN,
    OperatorKey,
    SignedDecision,
    add_operator,
    load_operators,
    revoke_operator,
    sign_decision,
    verify_decision,
)

FIELDS = dict(
    request_id="req-1",
    digest="a" * 64,
    verdict="approve",
    operator="alice",
    decided_at=1_000.0,
    expires_at=1_300.0,
)


def _refused(trusted, signature: str, reason: str, **changes) -> str:
    with pytest.raises(DecisionNotTrusted) as info:
        verify_decision(trusted, signature, **{**FIELDS, **changes})
    assert info.value.reason == reason, str(info.value)
    assert str(info.value).startswith("decision not signed by a trusted operator: ")
    return str(info.value)


def test_a_signed_decision_verifies_with_the_trusted_entry(
    ops_file: Path, alice: OperatorKey
) -> None:
    sig = sign_decision(alice, **FIELDS)
    who = verify_decision(load_operators(ops_file), sig, **FIELDS)
    assert (who.name, who.key_id, who.groups) == ("alice", alice.key_id, ("finance",))
    assert sig.startswith(alice.key_id + ":")
    assert issubclass(DecisionNotTrusted, SentinelError)


def test_role_and_groups_are_bound(ops_file: Path, alice: OperatorKey) -> None:
    sig = sign_decision(alice, **FIELDS, role="operator", groups=["finance", "ops"])
    trusted = load_operators(ops_file)
    who = verify_decision(trusted, sig, **FIELDS, role="operator", groups=("ops", "finance", "ops"))
    assert who.role == "operator" and who.signed_groups == ("finance", "ops")
    _refused(trusted, sig, "mismatch", role="admin", groups=["finance", "ops"])
    _refused(trusted, sig, "mismatch", role="operator", groups=["finance"])
    _refused(trusted, sig, "mismatch")  # role and groups dropped


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": "req-2"},  # copied onto another waiting request
        {"digest": "b" * 64},  # the arguments changed after the decision
        {"expires_at": 9_999.0},  # the expiry pushed out
        {"expires_at": None},
        {"decided_at": 1_001.0},
    ],
)
def test_a_signature_moved_to_other_fields_is_refused(
    ops_file: Path, alice: OperatorKey, change: dict
) -> None:
    sig = sign_decision(alice, **FIELDS)
    text = _refused(load_operators(ops_file), sig, "mismatch", **change)
    assert "does not match this decision" in text and "'alice'" in text


def test_the_verdict_cannot_be_flipped_either_way(ops_file: Path, alice: OperatorKey) -> None:
    trusted = load_operators(ops_file)
    approve = sign_decision(alice, **FIELDS)
    deny = sign_decision(alice, **{**FIELDS, "verdict": "deny"})
    _refused(trusted, approve, "mismatch", verdict="deny")
    _refused(trusted, deny, "mismatch", verdict="approve")


def test_an_unknown_key_is_refused(ops_file: Path, make_key, alice: OperatorKey) -> None:
    mallory = make_key("mallory")  # a real key, never trusted (an agent can make one)
    sig = sign_decision(mallory, **FIELDS)
    text = _refused(load_operators(ops_file), sig, "unknown_key")
    assert mallory.key_id in text and str(ops_file) in text


def test_another_operators_key_cannot_speak_for_alice(
    ops_file: Path, make_key, alice: OperatorKey
) -> None:
    bob = make_key("bob")
    add_operator(ops_file, "bob", bob.public_key)
    sig = sign_decision(bob, **FIELDS)  # names operator alice
    text = _refused(load_operators(ops_file), sig, "operator_mismatch")
    assert "names operator 'alice' but is signed with the key of 'bob'" in text


def test_a_revoked_key_is_refused_from_its_revocation_on(
    ops_file: Path, alice: OperatorKey
) -> None:
    before = sign_decision(alice, **{**FIELDS, "decided_at": 900.0})
    at = sign_decision(alice, **FIELDS)
    revoke_operator(ops_file, "alice", at=1_000.0)
    trusted = load_operators(ops_file)
    assert verify_decision(trusted, before, **{**FIELDS, "decided_at": 900.0}).name == "alice"
    text = _refused(trusted, at, "revoked")
    assert "revoked at 1000.0, before the decision at 1000.0" in text


def test_a_decision_after_expiry_is_refused(ops_file: Path, alice: OperatorKey) -> None:
    late = {**FIELDS, "decided_at": 1_301.0}
    sig = sign_decision(alice, **late)
    _refused(load_operators(ops_file), sig, "expired", decided_at=1_301.0)


@pytest.mark.parametrize(
    "signature",
    ["", "approved", "ed25519:zz:AAAA", "ed25519:0123456789abcdef:" + "A" * 10, None],
)
def test_malformed_signatures_are_refused(ops_file: Path, alice: OperatorKey, signature) -> None:
    _refused(load_operators(ops_file), signature, "malformed")


def test_a_garbled_signature_with_a_trusted_key_id_is_a_mismatch(
    ops_file: Path, alice: OperatorKey
) -> None:
    sig = sign_decision(alice, **FIELDS)
    key_part, b64 = sig.rsplit(":", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    _refused(
        load_operators(ops_file), key_part + ":" + base64.b64encode(bytes(raw)).decode(), "mismatch"
    )


def test_fields_that_cannot_be_signed_are_refused(ops_file: Path, alice: OperatorKey) -> None:
    sig = sign_decision(alice, **FIELDS)
    trusted = load_operators(ops_file)
    _refused(trusted, sig, "malformed", verdict="approved")
    _refused(trusted, sig, "malformed", request_id="")
    _refused(trusted, sig, "malformed", decided_at=float("nan"))
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        sign_decision(alice, **{**FIELDS, "verdict": "maybe"})


def test_the_message_is_domain_tagged_canonical_json_and_times_are_one_form() -> None:
    a = SignedDecision(**{**FIELDS, "decided_at": 1000, "expires_at": 1300})
    b = SignedDecision(**FIELDS)
    assert a.message() == b.message()
    data = json.loads(b.message())
    assert data["domain"] == DOMAIN == "sentinel-decision-v1"
    assert b.message().decode() == canonical_text(data)
    assert set(data) == {"domain", *FIELDS, "role", "groups", "account"}


def test_a_signature_over_the_raw_fields_without_the_domain_does_not_verify(
    ops_file: Path, alice: OperatorKey
) -> None:
    """A key's signature over other bytes (e.g. the same JSON without the tag, as another
    protocol might sign) is never a decision."""
    data = json.loads(SignedDecision(**FIELDS).message())
    del data["domain"]
    forged = base64.b64encode(alice.sign(canonical_text(data).encode())).decode()
    _refused(load_operators(ops_file), f"{alice.key_id}:{forged}", "mismatch")


def test_a_tampered_operators_file_mode_means_nothing_verifies(
    ops_file: Path, alice: OperatorKey
) -> None:
    from sentinel.errors import SentinelConfigError

    sign_decision(alice, **FIELDS)
    os.chmod(ops_file, 0o666)  # an agent made it writable to add its own key
    with pytest.raises(SentinelConfigError, match="operators file refused"):
        load_operators(ops_file)
