"""A LangChain tool-calling agent under Sentinel, offline (a scripted fake chat model).

    python examples/langchain_agent.py           # a scripted operator decides approvals
    python examples/langchain_agent.py --queue   # wait in the durable queue: decide with
                                                 # `sentinel tui` or `sentinel approve <id>`

The model asks for three things in one turn: a 5000 transfer (sent as the string "5000"; the
tool's schema coerces it to an int, so the approval rule applies), an email to an outside address
(needs approval) and a user deletion (blocked). Rejected calls come back to the model as tool
messages it can read, and the agent loop carries on.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # demo_operator, next to this file
try:
    import sentinel  # noqa: F401
except ImportError:  # a source checkout that is not installed: use it in place
    sys.path.insert(0, str(HERE.parent))

from demo_operator import ScriptedOperator  # noqa: E402

from sentinel import SentinelConfig  # noqa: E402
from sentinel.integrations.langchain import protect_tools  # noqa: E402

RULES = HERE.parent / "rules.yaml"


@tool
def transfer_funds(amount: int, destination: str) -> str:
    """Transfer money to an account."""
    return f"transferred {amount} to {destination}"


@tool
def send_email(to: str) -> str:
    """Send the weekly report by email."""
    return f"report sent to {to}"


@tool
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    return f"user {user_id} deleted"


class ScriptedChatModel(GenericFakeChatModel):
    """langchain-core's fake chat model, plus ``bind_tools`` as real providers implement it."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", action="store_true", help="decide in the real queue")
    args = parser.parse_args()

    config = SentinelConfig(
        rules_path=RULES,
        agent_id="langchain-demo",
        approval_interface="queue" if args.queue else ScriptedOperator(("transfer",)),
    )
    tools = protect_tools([transfer_funds, send_email, delete_user], config)
    by_name = {t.name: t for t in tools}

    model = ScriptedChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "transfer_funds",
                            "args": {"amount": "5000", "destination": "ACC-9"},
                            "id": "c1",
                        },
                        {"name": "send_email", "args": {"to": "ceo@competitor.com"}, "id": "c2"},
                        {"name": "delete_user", "args": {"user_id": 7}, "id": "c3"},
                    ],
                ),
                AIMessage(
                    content="Paid ACC-9. I was not allowed to email outside or delete the user."
                ),
            ]
        )
    )
    agent = model.bind_tools(tools)

    print("The model is offered the original schemas, e.g.:")
    print(" ", convert_to_openai_tool(by_name["transfer_funds"])["function"]["parameters"])

    messages: list[Any] = [
        HumanMessage("Pay ACC-9 5000, mail the report to ceo@competitor.com, delete user 7.")
    ]
    while True:
        reply = agent.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            result = by_name[call["name"]].invoke(call)  # a ToolMessage, executed or not
            messages.append(result)

    print("\nConversation:")
    for m in messages:
        if isinstance(m, ToolMessage):
            print(f"  tool[{m.name}] ({m.status}): {m.content}")
        elif isinstance(m, AIMessage) and m.content:
            print(f"  assistant: {m.content}")
        elif isinstance(m, HumanMessage):
            print(f"  user: {m.content}")
    print("\nSee the audit trail with: sentinel history")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
