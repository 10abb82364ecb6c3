"""Sentinel: zero-trust governance for AI-agent tool calls."""

from __future__ import annotations

__version__ = "0.2.0"

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)
from sentinel.errors import (
    DecisionConflict,
    PolicyError,
    RequestNotFound,
    SentinelBlockedError,
    SentinelConfigError,
    SentinelDeniedError,
    SentinelError,
    SentinelTimeoutError,
    SentinelValidationError,
    StoreError,
)

__all__ = [
    "ApprovalInterface",
    "ApprovalRequest",
    "ApprovalResult",
    "ApprovalStatus",
    "DecisionConflict",
    "PolicyError",
    "RequestNotFound",
    "SentinelBlockedError",
    "SentinelConfigError",
    "SentinelDeniedError",
    "SentinelError",
    "SentinelTimeoutError",
    "SentinelValidationError",
    "StoreError",
    "__version__",
]
