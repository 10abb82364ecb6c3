"""OpenAI Agents SDK: ``FunctionTool``s protected by Sentinel.

``protect_function_tool(tool, config)`` returns a copy of a ``FunctionTool`` (name, description,
``params_json_schema``, strictness, guardrails, timeouts… unchanged) whose invocation goes through
the one decision core, :class:`sentinel.guard.Guard`:

* the model's JSON arguments are validated and coerced with the tool's own parameter model (the
  one ``@function_tool`` built from the signature) before the rules see them; for other function
  tools (custom ``on_invoke_tool``, MCP, agents as tools) the rules see the parsed JSON;
* allowed calls run the original tool; blocked, denied and expired calls are returned to the
  model as the tool's output (``"<tool> not executed: <reason>. Do not retry this call."``,
  followed by the rule's ``deny_hint`` when it has one) and the tool never runs;
  ``raise_on_block=True`` raises instead, which ends the run (the SDK reports it as
  ``agents.exceptions.UserError`` with the Sentinel exception as ``__cause__``);
* a call an operator approved with edited arguments (queue mode) runs once with the model's
  JSON and the operator's values in place, and the output the model reads starts with
  ``"Note: an operator changed this <tool> call before approving it (amount: 5000 → 400); …"``.
  The SDK's own ``RunState.approve`` (``approvals="sdk"``) cannot carry an edit.

Two ways to get a person's decision (``approvals=``):

``"queue"`` (default)
    The tool call waits in Sentinel's durable SQLite queue until an operator decides it in the
    command center (``sentinel tui``) or with ``sentinel approve`` / ``sentinel deny``. The run
    simply takes longer; nothing in the application changes.

``"sdk"``
    The SDK's own human-in-the-loop: the tool gets ``needs_approval`` backed by the Sentinel
    policy, so a call the policy sends for approval ends the run with ``result.interruptions``;
    the application calls ``state.approve(item)`` / ``state.reject(item)`` and resumes with
    ``Runner.run(agent, state)``. When an approved call then runs, the guard records it in the
    queue as approved through the SDK (channel ``OpenAIAgentsApproval``, the process's OS account),
    checks the arguments are the ones approved, and audits the outcome. If the guard wants an
    approval the SDK did not give (the policy changed or anomaly detection escalated since), the
    call waits in the queue as in ``"queue"`` mode. Rejections made with ``state.reject`` never
    reach the tool, so they appear in the SDK's run state, not in Sentinel's audit.

No allow / block / approve logic lives here: ``needs_approval`` asks ``Guard.decide`` and the tool
wrapper runs ``Guard.run_async``.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

try:
    from agents import FunctionTool, RunContextWrapper, function_tool
    from agents.function_schema import function_schema
    from agents.tool_context import ToolContext
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sentinel.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'sentinel-guard[openai-agents]'"
    ) from _exc

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)
from sentinel.config import SentinelConfig
from sentinel.edits import model_schema
from sentinel.errors import SentinelBlockedError, SentinelConfigError
from sentinel.guard import Guard
from sentinel.integrations._common import (
    DEFAULT_BLOCK_MESSAGE,
    BlockMessage,
    check_block_message,
    render_block,
    render_edit,
    resolve_guard,
)
from sentinel.policy import Action
from sentinel.store.models import ArgumentEdit

__all__ = [
    "DEFAULT_BLOCK_MESSAGE",
    "OpenAIAgentsApproval",
    "policy_needs_approval",
    "protect_function_tool",
    "protect_function_tools",
    "protected_function_tool",
]

Approvals = Literal["queue", "sdk"]

# The SDK context of the call being run, for the "sdk" approval channel (the guard runs channels
# in a task created from the caller's context, so the value is visible there).
_CALL: contextvars.ContextVar[tuple[Any, str, str] | None] = contextvars.ContextVar(
    "sentinel_openai_agents_call", default=None
)


# --- arguments ----------------------------------------------------------------------------------


class _Arguments:
    """Turns the model's JSON arguments into the parameters the rules see: validated and
    coerced with the tool's own parameter model when the tool came from ``@function_tool``."""

    def __init__(self, tool: FunctionTool) -> None:
        self.model: Any = None
        try:
            func = tool.__wrapped__  # the callable given to @function_tool
        except AttributeError:
            return
        if not inspect.isroutine(func):
            return
        try:
            self.model = function_schema(func, use_docstring_info=False).params_pydantic_model
        except Exception:  # an unsupported signature: the rules see the parsed JSON instead
            self.model = None

    def params(self, raw: str) -> dict[str, Any]:
        try:
            data = json.loads(raw) if raw and raw.strip() else {}
        except ValueError:
            # The tool itself will report the bad JSON; the rules still get to see the call.
            return {"__raw_arguments__": raw}
        if not isinstance(data, dict):
            return {"__raw_arguments__": data}
        return self.coerce(data)

    def coerce(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.model is None:
            return dict(data)
        try:
            parsed = self.model(**data)
        except Exception:
            # Invalid arguments: the tool rejects them without running its body; the rules see
            # the raw values so the call is still decided and recorded.
            return dict(data)
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}


