"""Per-call cost of the framework integrations: the same tool called directly and protected.

Measured in one process, allowed calls (the common case) and blocked calls (which write their
event synchronously), for:

1. LangChain ``tool.invoke(dict)``, ``tool.invoke(tool_call)`` (returns a ToolMessage) and
   ``await tool.ainvoke(dict)``;
2. OpenAI Agents SDK ``FunctionTool.on_invoke_tool(ctx, json)`` (what the Runner calls).

Figures are the median and p95 of per-call wall time in microseconds, and the overhead Sentinel
adds to the median. The rules are the repository's ``rules.yaml``; the database is a temporary one.

    python benchmarks/integrations.py [--calls 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This folder holds benchmarks/queue.py, which would shadow the standard library's ``queue``
# (used by concurrent.futures, hence LangChain) if it stayed first on the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))


Stats = tuple[float, float]


def _stats(times: list[int]) -> Stats:
    times.sort()
    return statistics.median(times) / 1000, times[int(len(times) * 0.95)] / 1000


def measure(
    direct: Callable[[], Any], protected: Callable[[], Any], calls: int
) -> tuple[Stats, Stats]:
    """Per-call times of both, interleaved call by call so drift and noise hit both alike."""
    for _ in range(min(200, calls)):  # warm caches (schemas, policy, connections)
        direct()
        protected()
    a: list[int] = []
    b: list[int] = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        direct()
        t1 = time.perf_counter_ns()
        protected()
        t2 = time.perf_counter_ns()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return _stats(a), _stats(b)


async def ameasure(
    direct: Callable[[], Awaitable[Any]], protected: Callable[[], Awaitable[Any]], calls: int
) -> tuple[Stats, Stats]:
    for _ in range(min(200, calls)):
        await direct()
        await protected()
    a: list[int] = []
    b: list[int] = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        await direct()
        t1 = time.perf_counter_ns()
        await protected()
        t2 = time.perf_counter_ns()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return _stats(a), _stats(b)


def langchain_rows(
    config: Any, calls: int
) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    from langchain_core.tools import tool

    from sentinel.integrations.langchain import protect_tool

    @tool
    def transfer_funds(amount: int, destination: str) -> str:
        """Transfer money."""
        return "ok"

    @tool
    async def transfer_async(amount: int, destination: str) -> str:
        """Transfer money (async)."""
        return "ok"

    @tool
    def delete_user(user_id: int) -> str:
        """Delete a user."""
        return "deleted"

    p_sync = protect_tool(transfer_funds, config)
    p_async = protect_tool(transfer_async, config)
    p_del = protect_tool(delete_user, config)
    args = {"amount": 50, "destination": "ACC-1"}
    call = {"name": "transfer_funds", "args": args, "id": "c1", "type": "tool_call"}
    rows = [
        (
            "langchain invoke(dict), allowed",
            *measure(lambda: transfer_funds.invoke(args), lambda: p_sync.invoke(args), calls),
        ),
        (
            "langchain invoke(tool_call), allowed",
            *measure(lambda: transfer_funds.invoke(call), lambda: p_sync.invoke(call), calls),
        ),
        (
            "langchain invoke, blocked (delete_*)",
            *measure(
                lambda: delete_user.invoke({"user_id": 1}),
                lambda: p_del.invoke({"user_id": 1}),
                calls,
            ),
        ),
    ]

    plain, protected = asyncio.run(
        ameasure(lambda: transfer_async.ainvoke(args), lambda: p_async.ainvoke(args), calls)
    )
    rows.append(("langchain ainvoke(dict), allowed", plain, protected))
    return rows


def agents_rows(
    config: Any, calls: int
) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    from agents import function_tool, set_tracing_disabled
    from agents.tool_context import ToolContext

    from sentinel.integrations.openai_agents import protect_function_tool

    set_tracing_disabled(True)

    @function_tool
    async def transfer_funds(amount: int, destination: str) -> str:
        """Transfer money."""
        return "ok"

    protected = protect_function_tool(transfer_funds, config)
    raw = json.dumps({"amount": 50, "destination": "ACC-1"})

    def ctx() -> Any:
        return ToolContext(
            context=None, tool_name="transfer_funds", tool_call_id="c1", tool_arguments=raw
        )

    plain, prot = asyncio.run(
        ameasure(
            lambda: transfer_funds.on_invoke_tool(ctx(), raw),
            lambda: protected.on_invoke_tool(ctx(), raw),
            calls,
        )
    )
    return [("agents on_invoke_tool(json), allowed", plain, prot)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 calls per figure")
    args = parser.parse_args()
    calls = 300 if args.quick else args.calls

    from sentinel import SentinelConfig

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SENTINEL_HOME"] = tmp
        config = SentinelConfig(rules_path=ROOT / "rules.yaml", db_path=Path(tmp) / "s.db")
        rows = langchain_rows(config, calls)
        try:
            rows += agents_rows(config, calls)
        except ImportError:
            print("(openai-agents not installed: skipped)")

    print(f"{calls} calls per figure; microseconds per call (median / p95)\n")
    print(f"{'call':40} {'direct':>16} {'protected':>16} {'added (median)':>15}")
    for name, (d_med, d_p95), (p_med, p_p95) in rows:
        print(
            f"{name:40} {d_med:8.1f} /{d_p95:6.1f} {p_med:8.1f} /{p_p95:6.1f} {p_med - d_med:+14.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
