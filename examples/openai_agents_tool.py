"""OpenAI Agents SDK function tools protected by Sentinel, offline (a scripted model, no API key).

    python examples/openai_agents_tool.py           # a scripted operator decides approvals
    python examples/openai_agents_tool.py --queue   # wait in the durable queue: decide with
                                                    # `sentinel tui` or `sentinel approve <id>`

Part 1 ("queue" approvals): the tool call waits in Sentinel's queue; a denial and a block come
back to the model as tool output it reads. Part 2 ("sdk" approvals): the SDK's own
human-in-the-loop, with ``needs_approval`` decided by the Sentinel policy; the application
approves the interruption through ``RunState`` and Sentinel records that approval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # demo_operator, next to this file
try:
    import sentinel  # noqa: F401
except ImportError:  # a source checkout that is not installed: use it in place
    sys.path.insert(0, str(HERE.parent))

from demo_operator import ScriptedOperator  # noqa: E402

from sentinel import SentinelConfig  # noqa: E402
from sentinel.integrations.openai_agents import protect_function_tools  # noqa: E402

RULES = HERE.parent / "rules.yaml"
set_tracing_disabled(True)  # offline: no trace export


@function_tool
def transfer_funds(amount: int, destination: str) -> str:
    """Transfer money to an account."""
    return f"transferred {amount} to {destination}"


@function_tool
def send_email(to: str, subject: str) -> str:
    """Send an email."""
    return f"emailed {to}: {subject}"


@function_tool
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    return f"user {user_id} deleted"


def call(name: str, args: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call",
        name=name,
        arguments=json.dumps(args),
        call_id=call_id,
        id=f"fc_{call_id}",
        status="completed",
    )


def say(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


class ScriptedModel(Model):
    """Returns scripted turns instead of calling an API."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = turns

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def show(result: Any) -> None:
    for item in result.new_items:
        if type(item).__name__ == "ToolCallOutputItem":
            print(f"  tool output: {item.output}")
    if result.final_output:
        print(f"  assistant: {result.final_output}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", action="store_true", help="decide in the real queue")
    args = parser.parse_args()
    config = SentinelConfig(
        rules_path=RULES,
        agent_id="openai-agents-demo",
        approval_interface="queue" if args.queue else ScriptedOperator(("transfer",)),
    )

    print("Part 1: approvals in Sentinel's queue")
    tools = protect_function_tools([transfer_funds, send_email, delete_user], config)
    model = ScriptedModel(
        [
            [
                call("transfer_funds", {"amount": "2500", "destination": "ACC-3"}, "c1"),
                call("send_email", {"to": "press@newspaper.com", "subject": "Q3 numbers"}, "c2"),
                call("delete_user", {"user_id": 9}, "c3"),
            ],
            [say("Paid ACC-3; the email and the deletion were refused.")],
        ]
    )
    show(await Runner.run(Agent(name="ops", tools=tools, model=model), "Do the three tasks."))

    print("\nPart 2: the SDK's own approvals, decided by the Sentinel policy")
    tools = protect_function_tools([transfer_funds], config, approvals="sdk")
    model = ScriptedModel(
        [
            [call("transfer_funds", {"amount": 8000, "destination": "ACC-8"}, "s1")],
            [say("Paid ACC-8.")],
        ]
    )
    agent = Agent(name="payer", tools=tools, model=model)
    first = await Runner.run(agent, "Pay ACC-8 8000.")
    state = first.to_state()
    for item in first.interruptions:
        print(
            f"  interruption: {item.tool_name}({item.raw_item.arguments}) -> approving in the app"
        )
        state.approve(item)
    show(await Runner.run(agent, state))
    print("\nSee the audit trail with: sentinel history")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
