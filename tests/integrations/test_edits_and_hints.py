"""Edit, then approve, and denial hints, through the real frameworks: langchain-core tools,
a LangGraph ``ToolNode`` graph and the OpenAI Agents SDK runner (fake models, real SDK code, a
real SQLite queue decided from another thread and signed with the tester's key).

What the model reads is what matters here: a call an operator changed says so (and how) in the
tool's result; a denied or blocked call comes back as the tool's result with the rule's
``deny_hint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from sentinel import SentinelConfig
from sentinel.integrations.langchain import protect_tool
from sentinel.store import Store
from tests.integrations.support import QueueDecider, fake_tool_model, write_rules

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: huge_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 10000}
    action: block
    message: "Transfers above 10,000 are not allowed"
    deny_hint: "split transfers above 10,000 into approved batches"
  - id: large_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
    deny_hint: "ask the customer to confirm the amount first"
"""

RAN: list[tuple[int, str]] = []


@tool
def transfer_funds(amount: int, destination: str) -> str:
    """Move money to an account."""
    RAN.append((amount, destination))
    return f"sent {amount} to {destination}"


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path, RULES)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


def config(rules: Path, db: Path) -> SentinelConfig:
    return SentinelConfig(
        rules_path=rules, db_path=db, timeout_seconds=60.0, show_waiting_hint=False
    )


def call(args: dict[str, Any], call_id: str = "c-1") -> dict[str, Any]:
    return {"type": "tool_call", "name": "transfer_funds", "args": args, "id": call_id}


# --- LangChain -------------------------------------------------------------------------------


def test_langchain_edited_call_runs_once_and_the_tool_message_says_so(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db))
    with QueueDecider(db, approve=True, edits={"amount": "400", "destination": "ACC-2"}) as d:
        msg = protected.invoke(call({"amount": 5000, "destination": "ACC-1"}))
    assert d.error is None
    assert RAN == [(400, "ACC-2")]  # once, with the edit, typed by the tool's schema (int)
    assert isinstance(msg, ToolMessage) and msg.status == "success"
    assert msg.content.startswith(
        "Note: an operator changed this transfer_funds call before approving it "
        '(amount: 5000 → 400; destination: "ACC-1" → "ACC-2")'
    )
    assert msg.content.endswith("\nsent 400 to ACC-2")
    record = Store(db).get(d.decided[0].id)
    assert record.arg_schema["properties"]["amount"]["type"] == "integer"  # the tool's schema
    assert record.edit is not None and record.edit.values == {"amount": 400, "destination": "ACC-2"}


async def test_langchain_async_edit_and_plain_string_result(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db))
    with QueueDecider(db, approve=True, edits={"amount": "900"}) as d:
        out = await protected.ainvoke({"amount": 5000, "destination": "ACC-1"})
    assert d.error is None
    assert RAN == [(900, "ACC-1")]
    assert out.startswith("Note: an operator changed") and out.endswith("sent 900 to ACC-1")


def test_langchain_denial_is_the_tool_result_with_the_rules_hint(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db))
    with QueueDecider(db, approve=False, reason="not today") as d:
        msg = protected.invoke(call({"amount": 5000, "destination": "ACC-1"}))
    assert d.error is None and RAN == []
    assert isinstance(msg, ToolMessage) and msg.status == "error"
    assert "denied by" in msg.content and "not today" in msg.content
    assert msg.content.endswith("Hint: ask the customer to confirm the amount first.")
    assert msg.artifact["sentinel"]["hint"] == "ask the customer to confirm the amount first"
    blocked = protected.invoke(call({"amount": 50_000, "destination": "ACC-1"}, "c-2"))
    assert blocked.content == (
        "transfer_funds not executed: Transfers above 10,000 are not allowed. Do not retry this "
        "call. Hint: split transfers above 10,000 into approved batches."
    )


# --- LangGraph -------------------------------------------------------------------------------


def test_langgraph_model_reads_the_edit_and_the_hint(rules: Path, db: Path) -> None:
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import tools_condition

    from sentinel.integrations.langgraph import protected_tool_node

    model = fake_tool_model(
        [
            AIMessage(
                content="",
                tool_calls=[
                    {"name": "transfer_funds", "args": {"amount": 5000, "destination": "A"}, "id": "t1"}
                ],
            ),
            AIMessage(
                content="",
                tool_calls=[
                    {"name": "transfer_funds", "args": {"amount": 20000, "destination": "A"}, "id": "t2"}
                ],
            ),
            AIMessage(content="done"),
        ]
    )
    node = protected_tool_node([transfer_funds], config(rules, db))
    bound = model.bind_tools(list(node.tools_by_name.values()))
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda s: {"messages": [bound.invoke(s["messages"])]})
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    with QueueDecider(db, approve=True, edits={"amount": "1000"}) as d:
        result = graph.compile().invoke({"messages": [HumanMessage("pay")]})
    assert d.error is None
    assert RAN == [(1000, "A")]
    first, second = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert "amount: 5000 → 1000" in first.content and first.content.endswith("sent 1000 to A")
    assert second.status == "error"
    assert second.content.endswith("Hint: split transfers above 10,000 into approved batches.")
    assert result["messages"][-1].content == "done"


# --- OpenAI Agents SDK -------------------------------------------------------------------------


async def test_openai_agents_edit_and_hint_reach_the_model(rules: Path, db: Path) -> None:
    pytest.importorskip("agents")
    from agents import Agent, Runner, function_tool, set_tracing_disabled

    from sentinel.integrations.openai_agents import protect_function_tool
    from tests.integrations.support import agents_call, agents_text, fake_agents_model

    set_tracing_disabled(True)

    @function_tool
    def transfer(amount: int, destination: str) -> str:
        """Move money."""
        RAN.append((amount, destination))
        return f"sent {amount} to {destination}"

    protected = protect_function_tool(transfer, config(rules, db))
    model = fake_agents_model(
        [
            [agents_call("transfer", {"amount": 5000, "destination": "Z"}, "q1")],
            [agents_call("transfer", {"amount": 50000, "destination": "Z"}, "q2")],
            [agents_text("paid")],
        ]
    )
    with QueueDecider(db, approve=True, edits={"amount": "700"}) as d:
        result = await Runner.run(Agent(name="payer", tools=[protected], model=model), "pay")
    assert d.error is None
    assert RAN == [(700, "Z")]
    outs = {
        i.raw_item["call_id"]: i.output
        for i in result.new_items
        if type(i).__name__ == "ToolCallOutputItem"
    }
    assert outs["q1"].startswith("Note: an operator changed this transfer call before approving")
    assert "amount: 5000 → 700" in outs["q1"] and outs["q1"].endswith("sent 700 to Z")
    assert outs["q2"].endswith("Hint: split transfers above 10,000 into approved batches.")
    record = Store(db).get(d.decided[0].id)
    assert set(record.arg_schema["properties"]) == {"amount", "destination"}
