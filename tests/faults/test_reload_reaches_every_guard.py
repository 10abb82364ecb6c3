"""A limit rule added by hot reload is enforced by every guard at once (issue 15).

The guard's hooks used to be a list that the limits module edited on reload, and the OpenAI
Agents SDK mode built its own guard from a *copy* of that list: a limit added by reload was never
enforced for ``approvals="sdk"`` tools (fail-open), and threads iterating the list while the
watcher thread edited it could skip a hook. Hooks are now a function of the policy in force.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect

NO_LIMITS = "rules: []\n"
#: Reloads raced by the eight calling threads: each takes about a second with eight threads
#: holding the GIL, and every one swaps the limits hook in or out under calls in flight.
RELOADS = 14
ONE_SEND = """
rules:
  - id: one_send
    function_pattern: "send_*"
    limit: {count: 1, window: 1h, per: agent}
    action: block
"""


def _config(rules: Path, db: Path, agent: str) -> SentinelConfig:
    return SentinelConfig(rules_path=rules, db_path=db, agent_id=agent, hot_reload=False)


def _plain(config: SentinelConfig) -> Callable[[], str]:
    @protect(config)
    def send_mail(to: str) -> str:
        return "sent"

    return lambda: send_mail("a@example.com")


def _langchain(config: SentinelConfig) -> Callable[[], str]:
    from langchain_core.tools import tool

    from sentinel.integrations.langchain import protect_tools

    @tool
    def send_mail(to: str) -> str:
        """Send mail."""
        return "sent"

    (protected,) = protect_tools([send_mail], config, raise_on_block=True)
    return lambda: protected.invoke({"to": "a@example.com"})


def _langgraph(config: SentinelConfig) -> Callable[[], str]:
    pytest.importorskip("langgraph")
    from langchain_core.tools import tool

    from sentinel.integrations.langgraph import protect_graph_tools

    @tool
    def send_mail(to: str) -> str:
        """Send mail."""
        return "sent"

    (protected,) = protect_graph_tools([send_mail], config, raise_on_block=True)
    return lambda: protected.invoke({"to": "a@example.com"})


def _openai_agents(approvals: str) -> Callable[[SentinelConfig], Callable[[], str]]:
    def build(config: SentinelConfig) -> Callable[[], str]:
        pytest.importorskip("agents")
        import asyncio

        from agents import function_tool
        from agents.tool_context import ToolContext

        from sentinel.integrations.openai_agents import protect_function_tool

        @function_tool
        def send_mail(to: str) -> str:
            """Send mail."""
            return "sent"

        protected = protect_function_tool(send_mail, config, approvals=approvals)  # type: ignore[arg-type]

        def call() -> str:
            args = json.dumps({"to": "a@example.com"})
            ctx = ToolContext(context=None, tool_name="send_mail", tool_call_id="c1", tool_arguments=args)
            out: Any = asyncio.run(protected.on_invoke_tool(ctx, args))
            if "not executed" in str(out):  # blocked calls come back to the model as text
                raise SentinelBlockedError(str(out), "send_mail")
            return str(out)

        return call

    return build


INTEGRATIONS = {
    "plain": _plain,
    "langchain": _langchain,
    "langgraph": _langgraph,
    "openai-agents queue": _openai_agents("queue"),
    "openai-agents sdk": _openai_agents("sdk"),
}


@pytest.mark.parametrize("name", list(INTEGRATIONS))
def test_a_limit_added_by_reload_is_enforced(name: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(NO_LIMITS)
    config = _config(rules, tmp_path / "home" / "sentinel.db", agent=f"agent-{name}")
    call = INTEGRATIONS[name](config)
    assert call() == "sent"
    assert call() == "sent"  # no limit yet
    rules.write_text(textwrap.dedent(ONE_SEND))
    change = config.policy_source().reload()
    assert change is not None and change.kind == "loaded"
    assert call() == "sent"  # the one the limit allows
    with pytest.raises(SentinelBlockedError):
        call()
    rules.write_text(NO_LIMITS)
    config.policy_source().reload()
    assert call() == "sent"  # removed by reload: no limit again


def test_a_reload_racing_eight_threads_never_skips_a_hook(tmp_path: Path) -> None:
    from sentinel.guard import Guard, HookSet
    from sentinel.limits import LimitsHook, hook_for

    rules = tmp_path / "rules.yaml"
    rules.write_text(NO_LIMITS)
    config = _config(rules, tmp_path / "home" / "sentinel.db", agent="racer")

    class Counting:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.assessed = 0
            self.finished = 0

        def assess(self, *args: Any) -> None:
            with self.lock:
                self.assessed += 1

        def observe(self, *args: Any) -> None:
            with self.lock:
                self.finished += 1

        def abandon(self, *args: Any) -> None:
            with self.lock:
                self.finished += 1

    class CountingLimits(LimitsHook):
        """The real limits hook, counting how many of the calls it assessed got their outcome
        back (a call decided under one policy and finished under the next must still reach
        it: otherwise its reservation is never released or forgotten)."""

        def __init__(self, base: LimitsHook) -> None:
            super().__init__(base.policy_source, base.db_path)
            self.lock = threading.Lock()
            self.assessed = 0
            self.finished = 0

        def assess(self, call: Any, verdict: Any) -> Any:
            with self.lock:
                self.assessed += 1
            return super().assess(call, verdict)

        def observe(self, call: Any, succeeded: bool) -> None:
            with self.lock:
                self.finished += 1
            super().observe(call, succeeded)

        def abandon(self, call: Any) -> None:
            with self.lock:
                self.finished += 1
            super().abandon(call)

    counting = Counting()
    limits = CountingLimits(hook_for(config))
    # A fixed hook next to the limits hook that reloads bring and take away, as in a real guard.
    guard = Guard(config, hooks=HookSet([counting], limits))

    @guard.wrap
    def send_mail(to: str) -> str:
        return "sent"

    stop = threading.Event()
    calls = [0] * 8

    def worker(i: int) -> None:
        while not stop.is_set():
            send_mail("x")
            calls[i] += 1

    def reloader() -> None:
        for k in range(RELOADS):
            rules.write_text(textwrap.dedent(ONE_SEND if k % 2 == 0 else NO_LIMITS).replace(
                "count: 1", "count: 100000"))  # fmt: skip
            config.policy_source().reload()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    reloader()
    stop.set()
    for t in threads:
        t.join(30)
    assert sum(calls) > 0
    assert counting.assessed == sum(calls)  # the passed hook saw every call, across RELOADS reloads
    assert counting.finished == sum(calls)
    assert limits.assessed > 0  # the limit was in force for part of the run
    assert limits.finished == limits.assessed  # and every call it assessed came back to it
