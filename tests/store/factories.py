"""Factories for store tests (import as ``from tests.store.factories import …``)."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sentinel.store import NewRequest, OperatorIdentity
from sentinel.store.baselines import BaselineRow, LearnPlan, NumberWindow, SeenValue


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


def _fold_number(
    param: str, before: NumberWindow, values: Sequence[float], times: Sequence[float]
) -> tuple[BaselineRow, bytes, bytes]:
    vals = before.vals + struct.pack(f"{len(values)}d", *values)
    ts = before.times + struct.pack(f"{len(times)}d", *times)
    seen = struct.unpack(f"{len(vals) // 8}d", vals)
    row = BaselineRow(
        param, "number", len(seen), len(seen), float(len(seen)), times[0], times[-1],
        mean=sum(seen) / len(seen),
    )  # fmt: skip
    return row, vals, ts


def _fold_rate(row: BaselineRow | None, calls: int, now: float) -> BaselineRow:
    n = calls + (row.n if row else 0)
    return BaselineRow("", "rate", n, 0, float(n), now if row is None else row.first_at, now)


def learn_plan(amount: float, to: str) -> LearnPlan:
    """One call's learning (an amount and a recipient), with simple folds, for store tests."""
    return LearnPlan(
        numbers={"amount": [amount]},
        times=[1000.0],
        fold_number=_fold_number,
        categories=[SeenValue("to", f"to={to}", to)],
        rate_calls=1,
        fold_rate=_fold_rate,
    )
