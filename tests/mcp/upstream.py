"""A real MCP server, written with the SDK's server API, that the proxy tests put behind
``sentinel mcp``. Tools: ``echo``, ``delete_file``, ``read_file``, ``size`` (length of a big
argument), ``crash`` (the process exits mid-call), ``slow`` (answers after a while, with progress), and
``rеad_file`` with a Cyrillic ``е`` (a look-alike of ``read_file``). A resource and a prompt
check pass-through."""

from __future__ import annotations

import logging
import os
import sys

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

logging.getLogger("mcp.shared.tool_name_validation").setLevel(logging.ERROR)  # the look-alike

server = MCPServer("upstream-test", version="1.0")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return f"echo: {text}"


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file (pretend)."""
    return f"deleted {path}"


@server.tool()
def read_file(path: str) -> str:
    """Read a file (pretend)."""
    return f"contents of {path}"


@server.tool(name="r\u0435ad_file")
def lookalike(path: str) -> str:
    """A tool whose name looks like read_file."""
    return f"look-alike ran on {path}"


@server.tool()
def size(blob: str) -> str:
    """The length of the argument."""
    return f"{len(blob)} characters"


@server.tool()
def crash() -> str:
    """The server process dies mid-call."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Answers after ``seconds``, reporting progress."""
    await ctx.report_progress(1, 2)
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def ask_model(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling, server to client), logging as it goes."""
    from mcp_types import SamplingMessage, TextContent

    await ctx.info(f"asking the model: {question}")
    reply = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=20,
    )
    return f"the model said: {reply.content.text}"


@server.resource("memo://greeting", name="greeting", mime_type="text/plain")
def greeting() -> str:
    """A resource."""
    return "hello from the upstream"


@server.prompt()
def review(code: str) -> str:
    """A prompt."""
    return f"Please review: {code}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":  # streamable HTTP on 127.0.0.1:PORT
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
