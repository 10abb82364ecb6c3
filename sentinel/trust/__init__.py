"""Operators and signed decisions (the foundation of issue 16).

* :mod:`sentinel.trust.keys` — an operator's Ed25519 key pair (private half mode 0600);
* :mod:`sentinel.trust.operators` — the trusted operators file agents can read but not write;
* :mod:`sentinel.trust.decision` — signing and verifying a decision over the request id, the
  argument digest, the verdict, the operator and the times.

Nothing here is wired into the waiting call yet: it does not verify signatures (the next step).
"""

from __future__ import annotations

from sentinel.errors import DecisionNotTrusted
from sentinel.trust.decision import (
    DOMAIN,
    VERDICTS,
    SignedDecision,
    VerifiedOperator,
    sign_decision,
    verify_decision,
)
from sentinel.trust.keys import OperatorKey, default_key_path, generate_key, load_key
from sentinel.trust.operators import (
    TrustedOperator,
    TrustedOperators,
    add_operator,
    load_operators,
    operators_path,
    revoke_operator,
    write_operators,
)

__all__ = [
    "DOMAIN",
    "VERDICTS",
    "DecisionNotTrusted",
    "OperatorKey",
    "SignedDecision",
    "TrustedOperator",
    "TrustedOperators",
    "VerifiedOperator",
    "add_operator",
    "default_key_path",
    "generate_key",
    "load_key",
    "load_operators",
    "operators_path",
    "revoke_operator",
    "sign_decision",
    "verify_decision",
    "write_operators",
]
