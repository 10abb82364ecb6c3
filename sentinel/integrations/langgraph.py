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

No decision logic lives here: the tools node only hosts protected tools.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:
    from langchain_core.tools import BaseTool
    from langchain_core.tools import tool as _as_tool
    from langgraph.prebuilt import ToolNode
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sentinel.integrations.langgraph needs langgraph: pip install 'sentinel-guard[langgraph]'"
    ) from _exc

from sentinel.config import SentinelConfig
from sentinel.guard import Guard
from sentinel.integrations._common import BlockMessage
from sentinel.integrations.langchain import ProtectedTool, protect_tool

__all__ = ["protect_graph_tools", "protected_tool_node"]


def protect_graph_tools(
    tools: Sequence[BaseTool | Callable[..., Any]],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
) -> list[ProtectedTool]:
    """Protect tools for a graph. Plain functions are turned into tools the way ``ToolNode``
    does it (``langchain_core.tools.tool``); tools already protected are kept as they are.
    Use the result for both ``model.bind_tools(...)`` and the tools node."""
    out: list[ProtectedTool] = []
    for item in tools:
        if isinstance(item, ProtectedTool):
            out.append(item)
            continue
        base = item if isinstance(item, BaseTool) else _as_tool(item)
        out.append(
            protect_tool(
                base,
                config,
                context_fn,
                block_message=block_message,
                raise_on_block=raise_on_block,
                guard=guard,
            )
        )
    return out


def protected_tool_node(
    tools: Sequence[BaseTool | Callable[..., Any]],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
    **tool_node_kwargs: Any,
) -> ToolNode:
    """A ``ToolNode`` running ``tools`` under Sentinel.

    ``config``, ``context_fn``, ``block_message``, ``raise_on_block`` and ``guard`` are as for
    :func:`~sentinel.integrations.langchain.protect_tool`; everything else (``name``,
    ``handle_tool_errors``, ``messages_key``, ``wrap_tool_call``…) goes to ``ToolNode``. With
    ``raise_on_block=True`` a rejection raises :class:`~sentinel.errors.SentinelBlockedError`,
    which ``ToolNode``'s default error handling does not catch, so the graph run stops.
    """
    protected = protect_graph_tools(
        tools,
        config,
        context_fn,
        block_message=block_message,
        raise_on_block=raise_on_block,
        guard=guard,
    )
    return ToolNode(protected, **tool_node_kwargs)