# --- the "sdk" approval channel -----------------------------------------------------------------


class OpenAIAgentsApproval(ApprovalInterface):
    """Approval channel for ``approvals="sdk"``: the SDK's ``RunState.approve`` is the decision.

    It approves a request only when the SDK's run context says this exact tool call was approved;
    otherwise it gives no answer and the request stays in the queue for an operator.
    """

    approved_by = "OpenAI Agents SDK run-state approval"

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        call = _CALL.get()
        if call is not None:
            ctx, tool_name, call_id = call
            try:
                approved = ctx.is_tool_approved(tool_name, call_id)
            except Exception:
                approved = None
            if approved is True:
                return ApprovalResult(
                    ApprovalStatus.APPROVED,
                    request.request_id,
                    self.approved_by,
                    f"approved in the application (call {call_id})",
                    time.time(),
                )
        # No SDK approval for this call: leave it pending for an operator.
        return ApprovalResult(ApprovalStatus.PENDING, request.request_id)


def _sdk_guard(guard: Guard) -> Guard:
    """A guard like ``guard`` (same policy, context provider and hooks) whose approval channel is
    the SDK's run state. One per guard, kept on it."""
    derived: Guard | None = guard.__dict__.get("_sentinel_openai_agents_sdk")
    if derived is None:
        config = dataclasses.replace(guard.config, approval_interface=OpenAIAgentsApproval())
        # The same hook set (not a copy of today's hooks): a limit added by reload applies here too.
        derived = Guard(config, guard.context_fn, hooks=guard.hook_set)
        guard.__dict__["_sentinel_openai_agents_sdk"] = derived
    return derived


# --- public API ---------------------------------------------------------------------------------


def policy_needs_approval(
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    tool: FunctionTool | None = None,
    name: str | None = None,
    guard: Guard | None = None,
) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]:
    """A ``needs_approval`` callable backed by the Sentinel policy: True when the guard's decision
    for the call is *require approval*. Blocked calls answer False (nobody needs to approve
    something that will not run; the protected tool refuses it). When the decision itself fails,
    it answers True, so a person looks at the call.

    ``tool`` (or ``name``) says which function the rules match; with ``tool`` the parameters are
    coerced with its parameter model first. :func:`protect_function_tool` with
    ``approvals="sdk"`` sets this up for you.
    """
    the_guard = resolve_guard(config, context_fn, guard, "policy_needs_approval")
    arguments = _Arguments(tool) if tool is not None else None
    return _decide_with(the_guard, arguments, name or (tool.name if tool else None))


