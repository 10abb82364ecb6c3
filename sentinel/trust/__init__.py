"""Operators and signed decisions.

* :mod:`sentinel.trust.keys` — an operator's Ed25519 key pair (private half mode 0600);
* :mod:`sentinel.trust.operators` — the trusted operators file agents can read but not write;
* :mod:`sentinel.trust.decision` — signing and verifying a decision over the request id, the
  argument digest, the verdict, the operator, the times, role, groups and account;
* :mod:`sentinel.trust.decide` — :class:`~sentinel.trust.decide.Decider`, the one way every
  command center, CLI and the API decide (refusals first, then a signed vote);
* :mod:`sentinel.trust.check` — the waiting call's check of the votes before it runs.
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
