"""``@protect(config)``: the decorator users put on tool functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sentinel.config import SentinelConfig
from sentinel.guard import Guard

F = TypeVar("F", bound=Callable[..., Any])


def get_guard(config: SentinelConfig, context_fn: Callable[..., Any] | None = None) -> Guard:
    """The guard for ``config`` (one per config and context provider, kept on the config itself
    so nothing global keeps configurations alive)."""
    guards: dict[Any, Guard] = config.__dict__.setdefault("_sentinel_guards", {})
    guard = guards.get(context_fn)
    if guard is None:
        guard = Guard(config, context_fn)
        guards[context_fn] = guard
    return guard


def protect(
    config: SentinelConfig | None = None, context_fn: Callable[..., Any] | None = None
) -> Callable[[F], F]:
    """Protect a tool function (sync or async, methods included) with Sentinel.

    Every call is decided by the policy in ``config.rules_path``: allowed calls run, blocked calls
    raise :class:`~sentinel.errors.SentinelBlockedError`, and calls that need approval wait for an
    operator. ``context_fn`` (sync or async) supplies context for the approver; it is called with
    the call's arguments if it accepts any (``def ctx(amount, **_)``), otherwise with none.

    The rules file is loaded here, so an invalid policy fails at decoration time with a
    :class:`~sentinel.errors.SentinelConfigError` naming the file and line.
    """
    cfg = config if config is not None else SentinelConfig()
    guard = get_guard(cfg, context_fn)

    def decorator(func: F) -> F:
        return guard.wrap(func)  # type: ignore[return-value]

    return decorator


def clear_wrapper_cache() -> None:
    """Forget loaded policies (kept for compatibility with agentic-sentinel 0.1.0)."""
    from sentinel.policy_source import PolicySource

    PolicySource.reset()
