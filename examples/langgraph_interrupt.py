"""LangGraph interrupt mode, offline (scripted model): the run stops at the approval, the process
exits, and another process resumes it from the SQLite checkpoint once an operator has decided.

    python examples/langgraph_interrupt.py start    # runs until the interrupt, prints the request
    sentinel approve <id>                           # or `sentinel deny <id>`, or `sentinel tui`
    python examples/langgraph_interrupt.py resume   # waits for the decision, resumes, prints

`protected_tool_node(tools, config, approval="interrupt")` replaces `ToolNode(tools)`; the graph
needs a checkpointer (here `langgraph-checkpoint-sqlite`, a file in the current folder). The
resume obeys the queue's decision; the tool runs at most once however often you resume.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import sentinel  # noqa: F401
except ImportError:  # a source checkout that is not installed: use it in place
    sys.path.insert(0, str(HERE.parent))

from langgraph_graph import ScriptedChatModel, delete_user, deploy_service  # noqa: E402

from sentinel import SentinelConfig  # noqa: E402
from sentinel.integrations.langgraph import (  # noqa: E402
    pending_requests,
    protected_tool_node,
    resume_when_decided,
)

RULES = HERE.parent / "rules.yaml"
THREAD = {"configurable": {"thread_id": "release-42"}}


def build(config: SentinelConfig, turns: list[AIMessage], checkpointer: Any) -> Any:
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import tools_condition

    tools_node = protected_tool_node([deploy_service, delete_user], config, approval="interrupt")
    model = ScriptedChatModel(messages=iter(turns)).bind_tools(
        list(tools_node.tools_by_name.values())
    )
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", tools_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["start", "resume"])
    parser.add_argument("--checkpoints", default="langgraph-checkpoints.sqlite")
    args = parser.parse_args()
    config = SentinelConfig(rules_path=RULES, agent_id="langgraph-demo", show_waiting_hint=False)
    conn = sqlite3.connect(args.checkpoints, check_same_thread=False)
    if args.step == "start":
        turns = [
            AIMessage(
                content="",
                tool_calls=[
                    {"name": "deploy_service", "args": {"service": "api", "environment": "prod"},
                     "id": "d1"},
                    {"name": "delete_user", "args": {"user_id": 42}, "id": "d2"},
                ],
            )
        ]  # fmt: skip
        graph = build(config, turns, SqliteSaver(conn))
        graph.invoke({"messages": [HumanMessage("Ship api to prod and remove user 42.")]}, THREAD)
        for _, req in pending_requests(graph.get_state(THREAD)):
            print(f"interrupted: {req['function']} {req['arguments']} needs approval")
            print(f"  request {req['request_id']}: {req['reason']}")
            print(f"  decide with: sentinel approve {req['request_id']}  (or sentinel deny …)")
        print("The run is saved; this process exits. Resume with: langgraph_interrupt.py resume")
        return 0
    done = [AIMessage(content="Finished: see the tool results above.")]
    graph = build(config, done, SqliteSaver(conn))
    result = resume_when_decided(graph, THREAD, config)
    if result is None:
        print("Nothing to resume: the run is not waiting for an approval.")
        return 0
    for m in result["messages"]:
        if isinstance(m, ToolMessage):
            print(f"  tool[{m.name}] ({m.status}): {m.content}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
