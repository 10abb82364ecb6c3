"""A scripted operator for the examples: a real Sentinel approval channel that decides at once.

It plays the person at the command center so the examples finish on their own. Pass ``--queue``
to an example to use the real durable queue instead and decide from another terminal with
``sentinel tui`` or ``sentinel approve <id>`` / ``sentinel deny <id>``.
"""

from __future__ import annotations

import time

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)


class ScriptedOperator(ApprovalInterface):
    """Approves calls whose function name starts with one of ``approve``; denies the rest."""

    def __init__(self, approve: tuple[str, ...] = ("transfer",)) -> None:
        self.approve = approve

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        ok = request.function_name.startswith(self.approve)
        print("\n  ┌ approval requested ─────────────────────────")
        for line in self.format_request(request).splitlines():
            print(f"  │ {line}")
        print(f"  └ scripted operator: {'APPROVE' if ok else 'DENY'}\n")
        return ApprovalResult(
            ApprovalStatus.APPROVED if ok else ApprovalStatus.DENIED,
            request.request_id,
            "scripted-operator",
            "looks fine" if ok else "not allowed in this demo",
            time.time(),
        )
