"""LangGraph graphs with a protected tools node: a call that needs approval pauses in the SQLite
queue and the graph resumes with the decision; rejections reach the model as tool messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest

pytest.importorskip("langgraph", reason="needs the [langgraph] extra")
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, tools_condition
from langgraph.types import Command, interrupt

from sentinel import SentinelBlockedError, SentinelConfig
from sentinel.integrations.langchain import ProtectedTool
from sentinel.integrations.langgraph import protect_graph_tools, protected_tool_node
from sentinel.store import Store
from tests.integrations.support import (
    Decider,
    LoopProbe,
    QueueDecider,
    fake_tool_model,
    write_rules,
)

RAN: list[tuple[str, Any]] = []


@tool
def transfer_funds(amount: int, destination: str) -> str:
    """Move money to an account."""
    RAN.append(("transfer_funds", amount))
    return f"sent {amount} to {destination}"


@tool
async def transfer_async(amount: int, destination: str) -> str:
    """Move money (async)."""
    RAN.append(("transfer_async", amount))
    return f"async sent {amount}"


@tool
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    RAN.append(("delete_user", user_id))
    return "deleted"


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


def config(rules: Path, db: Path, channel: Any = "queue", **kw: Any) -> SentinelConfig:
    # A wait that is never answered ends well within the test timeout, as an expiry.
    kw.setdefault("timeout_seconds", 60.0)
    return SentinelConfig(
        rules_path=rules, db_path=db, approval_interface=channel, show_waiting_hint=False, **kw
    )


def tool_calls(*calls: tuple[str, dict[str, Any], str]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": i} for n, a, i in calls])


def build_graph(model: Any, node: ToolNode, *, checkpointer: Any = None) -> Any:
    """The standard agent graph: model → tools (if it called any) → model …"""
    bound = model.bind_tools(list(node.tools_by_name.values()))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    from langchain_core.runnables import RunnableLambda

    graph = StateGraph(MessagesState)
    graph.add_node("agent", RunnableLambda(agent, afunc=aagent))
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def test_protected_tool_node_is_a_tool_node_of_protected_tools(rules: Path, db: Path) -> None:
    node = protected_tool_node([transfer_funds, delete_user], config(rules, db), name="guarded")
    assert isinstance(node, ToolNode)
    assert node.name == "guarded"
    assert set(node.tools_by_name) == {"transfer_funds", "delete_user"}
    assert all(isinstance(t, ProtectedTool) for t in node.tools_by_name.values())


def test_plain_functions_and_already_protected_tools(rules: Path, db: Path) -> None:
    def lookup(number: int) -> str:
        """Look an account up."""
        return f"acct {number}"

    cfg = config(rules, db)
    (already,) = protect_graph_tools([transfer_funds], cfg)
    tools = protect_graph_tools([lookup, already], cfg)
    assert tools[1] is already
    assert tools[0].name == "lookup" and tools[0].args["number"]["type"] == "integer"


def test_graph_pauses_for_approval_and_resumes_after_the_decision(rules: Path, db: Path) -> None:
    model = fake_tool_model(
        [
            tool_calls(("transfer_funds", {"amount": "5000", "destination": "ACC-9"}, "t1")),
            AIMessage(content="Paid."),
        ]
    )
    graph = build_graph(
        model,
        protected_tool_node([transfer_funds], config(rules, db)),
        checkpointer=InMemorySaver(),
    )
    seen_while_pending: list[Any] = []
    with QueueDecider(
        db, approve=True, before_decide=lambda rec: seen_while_pending.append((rec, list(RAN)))
    ) as decider:
        result = graph.invoke(
            {"messages": [HumanMessage("pay")]}, {"configurable": {"thread_id": "1"}}
        )
    assert decider.error is None
    ((record, ran_then),) = seen_while_pending
    assert record.function == "transfer_funds"
    assert record.arguments == {"amount": 5000, "destination": "ACC-9"}  # coerced
    assert record.rule_id == "large_transfer"
    assert ran_then == []  # nothing ran while the request waited
    assert RAN == [("transfer_funds", 5000)]
    tool_msg = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert tool_msg.content == "sent 5000 to ACC-9" and tool_msg.status == "success"
    assert result["messages"][-1].content == "Paid."
    assert Store(db).get(record.id).status == "approved"


def test_denied_and_blocked_calls_become_messages_and_the_graph_goes_on(
    rules: Path, db: Path
) -> None:
    model = fake_tool_model(
        [
            tool_calls(
                ("transfer_funds", {"amount": 9000, "destination": "X"}, "t1"),
                ("delete_user", {"user_id": 4}, "t2"),
            ),
            AIMessage(content="Could not do either."),
        ]
    )
    graph = build_graph(
        model, protected_tool_node([transfer_funds, delete_user], config(rules, db))
    )
    with QueueDecider(db, approve=False, reason="not today") as decider:
        result = graph.invoke({"messages": [HumanMessage("pay and delete")]})
    assert decider.error is None
    msgs = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert msgs["t1"].status == "error" and "denied by" in msgs["t1"].content
    assert "not today" in msgs["t1"].content
    assert msgs["t2"].status == "error"
    assert msgs["t2"].content.startswith("delete_user not executed: Delete operations")
    assert RAN == []
    assert result["messages"][-1].content == "Could not do either."
    # the model's second turn saw both rejections
    second = model.seen[1]
    assert {m.tool_call_id for m in second if isinstance(m, ToolMessage)} == {"t1", "t2"}


async def test_async_graph_waits_without_blocking_the_loop(rules: Path, db: Path) -> None:
    model = fake_tool_model(
        [
            tool_calls(("transfer_async", {"amount": 7000, "destination": "Z"}, "a1")),
            AIMessage(content="done"),
        ]
    )
    graph = build_graph(model, protected_tool_node([transfer_async], config(rules, db)))
    probe = LoopProbe()
    probe.start()
    with QueueDecider(db, approve=True, before_decide=probe.before_decide) as decider:
        result = await graph.ainvoke({"messages": [HumanMessage("pay")]})
    probe.stop()
    assert probe.ran_while_pending is True  # the loop kept running while the call waited
    assert decider.error is None
    assert RAN == [("transfer_async", 7000)]
    assert result["messages"][-1].content == "done"


def test_parallel_tool_calls_wait_together(rules: Path, db: Path) -> None:
    model = fake_tool_model(
        [
            tool_calls(
                ("transfer_funds", {"amount": 2000, "destination": "A"}, "p1"),
                ("transfer_funds", {"amount": 3000, "destination": "B"}, "p2"),
            ),
            AIMessage(content="both"),
        ]
    )
    graph = build_graph(model, protected_tool_node([transfer_funds], config(rules, db)))
    with QueueDecider(db, approve=True, count=2, wait_for=2) as decider:
        result = graph.invoke({"messages": [HumanMessage("pay twice")]})
    assert decider.error is None
    assert sorted(r.arguments["amount"] for r in decider.decided) == [2000, 3000]
    assert sorted(RAN) == [("transfer_funds", 2000), ("transfer_funds", 3000)]
    assert result["messages"][-1].content == "both"


def test_injected_state_reaches_the_tool_but_not_the_rules(rules: Path, db: Path) -> None:
    @tool
    def transfer_for(amount: int, state: Annotated[dict[str, Any], InjectedState]) -> str:
        """Transfer, knowing the conversation."""
        RAN.append(("transfer_for", (amount, len(state["messages"]))))
        return "ok"

    channel = Decider(approve=True)
    model = fake_tool_model(
        [tool_calls(("transfer_for", {"amount": 5000}, "s1")), AIMessage(content="fine")]
    )
    graph = build_graph(model, protected_tool_node([transfer_for], config(rules, db, channel)))
    graph.invoke({"messages": [HumanMessage("pay")]})
    assert "state" not in model.bound_tools[0]["function"]["parameters"]["properties"]
    assert [r.parameters for r in channel.requests] == [{"amount": 5000}]
    assert RAN == [("transfer_for", (5000, 2))]


def test_a_tool_that_interrupts_still_interrupts(rules: Path, db: Path) -> None:
    @tool
    def transfer_confirmed(amount: int) -> str:
        """Transfer after the user confirms in the app."""
        answer = interrupt({"question": f"really send {amount}?"})
        RAN.append(("transfer_confirmed", (amount, answer)))
        return f"sent {amount} ({answer})"

    model = fake_tool_model(
        [tool_calls(("transfer_confirmed", {"amount": 5000}, "i1")), AIMessage(content="ok")]
    )
    channel = Decider(approve=True)
    graph = build_graph(
        model,
        protected_tool_node([transfer_confirmed], config(rules, db, channel)),
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "t"}}
    first = graph.invoke({"messages": [HumanMessage("pay")]}, cfg)
    assert first["__interrupt__"][0].value == {"question": "really send 5000?"}
    assert RAN == []
    done = graph.invoke(Command(resume="yes"), cfg)
    assert RAN == [("transfer_confirmed", (5000, "yes"))]
    assert done["messages"][-1].content == "ok"
    # LangGraph re-runs the node from the top on resume, so the call is decided again: a tool
    # that needs approval and also interrupts is approved once per run of the node
    assert len(channel.requests) == 2


def test_raise_on_block_stops_the_graph(rules: Path, db: Path) -> None:
    model = fake_tool_model([tool_calls(("delete_user", {"user_id": 1}, "d1"))])
    graph = build_graph(
        model, protected_tool_node([delete_user], config(rules, db), raise_on_block=True)
    )
    with pytest.raises(SentinelBlockedError):
        graph.invoke({"messages": [HumanMessage("delete")]})
    assert RAN == []


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_prebuilt_react_agent_with_protected_tools(rules: Path, db: Path) -> None:
    from langgraph.prebuilt import create_react_agent

    channel = Decider(approve=False)
    model = fake_tool_model(
        [
            tool_calls(
                ("transfer_funds", {"amount": "5000", "destination": "ACC-9"}, "r1"),
                ("transfer_funds", {"amount": "5", "destination": "ACC-1"}, "r2"),
            ),
            AIMessage(content="one of two"),
        ]
    )
    agent = create_react_agent(
        model, protect_graph_tools([transfer_funds], config(rules, db, channel))
    )
    result = agent.invoke({"messages": [HumanMessage("pay")]})
    msgs = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert msgs["r1"].status == "error" and "not executed: denied" in msgs["r1"].content
    assert msgs["r2"].content == "sent 5 to ACC-1"
    assert [r.parameters["amount"] for r in channel.requests] == [5000]
    assert RAN == [("transfer_funds", 5)]
    assert model.bound_tools[0]["function"]["parameters"]["properties"]["amount"] == {
        "type": "integer"
    }
    assert result["messages"][-1].content == "one of two"