def protect_function_tool(
    tool: FunctionTool,
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    approvals: Approvals = "queue",
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
) -> FunctionTool:
    """Return a protected copy of ``tool`` (the original is left untouched).

    ``config`` defaults to ``SentinelConfig()``; its rules are loaded now. ``approvals`` is
    ``"queue"`` (wait in Sentinel's queue) or ``"sdk"`` (``needs_approval`` from the policy and the
    SDK's ``RunState`` approvals); see the module documentation. ``block_message`` and
    ``raise_on_block`` are as for the LangChain integration; ``guard`` uses an existing
    :class:`~sentinel.guard.Guard` instead of ``config``.
    """
    if not isinstance(tool, FunctionTool):
        raise TypeError(
            f"protect_function_tool expects an agents.FunctionTool, got {type(tool).__name__}; "
            "use protected_function_tool to decorate a function"
        )
    where = f"protect_function_tool({tool.name!r})"
    base_guard = resolve_guard(config, context_fn, guard, where)
    if approvals not in ("queue", "sdk"):
        raise SentinelConfigError(
            f"{where}: approvals must be 'queue' or 'sdk', got {approvals!r}", field="approvals"
        )
    message = check_block_message(block_message, where)
    arguments = _Arguments(tool)
    the_guard = _sdk_guard(base_guard) if approvals == "sdk" else base_guard

    protected = copy.copy(tool)
    original = protected.on_invoke_tool  # bound to the copy: its error handling stays intact
    name = tool.name

    schema = _schema_of(tool)

    async def on_invoke_tool(ctx: ToolContext[Any], input: str) -> Any:
        params = arguments.params(input)
        call_id = str(getattr(ctx, "tool_call_id", "") or "")
        token = _CALL.set((ctx, name, call_id))
        applied: list[ArgumentEdit] = []

        def rebind(
            values: dict[str, Any], edit: ArgumentEdit
        ) -> tuple[dict[str, Any], Callable[[], Awaitable[Any]]]:
            # The tool gets the model's JSON with the operator's values in place: its own
            # parameter model validates them again when it runs.
            try:
                sent = json.loads(input) if input and input.strip() else {}
            except ValueError as exc:
                raise ValueError(f"the call's arguments are not a JSON object: {exc}") from None
            if not isinstance(sent, dict):
                raise ValueError("the call's arguments are not a JSON object")
            edited_input = json.dumps({**sent, **values})
            applied.append(edit)
            return arguments.params(edited_input), lambda: original(ctx, edited_input)

        try:
            result = await the_guard.run_async(
                name, params, lambda: original(ctx, input), rebind=rebind, schema=schema
            )
        except SentinelBlockedError as exc:
            if raise_on_block:
                raise
            return render_block(exc, message, name)
        finally:
            _CALL.reset(token)
        if applied:  # the model reads that its call was changed, and how, before the output
            return f"{render_edit(applied[-1], name)}\n{result}"
        return result

    protected.on_invoke_tool = on_invoke_tool
    if approvals == "sdk":
        protected.needs_approval = _decide_with(the_guard, arguments, name)
    return protected


def protect_function_tools(
    tools: Sequence[FunctionTool],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    approvals: Approvals = "queue",
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
) -> list[FunctionTool]:
    """:func:`protect_function_tool` for each tool (same config and options)."""
    return [
        protect_function_tool(
            t,
            config,
            context_fn,
            approvals=approvals,
            block_message=block_message,
            raise_on_block=raise_on_block,
            guard=guard,
        )
        for t in tools
    ]


def protected_function_tool(
    func: Callable[..., Any] | None = None,
    *,
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    approvals: Approvals = "queue",
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
    **function_tool_kwargs: Any,
) -> Any:
    """``@function_tool`` with Sentinel: ``@protected_function_tool(config=cfg)`` (any
    ``function_tool`` keyword such as ``name_override`` is passed on)."""

    def build(fn: Callable[..., Any]) -> FunctionTool:
        base = function_tool(fn, **function_tool_kwargs)
        assert isinstance(base, FunctionTool)
        return protect_function_tool(
            base,
            config,
            context_fn,
            approvals=approvals,
            block_message=block_message,
            raise_on_block=raise_on_block,
            guard=guard,
        )

    if func is None:
        return build
    return build(func)


# --- helpers ------------------------------------------------------------------------------------


def _schema_of(tool: FunctionTool) -> dict[str, Any] | None:
    """The JSON Schema of the tool's parameters (what the model fills in)."""
    return model_schema(getattr(tool, "params_json_schema", None))


def _decide_with(
    guard: Guard, arguments: _Arguments | None, name: str | None
) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]:
    """A ``needs_approval`` callable asking ``guard.decide`` (no side effects on the call)."""

    async def needs_approval(
        ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        function = name or getattr(ctx, "tool_name", None)
        if not function:
            return True
        try:
            values = arguments.coerce(dict(params)) if arguments is not None else dict(params)
            return guard.preview(function, values).action is Action.REQUIRE_APPROVAL
        except Exception:
            return True  # the decision failed: fail secure and ask a person

    return needs_approval
