"""Cost of LangGraph interrupt mode: a call that needs approval interrupts the run, an operator
approves in the queue (not timed), and the run is resumed from its checkpoint.

For each checkpointer (LangGraph's in-memory saver and the SQLite saver on a file), the same
agent graph (model -> protected tools node -> model, a scripted model) is timed:

* ``allowed run``: one whole run whose tool call is allowed (the baseline: no approval);
* ``to interrupt``: the run until the interrupt (decide, submit the request, checkpoint);
* ``resume``: from ``Command(resume=...)`` to the end (re-run of the node, the store's decision
  checked and claimed, the tool, the model's next turn).

Figures are medians and p95 in milliseconds over ``--runs`` threads, and the overhead of
"to interrupt + resume" over the allowed run.

    python benchmarks/lg_interrupt.py [--runs 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This folder holds benchmarks/queue.py, which would shadow the standard library's ``queue``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))


def _ms(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95)] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = 30 if args.quick else args.runs

    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import Command

    from sentinel import SentinelConfig
    from sentinel.identity import current_operator
    from sentinel.integrations.langgraph import pending_requests, protected_tool_node
    from sentinel.store import Store
    from tests.integrations.support import fake_tool_model, write_rules
    from tests.integrations.test_langgraph import build_graph, tool_calls

    tmp = Path(tempfile.mkdtemp(prefix="sentinel-lgi-"))
    os.environ["SENTINEL_HOME"] = str(tmp / "home")
    os.environ["SENTINEL_REQUIRE_SIGNED"] = "0"  # decisions written directly by the benchmark
    cfg = SentinelConfig(
        rules_path=write_rules(tmp), db_path=tmp / "s.db", show_waiting_hint=False,
        timeout_seconds=600, hot_reload=False, require_signed_decisions=False,
    )  # fmt: skip

    @tool
    def transfer_funds(amount: int, destination: str) -> str:
        """Move money to an account."""
        return f"sent {amount} to {destination}"

    store = Store(tmp / "s.db")
    operator = current_operator("bench")
    node = protected_tool_node([transfer_funds], cfg, approval="interrupt")
    results: dict[str, Any] = {}
    for saver_name in ("memory", "sqlite"):
        conn = sqlite3.connect(tmp / f"{saver_name}.ckpt", check_same_thread=False)
        saver = InMemorySaver() if saver_name == "memory" else SqliteSaver(conn)
        allowed: list[float] = []
        to_interrupt: list[float] = []
        resume: list[float] = []
        for i in range(2 * (runs + 5)):  # allowed and approval runs alternate; 10 warm up
            amount = 5 if i % 2 else 5000
            graph = build_graph(
                fake_tool_model(
                    [tool_calls(("transfer_funds", {"amount": amount, "destination": "A"}, f"c{i}")),
                     AIMessage(content="done")]
                ),
                node,
                checkpointer=saver,
            )  # fmt: skip
            thread = {"configurable": {"thread_id": f"{saver_name}-{i}"}}
            t0 = time.perf_counter()
            out = graph.invoke({"messages": [HumanMessage("pay")]}, thread)
            t1 = time.perf_counter()
            if amount == 5:
                assert "__interrupt__" not in out
                if i >= 10:
                    allowed.append(t1 - t0)
                continue
            ((_, req),) = pending_requests(graph.get_state(thread))
            store.decide(req["request_id"], True, operator, "bench")
            t2 = time.perf_counter()
            done = graph.invoke(Command(resume="approved"), thread)
            t3 = time.perf_counter()
            assert done["messages"][-1].content == "done", done["messages"][-2]
            if i >= 10:
                to_interrupt.append(t1 - t0)
                resume.append(t3 - t2)
        a, i_, r = _ms(allowed), _ms(to_interrupt), _ms(resume)
        results[saver_name] = {
            "allowed_run_ms": a,
            "to_interrupt_ms": i_,
            "resume_ms": r,
            "overhead_ms": i_[0] + r[0] - a[0],
            "ratio": (i_[0] + r[0]) / a[0],
        }
        conn.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"LangGraph interrupt mode, {runs} runs per figure (median / p95 ms)")
    for name, res in results.items():
        print(f"  checkpointer {name}:")
        for key in ("allowed_run_ms", "to_interrupt_ms", "resume_ms"):
            med, p95 = res[key]
            print(f"    {key[:-3].replace('_', ' '):<14} {med:7.2f} / {p95:7.2f}")
        print(
            f"    interrupt + resume = {res['ratio']:.1f}x an allowed run "
            f"(+{res['overhead_ms']:.2f} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
