"""The approval channel interface.

A channel receives an :class:`ApprovalRequest` and returns an :class:`ApprovalResult`. The guard
calls channels only through :meth:`ApprovalInterface.request_approval`, always on an asyncio loop
(synchronous callers run it on the guard's private loop thread), so a channel never has to care
whether the protected function is sync or async.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ApprovalStatus(StrEnum):
    """Where an approval request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    TIMEOUT = "expired"
    CANCELLED = "cancelled"
    ERROR = "error"

    # The original package's name for an expired request.
    @classmethod
    def from_text(cls, text: str) -> ApprovalStatus:
        """Parse a status word (case-insensitive; ``timeout`` means expired)."""
        word = text.strip().lower()
        if word in ("timeout", "timed_out"):
            return cls.TIMEOUT
        return cls(word)


def new_request_id() -> str:
    """A fresh, unguessable request id (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass
class ApprovalRequest:
    """A call waiting for a person's decision.

    ``parameters`` are the JSON-safe arguments as sent; ``display_parameters`` the redacted copy
    shown to people; ``digest`` the SHA-256 of the canonical arguments the decision binds to.
    """

    function_name: str
    parameters: dict[str, Any]
    rule_id: str
    reason: str
    agent_id: str | None = None
    context: dict[str, Any] | None = None
    request_id: str = field(default_factory=new_request_id)
    display_parameters: dict[str, Any] | None = None
    digest: str = ""
    rule_ids: list[str] = field(default_factory=list)
    value_at_risk: float | None = None
    risk_score: float | None = None
    risk_explanation: str | None = None
    timeout_seconds: float = 300.0
    created_at: float = field(default_factory=time.time)
    policy_version: str | None = None

    @property
    def action_id(self) -> str:
        """The original package's name for the request id."""
        return self.request_id

    @property
    def expires_at(self) -> float:
        """Wall-clock expiry (epoch seconds)."""
        return self.created_at + self.timeout_seconds


@dataclass
class ApprovalResult:
    """The outcome of an approval request."""

    status: ApprovalStatus
    action_id: str = ""
    approved_by: str | None = None
    reason: str | None = None
    decided_at: float | None = None
    timeout_seconds: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None

    @property
    def is_approved(self) -> bool:
        return self.status is ApprovalStatus.APPROVED

    @property
    def is_denied(self) -> bool:
        return self.status is ApprovalStatus.DENIED

    @property
    def is_timeout(self) -> bool:
        return self.status is ApprovalStatus.TIMEOUT

    @property
    def is_error(self) -> bool:
        return self.status is ApprovalStatus.ERROR


class ApprovalInterface(ABC):
    """Base class of approval channels. Subclass it and pass an instance as
    ``SentinelConfig(approval_interface=...)``."""

    @abstractmethod
    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        """Ask for a decision and return it. Must not raise for ordinary outcomes."""

    def format_request(self, request: ApprovalRequest) -> str:
        """A plain-text rendering of the request (already redacted and terminal-safe)."""
        from sentinel.redact import safe_text

        params = request.display_parameters or request.parameters
        lines = [
            f"Request:   {request.request_id}",
            f"Function:  {safe_text(request.function_name)}",
        ]
        if request.agent_id:
            lines.append(f"Agent:     {safe_text(request.agent_id)}")
        lines.append(f"Rule:      {safe_text(request.rule_id)}")
        lines.append(f"Reason:    {safe_text(request.reason)}")
        lines.append("Arguments:")
        for key, value in params.items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            lines.append(f"  {safe_text(str(key), 40)} = {safe_text(shown, 200)}")
        if request.context:
            lines.append("Context:")
            for key, value in request.context.items():
                shown = value if isinstance(value, str) else json.dumps(value, default=str)
                lines.append(f"  {safe_text(str(key), 40)} = {safe_text(shown, 200)}")
        if request.value_at_risk is not None:
            lines.append(f"Value at risk: {request.value_at_risk:,.2f}")
        if request.risk_score is not None:
            lines.append(f"Risk:      {request.risk_score:.1f}/10 {request.risk_explanation or ''}")
        return "\n".join(lines)
