"""LangGraph: a ``ToolNode`` whose tools are protected by Sentinel.

``protected_tool_node(tools, config)`` is a drop-in replacement for
``langgraph.prebuilt.ToolNode(tools)``. Each tool is wrapped with
:func:`sentinel.integrations.langchain.protect_tool`, so inside a graph:

* allowed calls run at once; a blocked, denied or expired call becomes an error ``ToolMessage``
  (``"<tool> not executed: <reason>. Do not retry this call."``) and the graph goes on to the
  model, which can read why;
* a call that needs approval **pauses inside the tools node**: the request is written to the
  durable SQLite queue, an operator decides it in the command center (``sentinel tui``) or with
  ``sentinel approve <id>`` / ``sentinel deny <id>``, and the node resumes with the decision. Async
  graphs (``ainvoke`` / ``astream``) wait without blocking the event loop; parallel tool calls
  wait independently.

How this relates to ``interrupt()``: LangGraph's ``interrupt()`` ends the run and saves a
checkpoint; a person answers through your application and you resume with
``Command(resume=...)``. Sentinel's wait instead keeps the node running while the request waits in
SQLite, so nothing in your application has to carry the approval: the decision, who made it, and
the outcome are in Sentinel's audit log, bound to the exact arguments (a digest). The two combine
freely: ``interrupt()``-based human-in-the-loop steps elsewhere in the graph are unaffected, and a
tool that itself calls ``interrupt()`` still interrupts (the guard lets the exception through).
If the process stops while a request waits, the request is cancelled as "waiting process exited";
resuming the graph from its checkpointer re-runs the tools node, which asks again.

**Interrupt mode** (``approval="interrupt"``): a call that needs approval does not wait in the
process. Its request goes to the queue under an id derived from the thread, the tools task and
the tool-call id, and the tools node raises LangGraph's ``interrupt()`` with what a UI needs
(``{"sentinel": [{"request_id", "function", "arguments", "reason", "rule_id", "expires_at",
"tool_call_id"}, ...]}``). The run ends and its checkpoint is saved; the process may exit. Resume
it with ``Command(resume=...)`` — or let :func:`resume_when_decided` /
:func:`aresume_when_decided` wait for the decision and resume — and the node re-runs: each call
finds its own request, and the store's decision is what counts, checked as a waiting call checks
it (argument digest, signatures when signing is on, expiry). The resume value is only a hint: a
"yes" for a request still pending pauses the run again; a denial or expiry reaches the model as
the tool result; an approval runs the call once (claimed in the store), and a second resume or a
replay of the same checkpoint never runs it again. No tool of the batch runs until every call
of it that needs approval is decided, so allowed calls beside it are not run twice either.

No decision logic lives here: the tools node only hosts protected tools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

try:
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langchain_core.tools import tool as _as_tool
    from langgraph.prebuilt import ToolNode
    from langgraph.types import Command, interrupt
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sentinel.integrations.langgraph needs langgraph: pip install 'sentinel-guard[langgraph]'"
    ) from _exc

from sentinel.approval.parked import Park
from sentinel.config import SentinelConfig
from sentinel.errors import SentinelApprovalPending, SentinelConfigError
from sentinel.guard import Guard
from sentinel.integrations._common import BlockMessage
from sentinel.integrations.langchain import (
    COPIED_FIELDS,
    ProtectedTool,
    current_tool_call_id,
    protect_tool,
)
from sentinel.runtime import store_for
from sentinel.store.location import DbValue

__all__ = [
    "INTERRUPT_KEY",
    "InterruptingTool",
    "aresume_when_decided",
    "pending_requests",
    "protect_graph_tools",
    "protected_tool_node",
    "resume_when_decided",
]

# Where LangGraph puts the run's checkpointer in a node's config (langgraph._internal).
_CHECKPOINTER = "__pregel_checkpointer"

#: The key of Sentinel's interrupt values: ``{INTERRUPT_KEY: [request, ...]}``.
INTERRUPT_KEY = "sentinel"

Approval = Literal["wait", "interrupt"]


# --- interrupt mode: the key of a call, the interrupt value --------------------------------------


def _park_key(config: RunnableConfig | None, tool_call_id: str | None, tool: str) -> str:
    """The key naming one tool call of one run across restarts: thread, task namespace (which
    holds LangGraph's task id, the same when the task re-runs on resume) and the call's id."""
    conf = (config or {}).get("configurable") or {}
    thread = conf.get("thread_id")
    # Without a checkpointer an interrupted run could never be resumed: its request would wait
    # in the queue for nothing.
    if thread is None or not tool_call_id or conf.get(_CHECKPOINTER) is None:
        raise SentinelConfigError(
            f"tool {tool!r}: approval='interrupt' needs a LangGraph run with a checkpointer, a "
            "thread_id and a tool-call id (the run is resumed from its checkpoint)",
            field="approval",
            hint="compile the graph with a checkpointer and pass "
            "{'configurable': {'thread_id': ...}}",
        )
    return "\x1e".join(
        ("langgraph", str(thread), str(conf.get("checkpoint_ns") or ""), tool_call_id)
    )


def _describe(exc: SentinelApprovalPending, tool_call_id: str | None) -> dict[str, Any]:
    """What a UI needs to show one waiting call (JSON-safe; the arguments are the redacted
    copy the queue shows)."""
    rec = exc.record
    return {
        "request_id": rec.id,
        "function": rec.function,
        "arguments": rec.arguments,
        "reason": rec.reason,
        "rule_id": rec.rule_id,
        "expires_at": exc.expires_at,
        "tool_call_id": tool_call_id,
        "decide_with": f"sentinel approve {rec.id} / sentinel deny {rec.id}",
    }


class InterruptingTool(ProtectedTool):
    """A protected tool that, instead of waiting for a decision, interrupts the graph run
    (build it with ``protect_graph_tools(..., approval="interrupt")``). On resume the call
    obeys the decision stored for it; the resume value is only a hint."""

    def __init__(self, *, guard: Guard, **kwargs: Any) -> None:
        super().__init__(guard=guard, **kwargs)

    def _govern_sync(
        self,
        params: dict[str, Any],
        invoke: Callable[[], Any],
        config: RunnableConfig,
        **options: Any,
    ) -> Any:
        tool_call_id = current_tool_call_id()
        park = Park(_park_key(config, tool_call_id, self.name))
        while True:
            try:
                return self.guard.run_sync(self.name, params, invoke, park=park, **options)
            except SentinelApprovalPending as exc:
                pending = exc
            # Outside the except block: raises GraphInterrupt the first time; on resume returns
            # the resume value (a hint), and the loop asks the store again.
            interrupt({INTERRUPT_KEY: [_describe(pending, tool_call_id)]})

    async def _govern_async(
        self,
        params: dict[str, Any],
        invoke: Callable[[], Any],
        config: RunnableConfig,
        **options: Any,
    ) -> Any:
        tool_call_id = current_tool_call_id()
        park = Park(_park_key(config, tool_call_id, self.name))
        while True:
            try:
                return await self.guard.run_async(self.name, params, invoke, park=park, **options)
            except SentinelApprovalPending as exc:
                pending = exc
            interrupt({INTERRUPT_KEY: [_describe(pending, tool_call_id)]})

    def pending(
        self, tool_call: Mapping[str, Any], config: RunnableConfig
    ) -> SentinelApprovalPending | None:
        """The pending approval of ``tool_call`` in this run, or None (no approval needed,
        decided, expired, or arguments the tool refuses: its own run says so)."""
        try:
            params = self.sentinel_params(tool_call)
        except Exception:
            return None  # e.g. injected arguments only the tools node supplies: checked per call
        key = _park_key(config, tool_call.get("id"), self.name)
        return self.guard.pending_parked(self.name, params, key, self._arg_schema)

    async def apending(
        self, tool_call: Mapping[str, Any], config: RunnableConfig
    ) -> SentinelApprovalPending | None:
        """:meth:`pending` for async runs."""
        try:
            params = self.sentinel_params(tool_call)
        except Exception:
            return None
        key = _park_key(config, tool_call.get("id"), self.name)
        return await self.guard.apending_parked(self.name, params, key, self._arg_schema)


def _interrupting(tool: ProtectedTool) -> InterruptingTool:
    if isinstance(tool, InterruptingTool):
        return tool
    fields: dict[str, Any] = {
        name: getattr(tool, name) for name in COPIED_FIELDS if name in BaseTool.model_fields
    }
    return InterruptingTool(
        guard=tool.guard,
        wrapped_tool=tool.wrapped_tool,
        block_message=tool.block_message,
        raise_on_block=tool.raise_on_block,
        args_schema=tool.args_schema,
        **fields,
    )


class _GatedToolNode(ToolNode):
    """A ``ToolNode`` that, before running any call of a batch, interrupts while a call of it
    still waits for approval (so nothing of the batch runs twice when the node re-runs)."""

    def _gate_calls(self, input: Any) -> list[Any]:
        tool_calls, _ = self._parse_input(input)
        return [
            (self.tools_by_name[c["name"]], c)
            for c in tool_calls
            if isinstance(self.tools_by_name.get(c["name"]), InterruptingTool)
        ]

    def _func(self, input: Any, config: RunnableConfig, runtime: Any) -> Any:
        calls = self._gate_calls(input)
        while calls:
            waiting = [_describe(p, c.get("id")) for t, c in calls if (p := t.pending(c, config))]
            if not waiting:
                break
            interrupt({INTERRUPT_KEY: waiting})  # on resume: a hint; the store is asked again
        return super()._func(input, config, runtime)

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Any) -> Any:
        calls = self._gate_calls(input)
        while calls:
            waiting = [
                _describe(p, c.get("id")) for t, c in calls if (p := await t.apending(c, config))
            ]
            if not waiting:
                break
            interrupt({INTERRUPT_KEY: waiting})
        return await super()._afunc(input, config, runtime)


def protect_graph_tools(
    tools: Sequence[BaseTool | Callable[..., Any]],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
    approval: Approval = "wait",
) -> list[ProtectedTool]:
    """Protect tools for a graph. Plain functions are turned into tools the way ``ToolNode``
    does it (``langchain_core.tools.tool``); tools already protected are kept as they are
    (made interrupting for ``approval="interrupt"``). Use the result for both
    ``model.bind_tools(...)`` and the tools node.

    ``approval="wait"`` (the default) waits for a decision inside the tools node;
    ``"interrupt"`` interrupts the run instead (see the module doc; needs a checkpointer)."""
    if approval not in ("wait", "interrupt"):
        raise SentinelConfigError(
            f"protect_graph_tools: approval must be 'wait' or 'interrupt', got {approval!r}",
            field="approval",
        )
    out: list[ProtectedTool] = []
    for item in tools:
        if isinstance(item, ProtectedTool):
            protected = item
        else:
            base = item if isinstance(item, BaseTool) else _as_tool(item)
            protected = protect_tool(
                base,
                config,
                context_fn,
                block_message=block_message,
                raise_on_block=raise_on_block,
                guard=guard,
            )
        out.append(_interrupting(protected) if approval == "interrupt" else protected)
    return out


def protected_tool_node(
    tools: Sequence[BaseTool | Callable[..., Any]],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
    approval: Approval = "wait",
    **tool_node_kwargs: Any,
) -> ToolNode:
    """A ``ToolNode`` running ``tools`` under Sentinel.

    ``config``, ``context_fn``, ``block_message``, ``raise_on_block`` and ``guard`` are as for
    :func:`~sentinel.integrations.langchain.protect_tool`; everything else (``name``,
    ``handle_tool_errors``, ``messages_key``, ``wrap_tool_call``…) goes to ``ToolNode``. With
    ``raise_on_block=True`` a rejection raises :class:`~sentinel.errors.SentinelBlockedError`,
    which ``ToolNode``'s default error handling does not catch, so the graph run stops.
    ``approval="interrupt"`` interrupts the run for a call that needs approval instead of
    waiting in the node (see the module doc); no call of a batch runs until each of its calls
    needing approval is decided.
    """
    protected = protect_graph_tools(
        tools,
        config,
        context_fn,
        block_message=block_message,
        raise_on_block=raise_on_block,
        guard=guard,
        approval=approval,
    )
    if approval == "interrupt":
        return _GatedToolNode(protected, **tool_node_kwargs)
    return ToolNode(protected, **tool_node_kwargs)


# --- resuming from the queue's decision ---------------------------------------------------------


def pending_requests(state: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(interrupt id, request)`` for each Sentinel request a paused run waits on, from a
    ``StateSnapshot`` (``graph.get_state(config)``); other interrupts are left out."""
    found: list[tuple[str, dict[str, Any]]] = []
    for item in getattr(state, "interrupts", ()) or ():
        value = getattr(item, "value", None)
        if isinstance(value, Mapping) and isinstance(value.get(INTERRUPT_KEY), list):
            found.extend(
                (item.id, dict(req)) for req in value[INTERRUPT_KEY] if isinstance(req, Mapping)
            )
    return found


def _db_of(sentinel: SentinelConfig | DbValue) -> DbValue:
    """The database a :func:`resume_when_decided` reads the decisions from."""
    if isinstance(sentinel, SentinelConfig):
        db: DbValue = sentinel.db
        return db
    return sentinel


def _settled(requests: list[tuple[str, dict[str, Any]]], db: Any) -> dict[str, str] | None:
    """Each request's status once none is pending before its expiry, else None."""
    store = store_for(db)
    now = time.time()
    statuses: dict[str, str] = {}
    for _, req in requests:
        rec = store.get(str(req["request_id"]))
        if rec.is_pending and now < float(req.get("expires_at") or rec.expires_at):
            return None
        statuses[rec.id] = rec.status
    return statuses


def _resume_command(
    requests: list[tuple[str, dict[str, Any]]], statuses: dict[str, str]
) -> Command[Any]:
    by_interrupt: dict[str, Any] = {}
    for interrupt_id, req in requests:
        rid = str(req["request_id"])
        by_interrupt.setdefault(interrupt_id, {INTERRUPT_KEY: {}})[INTERRUPT_KEY][rid] = statuses[
            rid
        ]
    return Command(resume=by_interrupt)


def _no_wait(where: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"{where}: no decision within {timeout:g}s; the run stays paused")


def resume_when_decided(
    graph: Any,
    config: RunnableConfig,
    sentinel: SentinelConfig | DbValue = None,
    *,
    timeout: float | None = None,
    poll_seconds: float = 0.2,
) -> Any:
    """Wait until every Sentinel request the paused run on ``config``'s thread waits on is
    decided (or past its expiry), then resume it once and return what ``graph.invoke``
    returns. The resume value only says what the queue said; the run checks the store itself.
    Returns None when the run waits on no Sentinel request. ``sentinel`` names the queue's
    database: the agent's :class:`SentinelConfig`, a path or ``postgresql://`` URL, or None for
    the default database (``$SENTINEL_DB``…); ``timeout`` raises TimeoutError, leaving the run
    paused."""
    db = _db_of(sentinel)
    requests = pending_requests(graph.get_state(config))
    if not requests:
        return None
    deadline = None if timeout is None else time.monotonic() + timeout
    while (statuses := _settled(requests, db)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise _no_wait("resume_when_decided", timeout)
        time.sleep(poll_seconds)
    return graph.invoke(_resume_command(requests, statuses), config)


async def aresume_when_decided(
    graph: Any,
    config: RunnableConfig,
    sentinel: SentinelConfig | DbValue = None,
    *,
    timeout: float | None = None,
    poll_seconds: float = 0.2,
) -> Any:
    """:func:`resume_when_decided` for async graphs (``ainvoke``); waits without blocking the
    event loop."""
    db = _db_of(sentinel)
    requests = pending_requests(await graph.aget_state(config))
    if not requests:
        return None
    deadline = None if timeout is None else time.monotonic() + timeout
    while (statuses := await asyncio.to_thread(_settled, requests, db)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise _no_wait("aresume_when_decided", timeout)
        await asyncio.sleep(poll_seconds)
    return await graph.ainvoke(_resume_command(requests, statuses), config)
