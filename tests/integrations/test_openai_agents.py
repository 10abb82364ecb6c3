"""OpenAI Agents SDK function tools under Sentinel, run by the real ``Runner`` with a scripted
model (no network): queue approvals, the SDK's own approvals backed by the policy, rejections as
tool output the model reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents", reason="needs the [openai-agents] extra")
from agents import (
    Agent,
    FunctionTool,
    RunContextWrapper,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.exceptions import UserError

from sentinel import SentinelBlockedError, SentinelConfig, SentinelConfigError
from sentinel.guard import Guard
from sentinel.integrations.openai_agents import (
    OpenAIAgentsApproval,
    policy_needs_approval,
    protect_function_tool,
    protect_function_tools,
    protected_function_tool,
)
from sentinel.store import HistoryFilter, Store
from tests.integrations.support import (
    Decider,
    LimitHook,
    QueueDecider,
    agents_call,
    agents_text,
    fake_agents_model,
    write_rules,
)

set_tracing_disabled(True)  # no trace export: these tests never touch the network

RAN: list[tuple[str, Any]] = []


@function_tool
def transfer_funds(amount: int, destination: str) -> str:
    """Move money to an account.

    Args:
        amount: how much, in euros
        destination: the receiving account
    """
    RAN.append(("transfer_funds", amount))
    return f"sent {amount} to {destination}"


@function_tool
async def send_email(to: str, subject: str = "") -> str:
    """Send an email."""
    RAN.append(("send_email", to))
    return f"mailed {to}"


@function_tool
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


def outputs(result: Any) -> dict[str, Any]:
    """Tool outputs of a run by call id."""
    return {
        item.raw_item["call_id"]: item.output
        for item in result.new_items
        if type(item).__name__ == "ToolCallOutputItem"
    }


def model_saw(model: Any, turn: int) -> dict[str, str]:
    """The function-call outputs the model was given on a turn, by call id."""
    items = model.inputs[turn]
    return {
        i["call_id"]: i["output"]
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    }


# --- the tool the model sees ------------------------------------------------------------------


def test_the_protected_tool_looks_the_same(rules: Path, db: Path) -> None:
    protected = protect_function_tool(transfer_funds, config(rules, db))
    assert isinstance(protected, FunctionTool)
    assert protected is not transfer_funds
    assert protected.name == transfer_funds.name
    assert protected.description == transfer_funds.description
    assert protected.params_json_schema == transfer_funds.params_json_schema
    assert protected.strict_json_schema is True
    assert protected.needs_approval is False  # "queue" mode leaves the SDK flag alone
    assert protected.on_invoke_tool is not transfer_funds.on_invoke_tool
    # the original is untouched and still usable on its own
    assert transfer_funds.__wrapped__.__name__ == "transfer_funds"


def test_bad_arguments_to_protect(rules: Path, db: Path) -> None:
    cfg = config(rules, db)
    with pytest.raises(TypeError, match="protected_function_tool"):
        protect_function_tool(lambda: None, cfg)  # type: ignore[arg-type]
    with pytest.raises(SentinelConfigError, match="approvals"):
        protect_function_tool(transfer_funds, cfg, approvals="later")  # type: ignore[arg-type]
    with pytest.raises(SentinelConfigError, match=r"\{who\}"):
        protect_function_tool(transfer_funds, cfg, block_message="{who}")


# --- queue approvals through a real Runner ----------------------------------------------------


async def test_coerced_arguments_denied_call_and_allowed_call(rules: Path, db: Path) -> None:
    channel = Decider(approve=False, reason="over budget")
    tools = protect_function_tools([transfer_funds, delete_user], config(rules, db, channel))
    model = fake_agents_model(
        [
            [
                agents_call("transfer_funds", {"amount": "5000", "destination": "ACC-9"}, "c1"),
                agents_call("transfer_funds", {"amount": 20, "destination": "ACC-1"}, "c2"),
                agents_call("delete_user", {"user_id": 3}, "c3"),
            ],
            [agents_text("One transfer went through.")],
        ]
    )
    result = await Runner.run(Agent(name="payer", tools=tools, model=model), "pay")
    assert [r.parameters for r in channel.requests] == [{"amount": 5000, "destination": "ACC-9"}]
    out = outputs(result)
    assert out["c1"] == (
        "transfer_funds not executed: denied by "
        f"{channel.requests and Store(db).get(channel.requests[0].request_id).decided_by}: "
        "over budget. Do not retry this call."
    )
    assert out["c2"] == "sent 20 to ACC-1"
    assert out["c3"] == (
        "delete_user not executed: Delete operations are disabled for agents. "
        "Do not retry this call."
    )
    assert RAN == [("transfer_funds", 20)]
    # the run went on: the model's second turn read the rejections
    assert model_saw(model, 1)["c1"] == out["c1"]
    assert result.final_output == "One transfer went through."


async def test_approval_decided_in_the_queue_from_another_thread(rules: Path, db: Path) -> None:
    tools = protect_function_tools([transfer_funds], config(rules, db))
    model = fake_agents_model(
        [
            [agents_call("transfer_funds", {"amount": 9000, "destination": "Z"}, "q1")],
            [agents_text("paid")],
        ]
    )
    with QueueDecider(db, approve=True) as decider:
        result = await Runner.run(Agent(name="payer", tools=tools, model=model), "pay")
    assert decider.error is None
    assert outputs(result)["q1"] == "sent 9000 to Z"
    assert RAN == [("transfer_funds", 9000)]
    record = Store(db).get(decider.decided[0].id)
    assert record.status == "approved" and record.arguments == {"amount": 9000, "destination": "Z"}


async def test_async_tool_and_single_external_email(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    tools = protect_function_tools([send_email], config(rules, db, channel))
    model = fake_agents_model(
        [
            [
                agents_call("send_email", {"to": "ceo@competitor.com", "subject": "hi"}, "e1"),
                agents_call("send_email", {"to": "bob@example.com", "subject": "hi"}, "e2"),
            ],
            [agents_text("sent")],
        ]
    )
    result = await Runner.run(Agent(name="mailer", tools=tools, model=model), "mail")
    assert [r.rule_id for r in channel.requests] == ["external_email"]
    assert outputs(result) == {"e1": "mailed ceo@competitor.com", "e2": "mailed bob@example.com"}


async def test_invalid_json_is_decided_and_reported_by_the_tool(rules: Path, db: Path) -> None:
    channel = Decider(approve=True)
    tools = protect_function_tools([transfer_funds], config(rules, db, channel))
    model = fake_agents_model(
        [[agents_call("transfer_funds", '{"amount": "lots"', "j1")], [agents_text("oops")]]
    )
    result = await Runner.run(Agent(name="payer", tools=tools, model=model), "pay")
    assert outputs(result)["j1"].startswith("An error occurred while running the tool")
    assert RAN == []
    # the guard decided the call before the tool refused it: the rules could not read an amount,
    # so (doubt) it went to a person, who saw the raw arguments
    (request,) = channel.requests
    assert request.parameters == {"__raw_arguments__": '{"amount": "lots"'}


async def test_raise_on_block_ends_the_run(rules: Path, db: Path) -> None:
    tools = protect_function_tools([delete_user], config(rules, db), raise_on_block=True)
    model = fake_agents_model([[agents_call("delete_user", {"user_id": 1}, "d1")]])
    with pytest.raises(UserError) as info:
        await Runner.run(Agent(name="admin", tools=tools, model=model), "delete")
    # the SDK wraps exceptions from tools; the Sentinel exception is the cause
    assert isinstance(info.value.__cause__, SentinelBlockedError)
    assert info.value.__cause__.rule_id == "block_deletes"
    assert RAN == []


async def test_a_custom_function_tool_is_governed_on_its_json(rules: Path, db: Path) -> None:
    async def invoke(ctx: Any, raw: str) -> str:
        RAN.append(("custom_transfer", json.loads(raw)["amount"]))
        return "custom ran"

    custom = FunctionTool(
        name="transfer_custom",
        description="A hand-written tool.",
        params_json_schema={
            "type": "object",
            "properties": {"amount": {"type": "number"}, "destination": {"type": "string"}},
            "required": ["amount", "destination"],
            "additionalProperties": False,
        },
        on_invoke_tool=invoke,
    )
    channel = Decider(approve=False)
    (protected,) = protect_function_tools([custom], config(rules, db, channel))
    model = fake_agents_model(
        [
            [
                agents_call("transfer_custom", {"amount": 5000, "destination": "X"}, "u1"),
                agents_call("transfer_custom", {"amount": 5, "destination": "X"}, "u2"),
            ],
            [agents_text("ok")],
        ]
    )
    result = await Runner.run(Agent(name="payer", tools=[protected], model=model), "pay")
    assert "not executed" in outputs(result)["u1"]
    assert outputs(result)["u2"] == "custom ran"
    assert RAN == [("custom_transfer", 5)]


async def test_protected_function_tool_decorator(rules: Path, db: Path) -> None:
    channel = Decider(approve=False)

    @protected_function_tool(config=config(rules, db, channel), name_override="transfer_deco")
    def pay(amount: int, destination: str) -> str:
        """Pay someone."""
        RAN.append(("pay", amount))
        return "paid"

    assert isinstance(pay, FunctionTool) and pay.name == "transfer_deco"
    assert set(pay.params_json_schema["properties"]) == {"amount", "destination"}
    model = fake_agents_model(
        [
            [
                agents_call("transfer_deco", {"amount": 4000, "destination": "A"}, "p1"),
                agents_call("transfer_deco", {"amount": 4, "destination": "A"}, "p2"),
            ],
            [agents_text("ok")],
        ]
    )
    result = await Runner.run(Agent(name="payer", tools=[pay], model=model), "pay")
    assert "not executed" in outputs(result)["p1"] and outputs(result)["p2"] == "paid"
    assert RAN == [("pay", 4)]


# --- the SDK's own approvals, decided by the policy -------------------------------------------


async def test_sdk_mode_interrupts_only_what_the_policy_sends_for_approval(
    rules: Path, db: Path
) -> None:
    cfg = config(rules, db, audit_sync=True)
    tools = protect_function_tools([transfer_funds, delete_user], cfg, approvals="sdk")
    agent = Agent(
        name="payer",
        tools=tools,
        model=fake_agents_model(
            [
                [
                    agents_call("transfer_funds", {"amount": "5000", "destination": "B"}, "s1"),
                    agents_call("transfer_funds", {"amount": 10, "destination": "B"}, "s2"),
                    agents_call("delete_user", {"user_id": 9}, "s3"),
                ],
                [agents_text("done")],
            ]
        ),
    )
    first = await Runner.run(agent, "pay")
    assert [(i.tool_name, i.raw_item.call_id) for i in first.interruptions] == [
        ("transfer_funds", "s1")
    ]
    # the SDK ran the call that needed nobody; the one waiting for approval did not run
    assert RAN == [("transfer_funds", 10)]
    state = first.to_state()
    state.approve(first.interruptions[0])
    second = await Runner.run(agent, state)
    out = outputs(second)
    assert out["s1"] == "sent 5000 to B"
    assert out["s2"] == "sent 10 to B"
    assert "not executed: Delete operations are disabled" in out["s3"]
    assert RAN == [("transfer_funds", 10), ("transfer_funds", 5000)]
    # the approval is in Sentinel's queue and audit, attributed to the SDK approval
    approved = [e for e in Store(db).history(HistoryFilter(kinds=("approved",)))]
    assert len(approved) == 1
    assert OpenAIAgentsApproval.approved_by in (approved[0].actor or "")
    assert Store(db).list_pending() == []


async def test_sdk_mode_rejection_never_runs_the_tool(rules: Path, db: Path) -> None:
    tools = protect_function_tools([transfer_funds], config(rules, db), approvals="sdk")
    agent = Agent(
        name="payer",
        tools=tools,
        model=fake_agents_model(
            [
                [agents_call("transfer_funds", {"amount": 5000, "destination": "B"}, "r1")],
                [agents_text("not paid")],
            ]
        ),
    )
    first = await Runner.run(agent, "pay")
    state = first.to_state()
    state.reject(first.interruptions[0], rejection_message="the owner said no")
    second = await Runner.run(agent, state)
    assert outputs(second)["r1"] == "the owner said no"
    assert RAN == []
    assert second.final_output == "not paid"


async def test_policy_needs_approval_callable(rules: Path, db: Path) -> None:
    cfg = config(rules, db)
    ctx = RunContextWrapper(context=None)
    check = policy_needs_approval(cfg, tool=transfer_funds)
    assert await check(ctx, {"amount": "5000", "destination": "X"}, "c") is True
    assert await check(ctx, {"amount": 50, "destination": "X"}, "c") is False
    by_name = policy_needs_approval(cfg, name="delete_user")
    assert await by_name(ctx, {"user_id": 1}, "c") is False  # blocked, not "ask someone"
    unnamed = policy_needs_approval(cfg)
    assert await unnamed(ctx, {"amount": 5}, "c") is True  # cannot tell which tool: ask


async def test_sdk_tool_timeout_cancels_the_waiting_request(rules: Path, db: Path) -> None:
    @function_tool(timeout=0.5)
    async def transfer_quick(amount: int) -> str:
        """Transfer, but give up quickly."""
        RAN.append(("transfer_quick", amount))
        return "quick"

    tools = protect_function_tools([transfer_quick], config(rules, db))
    model = fake_agents_model(
        [[agents_call("transfer_quick", {"amount": 5000}, "t1")], [agents_text("gave up")]]
    )
    result = await Runner.run(Agent(name="payer", tools=tools, model=model), "pay")
    assert "timed out" in outputs(result)["t1"]
    assert RAN == []
    (event,) = Store(db).history(HistoryFilter(kinds=("cancelled",)))
    assert event.function == "transfer_quick"
    assert Store(db).list_pending() == []


async def test_escalation_hooks_apply_in_both_approval_modes(rules: Path, db: Path) -> None:
    hook = LimitHook(limit=100)
    guard = Guard(config(rules, db), hooks=[hook])
    queue_tool = protect_function_tool(transfer_funds, guard=guard)
    sdk_tool = protect_function_tool(transfer_funds, guard=guard, approvals="sdk")
    for tool in (queue_tool, sdk_tool):
        model = fake_agents_model(
            [
                [
                    agents_call("transfer_funds", {"amount": "500", "destination": "A"}, "h1"),
                    agents_call("transfer_funds", {"amount": 30, "destination": "A"}, "h2"),
                ],
                [agents_text("ok")],
            ]
        )
        result = await Runner.run(Agent(name="payer", tools=[tool], model=model), "pay")
        assert result.interruptions == []  # a block needs nobody, even in "sdk" mode
        assert "not executed: over the 100 limit" in outputs(result)["h1"]
        assert outputs(result)["h2"] == "sent 30 to A"
    assert RAN == [("transfer_funds", 30), ("transfer_funds", 30)]
    assert [p["amount"] for _, p in hook.observed] == [30, 30]


class _LateEscalation:
    """A hook that flags a call only when it is assessed a second time, as when anomaly scores
    or the rules change between the SDK's approval check and the invocation."""

    def __init__(self) -> None:
        self.seen = 0

    def assess(self, call: Any, verdict: Any) -> Any:
        from sentinel.guard import Escalation
        from sentinel.policy import Action

        self.seen += 1
        if self.seen >= 2:
            return Escalation(Action.REQUIRE_APPROVAL, "unusual at invocation time", "anomaly", 8)
        return None

    def observe(self, *args: Any) -> None:
        pass

    def abandon(self, *args: Any) -> None:
        pass


async def test_sdk_mode_falls_back_to_the_queue_when_the_sdk_did_not_approve(
    rules: Path, db: Path
) -> None:
    guard = Guard(config(rules, db), hooks=[_LateEscalation()])
    tool = protect_function_tool(transfer_funds, guard=guard, approvals="sdk")
    model = fake_agents_model(
        [
            [agents_call("transfer_funds", {"amount": 50, "destination": "A"}, "f1")],
            [agents_text("ok")],
        ]
    )
    ran_when_pending: list[Any] = []
    with QueueDecider(
        db, approve=True, before_decide=lambda rec: ran_when_pending.append(list(RAN))
    ) as decider:
        result = await Runner.run(Agent(name="payer", tools=[tool], model=model), "pay")
    assert result.interruptions == []  # the SDK saw nothing to approve
    assert decider.error is None and ran_when_pending == [[]]
    assert decider.decided[0].rule_id == "anomaly"
    assert outputs(result)["f1"] == "sent 50 to A"  # ran only after the operator's approval
