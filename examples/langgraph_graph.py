"""A LangGraph agent graph whose tools node is protected by Sentinel, offline (scripted model).

    python examples/langgraph_graph.py           # a scripted operator decides approvals
    python examples/langgraph_graph.py --queue   # the graph pauses in the durable queue until
                                                 # you run `sentinel approve <id>` (or use
                                                 # `sentinel tui`) in another terminal

`protected_tool_node(tools, config)` replaces `ToolNode(tools)`. A call that needs approval pauses
inside the tools node while its request waits in SQLite; the graph resumes with the decision. A
production deploy is approved here; deleting a user is blocked and the model is told why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # demo_operator, next to this file
try:
    import sentinel  # noqa: F401
except ImportError:  # a source checkout that is not installed: use it in place
    sys.path.insert(0, str(HERE.parent))

from demo_operator import ScriptedOperator  # noqa: E402

from sentinel import SentinelConfig  # noqa: E402
from sentinel.integrations.langgraph import protected_tool_node  # noqa: E402

RULES = HERE.parent / "rules.yaml"


@tool
def deploy_service(service: str, environment: str) -> str:
    """Deploy a service to an environment."""
    return f"{service} deployed to {environment}"


@tool
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    return f"user {user_id} deleted"


class ScriptedChatModel(GenericFakeChatModel):
    """langchain-core's fake chat model, plus ``bind_tools`` as real providers implement it."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def build(config: SentinelConfig) -> Any:
    tools_node = protected_tool_node([deploy_service, delete_user], config)
    model = ScriptedChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "deploy_service",
                            "args": {"service": "api", "environment": "prod"},
                            "id": "d1",
                        },
                        {"name": "delete_user", "args": {"user_id": 42}, "id": "d2"},
                    ],
                ),
                AIMessage(content="api is live in prod; user 42 could not be deleted (blocked)."),
            ]
        )
    ).bind_tools(list(tools_node.tools_by_name.values()))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", action="store_true", help="decide in the real queue")
    args = parser.parse_args()
    config = SentinelConfig(
        rules_path=RULES,
        agent_id="langgraph-demo",
        approval_interface="queue" if args.queue else ScriptedOperator(("deploy",)),
    )
    graph = build(config)
    result = graph.invoke(
        {"messages": [HumanMessage("Ship api to prod and remove user 42.")]},
        {"configurable": {"thread_id": "demo"}},
    )
    print("Graph finished. Messages:")
    for m in result["messages"]:
        if isinstance(m, ToolMessage):
            print(f"  tool[{m.name}] ({m.status}): {m.content}")
        elif isinstance(m, AIMessage) and m.content:
            print(f"  assistant: {m.content}")
        elif isinstance(m, HumanMessage):
            print(f"  user: {m.content}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
