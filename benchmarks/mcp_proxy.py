"""Overhead of the MCP gating proxy on an allowed tool call.

In one process, one event loop, the SDK's own client (``ClientSession``) calls the tool ``echo``
of a real MCP server (the SDK's ``MCPServer``) two ways, interleaved call by call:

* direct: client ⇄ server;
* through the proxy: client ⇄ :class:`sentinel.mcp.McpProxy` (deciding each ``tools/call`` with the
  repository's ``rules.yaml``: allowed) ⇄ server.

All ends are joined by in-memory streams, so the figures are the proxy's own cost (relay, JSON-RPC
envelopes, the decision), not a pipe's or a process's. Printed: p50 and p99 of the round trip in
microseconds both ways, and the difference (target: ≤ 1 ms at p50).

With ``--processes`` the same comparison runs between real processes over stdio pipes, the way
a client runs it: ``python tests/mcp/upstream.py`` started directly, and ``sentinel mcp --
python tests/mcp/upstream.py`` (two pipes more, one process more).

    python benchmarks/mcp_proxy.py [--calls 2000] [--processes]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This folder holds benchmarks/queue.py, which would shadow the standard library's ``queue``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.server import MCPServer  # noqa: E402


def make_server() -> MCPServer:
    server = MCPServer("bench-upstream", version="1.0")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    return server


def pipe() -> tuple[Any, Any]:
    return anyio.create_memory_object_stream[Any](16)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main(calls: int) -> None:
    from sentinel.config import SentinelConfig
    from sentinel.mcp import McpProxy, ProxyInfo, guard_for

    home = Path(tempfile.mkdtemp(prefix="sentinel-mcp-bench-"))
    os.environ["SENTINEL_HOME"] = str(home)
    config = SentinelConfig(rules_path=ROOT / "rules.yaml", db=home / "sentinel.db")
    proxy = McpProxy(guard_for(config), info=ProxyInfo(upstream="in-process"))

    direct_server, proxied_server = make_server(), make_server()
    async with anyio.create_task_group() as tg:
        # direct: client <-> server
        d_c2s, d_s_read = pipe()
        d_s2c, d_c_read = pipe()
        low = direct_server._lowlevel_server
        tg.start_soon(low.run, d_s_read, d_s2c, low.create_initialization_options())
        # proxied: client <-> proxy <-> server
        c2p, p_client_read = pipe()
        p2c, c_read = pipe()
        p2u, u_read = pipe()
        u2p, p_up_read = pipe()
        low2 = proxied_server._lowlevel_server
        tg.start_soon(low2.run, u_read, u2p, low2.create_initialization_options())
        tg.start_soon(proxy.run, (p_client_read, p2c), (p_up_read, p2u))

        async with (
            ClientSession(d_c_read, d_c2s) as direct,
            ClientSession(c_read, c2p) as proxied,
        ):
            await direct.initialize()
            await proxied.initialize()
            for _ in range(200):  # warm up both paths (schemas, the policy, the store)
                await direct.call_tool("echo", {"text": "warm"})
                await proxied.call_tool("echo", {"text": "warm"})
            d_times: list[float] = []
            p_times: list[float] = []
            for i in range(calls):
                args = {"text": f"hello {i}"}
                t0 = time.perf_counter()
                r1 = await direct.call_tool("echo", args)
                t1 = time.perf_counter()
                r2 = await proxied.call_tool("echo", args)
                t2 = time.perf_counter()
                assert not r1.is_error and not r2.is_error, (r1, r2)
                d_times.append((t1 - t0) * 1e6)
                p_times.append((t2 - t1) * 1e6)
        tg.cancel_scope.cancel()

    report("in-process", calls, d_times, p_times)


async def main_processes(calls: int) -> None:
    from mcp.client.stdio import StdioServerParameters, stdio_client

    home = Path(tempfile.mkdtemp(prefix="sentinel-mcp-bench-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SENTINEL_HOME=str(home))
    upstream = [sys.executable, str(ROOT / "tests" / "mcp" / "upstream.py")]
    direct_params = StdioServerParameters(command=upstream[0], args=upstream[1:], env=env)
    proxy_params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sentinel.cli", "mcp", "--rules", str(ROOT / "rules.yaml"), "--", *upstream],
        env=env,
    )
    async with (
        stdio_client(direct_params) as (dr, dw),
        stdio_client(proxy_params) as (pr, pw),
        ClientSession(dr, dw) as direct,
        ClientSession(pr, pw) as proxied,
    ):
        await direct.initialize()
        await proxied.initialize()
        for _ in range(200):
            await direct.call_tool("echo", {"text": "warm"})
            await proxied.call_tool("echo", {"text": "warm"})
        d_times: list[float] = []
        p_times: list[float] = []
        for i in range(calls):
            args = {"text": f"hello {i}"}
            t0 = time.perf_counter()
            r1 = await direct.call_tool("echo", args)
            t1 = time.perf_counter()
            r2 = await proxied.call_tool("echo", args)
            t2 = time.perf_counter()
            assert not r1.is_error and not r2.is_error, (r1, r2)
            d_times.append((t1 - t0) * 1e6)
            p_times.append((t2 - t1) * 1e6)
    report("between processes over stdio", calls, d_times, p_times)


def report(where: str, calls: int, d_times: list[float], p_times: list[float]) -> None:
    d50, d99 = percentile(d_times, 0.5), percentile(d_times, 0.99)
    p50, p99 = percentile(p_times, 0.5), percentile(p_times, 0.99)
    print(f"MCP proxy overhead, allowed tools/call, {calls} calls each way ({where}, µs)")
    print(f"  direct          p50 {d50:8.0f}   p99 {d99:8.0f}")
    print(f"  through proxy   p50 {p50:8.0f}   p99 {p99:8.0f}")
    print(f"  difference      p50 {p50 - d50:8.0f}   p99 {p99 - d99:8.0f}")
    verdict = "within" if p50 - d50 <= 1000 else "OVER"
    print(f"  target: ≤ 1000 µs added at p50 — {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls each way (default 2000)")
    parser.add_argument(
        "--processes", action="store_true", help="real processes over stdio instead"
    )
    opts = parser.parse_args()
    if opts.calls < 10:
        parser.error("--calls must be at least 10")
    anyio.run(main_processes if opts.processes else main, opts.calls, backend="asyncio")
