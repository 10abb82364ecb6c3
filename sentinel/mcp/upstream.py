"""Connections to the upstream MCP server: a command run over stdio, or a streamable HTTP URL.
Both are the SDK's own client transports; each yields a ``(read, write)`` stream pair."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from sentinel.errors import SentinelConfigError


def describe_command(command: Sequence[str]) -> str:
    """The upstream command as one line (for messages)."""
    return " ".join(command)[:300]


@asynccontextmanager
async def stdio_upstream(command: Sequence[str]) -> AsyncIterator[tuple[Any, Any]]:
    """Run ``command`` (the upstream MCP server) with this process's environment and talk to
    it over its stdin/stdout; its stderr is ours. Raises OSError when it cannot be started."""
    from mcp.client.stdio import StdioServerParameters, stdio_client

    if not command:
        raise SentinelConfigError("no upstream command given", field="upstream")
    params = StdioServerParameters(command=command[0], args=list(command[1:]), env=dict(os.environ))
    async with stdio_client(params, errlog=sys.stderr) as streams:
        yield streams


def check_url(url: str) -> str:
    """An upstream URL must be http(s) with a host; plain http only to this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SentinelConfigError(
            f"--url {url!r} is not an http(s) URL of a streamable HTTP MCP endpoint",
            field="url",
            hint="e.g. --url https://mcp.example.com/mcp",
        )
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SentinelConfigError(
            f"--url {url!r} uses plain http to another machine; tool calls and their results "
            "would cross the network unencrypted",
            field="url",
            hint="use https://, or http:// only to 127.0.0.1 / localhost",
        )
    return url


@asynccontextmanager
async def http_upstream(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Talk to a streamable HTTP MCP endpoint at ``url``."""
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(check_url(url)) as streams:
        yield streams[0], streams[1]
