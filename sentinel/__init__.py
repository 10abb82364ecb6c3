"""Sentinel: zero-trust governance for AI-agent tool calls.

``from sentinel import protect, SentinelConfig`` is the whole quick start. Importing this package
has no side effects (no ``.env`` loading, no files created, no threads started).
"""

from __future__ import annotations

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

__version__ = "0.2.0"

# Imported eagerly: the submodule ``sentinel.protect`` would otherwise shadow the ``protect``
# function as a package attribute once anything imported the submodule first.
from sentinel.config import SentinelConfig
from sentinel.guard import Guard
from sentinel.protect import clear_wrapper_cache, protect

#: The original package's name for the per-config wrapper.
SentinelWrapper = Guard


__all__ = [
    "ApprovalInterface",
    "ApprovalRequest",
    "ApprovalResult",
    "ApprovalStatus",
    "DecisionConflict",
    "Guard",
    "PolicyError",
    "RequestNotFound",
    "SentinelBlockedError",
    "SentinelConfig",
    "SentinelConfigError",
    "SentinelDeniedError",
    "SentinelError",
    "SentinelTimeoutError",
    "SentinelValidationError",
    "SentinelWrapper",
    "StoreError",
    "__version__",
    "clear_wrapper_cache",
    "protect",
]
