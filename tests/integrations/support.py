"""Shared pieces of the integration tests: a small policy, an approval channel that answers
at once, a thread that decides queued requests through the store (as the command center would),
and a fake chat model from langchain-core that can be given tools."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)
from tests.helpers import signed_decide

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: block_deletes
    function_pattern: "delete_*"
    action: block
    message: "Delete operations are disabled for agents"
  - id: large_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
  - id: external_email
    function_pattern: "send_email"
    conditions:
      - not: {param: to, operator: endswith, value: "@example.com"}
    action: require_approval
    message: "Email to outside address {to} needs approval"
"""


def write_rules(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


class Decider(ApprovalInterface):
    """A real approval channel that approves or denies every request immediately and keeps
    what it was asked, so tests can check what the approver saw."""

    def __init__(self, approve: bool, who: str = "tester", reason: str = "checked") -> None:
        self.approve = approve
        self.who = who
        self.reason = reason
        self.requests: list[ApprovalRequest] = []

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        self.requests.append(request)
        status = ApprovalStatus.APPROVED if self.approve else ApprovalStatus.DENIED
        return ApprovalResult(status, request.request_id, self.who, self.reason, time.time())


class QueueDecider:
    """Decides pending requests in the SQLite queue from another thread, as an operator at the
    command center would (``Store.decide`` with the current operator's identity)."""

    def __init__(
        self,
        db: Path,
        approve: bool,
        count: int = 1,
        reason: str = "by test",
        before_decide: Callable[[Any], None] | None = None,
        wait_for: int = 1,
        edits: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.edits = edits  # approve with these arguments changed (edit, then approve)
        self.before_decide = before_decide
        self.wait_for = wait_for  # decide only once this many requests are pending together
        self.approve = approve
        self.count = count
        self.reason = reason
        self.decided: list[Any] = []  # the records as they were when decided (pending rows)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> QueueDecider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from sentinel.identity import current_operator
        from sentinel.store import Store

        try:
            deadline = time.monotonic() + 30
            while not self._stop.is_set() and len(self.decided) < self.count:
                if time.monotonic() > deadline:
                    raise TimeoutError("no pending request appeared")
                if self.db.exists():
                    store = Store(self.db)
                    try:
                        pending = store.list_pending()
                        if len(pending) < min(self.wait_for, self.count - len(self.decided)):
                            pending = []
                        for rec in pending:
                            if self.before_decide is not None:
                                self.before_decide(rec)
                            signed_decide(
                                store,
                                rec.id, self.approve, current_operator("test"), self.reason,
                                edits=self.edits,
                            )
                            self.decided.append(rec)
                    finally:
                        store.close()
                time.sleep(0.02)
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc


def fake_tool_model(responses: Sequence[Any]) -> Any:
    """A langchain-core ``GenericFakeChatModel`` that also accepts ``bind_tools`` the way real
    providers do: it converts the tools to the OpenAI tool format (what the model is shown) and
    records them in ``.bound_tools``."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.utils.function_calling import convert_to_openai_tool

    class FakeToolModel(GenericFakeChatModel):
        bound_tools: list[dict[str, Any]] = []
        seen: list[list[Any]] = []

        def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
            formatted = [convert_to_openai_tool(t) for t in tools]
            self.bound_tools = formatted
            return self.bind(tools=formatted, **kwargs)

        def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.seen.append(list(messages))
            return super()._generate(messages, *args, **kwargs)

    return FakeToolModel(messages=iter(list(responses)))


# --- OpenAI Agents SDK: a model that replays scripted turns -------------------------------------


def agents_call(name: str, args: dict[str, Any] | str, call_id: str) -> Any:
    """A function-tool call as the Responses API returns it."""
    import json

    from openai.types.responses import ResponseFunctionToolCall

    return ResponseFunctionToolCall(
        type="function_call",
        name=name,
        arguments=args if isinstance(args, str) else json.dumps(args),
        call_id=call_id,
        id=f"fc_{call_id}",
        status="completed",
    )


def agents_text(text: str) -> Any:
    """A final assistant message."""
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def fake_agents_model(turns: Sequence[Sequence[Any]]) -> Any:
    """An ``agents.models.interface.Model`` that returns the scripted outputs turn by turn and
    records each input it was given (no network)."""
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage

    class FakeAgentsModel(Model):
        def __init__(self) -> None:
            self.turns = [list(t) for t in turns]
            self.inputs: list[Any] = []
            self.tools: list[Any] = []

        async def get_response(
            self,
            system_instructions: Any,
            input: Any,
            model_settings: Any,
            tools: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            self.inputs.append(input)
            self.tools.append(tools)
            if not self.turns:
                raise AssertionError("the fake model ran out of scripted turns")
            return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("streaming is not scripted")

    return FakeAgentsModel()


class LimitHook:
    """A real escalation hook (what limits and anomaly detection plug in as): blocks transfers
    above ``limit`` and learns from the calls that ran."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.observed: list[tuple[str, dict[str, Any]]] = []
        self.abandoned: list[tuple[str, dict[str, Any]]] = []

    def assess(self, call: Any, verdict: Any) -> Any:
        from sentinel.guard import Escalation
        from sentinel.policy import Action

        amount = call.params.get("amount")
        if isinstance(amount, (int, float)) and amount > self.limit:
            return Escalation(Action.BLOCK, f"over the {self.limit:g} limit", "limit:test", 9.5)
        return None

    def observe(self, call: Any, succeeded: bool = True) -> None:
        self.observed.append((call.function, dict(call.params)))

    def abandon(self, call: Any) -> None:
        self.abandoned.append((call.function, dict(call.params)))


class LoopProbe:
    """Shows that an event loop keeps running while a call waits for approval: a task ticks on the
    loop, and the deciding thread (``before_decide``) checks that it ticked while the request was
    pending before it decides."""

    def __init__(self) -> None:
        self.ticks = 0
        self.ran_while_pending: bool | None = None
        self._task: Any = None

    async def _tick(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    def start(self) -> None:
        import asyncio

        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def before_decide(self, record: Any) -> None:
        start = self.ticks
        deadline = time.monotonic() + 5
        while self.ticks < start + 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        self.ran_while_pending = self.ticks >= start + 3
