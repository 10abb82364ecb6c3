"""The gating relay between one MCP client and one upstream MCP server.

It works on JSON-RPC envelopes (the SDK's transports and ``mcp_types`` messages), so whatever it
does not govern passes through byte-for-byte in meaning, in both directions: resources, prompts,
completions, sampling, elicitation, roots, logging, progress and every notification. Only two
methods are touched:

* ``tools/call`` — decided by :class:`sentinel.guard.Guard` (the one decision core: rules,
  limits, anomaly detection, grants, redaction and audit all apply). Allowed calls are forwarded;
  blocked, denied and expired ones are answered with a tool result ``isError: true`` whose text
  says why (the model reads it). A call that needs approval waits in the queue in its own task,
  so other requests on the session keep flowing; the client's ``notifications/cancelled`` cancels
  it (the queued request is cancelled in the store), and when the client sent a
  ``progressToken`` it receives ``notifications/progress`` while it waits.
* ``tools/list`` — passed through with schemas intact; with ``hide_blocked`` the tools the
  policy blocks for every argument are left out.

The upstream's errors stay errors; when it exits, every request still waiting on it is answered
with a clear error (a tool result with ``isError`` for tool calls) and later requests too: the
proxy never hangs on a dead upstream and restarts nothing.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.message import ClientMessageMetadata, ServerMessageMetadata, SessionMessage
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

from sentinel.edits import model_schema
from sentinel.errors import SentinelBlockedError
from sentinel.guard import Guard
from sentinel.integrations._common import BlockMessage, render_block, render_edit
from sentinel.mcp.results import (
    error_response,
    first_text,
    invalid_message,
    tool_error,
    with_note,
)
from sentinel.store.models import ArgumentEdit

__all__ = ["MCP_CALL", "McpProxy", "ProxyInfo"]

#: The MCP facts of the tool call being decided (the guard's context provider reads it, so the
#: approval card and ``sentinel show`` display server, tool and client).
MCP_CALL: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sentinel_mcp_call", default=None
)

# JSON-RPC error codes
_INVALID_PARAMS = -32602
_INTERNAL = -32603
_UPSTREAM_GONE = -32000


def mcp_context() -> dict[str, Any] | None:
    """The guard's context provider: ``{"mcp": {...}}`` for the call being decided."""
    facts = MCP_CALL.get()
    return {"mcp": dict(facts)} if facts is not None else None


@dataclass
class ProxyInfo:
    """What the proxy knows about the two ends (shown to operators, used for names)."""

    server: str | None = None  # --name, else the upstream's serverInfo.name
    server_given: bool = False  # the name came from --name (kept over serverInfo)
    server_version: str | None = None
    client: str | None = None  # clientInfo from initialize (or the request's _meta)
    client_version: str | None = None
    transport: str = "stdio"
    upstream: str = ""  # the upstream command or URL, for messages


class _UpstreamGone(Exception):
    """The upstream closed its side: the call cannot be forwarded or answered."""


class _ToolFailed(Exception):
    """The upstream answered the call with an error (JSON-RPC error or ``isError``). It is
    raised through the guard so the audit records the call as failed; the upstream's own
    answer goes back to the client unchanged."""

    def __init__(self, response: JSONRPCMessage) -> None:
        self.response = response
        if isinstance(response, JSONRPCError):
            what = f"upstream error {response.error.code}: {response.error.message}"
        else:
            assert isinstance(response, JSONRPCResponse)
            what = "tool error: " + (first_text(response.result) or "(no text)")
        super().__init__(what[:500])


@dataclass
class _Waiter:
    """A forwarded request the proxy itself waits for (tools/call)."""

    event: anyio.Event = field(default_factory=anyio.Event)
    response: JSONRPCMessage | None = None
    gone: str | None = None

    def settle(self, response: JSONRPCMessage | None, gone: str | None = None) -> None:
        self.response, self.gone = response, gone
        self.event.set()


@dataclass
class _Forwarded:
    method: str
    waiter: _Waiter | None = None


