"""A LangGraph agent process for the interrupt-mode tests: a protected tools node in interrupt
mode, an SQLite checkpointer, and a scripted model.

``start``: run until the interrupt and print its requests. ``resume``: resume the saved thread
once the queue has decided (``resume_when_decided``) and print the tool messages. Every
execution of the tool appends a line to RAN_FILE, so the test counts executions across
processes.

Usage: python lg_interrupt_child.py start|resume RULES DB CHECKPOINTS RAN_FILE TIMEOUT
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

from sentinel import SentinelConfig
from sentinel.integrations.langgraph import (
    pending_requests,
    protected_tool_node,
    resume_when_decided,
)
from tests.integrations.support import fake_tool_model
from tests.integrations.test_langgraph import build_graph, tool_calls


def main() -> int:
    mode, rules, db, checkpoints, ran_file, timeout = sys.argv[1:7]

    @tool
    def transfer_funds(amount: int, destination: str) -> str:
        """Move money to an account."""
        with open(ran_file, "a", encoding="utf-8") as fh:
            fh.write(f"{amount} {destination}\n")
        return f"sent {amount} to {destination}"

    cfg = SentinelConfig(
        rules_path=Path(rules), db_path=Path(db), show_waiting_hint=False,
        timeout_seconds=float(timeout), hot_reload=False,
    )  # fmt: skip
    turns = (
        [tool_calls(("transfer_funds", {"amount": 5000, "destination": "ACC-9"}, "call-1"))]
        if mode == "start"
        else [AIMessage(content="Done.")]
    )
    conn = sqlite3.connect(checkpoints, check_same_thread=False)
    graph = build_graph(
        fake_tool_model(turns),
        protected_tool_node([transfer_funds], cfg, approval="interrupt"),
        checkpointer=SqliteSaver(conn),
    )
    thread = {"configurable": {"thread_id": "agent-thread"}}
    if mode == "start":
        graph.invoke({"messages": [HumanMessage("pay ACC-9")]}, thread)
        out = {"requests": [req for _, req in pending_requests(graph.get_state(thread))]}
    else:
        result = resume_when_decided(graph, thread, cfg, timeout=60, poll_seconds=0.05)
        if result is None:
            out = {"resumed": False}
        else:
            out = {
                "resumed": True,
                "tools": [
                    {"content": m.content, "status": m.status}
                    for m in result["messages"]
                    if isinstance(m, ToolMessage)
                ],
                "last": result["messages"][-1].content,
                "still_waiting": [r for _, r in pending_requests(graph.get_state(thread))],
            }
    conn.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
