"""A scripted MCP client talking to an MCP server through ``sentinel mcp``, offline.

It starts the proxy the way Claude Desktop would (``claude_desktop_config.json`` beside this
file), with the SDK's own client (``ClientSession`` over stdio), lists the tools and calls them:

* ``add_note`` — allowed by the rules: forwarded, the server's answer comes back;
* ``delete_note`` — blocked: an ``isError`` result with the rule's message, which the model reads;
* ``send_email`` to an outside address — needs approval: the call waits in Sentinel's queue. This
  script plays the operator with the real command line (``sentinel approve <id>``); with
  ``--queue`` it waits for you to decide in ``sentinel tui`` or with ``sentinel approve``.

    python examples/mcp/client.py [--queue]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import Implementation

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from sentinel.store import Store  # noqa: E402
from sentinel.store.paths import default_db_path  # noqa: E402


def text(result: object) -> str:
    return "".join(getattr(b, "text", "") for b in getattr(result, "content", []))


def sentinel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args], capture_output=True, text=True, timeout=60
    )


async def operator(db: Path) -> None:
    """Wait for the queued request and approve it with `sentinel approve`."""
    while True:
        pending = Store(db).list_pending() if db.exists() else []
        if pending:
            request = pending[0]
            print(f"  operator: sentinel approve {request.id[:8]}  ({request.reason})")
            out = sentinel("approve", request.id, "--db", str(db), "--reason", "ok for the demo")
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
            return
        await anyio.sleep(0.1)


async def main(queue: bool) -> None:
    db = default_db_path()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proxy = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sentinel.cli", "mcp", "--rules", str(HERE / "rules.yaml"),
              "--", sys.executable, str(HERE / "notes_server.py")],
        env=env,
    )  # fmt: skip
    async with stdio_client(proxy) as (read, write), ClientSession(
        read, write, client_info=Implementation(name="example-client", version="1.0")
    ) as session:
        init = await session.initialize()
        print(f"connected to {init.server_info.name} through sentinel mcp")
        tools = await session.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))

        result = await session.call_tool("add_note", {"name": "todo", "text": "ship it"})
        print(f"add_note    -> error={result.is_error}: {text(result)}")

        result = await session.call_tool("delete_note", {"name": "welcome"})
        print(f"delete_note -> error={result.is_error}: {text(result)}")

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            if not queue:
                tg.start_soon(operator, db)
            else:
                print("send_email waits for you: sentinel tui (or sentinel approve <id>)")
            result = await session.call_tool(
                "send_email", {"to": "partner@elsewhere.org", "body": "Quarterly numbers"}
            )
        waited = time.monotonic() - started
        print(f"send_email  -> error={result.is_error}: {text(result)} (after {waited:.1f}s)")

        greeting = await session.read_resource("notes://welcome")
        print("resource notes://welcome:", greeting.contents[0].text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a scripted MCP client through sentinel mcp")
    parser.add_argument("--queue", action="store_true", help="decide the approval yourself")
    anyio.run(main, parser.parse_args().queue, backend="asyncio")
