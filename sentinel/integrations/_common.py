"""What the integrations share: how a rejected call is told to the model.

A blocked, denied or expired call must reach an agent as something it can read and act on (not an
exception that aborts the run), and it must discourage the model from asking again. No decision
logic lives here: the verdict comes from :class:`sentinel.guard.Guard`; this module only words it.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

from sentinel.config import SentinelConfig
from sentinel.errors import (
    SentinelBlockedError,
    SentinelConfigError,
    SentinelDeniedError,
    SentinelTimeoutError,
)
from sentinel.guard import Guard
from sentinel.protect import get_guard
from sentinel.store.models import ArgumentEdit

#: The text a model reads when a call was not executed. Fields: ``{tool}``, ``{reason}``,
#: ``{status}`` (blocked / denied / expired), ``{rule_id}``, ``{request_id}``, ``{hint}`` (the
#: rule's ``deny_hint``). A template without ``{hint}`` gets ``" Hint: <hint>"`` appended when the
#: rule has one, so the model always reads what it may do instead.
DEFAULT_BLOCK_MESSAGE = "{tool} not executed: {reason}. Do not retry this call."

#: What a model reads before the result of a call an operator changed before approving it.
EDIT_NOTE = (
    "Note: an operator changed this {tool} call before approving it ({changes}); it ran with "
    "the changed arguments, not the ones you sent."
)

#: A template string (see :data:`DEFAULT_BLOCK_MESSAGE`) or a function of the exception.
BlockMessage = str | Callable[[SentinelBlockedError], str] | None

_FIELDS = frozenset({"tool", "reason", "status", "rule_id", "request_id", "hint"})


def resolve_guard(
    config: SentinelConfig | None,
    context_fn: Callable[..., Any] | None,
    guard: Guard | None,
    where: str,
) -> Guard:
    """The guard deciding a wrapped tool's calls: the shared one for ``config`` (default
    ``SentinelConfig()``, rules loaded now), or an explicit :class:`Guard` (custom hooks)."""
    if guard is not None:
        if not isinstance(guard, Guard):
            raise SentinelConfigError(
                f"{where}: guard must be a sentinel.guard.Guard, got {type(guard).__name__}",
                field="guard",
            )
        if config is not None or context_fn is not None:
            raise SentinelConfigError(
                f"{where}: give either guard= or config/context_fn, not both",
                field="guard",
                hint="a Guard already has its config and context provider",
            )
        return guard
    cfg = config if config is not None else SentinelConfig()
    if not isinstance(cfg, SentinelConfig):
        raise SentinelConfigError(
            f"{where}: config must be a SentinelConfig, got {type(cfg).__name__}", field="config"
        )
    return get_guard(cfg, context_fn)


def outcome(exc: SentinelBlockedError) -> str:
    """``denied``, ``expired`` or ``blocked``: how the call ended."""
    if isinstance(exc, SentinelDeniedError):
        return "denied"
    if isinstance(exc, SentinelTimeoutError):
        return "expired"
    return "blocked"


def check_block_message(message: BlockMessage, where: str) -> BlockMessage:
    """Validate a ``block_message`` option when the tool is wrapped, not when a call is rejected
    (a broken template must not turn a rejection into a crash in the middle of an agent run)."""
    if message is None or callable(message):
        return message
    if not isinstance(message, str):
        raise SentinelConfigError(
            f"{where}: block_message must be a string template or a callable, "
            f"got {type(message).__name__}",
            field="block_message",
        )
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}
    except ValueError as exc:
        raise SentinelConfigError(
            f"{where}: block_message is not a valid template: {exc}", field="block_message"
        ) from None
    unknown = sorted(n for n in names if n not in _FIELDS)
    if unknown or "" in names:
        bad = ", ".join("{" + n + "}" for n in unknown) or "{}"
        raise SentinelConfigError(
            f"{where}: block_message uses unknown field {bad}",
            field="block_message",
            hint="use {tool}, {reason}, {status}, {rule_id}, {request_id} or {hint}",
        )
    return message


def render_block(exc: SentinelBlockedError, message: BlockMessage, tool: str) -> str:
    """The text the model reads for a call that was not executed."""
    if callable(message):
        text = message(exc)
        if not isinstance(text, str):
            raise TypeError(
                f"block_message callable for {tool!r} must return str, got {type(text).__name__}"
            )
        return text
    template = message if message is not None else DEFAULT_BLOCK_MESSAGE
    reason = str(exc.reason or "").strip().rstrip(".") or "no reason given"
    hint = str(getattr(exc, "hint", None) or "").strip()
    text = template.format(
        tool=tool,
        reason=reason,
        status=outcome(exc),
        rule_id=exc.rule_id or "",
        request_id=exc.request_id or "",
        hint=hint,
    )
    if hint and "{hint}" not in template:
        text += f" Hint: {hint.rstrip('.')}."
    return text


def render_edit(edit: ArgumentEdit, tool: str) -> str:
    """The note a model reads before the result of a call an operator edited (which parameters
    changed, from what to what)."""
    return EDIT_NOTE.format(tool=tool, changes=edit.describe() or "arguments changed")


def edit_details(edit: ArgumentEdit, request_id: str | None = None) -> dict[str, Any]:
    """Machine-readable facts about an edited approval (for artifacts and traces)."""
    return {
        "sentinel": {
            "status": "edited",
            "request_id": request_id,
            "changes": [c.to_dict() for c in edit.changes],
            "operator": edit.operator,
        }
    }


def block_details(exc: SentinelBlockedError, tool: str) -> dict[str, Any]:
    """Machine-readable facts about a rejection (kept out of the model's view where the
    framework allows it, e.g. a LangChain ``ToolMessage.artifact``)."""
    return {
        "sentinel": {
            "status": outcome(exc),
            "tool": tool,
            "reason": exc.reason,
            "rule_id": exc.rule_id,
            "request_id": exc.request_id,
            "hint": getattr(exc, "hint", None),
        }
    }
