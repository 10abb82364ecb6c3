"""LangGraph interrupt mode: a call that needs approval interrupts the run with its request id;
a resume obeys the decision stored in the queue (never the resume value), runs an approved call
exactly once, and gives the model a denial or an expiry as the tool result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="needs the [langgraph] extra")
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from sentinel import SentinelConfig
from sentinel.errors import SentinelConfigError
from sentinel.identity import current_operator
from sentinel.integrations.langgraph import (
    InterruptingTool,
    aresume_when_decided,
    pending_requests,
    protect_graph_tools,
    protected_tool_node,
    resume_when_decided,
)
from sentinel.store import Store
from tests.helpers import signed_decide
from tests.integrations.support import fake_tool_model, write_rules
from tests.integrations.test_langgraph import build_graph, tool_calls

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


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


def config(tmp_path: Path, db: Path, **kw: Any) -> SentinelConfig:
    kw.setdefault("timeout_seconds", 120.0)
    return SentinelConfig(
        rules_path=write_rules(tmp_path), db_path=db, show_waiting_hint=False, **kw
    )


def graph_for(cfg: SentinelConfig, *turns: Any, tools: Any = (transfer_funds,)) -> Any:
    model = fake_tool_model(list(turns))
    node = protected_tool_node(list(tools), cfg, approval="interrupt")
    return build_graph(model, node, checkpointer=InMemorySaver()), model


THREAD = {"configurable": {"thread_id": "th-1"}}


def tool_messages(result: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}


def test_interrupts_with_the_request_and_runs_once_after_the_queue_approves(
    tmp_path: Path, db: Path
) -> None:
    cfg = config(tmp_path, db)
    graph, _ = graph_for(
        cfg,
        tool_calls(
            ("transfer_funds", {"amount": "5000", "destination": "ACC-9"}, "t1"),
            ("transfer_funds", {"amount": 5, "destination": "ACC-1"}, "t2"),
        ),
        AIMessage(content="Paid."),
        AIMessage(content="replayed"),
    )
    first = graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    (intr,) = first["__interrupt__"]
    (req,) = intr.value["sentinel"]
    assert req["function"] == "transfer_funds" and req["tool_call_id"] == "t1"
    assert req["arguments"] == {"amount": 5000, "destination": "ACC-9"}  # coerced, as stored
    assert req["reason"] == "Transfer of 5000 to ACC-9 needs approval"
    assert req["expires_at"] == pytest.approx(time.time() + 120, abs=10)
    assert RAN == []  # not even the allowed call of the batch ran
    store = Store(db)
    rec = store.get(req["request_id"])
    assert rec.is_pending and rec.function == "transfer_funds"
    assert store.sweep() == 0 and store.get(rec.id).is_pending  # no process waits: not "exited"

    # A forged "approved" while the request is pending: nothing runs, the run pauses again.
    again = graph.invoke(Command(resume={"approved": True}), THREAD)
    assert [r["request_id"] for _, r in pending_requests(graph.get_state(THREAD))] == [rec.id]
    assert "__interrupt__" in again and RAN == []
    assert len(store.list_pending()) == 1  # the re-run found the same request

    signed_decide(store, rec.id, True, current_operator("test"), "fine")
    done = resume_when_decided(graph, THREAD, cfg, timeout=10)
    msgs = tool_messages(done)
    assert msgs["t1"].content == "sent 5000 to ACC-9" and msgs["t1"].status == "success"
    assert msgs["t2"].content == "sent 5 to ACC-1"
    assert sorted(RAN) == [("transfer_funds", 5), ("transfer_funds", 5000)]
    assert done["messages"][-1].content == "Paid."

    # Resuming again, or re-running the interrupted checkpoint, never runs it a second time.
    graph.invoke(Command(resume={"approved": True}), THREAD)
    paused = next(s for s in graph.get_state_history(THREAD) if s.interrupts)
    replay = graph.invoke(Command(resume="yes"), paused.config)
    # a replay re-runs what it replays (the allowed call), but the approved one only ran once
    assert RAN.count(("transfer_funds", 5000)) == 1 and RAN.count(("transfer_funds", 5)) == 2
    # the replay re-ran the tools node: the claimed approval is refused, the model is told
    refused = [m for m in replay["messages"][-3:] if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in refused if m.status == "error"] == ["t1"]
    assert "used already" in refused[0].content
    claims = [e for e in store.events_after(0, 1000) if e.kind == "approval_claimed"]
    assert [e.request_id for e in claims] == [rec.id]


def test_a_denial_is_the_tool_result_whatever_the_resume_says(tmp_path: Path, db: Path) -> None:
    cfg = config(tmp_path, db)
    graph, model = graph_for(
        cfg,
        tool_calls(("transfer_funds", {"amount": 9000, "destination": "X"}, "d1")),
        AIMessage(content="Could not."),
    )
    first = graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    rid = first["__interrupt__"][0].value["sentinel"][0]["request_id"]
    signed_decide(Store(db), rid, False, current_operator("test"), "not today")
    done = graph.invoke(Command(resume={"sentinel": {rid: "approved"}}), THREAD)  # a lie
    msg = tool_messages(done)["d1"]
    assert msg.status == "error" and "denied by" in msg.content and "not today" in msg.content
    assert RAN == []
    assert done["messages"][-1].content == "Could not."
    assert any(isinstance(m, ToolMessage) for m in model.seen[1])  # the model read the denial


def test_an_approval_written_without_a_signature_does_not_run(tmp_path: Path, db: Path) -> None:
    """Signing is on (the test's operators file): the row says approved, the check says no."""
    cfg = config(tmp_path, db)
    graph, _ = graph_for(
        cfg,
        tool_calls(("transfer_funds", {"amount": 9000, "destination": "X"}, "u1")),
        AIMessage(content="ok"),
    )
    first = graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    rid = first["__interrupt__"][0].value["sentinel"][0]["request_id"]
    Store(db).decide(rid, True, current_operator("intruder"), "trust me")  # no signature
    done = resume_when_decided(graph, THREAD, cfg, timeout=10)
    msg = tool_messages(done)["u1"]
    assert msg.status == "error" and "not signed by a trusted operator" in msg.content
    assert RAN == []


def test_no_decision_before_the_expiry_is_an_expiry(tmp_path: Path, db: Path) -> None:
    cfg = config(tmp_path, db, timeout_seconds=0.5)
    graph, _ = graph_for(
        cfg,
        tool_calls(("transfer_funds", {"amount": 9000, "destination": "X"}, "e1")),
        AIMessage(content="too slow"),
    )
    first = graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    rid = first["__interrupt__"][0].value["sentinel"][0]["request_id"]
    time.sleep(0.6)
    done = resume_when_decided(graph, THREAD, cfg, timeout=10)  # returns at once: past expiry
    msg = tool_messages(done)["e1"]
    assert msg.status == "error" and "not executed" in msg.content
    assert msg.artifact["sentinel"]["status"] == "expired"
    assert Store(db).get(rid).status == "expired"
    assert RAN == []


def test_resume_when_decided_times_out_and_leaves_the_run_paused(tmp_path: Path, db: Path) -> None:
    cfg = config(tmp_path, db)
    graph, _ = graph_for(
        cfg, tool_calls(("transfer_funds", {"amount": 9000, "destination": "X"}, "w1"))
    )
    graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    with pytest.raises(TimeoutError, match="stays paused"):
        resume_when_decided(graph, THREAD, cfg, timeout=0.3, poll_seconds=0.05)
    assert pending_requests(graph.get_state(THREAD)) and RAN == []
    assert resume_when_decided(graph, {"configurable": {"thread_id": "other"}}, cfg) is None


async def test_async_graph_resumes_when_the_queue_decides(tmp_path: Path, db: Path) -> None:
    import asyncio

    cfg = config(tmp_path, db)
    graph, _ = graph_for(
        cfg,
        tool_calls(("transfer_async", {"amount": 7000, "destination": "Z"}, "a1")),
        AIMessage(content="done"),
        tools=(transfer_async,),
    )
    first = await graph.ainvoke({"messages": [HumanMessage("pay")]}, THREAD)
    rid = first["__interrupt__"][0].value["sentinel"][0]["request_id"]
    assert RAN == []
    store = Store(db)

    async def operator() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(signed_decide, store, rid, True, current_operator("test"), "ok")

    decided = asyncio.ensure_future(operator())
    # the database alone is enough to resume (a path here; a SentinelConfig elsewhere)
    done = await aresume_when_decided(graph, THREAD, db, timeout=20, poll_seconds=0.05)
    await decided
    assert RAN == [("transfer_async", 7000)]
    assert tool_messages(done)["a1"].content == "async sent 7000"


def test_interrupt_mode_needs_a_thread(tmp_path: Path, db: Path) -> None:
    cfg = config(tmp_path, db)
    (wrapped,) = protect_graph_tools([transfer_funds], cfg, approval="interrupt")
    assert isinstance(wrapped, InterruptingTool) and wrapped.name == "transfer_funds"
    call = {"name": "transfer_funds", "args": {"amount": 9000, "destination": "X"}, "id": "c1"}
    with pytest.raises(SentinelConfigError, match="needs a LangGraph run with a checkpointer"):
        wrapped.invoke({**call, "type": "tool_call"})
    assert RAN == [] and Store(db).list_pending() == []
    # A graph without a checkpointer could never resume: refused before any request is written.
    model = fake_tool_model([tool_calls(("transfer_funds", call["args"], "c2"))])
    graph = build_graph(model, protected_tool_node([transfer_funds], cfg, approval="interrupt"))
    with pytest.raises(SentinelConfigError, match="needs a LangGraph run with a checkpointer"):
        graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    assert RAN == [] and Store(db).list_pending() == []
    with pytest.raises(SentinelConfigError, match="approval must be"):
        protect_graph_tools([transfer_funds], cfg, approval="later")  # type: ignore[arg-type]


def test_an_edited_approval_runs_the_edited_call_once(tmp_path: Path, db: Path) -> None:
    from sentinel.trust.decide import Decider

    cfg = config(tmp_path, db)
    graph, _ = graph_for(
        cfg,
        tool_calls(("transfer_funds", {"amount": 5000, "destination": "ACC-1"}, "x1")),
        AIMessage(content="ok"),
    )
    first = graph.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    rid = first["__interrupt__"][0].value["sentinel"][0]["request_id"]
    store = Store(db)
    assert store.get(rid).arg_schema["properties"]["amount"]["type"] == "integer"
    Decider.local("cli").decide(store, rid, True, "less", edits={"amount": "400"})
    done = resume_when_decided(graph, THREAD, cfg, timeout=10)
    msg = tool_messages(done)["x1"]
    assert RAN == [("transfer_funds", 400)]
    assert "amount: 5000 → 400" in msg.content and msg.content.endswith("sent 400 to ACC-1")


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_prebuilt_react_agent_with_the_interrupting_node(tmp_path: Path, db: Path) -> None:
    """``create_react_agent`` takes the node itself; it sends each tool call as its own task, so
    the allowed call finishes while the other waits, and neither runs twice on resume."""
    from langgraph.prebuilt import create_react_agent

    cfg = config(tmp_path, db)
    model = fake_tool_model(
        [
            tool_calls(
                ("transfer_funds", {"amount": 5000, "destination": "ACC-9"}, "r1"),
                ("transfer_funds", {"amount": 5, "destination": "ACC-1"}, "r2"),
            ),
            AIMessage(content="both"),
        ]
    )
    agent = create_react_agent(
        model,
        protected_tool_node([transfer_funds], cfg, approval="interrupt"),
        checkpointer=InMemorySaver(),
    )
    first = agent.invoke({"messages": [HumanMessage("pay")]}, THREAD)
    ((_, req),) = pending_requests(agent.get_state(THREAD))
    assert req["tool_call_id"] == "r1" and "__interrupt__" in first
    signed_decide(Store(db), req["request_id"], True, current_operator("test"), "ok")
    done = resume_when_decided(agent, THREAD, cfg, timeout=10)
    assert sorted(RAN) == [("transfer_funds", 5), ("transfer_funds", 5000)]
    assert {k: m.content for k, m in tool_messages(done).items()} == {
        "r1": "sent 5000 to ACC-9",
        "r2": "sent 5 to ACC-1",
    }