class McpProxy:
    """Relay one client session to one upstream session, gating ``tools/call``.

    ``guard`` decides the calls (its ``context_fn`` should be :func:`mcp_context`; see
    :func:`sentinel.mcp.guard_for`). ``prefix``: the policy sees ``<server>.<tool>`` instead of
    the bare tool name. ``hide_blocked``: leave tools blocked for every argument out of
    ``tools/list``. ``progress_interval``: seconds between progress notifications while a call
    waits for approval. ``agent_id_given``: the guard's agent id was set explicitly (otherwise it
    becomes ``mcp:<server>:<client>`` once both are known).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        info: ProxyInfo | None = None,
        prefix: bool = False,
        hide_blocked: bool = False,
        progress_interval: float = 2.0,
        agent_id_given: bool = False,
        block_message: BlockMessage = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not progress_interval > 0:
            raise ValueError(f"progress_interval must be positive, got {progress_interval!r}")
        self.guard = guard
        self.info = info or ProxyInfo()
        self.prefix = prefix
        self.hide_blocked = hide_blocked
        self.progress_interval = float(progress_interval)
        self.agent_id_given = agent_id_given
        self.block_message = block_message
        self._log = log or _stderr
        self._forwarded: dict[Any, _Forwarded] = {}
        self._calls: dict[Any, tuple[anyio.CancelScope, anyio.Event]] = {}
        self._gone: str | None = None
        self._protocol: str | None = None  # negotiated at initialize (HTTP upstreams need it)
        self._schemas: dict[str, dict[str, Any]] = {}  # inputSchema per tool, from tools/list
        self._tokens: dict[Any, Any] = {}  # progressToken -> the client request it belongs to
        self._dropped: set[Any] = set()  # forwarded calls the client cancelled
        self._to_client: Any = None
        self._to_upstream: Any = None
        self._tg: Any = None

    # -- names ---------------------------------------------------------------------------------

    def function_name(self, tool: str) -> str:
        """The function name the rules match for ``tool``."""
        if self.prefix and self.info.server:
            return f"{self.info.server}.{tool}"
        return tool

    def _facts(self, tool: str) -> dict[str, Any]:
        info = self.info
        facts: dict[str, Any] = {"server": info.server or "?", "tool": tool}
        if info.client:
            facts["client"] = info.client
        if info.client_version:
            facts["client_version"] = info.client_version
        facts["transport"] = info.transport
        return facts

    def _name_agent(self) -> None:
        if self.agent_id_given or not self.info.client:
            return
        self.guard.agent_id = f"mcp:{self.info.server or '?'}:{self.info.client}"

    # -- the relay -----------------------------------------------------------------------------

    async def run(self, client: tuple[Any, Any], upstream: tuple[Any, Any]) -> None:
        """Relay until the client closes its side. ``client`` and ``upstream`` are transport
        stream pairs ``(read, write)`` of :class:`~mcp.shared.message.SessionMessage`."""
        client_read, self._to_client = client
        upstream_read, self._to_upstream = upstream
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._from_upstream, upstream_read)
            try:
                await self._from_client(client_read)
            finally:
                tg.cancel_scope.cancel()  # queued calls are cancelled in the store
        # The client's side is done: closing our writer lets its transport finish.
        with anyio.CancelScope(shield=True):
            await self._to_client.aclose()

    async def _send_client(self, message: JSONRPCMessage, related: Any = None) -> None:
        # ``related``: the client request a notification belongs to (HTTP clients get it on
        # that request's stream; stdio ignores it).
        metadata = (
            ServerMessageMetadata(related_request_id=related) if related is not None else None
        )
        try:
            await self._to_client.send(SessionMessage(message, metadata))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the client is gone; run() ends with its read side

    async def _send_upstream(self, message: JSONRPCMessage) -> bool:
        if self._gone is not None:
            return False
        metadata = (
            ClientMessageMetadata(headers={"mcp-protocol-version": self._protocol})
            if self._protocol
            else None
        )
        try:
            await self._to_upstream.send(SessionMessage(message, metadata))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._upstream_closed("the connection to the upstream MCP server is closed")
            return False
        return True

    async def _from_client(self, read: Any) -> None:
        async with read:
            async for item in read:
                if isinstance(item, Exception):
                    await self._send_client(invalid_message(item))
                    continue
                message = item.message
                if isinstance(message, JSONRPCRequest):
                    await self._client_request(message)
                elif isinstance(message, JSONRPCNotification):
                    await self._client_notification(message)
                else:  # answers to the upstream's requests (sampling, elicitation, roots)
                    await self._send_upstream(message)

    async def _client_request(self, request: JSONRPCRequest) -> None:
        method = request.method
        meta = (request.params or {}).get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if isinstance(token, (int, str)) and len(self._tokens) < 10_000:
            self._tokens[token] = request.id
        if method == "tools/call":
            # Registered before the task starts, so a cancellation right behind it is seen.
            held = (anyio.CancelScope(), anyio.Event())
            self._calls[request.id] = held
            self._tg.start_soon(self._tool_call, request, held)
            return
        if method == "initialize":
            self._note_client((request.params or {}).get("clientInfo"))
        else:
            self._note_meta(request.params)
        if self._gone is not None:
            await self._send_client(self._gone_error(request.id))
            return
        self._forwarded[request.id] = _Forwarded(method)
        if not await self._send_upstream(request):
            self._forwarded.pop(request.id, None)
            await self._send_client(self._gone_error(request.id))

    async def _client_notification(self, note: JSONRPCNotification) -> None:
        if note.method == "notifications/cancelled":
            rid = (note.params or {}).get("requestId")
            held = self._calls.get(rid) if isinstance(rid, (int, str)) else None
            if held is not None:
                scope, forwarded = held
                scope.cancel()
                if not forwarded.is_set():
                    return  # never reached the upstream: nothing to tell it
        await self._send_upstream(note)

    async def _from_upstream(self, read: Any) -> None:
        try:
            async with read:
                async for item in read:
                    if isinstance(item, Exception):
                        self._log(
                            "sentinel mcp: the upstream sent a line that is not a JSON-RPC "
                            f"message (ignored): {_short(item)}"
                        )
                        continue
                    await self._upstream_message(item.message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        except Exception as exc:  # a transport failure: report it as the upstream's end
            self._upstream_closed(f"the upstream connection failed: {_short(exc)}")
        self._upstream_closed("the upstream MCP server closed the connection (it exited)")
        for rid, pending in list(self._forwarded.items()):
            self._forwarded.pop(rid, None)
            if pending.waiter is not None:
                pending.waiter.settle(None, self._gone)
            else:
                await self._send_client(self._gone_error(rid))

    async def _upstream_message(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/progress":
            token = (message.params or {}).get("progressToken")
            related = self._tokens.get(token) if isinstance(token, (int, str)) else None
            await self._send_client(message, related)
            return
        if isinstance(message, (JSONRPCResponse, JSONRPCError)):
            pending = self._forwarded.pop(message.id, None) if message.id is not None else None
            if pending is None and message.id in self._dropped:
                self._dropped.discard(message.id)
                return  # the answer to a call the client cancelled
            if pending is not None:
                if self._tokens:
                    self._forget_token(message.id)
                if pending.waiter is not None:
                    pending.waiter.settle(message)
                    return
                if isinstance(message, JSONRPCResponse):
                    if pending.method == "initialize":
                        version = message.result.get("protocolVersion")
                        self._protocol = version if isinstance(version, str) else None
                        self._note_server(message.result.get("serverInfo"))
                    elif pending.method == "tools/list":
                        self._note_schemas(message.result)
                        if self.hide_blocked:
                            message = self._without_blocked(message)
        await self._send_client(message)

    def _forget_token(self, rid: Any) -> None:
        for token in [t for t, r in self._tokens.items() if r == rid]:
            del self._tokens[token]

    def _upstream_closed(self, why: str) -> None:
        if self._gone is None:
            self._gone = f"{why}; upstream: {self.info.upstream or '?'}"
            self._log(f"sentinel mcp: {self._gone}")

    def _gone_error(self, rid: Any) -> JSONRPCError:
        return error_response(rid, _UPSTREAM_GONE, self._gone or "the upstream is not available")

    # -- what the ends tell about themselves ----------------------------------------------------

    def _note_client(self, client_info: Any) -> None:
        if isinstance(client_info, dict):
            name, version = client_info.get("name"), client_info.get("version")
            self.info.client = str(name)[:200] if name is not None else None
            self.info.client_version = str(version)[:100] if version is not None else None
            self._name_agent()

    def _note_meta(self, params: dict[str, Any] | None) -> None:
        """Clients of the 2026 protocol send clientInfo in each request's ``_meta``."""
        if self.info.client is not None or not params:
            return
        meta = params.get("_meta")
        if isinstance(meta, dict):
            self._note_client(meta.get(types.CLIENT_INFO_META_KEY))

    def _note_server(self, server_info: Any) -> None:
        if isinstance(server_info, dict):
            version = server_info.get("version")
            self.info.server_version = str(version)[:100] if version is not None else None
            name = server_info.get("name")
            if not self.info.server_given and isinstance(name, str) and name:
                self.info.server = name[:200]
            self._name_agent()

    # -- tools ----------------------------------------------------------------------------------

    def _note_schemas(self, result: dict[str, Any]) -> None:
        """Keep each listed tool's input schema: it is recorded with an approval request, so an
        operator's edit of the arguments is typed and checked against it."""
        tools = result.get("tools")
        if not isinstance(tools, list):
            return
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                schema = model_schema(tool.get("inputSchema"))
                if schema is not None and len(self._schemas) < 10_000:
                    self._schemas[tool["name"]] = schema

    def _without_blocked(self, response: JSONRPCResponse) -> JSONRPCResponse:
        tools = response.result.get("tools")
        if not isinstance(tools, list):
            return response
        policy = self.guard.policy_source.current
        agent = self.guard.agent_id
        kept = [
            t
            for t in tools
            if not (
                isinstance(t, dict)
                and isinstance(t.get("name"), str)
                and policy.blocks_always(self.function_name(t["name"]), agent)
            )
        ]
        if len(kept) == len(tools):
            return response
        return JSONRPCResponse(
            jsonrpc="2.0", id=response.id, result={**response.result, "tools": kept}
        )

    async def _tool_call(
        self, request: JSONRPCRequest, held: tuple[anyio.CancelScope, anyio.Event]
    ) -> None:
        try:
            await self._tool_call_in(request, *held)
        finally:
            if self._calls.get(request.id) is held:
                del self._calls[request.id]

    async def _tool_call_in(
        self, request: JSONRPCRequest, scope: anyio.CancelScope, forwarded: anyio.Event
    ) -> None:
        params = request.params or {}
        self._note_meta(params)
        name, arguments = params.get("name"), params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(name, str) or not name:
            await self._send_client(
                error_response(
                    request.id,
                    _INVALID_PARAMS,
                    "tools/call: params.name must be a tool name (a string)",
                )
            )
            return
        if not isinstance(arguments, dict):
            await self._send_client(
                error_response(
                    request.id,
                    _INVALID_PARAMS,
                    f"tools/call {name!r}: params.arguments must be an object, "
                    f"got {type(arguments).__name__}",
                )
            )
            return
        if self._gone is not None:
            await self._send_client(tool_error(request.id, f"{name} not executed: {self._gone}."))
            return
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        settled = anyio.Event()
        answer: JSONRPCMessage | None = None
        try:
            with scope:
                if isinstance(token, (int, str)) and not isinstance(token, bool):
                    self._tg.start_soon(self._progress, token, name, forwarded, settled)
                answer = await self._govern(request, name, arguments, forwarded)
        finally:
            settled.set()
            if self._tokens:
                self._forget_token(request.id)
        if scope.cancelled_caught:
            # The client cancelled: no answer (the spec); a forwarded call is cancelled upstream
            # by the client's own notification, which was passed on, and a late answer from the
            # upstream is dropped.
            if self._forwarded.pop(request.id, None) is not None and len(self._dropped) < 10_000:
                self._dropped.add(request.id)
            return
        if answer is not None:
            await self._send_client(answer)

    async def _govern(
        self,
        request: JSONRPCRequest,
        name: str,
        arguments: dict[str, Any],
        forwarded: anyio.Event,
    ) -> JSONRPCMessage:
        """Decide the call through the guard and return the client's answer."""
        function = self.function_name(name)

        async def invoke(sent: JSONRPCRequest = request) -> dict[str, Any]:
            if self._gone is not None:
                raise _UpstreamGone(self._gone)
            waiter = _Waiter()
            self._forwarded[request.id] = _Forwarded("tools/call", waiter)
            if not await self._send_upstream(sent):
                self._forwarded.pop(request.id, None)
                raise _UpstreamGone(self._gone or "the upstream is not available")
            forwarded.set()
            await waiter.event.wait()
            response = waiter.response
            if response is None:
                raise _UpstreamGone(waiter.gone or "the upstream closed the connection")
            if not isinstance(response, JSONRPCResponse) or response.result.get("isError") is True:
                raise _ToolFailed(response)
            holder.append(response)
            return response.result

        applied: list[ArgumentEdit] = []

        def rebind(
            values: dict[str, Any], edit: ArgumentEdit
        ) -> tuple[dict[str, Any], Callable[[], Any]]:
            # An operator approved with edited arguments: the upstream gets the client's
            # request with the operator's values in place (same id, same _meta).
            edited = {**arguments, **values}
            params = {**(request.params or {}), "arguments": edited}
            changed = JSONRPCRequest(
                jsonrpc="2.0", id=request.id, method=request.method, params=params
            )
            applied.append(edit)
            return edited, lambda: invoke(changed)

        holder: list[JSONRPCResponse] = []
        token = MCP_CALL.set(self._facts(name))
        try:
            await self.guard.run_async(
                function, arguments, invoke, rebind=rebind, schema=self._schemas.get(name)
            )
        except SentinelBlockedError as exc:
            return tool_error(request.id, render_block(exc, self.block_message, name))
        except _ToolFailed as failed:
            answer = failed.response
            if isinstance(answer, JSONRPCError):
                # A protocol error from the upstream reaches the model as a tool error it can
                # read (many clients would raise on a JSON-RPC error and end the agent's run).
                answer = tool_error(
                    request.id,
                    f"{name} failed: the upstream MCP server answered with error "
                    f"{answer.error.code}: {answer.error.message}",
                )
            if applied:
                return with_note(answer, render_edit(applied[-1], name), first=True)
            return answer
        except _UpstreamGone as gone:
            return tool_error(request.id, f"{name} failed: {gone}.")
        finally:
            MCP_CALL.reset(token)
        response = holder[0]
        if applied:  # the model reads first that its call was changed, and how
            return with_note(response, render_edit(applied[-1], name), first=True)
        return response

    async def _progress(
        self, token: int | str, name: str, forwarded: anyio.Event, settled: anyio.Event
    ) -> None:
        """Progress notifications while the call has not been forwarded (it waits for an
        operator); the first after a quarter second, so a plain decision sends none."""
        with anyio.move_on_after(min(0.25, self.progress_interval)):
            await settled.wait()
        count = 0
        while not (settled.is_set() or forwarded.is_set()):
            count += 1
            note = JSONRPCNotification(
                jsonrpc="2.0",
                method="notifications/progress",
                params={
                    "progressToken": token,
                    "progress": count,
                    "message": f"Sentinel: {name} is waiting for an operator's approval",
                },
            )
            await self._send_client(note, self._tokens.get(token))
            with anyio.move_on_after(self.progress_interval):
                await settled.wait()


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
