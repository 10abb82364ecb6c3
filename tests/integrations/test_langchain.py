"""LangChain tools under Sentinel, through the public tool API (invoke / ainvoke / batch) and a
tool-calling agent loop driven by a fake chat model. Real rules files, a real SQLite queue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForToolRun
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from sentinel import SentinelBlockedError, SentinelConfig, SentinelConfigError
from sentinel.errors import SentinelDeniedError
from sentinel.guard import Guard
from sentinel.integrations.langchain import (
    ProtectedTool,
    create_protected_tool,
    protect_tool,
    protect_tools,
)
from sentinel.store import HistoryFilter, Store
from tests.integrations.support import (
    Decider,
    LimitHook,
    LoopProbe,
    QueueDecider,
    fake_tool_model,
    write_rules,
)

# --- tools of every kind --------------------------------------------------------------------

RAN: list[tuple[str, Any]] = []


@tool
def transfer_funds(amount: int, destination: str) -> str:
    """Move money to an account."""
    RAN.append(("transfer_funds", amount))
    return f"sent {amount} to {destination}"


@tool
def send_email(to: str) -> str:
    """Send an email."""
    RAN.append(("send_email", to))
    return f"mailed {to}"


@tool
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    RAN.append(("delete_user", user_id))
    return "deleted"


@tool
async def transfer_async(amount: int, destination: str) -> str:
    """Move money (async)."""
    await asyncio.sleep(0)
    RAN.append(("transfer_async", amount))
    return f"async sent {amount}"


class TransferArgs(BaseModel):
    """Arguments of a transfer."""

    amount: float = Field(description="how much, in euros")
    destination: str = Field(description="IBAN of the receiver")
    memo: str = Field(default="", description="free text")


def _structured(amount: float, destination: str, memo: str = "") -> str:
    RAN.append(("transfer_structured", amount))
    return f"structured {amount}"


transfer_structured = StructuredTool.from_function(
    _structured,
    name="transfer_structured",
    description="Move money with a memo.",
    args_schema=TransferArgs,
    return_direct=True,
    tags=["money"],
    metadata={"team": "billing"},
    handle_tool_error="the bank is down",
)


class LookupTool(BaseTool):
    """A BaseTool subclass without args_schema (inferred from _run), sync and async."""

    name: str = "lookup_account"
    description: str = "Look up an account by number."

    def _run(self, number: int, run_manager: CallbackManagerForToolRun | None = None) -> str:
        RAN.append(("lookup_account", number))
        return f"account {number} (callbacks: {run_manager is not None})"

    async def _arun(self, number: int, run_manager: Any = None) -> str:
        RAN.append(("lookup_account_async", number))
        return f"async account {number}"


class SubclassTransfer(BaseTool):
    """A BaseTool subclass with an explicit schema and a sync implementation only."""

    name: str = "transfer_subclass"
    description: str = "Move money (subclass)."
    args_schema: type[BaseModel] = TransferArgs

    def _run(self, amount: float, destination: str, memo: str = "") -> str:
        RAN.append(("transfer_subclass", amount))
        if destination == "broken":
            raise ToolException("destination bank rejected the transfer")
        return f"subclass sent {amount}"


@pytest.fixture(autouse=True)
def _reset_ran() -> None:
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


def call(name: str, args: dict[str, Any], call_id: str = "call-1") -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


# --- what the model sees ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        transfer_funds,
        send_email,
        transfer_async,
        transfer_structured,
        LookupTool(),
        SubclassTransfer(),
    ],
    ids=lambda t: t.name,
)
def test_the_model_sees_the_original_schema(original: BaseTool, rules: Path, db: Path) -> None:
    protected = protect_tool(original, config(rules, db))
    assert convert_to_openai_tool(protected) == convert_to_openai_tool(original)
    schema = protected.tool_call_schema
    assert isinstance(schema, type)
    assert schema.model_json_schema() == original.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert protected.args == original.args
    assert "args" not in protected.args and "kwargs" not in protected.args
    assert protected.name == original.name
    assert protected.description == original.description


def test_tool_attributes_are_kept(rules: Path, db: Path) -> None:
    handler = BaseCallbackHandler()
    original = transfer_structured.model_copy(
        update={"callbacks": [handler], "response_format": "content", "verbose": True}
    )
    protected = protect_tool(original, config(rules, db))
    assert protected.args_schema is TransferArgs
    assert protected.return_direct is True
    assert protected.tags == ["money"]
    assert protected.metadata == {"team": "billing"}
    assert protected.callbacks == [handler]
    assert protected.handle_tool_error == "the bank is down"
    assert protected.verbose is True
    assert protected.response_format == "content"
    assert protected.wrapped_tool is original
    assert isinstance(protected, ProtectedTool)


def test_a_string_template_with_an_unknown_field_fails_when_wrapping(rules: Path, db: Path) -> None:
    with pytest.raises(SentinelConfigError, match=r"\{amount\}"):
        protect_tool(transfer_funds, config(rules, db), block_message="no {amount}")


def test_protect_tool_rejects_a_plain_function(rules: Path, db: Path) -> None:
    with pytest.raises(TypeError, match="create_protected_tool"):
        protect_tool(_structured, config(rules, db))  # type: ignore[arg-type]


# --- arguments are validated and coerced before the rules see them ------------------------------


def test_string_amount_is_coerced_and_needs_approval(rules: Path, db: Path) -> None:
    channel = Decider(approve=False)
    protected = protect_tool(transfer_funds, config(rules, db, channel))
    out = protected.invoke({"amount": "5000", "destination": "ACC-9"})
    assert len(channel.requests) == 1
    assert channel.requests[0].parameters == {"amount": 5000, "destination": "ACC-9"}
    assert channel.requests[0].rule_id == "large_transfer"
    assert RAN == []
    assert out.startswith("transfer_funds not executed: denied by")
    assert out.endswith("Do not retry this call.")


def test_single_string_input_maps_to_the_one_argument(rules: Path, db: Path) -> None:
    channel = Decider(approve=False)
    protected = protect_tool(send_email, config(rules, db, channel))
    out = protected.invoke("ceo@competitor.com")
    assert [r.parameters for r in channel.requests] == [{"to": "ceo@competitor.com"}]
    assert channel.requests[0].rule_id == "external_email"
    assert RAN == []
    assert "not executed" in out
    # an internal address is allowed and runs with the same single-string input
    assert protected.invoke("bob@example.com") == "mailed bob@example.com"
    assert RAN == [("send_email", "bob@example.com")]


def test_single_string_is_coerced_for_a_numeric_argument(rules: Path, db: Path) -> None:
    protected = protect_tool(LookupTool(), config(rules, db))
    assert protected.invoke("42").startswith("account 42")
    assert RAN == [("lookup_account", 42)]  # the tool got the coerced value the rules saw


def test_invalid_arguments_never_reach_the_rules_or_the_tool(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    protected = protect_tool(transfer_funds, config(rules, db, channel))
    with pytest.raises(Exception, match="amount"):
        protected.invoke({"amount": "lots", "destination": "ACC-9"})
    assert channel.requests == [] and RAN == []


# --- outcomes as the model reads them ---------------------------------------------------------


def test_block_is_an_error_tool_message_and_the_tool_never_runs(rules: Path, db: Path) -> None:
    protected = protect_tool(delete_user, config(rules, db))
    msg = protected.invoke(call("delete_user", {"user_id": 7}, "c-7"))
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert msg.tool_call_id == "c-7"
    assert msg.content == (
        "delete_user not executed: Delete operations are disabled for agents. "
        "Do not retry this call."
    )
    assert msg.artifact["sentinel"]["status"] == "blocked"
    assert msg.artifact["sentinel"]["rule_id"] == "block_deletes"
    assert RAN == []


def test_approved_call_runs_and_returns_a_normal_tool_message(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    protected = protect_tool(transfer_funds, config(rules, db, channel))
    msg = protected.invoke(call("transfer_funds", {"amount": 2500, "destination": "ACC-2"}))
    assert isinstance(msg, ToolMessage)
    assert msg.status == "success"
    assert msg.content == "sent 2500 to ACC-2"
    assert RAN == [("transfer_funds", 2500)]
    assert len(channel.requests) == 1


def test_denial_through_the_queue_from_another_thread(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db))
    with QueueDecider(db, approve=False, reason="too much") as decider:
        msg = protected.invoke(call("transfer_funds", {"amount": 9000, "destination": "X"}))
    assert decider.error is None
    assert msg.status == "error"
    assert "denied by" in msg.content and "too much" in msg.content
    assert msg.artifact["sentinel"]["status"] == "denied"
    assert msg.artifact["sentinel"]["request_id"] == decider.decided[0].id
    assert RAN == []
    record = Store(db).get(decider.decided[0].id)
    assert record.status == "denied"
    assert record.arguments == {"amount": 9000, "destination": "X"}


def test_expiry_is_reported_to_the_model(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db, timeout_seconds=0.3))
    out = protected.invoke({"amount": 9000, "destination": "X"})
    assert "transfer_funds not executed: approval timed out" in out
    assert RAN == []


def test_custom_block_message_template_and_callable(rules: Path, db: Path) -> None:
    cfg = config(rules, db)
    templ = protect_tool(delete_user, cfg, block_message="[{status}] {tool}: {reason} ({rule_id})")
    assert templ.invoke({"user_id": 1}) == (
        "[blocked] delete_user: Delete operations are disabled for agents (block_deletes)"
    )
    fn = protect_tool(delete_user, cfg, block_message=lambda e: f"NO: {e.rule_id}")
    assert fn.invoke({"user_id": 1}) == "NO: block_deletes"
    assert RAN == []


def test_raise_on_block_raises_the_sentinel_exception(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db, Decider(False)), raise_on_block=True)
    with pytest.raises(SentinelDeniedError) as info:
        protected.invoke({"amount": 5000, "destination": "X"})
    assert info.value.rule_id == "large_transfer"
    blocked = protect_tool(delete_user, config(rules, db), raise_on_block=True)
    with pytest.raises(SentinelBlockedError):
        blocked.invoke({"user_id": 3})
    assert RAN == []


def test_governance_failure_blocks_and_tells_the_model(rules: Path, db: Path) -> None:
    def broken_context(**_: Any) -> dict[str, Any]:
        raise RuntimeError("CRM unreachable")

    protected = protect_tool(transfer_funds, config(rules, db, Decider(True)), broken_context)
    out = protected.invoke({"amount": 5000, "destination": "X"})
    assert "not executed: governance error" in out and "CRM unreachable" in out
    assert RAN == []


def test_response_format_content_and_artifact(rules: Path, db: Path) -> None:
    @tool(response_format="content_and_artifact")
    def transfer_report(amount: int) -> tuple[str, dict[str, int]]:
        """Transfer and report."""
        RAN.append(("transfer_report", amount))
        return f"sent {amount}", {"amount": amount}

    protected = protect_tool(transfer_report, config(rules, db, Decider(False)))
    assert protected.response_format == "content_and_artifact"
    ok = protected.invoke(call("transfer_report", {"amount": 10}))
    assert ok.content == "sent 10" and ok.artifact == {"amount": 10}
    no = protected.invoke(call("transfer_report", {"amount": 10_000}))
    assert no.status == "error" and "not executed" in no.content
    assert no.artifact["sentinel"]["status"] == "denied"
    assert RAN == [("transfer_report", 10)]


def test_handle_tool_error_of_the_original_still_applies(rules: Path, db: Path) -> None:
    original = SubclassTransfer(handle_tool_error=True)
    protected = protect_tool(original, config(rules, db))
    msg = protected.invoke(call("transfer_subclass", {"amount": 5, "destination": "broken"}))
    assert msg.status == "error"
    assert msg.content == "destination bank rejected the transfer"


def test_callbacks_see_one_tool_run(rules: Path, db: Path) -> None:
    events: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
            events.append(f"start:{serialized['name']}")

        def on_tool_end(self, output: Any, **kw: Any) -> None:
            events.append("end")

    protected = protect_tool(LookupTool(), config(rules, db))
    out = protected.invoke({"number": 5}, config={"callbacks": [Recorder()]})
    assert out == "account 5 (callbacks: True)"  # the wrapped tool got the run manager
    assert events == ["start:lookup_account", "end"]


def test_injected_arguments_are_passed_but_not_governed(rules: Path, db: Path) -> None:
    @tool
    def transfer_as(amount: int, user: Annotated[str, InjectedToolArg]) -> str:
        """Transfer on behalf of a user."""
        RAN.append(("transfer_as", (amount, user)))
        return f"{user} sent {amount}"

    channel = Decider(approve=True)
    protected = protect_tool(transfer_as, config(rules, db, channel))
    assert "user" not in convert_to_openai_tool(protected)["function"]["parameters"]["properties"]
    assert protected.invoke({"amount": 5000, "user": "alice"}) == "alice sent 5000"
    assert channel.requests[0].parameters == {"amount": 5000}
    assert RAN == [("transfer_as", (5000, "alice"))]


def test_approved_and_rejected_calls_are_audited(rules: Path, db: Path) -> None:
    cfg = config(rules, db, Decider(approve=True, who="auditor"))
    transfer, delete = protect_tools([transfer_funds, delete_user], cfg)
    transfer.invoke({"amount": 4000, "destination": "A"})
    delete.invoke({"user_id": 1})
    transfer.guard.flush()
    events = Store(db).history(HistoryFilter(), limit=20)
    kinds = [(e.kind, e.function) for e in events]
    assert ("blocked", "delete_user") in kinds
    assert ("approved", "transfer_funds") in kinds
    assert ("executed", "transfer_funds") in kinds
    executed = next(e for e in events if e.kind == "executed")
    assert executed.data["result"] == "sent 4000 to A"


# --- async, batches and event loops -----------------------------------------------------------


async def test_ainvoke_async_tool_waits_for_the_queue_without_blocking_the_loop(
    rules: Path, db: Path
) -> None:
    protected = protect_tool(transfer_async, config(rules, db))
    probe = LoopProbe()
    probe.start()
    with QueueDecider(db, approve=True, before_decide=probe.before_decide) as decider:
        out = await protected.ainvoke({"amount": 7000, "destination": "Z"})
    probe.stop()
    assert probe.ran_while_pending is True  # the loop kept running while the call waited
    assert decider.error is None and len(decider.decided) == 1
    assert out == "async sent 7000"
    assert RAN == [("transfer_async", 7000)]


async def test_ainvoke_of_a_sync_tool_and_a_sync_only_subclass(rules: Path, db: Path) -> None:
    cfg = config(rules, db, Decider(True))
    assert (
        await protect_tool(transfer_funds, cfg).ainvoke({"amount": 3000, "destination": "A"})
        == "sent 3000 to A"
    )
    assert (
        await protect_tool(SubclassTransfer(), cfg).ainvoke({"amount": "4000", "destination": "B"})
        == "subclass sent 4000.0"
    )
    assert await protect_tool(LookupTool(), cfg).ainvoke({"number": 8}) == "async account 8"
    assert RAN == [
        ("transfer_funds", 3000),
        ("transfer_subclass", 4000.0),
        ("lookup_account_async", 8),
    ]


async def test_sync_invoke_inside_a_running_event_loop(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    protected = protect_tool(transfer_funds, config(rules, db, channel))
    assert asyncio.get_running_loop().is_running()
    assert protected.invoke({"amount": 5000, "destination": "L"}) == "sent 5000 to L"
    assert len(channel.requests) == 1
    assert RAN == [("transfer_funds", 5000)]


def test_async_only_tool_called_sync_fails_before_asking_anyone(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    protected = protect_tool(transfer_async, config(rules, db, channel))
    with pytest.raises(NotImplementedError, match="ainvoke"):
        protected.invoke({"amount": 5000, "destination": "X"})
    assert channel.requests == [] and RAN == []


def test_batch_mixes_outcomes(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_funds, config(rules, db, Decider(False)))
    out = protected.batch([{"amount": 1, "destination": "A"}, {"amount": 5000, "destination": "B"}])
    assert out[0] == "sent 1 to A"
    assert out[1].startswith("transfer_funds not executed: denied")
    assert RAN == [("transfer_funds", 1)]


async def test_abatch_mixes_outcomes(rules: Path, db: Path) -> None:
    protected = protect_tool(transfer_async, config(rules, db, Decider(False)))
    out = await protected.abatch(
        [{"amount": 1, "destination": "A"}, {"amount": 5000, "destination": "B"}]
    )
    assert out[0] == "async sent 1"
    assert "not executed" in out[1]
    assert RAN == [("transfer_async", 1)]


# --- create_protected_tool ---------------------------------------------------------------------


def _send_money(amount: int, destination: str) -> str:
    """Send money somewhere."""
    RAN.append(("send_money", amount))
    return f"money {amount}"


def test_create_protected_tool_directly_and_as_decorators(rules: Path, db: Path) -> None:
    cfg = config(rules, db, Decider(False))
    direct = create_protected_tool(_send_money, cfg, name="transfer_money")
    reference = StructuredTool.from_function(_send_money, name="transfer_money")
    assert convert_to_openai_tool(direct) == convert_to_openai_tool(reference)

    @create_protected_tool(cfg, name="transfer_deco", description="Decorated transfer.")
    def deco(amount: int, destination: str) -> str:
        RAN.append(("deco", amount))
        return "deco ran"

    @create_protected_tool(config=cfg)
    async def transfer_kw(amount: int) -> str:
        """Async decorated transfer."""
        RAN.append(("transfer_kw", amount))
        return "kw ran"

    assert isinstance(deco, ProtectedTool) and deco.name == "transfer_deco"
    assert deco.description == "Decorated transfer."
    assert deco.args["amount"]["type"] == "integer"
    assert direct.invoke({"amount": "20", "destination": "A"}) == "money 20"
    assert "not executed" in direct.invoke({"amount": "2000", "destination": "A"})
    assert "not executed" in deco.invoke({"amount": 2000, "destination": "A"})
    assert asyncio.run(transfer_kw.ainvoke({"amount": 5})) == "kw ran"
    assert RAN == [("send_money", 20), ("transfer_kw", 5)]


# --- a tool-calling agent loop with a fake chat model ---------------------------------------------


def run_agent(model: Any, tools: list[BaseTool], question: str, max_turns: int = 5) -> list[Any]:
    """The standard tool-calling loop: ask the model, run the tools it calls, feed back."""
    bound = model.bind_tools(tools)
    by_name = {t.name: t for t in tools}
    messages: list[Any] = [HumanMessage(question)]
    for _ in range(max_turns):
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for tool_call in reply.tool_calls:
            messages.append(by_name[tool_call["name"]].invoke(tool_call))
    return messages


def test_agent_loop_keeps_going_after_a_denial(rules: Path, db: Path) -> None:
    model = fake_tool_model(
        [
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "transfer_funds",
                        "args": {"amount": "5000", "destination": "ACC-9"},
                        "id": "t1",
                    },
                    {"name": "send_email", "args": {"to": "bob@example.com"}, "id": "t2"},
                    {"name": "delete_user", "args": {"user_id": 3}, "id": "t3"},
                ],
            ),
            AIMessage(content="The transfer was refused; I emailed Bob."),
        ]
    )
    tools = protect_tools(
        [transfer_funds, send_email, delete_user], config(rules, db, Decider(False))
    )
    messages = run_agent(model, tools, "pay ACC-9 5000 and tell bob")

    # the model was offered the real argument schemas
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in model.bound_tools}
    assert offered["transfer_funds"]["properties"]["amount"] == {"type": "integer"}
    assert set(offered["transfer_funds"]["required"]) == {"amount", "destination"}

    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    assert results["t1"].status == "error" and "not executed: denied" in results["t1"].content
    assert results["t2"].status == "success" and results["t2"].content == "mailed bob@example.com"
    assert results["t3"].status == "error" and "Do not retry" in results["t3"].content
    assert RAN == [("send_email", "bob@example.com")]
    # the run was not aborted: the model got a second turn and saw the rejections
    assert messages[-1].content == "The transfer was refused; I emailed Bob."
    second_turn = model.seen[1]
    assert any(isinstance(m, ToolMessage) and m.tool_call_id == "t1" for m in second_turn)


async def test_async_agent_loop_with_approval_from_the_queue(rules: Path, db: Path) -> None:
    model = fake_tool_model(
        [
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "transfer_async",
                        "args": {"amount": 8000, "destination": "Q"},
                        "id": "a1",
                    }
                ],
            ),
            AIMessage(content="done"),
        ]
    )
    tools = protect_tools([transfer_async], config(rules, db))
    bound = model.bind_tools(tools)
    messages: list[Any] = [HumanMessage("pay")]
    with QueueDecider(db, approve=True) as decider:
        while True:
            reply = await bound.ainvoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            for tc in reply.tool_calls:
                messages.append(await tools[0].ainvoke(tc))
    assert decider.error is None
    tool_msg = next(m for m in messages if isinstance(m, ToolMessage))
    assert tool_msg.content == "async sent 8000" and tool_msg.status == "success"
    assert RAN == [("transfer_async", 8000)]


# --- tools with a JSON-schema dict or without arguments ------------------------------------------


def test_json_schema_tool_keeps_its_schema_and_is_governed(rules: Path, db: Path) -> None:
    schema = {
        "title": "transfer_json",
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "destination": {"type": "string"}},
        "required": ["amount", "destination"],
    }

    def run(**kw: Any) -> str:
        RAN.append(("transfer_json", kw["amount"]))
        return "json ran"

    original = StructuredTool(
        name="transfer_json", description="Transfer (JSON schema).", args_schema=schema, func=run
    )
    channel = Decider(approve=False)
    protected = protect_tool(original, config(rules, db, channel))
    assert convert_to_openai_tool(protected) == convert_to_openai_tool(original)
    assert protected.invoke({"amount": 50, "destination": "A"}) == "json ran"
    assert "not executed" in protected.invoke({"amount": 5000, "destination": "A"})
    assert [r.parameters for r in channel.requests] == [{"amount": 5000, "destination": "A"}]
    assert RAN == [("transfer_json", 50)]


def test_tool_without_arguments_is_governed_by_name(rules: Path, db: Path) -> None:
    def purge() -> str:
        """Purge everything."""
        RAN.append(("delete_everything", None))
        return "purged"

    protected = protect_tool(
        StructuredTool.from_function(purge, name="delete_everything"), config(rules, db)
    )
    assert protected.args == {}
    assert "Delete operations are disabled" in protected.invoke({})
    assert RAN == []


# --- escalation hooks (limits, anomaly detection) apply through the same guard ----------------


def test_escalation_hooks_apply_to_protected_tools(rules: Path, db: Path) -> None:
    hook = LimitHook(limit=100)
    guard = Guard(config(rules, db), hooks=[hook])
    protected = protect_tool(transfer_funds, guard=guard)
    out = protected.invoke(call("transfer_funds", {"amount": "500", "destination": "A"}))
    assert out.status == "error" and "over the 100 limit" in out.content
    assert out.artifact["sentinel"]["rule_id"] == "limit:test"
    assert protected.invoke({"amount": 20, "destination": "A"}) == "sent 20 to A"
    assert RAN == [("transfer_funds", 20)]
    assert hook.observed == [("transfer_funds", {"amount": 20, "destination": "A"})]
    assert hook.abandoned == [("transfer_funds", {"amount": 500, "destination": "A"})]


def test_guard_and_config_together_are_refused(rules: Path, db: Path) -> None:
    cfg = config(rules, db)
    with pytest.raises(SentinelConfigError, match="either guard= or config"):
        protect_tool(transfer_funds, cfg, guard=Guard(cfg))


def test_a_model_visible_argument_is_never_hidden_from_the_rules(rules: Path, db: Path) -> None:
    class Args(BaseModel):
        amount: int
        callbacks: str = Field(description="a model-supplied field with a plumbing name")

    def run(amount: int, callbacks: str) -> str:
        RAN.append(("transfer_odd", (amount, callbacks)))
        return "odd ran"

    original = StructuredTool.from_function(
        run, name="transfer_odd", description="odd", args_schema=Args
    )
    channel = Decider(approve=True)
    protected = protect_tool(original, config(rules, db, channel))
    assert "callbacks" in protected.args
    assert protected.invoke({"amount": 5000, "callbacks": "x"}) == "odd ran"
    assert channel.requests[0].parameters == {"amount": 5000, "callbacks": "x"}


def test_context_provider_gets_the_coerced_arguments(rules: Path, db: Path) -> None:
    seen: list[Any] = []

    async def balance(amount: int, **_: Any) -> dict[str, Any]:
        seen.append(amount)
        return {"balance": 10_000, "after": 10_000 - amount}

    channel = Decider(approve=True)
    protected = protect_tool(transfer_funds, config(rules, db, channel), balance)
    assert protected.invoke({"amount": "2500", "destination": "A"}) == "sent 2500 to A"
    assert seen == [2500]
    assert channel.requests[0].context == {"balance": 10_000, "after": 7500}


def test_fail_safe_lets_the_call_run_when_governance_fails(rules: Path, db: Path) -> None:
    def broken(**_: Any) -> dict[str, Any]:
        raise RuntimeError("context store down")

    protected = protect_tool(
        transfer_funds, config(rules, db, Decider(True), fail_mode="safe"), broken
    )
    assert protected.invoke({"amount": 5000, "destination": "A"}) == "sent 5000 to A"
    assert RAN == [("transfer_funds", 5000)]
