"""The MCP gating proxy: any MCP client's tool calls through Sentinel.

``sentinel mcp -- <upstream command …>`` (or ``--url https://…/mcp``) sits between an MCP client
(Claude Desktop, Cursor, an IDE agent, LangChain's or the OpenAI Agents SDK's MCP adapters…) and
an MCP server. Every ``tools/call`` is decided by :class:`sentinel.guard.Guard`, like a call of a
decorated function: the function name is the tool name (``<server>.<tool>`` with ``--prefix``),
the parameters are the tool's arguments. Everything else passes through unchanged. See
:mod:`sentinel.mcp.proxy` for the protocol details and ``README.md`` ("MCP proxy") for use.

Needs the ``mcp`` extra: ``pip install 'sentinel-guard[mcp]'``.
"""

from __future__ import annotations

from sentinel.config import SentinelConfig
from sentinel.guard import Guard, _default_hooks
from sentinel.runtime import HookSet

try:
    import mcp as _sdk  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sentinel.mcp needs the MCP Python SDK: pip install 'sentinel-guard[mcp]'"
    ) from _exc

from sentinel.mcp.names import LookalikeHook, imitated, skeleton
from sentinel.mcp.proxy import MCP_CALL, McpProxy, ProxyInfo, mcp_context

__all__ = [
    "MCP_CALL",
    "LookalikeHook",
    "McpProxy",
    "ProxyInfo",
    "guard_for",
    "imitated",
    "mcp_context",
    "skeleton",
]


def guard_for(config: SentinelConfig) -> Guard:
    """The guard of a proxy: ``config``'s rules and hooks (limits, anomaly detection), the MCP
    facts as each request's context (:func:`mcp_context`), and :class:`LookalikeHook`."""
    base = _default_hooks(config)
    guard: Guard | None = None

    def policy() -> object:
        assert guard is not None
        return guard.policy_source.current

    hooks = HookSet((*base.fixed, LookalikeHook(policy)), base.limits)
    guard = Guard(config, mcp_context, hooks=hooks)
    return guard
