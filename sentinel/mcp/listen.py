"""``sentinel mcp --listen 127.0.0.1:PORT``: serve the proxy to clients over streamable HTTP.

Only on a loopback address, and only to clients that send ``Authorization: Bearer <token>`` (the
token from ``--token-file`` or ``$SENTINEL_MCP_TOKEN``, at least 16 characters). Each HTTP session
(``mcp-session-id``) gets its own upstream connection (a new process for a command upstream) and
its own relay; all sessions share the one policy, limits and anomaly baselines. The transport is
the SDK's :class:`~mcp.server.streamable_http.StreamableHTTPServerTransport`, with its DNS
rebinding protection on (the ``Host`` must be the address listened on).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio

from sentinel.errors import SentinelConfigError
from sentinel.mcp.proxy import McpProxy

TOKEN_ENV = "SENTINEL_MCP_TOKEN"
MIN_TOKEN = 16
PATH = "/mcp"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` with a loopback host (``127.0.0.1``, ``[::1]``, ``localhost``)."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SentinelConfigError(
            f"--listen {text!r} is not HOST:PORT",
            field="listen",
            hint="e.g. --listen 127.0.0.1:8765",
        )
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise SentinelConfigError(
            f"--listen {text!r}: the proxy serves HTTP only on a loopback address, not {host!r}",
            field="listen",
            hint="use 127.0.0.1:PORT; reach it from elsewhere through an SSH tunnel",
        )
    return host, int(port_text)


def read_token(token_file: str | None) -> str:
    """The bearer token clients must send: the file's first line, else ``$SENTINEL_MCP_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SentinelConfigError(
                f"--token-file {token_file}: cannot read it: {exc.strerror or exc}",
                field="token_file",
            ) from None
        where = f"--token-file {token_file}"
    else:
        token = (os.environ.get(TOKEN_ENV) or "").strip()
        where = f"${TOKEN_ENV}"
        if not token:
            raise SentinelConfigError(
                f"--listen needs a bearer token: give --token-file FILE or set ${TOKEN_ENV}",
                field="token_file",
                hint="e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > token",
            )
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise SentinelConfigError(
            f"{where}: the token must be at least {MIN_TOKEN} characters without spaces",
            field="token_file",
        )
    return token


def check_listen(listen: str, token_file: str | None) -> None:
    """Refuse a bad ``--listen`` / token before anything starts."""
    parse_listen(listen)
    read_token(token_file)


class _App:
    """The ASGI app: bearer check, then one SDK transport and relay per MCP session."""

    def __init__(
        self,
        make_proxy: Callable[[], McpProxy],
        make_upstream: Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]],
        token: str,
        host: str,
        port: int,
        tg: Any,
    ) -> None:
        from mcp.server.transport_security import TransportSecuritySettings

        self.make_proxy = make_proxy
        self.make_upstream = make_upstream
        self.token = token.encode()
        names = {host, "localhost", "127.0.0.1", "[::1]"}
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{n}:{port}" for n in names],
            allowed_origins=[f"http://{n}:{port}" for n in names],
        )
        self.sessions: dict[str, Any] = {}
        self.tg = tg

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope.get("path") != PATH:
            await _plain(send, 404, "not found; the MCP endpoint is /mcp")
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        given = headers.get("authorization", b"")
        if not (given[:7].lower() == b"bearer " and hmac.compare_digest(given[7:], self.token)):
            await _plain(send, 401, "a bearer token is required", {b"www-authenticate": b"Bearer"})
            return
        sid = headers.get("mcp-session-id")
        if sid is not None:
            transport = self.sessions.get(sid.decode("latin-1"))
            if transport is None:
                await _plain(send, 404, "session not found")
                return
            await transport.handle_request(scope, receive, send)
            return
        await self._open(scope, receive, send)

    async def _open(self, scope: Any, receive: Any, send: Any) -> None:
        from mcp.server.streamable_http import StreamableHTTPServerTransport

        sid = uuid.uuid4().hex
        transport = StreamableHTTPServerTransport(
            mcp_session_id=sid, security_settings=self.security
        )
        self.sessions[sid] = transport

        async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                async with transport.connect() as client:
                    task_status.started()
                    try:
                        async with self.make_upstream() as upstream:
                            await self.make_proxy().run(client, upstream)
                    except OSError as exc:
                        print(f"sentinel mcp: cannot start the upstream: {exc}", file=sys.stderr)
            finally:
                self.sessions.pop(sid, None)

        await self.tg.start(run)
        await transport.handle_request(scope, receive, send)


async def _plain(
    send: Any, status: int, text: str, extra: dict[bytes, bytes] | None = None
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += list((extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_http(
    make_proxy: Callable[[], McpProxy],
    make_upstream: Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]],
    listen: str,
    token_file: str | None,
) -> None:
    """Serve until interrupted."""
    import uvicorn

    host, port = parse_listen(listen)
    token = read_token(token_file)
    async with anyio.create_task_group() as tg:
        app = _App(make_proxy, make_upstream, token, host, port, tg)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        print(
            f"sentinel mcp: serving streamable HTTP on http://{host}:{port}{PATH}", file=sys.stderr
        )
        await server.serve()
        tg.cancel_scope.cancel()
