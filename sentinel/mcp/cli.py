"""What ``sentinel mcp`` runs: the configuration, the guard, the upstream and the client side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import anyio

from sentinel.config import SentinelConfig
from sentinel.errors import SentinelConfigError
from sentinel.mcp import guard_for
from sentinel.mcp.proxy import McpProxy, ProxyInfo
from sentinel.mcp.upstream import check_url, describe_command, http_upstream, stdio_upstream


def build_proxy(args: argparse.Namespace, command: Sequence[str]) -> McpProxy:
    """The proxy for the parsed options (raises SentinelConfigError for bad settings)."""
    config = SentinelConfig(
        rules_path=args.rules,
        agent_id=args.agent_id,
        db=args.db,
        timeout_seconds=args.timeout,
    )
    guard = guard_for(config)
    name = args.name.strip() if args.name else None
    if args.name is not None and not name:
        raise SentinelConfigError("--name must not be empty", field="name")
    prefix = args.prefix if args.prefix is not None else name is not None
    info = ProxyInfo(
        server=name or _default_name(command, args.url),
        server_given=name is not None,
        upstream=describe_command(command) if command else str(args.url),
        transport="http" if args.listen else "stdio",
    )
    return McpProxy(
        guard,
        info=info,
        prefix=prefix,
        hide_blocked=args.hide_blocked,
        progress_interval=args.progress_interval,
        agent_id_given=config.agent_id is not None,
    )


def session_proxy(base: McpProxy) -> McpProxy:
    """A proxy for one more client session, like ``base``: its own guard (its agent id names its
    client) sharing ``base``'s policy, limits and anomaly baselines (the same hook set)."""
    from sentinel.guard import Guard
    from sentinel.mcp.proxy import mcp_context

    guard = Guard(base.guard.config, mcp_context, hooks=base.guard.hook_set)
    return McpProxy(
        guard,
        info=replace(base.info),
        prefix=base.prefix,
        hide_blocked=base.hide_blocked,
        progress_interval=base.progress_interval,
        agent_id_given=base.agent_id_given,
        block_message=base.block_message,
    )


def _default_name(command: Sequence[str], url: str | None) -> str:
    if url:
        from urllib.parse import urlsplit

        return urlsplit(url).hostname or "upstream"
    import os

    return os.path.basename(command[0]) if command else "upstream"


def run_proxy(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Serve until the client disconnects; the exit code."""
    try:
        proxy = build_proxy(args, command)
        if args.url:
            check_url(args.url)
        if args.listen:
            from sentinel.mcp.listen import check_listen

            check_listen(args.listen, args.token_file)
    except SentinelConfigError as exc:
        print(f"sentinel mcp: {exc}", file=sys.stderr)  # the message includes the hint
        return 2

    def upstream() -> AbstractAsyncContextManager[tuple[Any, Any]]:
        return http_upstream(args.url) if args.url else stdio_upstream(command)

    try:
        anyio.run(_serve, proxy, upstream, args, backend="asyncio")
    except OSError as exc:
        print(
            f"sentinel mcp: cannot start the upstream {proxy.info.upstream!r}: {exc}",
            file=sys.stderr,
        )
        return 1
    finally:
        proxy.guard.flush()
    return 0


async def _serve(
    proxy: McpProxy,
    upstream: Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]],
    args: argparse.Namespace,
) -> None:
    if args.listen:
        from sentinel.mcp.listen import serve_http

        await serve_http(lambda: session_proxy(proxy), upstream, args.listen, args.token_file)
        return
    from mcp.server.stdio import stdio_server

    async with upstream() as up, stdio_server() as client:
        await proxy.run(client, up)
