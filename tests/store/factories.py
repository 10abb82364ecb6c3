"""Factories for store tests (import as ``from tests.store.factories import …``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sentinel.store import NewRequest, OperatorIdentity


def new_request(**overrides: Any) -> NewRequest:
    """A valid NewRequest; any field can be overridden."""
    fields: dict[str, Any] = dict(
        id=uuid.uuid4().hex,
        function="transfer",
        # What a guard submits: the redacted copy (the real values are never stored).
        arguments={"amount": 1500, "to": "acct-9", "api_key": "[REDACTED]"},
        digest="ab" * 32,
        timeout_seconds=300.0,
        agent_id="billing",
        rule_id="large-transfer",
        rule_ids=("large-transfer",),
        reason="amount over 1000",
        value_at_risk=1500.0,
        created_at=time.time(),
    )
    fields.update(overrides)
    return NewRequest(**fields)


def operator(account: str = "alice", **overrides: Any) -> OperatorIdentity:
    fields: dict[str, Any] = dict(
        account=account,
        uid=1000,
        login_uid=1000,
        login_account=account,
        host="ops1",
        ssh_client=None,
    )
    fields.update(overrides)
    return OperatorIdentity(**fields)
