"""Running a real MCP client session through a real ``sentinel mcp`` process."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import Implementation

from tests.helpers import python_env

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream.py"
RAW_UPSTREAM = HERE / "raw_upstream.py"

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
    message: "Deleting files is disabled for agents"
    deny_hint: "move the file to /trash with move_file instead"
  - id: reads_allowed
    function_pattern: "read_file"
    action: allow
  - id: review_reads
    function_pattern: "read_file"
    conditions:
      - param: path
        operator: startswith
        value: /etc
    action: require_approval
    message: "Reading {path} needs approval"
  - id: slow_needs_ok
    function_pattern: "slow"
    action: require_approval
    message: "slow calls need approval"
"""


def proxy_command(
    rules: Path, db: Path, *options: str, upstream: Sequence[str] = (), url: str | None = None
) -> list[str]:
    """``python -m sentinel.cli mcp …  -- python upstream.py`` (or ``--url URL``)."""
    up = ["--url", url] if url else ["--", *(list(upstream) or [sys.executable, str(UPSTREAM)])]
    return [
        sys.executable, "-m", "sentinel.cli", "mcp", "--rules", str(rules), "--db", str(db),
        *options, *up,
    ]  # fmt: skip


@asynccontextmanager
async def session(
    rules: Path,
    db: Path,
    *options: str,
    upstream: Sequence[str] = (),
    url: str | None = None,
    client_options: dict[str, object] | None = None,
    **env: str,
) -> AsyncIterator[ClientSession]:
    """An initialized ``ClientSession`` talking to the proxy over stdio."""
    command = proxy_command(rules, db, *options, upstream=upstream, url=url)
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=python_env(SENTINEL_REQUIRE_SIGNED="0", **env)
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(
            read,
            write,
            client_info=Implementation(name="test-client", version="9.9"),
            **(client_options or {}),  # type: ignore[arg-type]
        ) as s:
            await s.initialize()
            yield s


def text_of(result: object) -> str:
    """The first text block of a tool result."""
    content = getattr(result, "content", [])
    return "".join(getattr(block, "text", "") for block in content)
