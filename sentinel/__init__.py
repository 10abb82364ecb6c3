"""Sentinel: zero-trust governance for AI-agent tool calls.

``from sentinel import protect, SentinelConfig`` is the whole quick start. Importing this package
has no side effects (no ``.env`` loading, no files created); heavier parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.guard import Guard
    from sentinel.guard import Guard as SentinelWrapper
    from sentinel.protect import clear_wrapper_cache, protect

_LAZY = {
    "SentinelConfig": ("sentinel.config", "SentinelConfig"),
    "Guard": ("sentinel.guard", "Guard"),
    "SentinelWrapper": ("sentinel.guard", "Guard"),  # the original package's name
    "protect": ("sentinel.protect", "protect"),
    "clear_wrapper_cache": ("sentinel.protect", "clear_wrapper_cache"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sentinel' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


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
