"""Fixtures for command-center tests: real agent subprocesses, a frozen-clock app factory."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, python_env

AGENT = str(Path(__file__).with_name("agent_proc.py"))


class Agent:
    """A running agent process; its stdout lines are collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, AGENT, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=python_env(**(env or {})),
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """The next line starting with ``prefix`` (other lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"agent never printed {prefix!r}; output so far: {self.seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Agent:
        agent = Agent(list(args), env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def submit(agents: Callable[..., Agent], db_path: Path) -> Callable[..., Agent]:
    """Start an agent that submits ``specs`` and waits for their decisions."""

    def run(*specs: dict[str, Any]) -> Agent:
        agent = agents("submit", str(db_path), json.dumps(list(specs)))
        for _ in specs:
            agent.expect("SUBMITTED")
        return agent

    return run


@pytest.fixture
def protected(agents: Callable[..., Agent], db_path: Path, tmp_path: Path) -> Callable[..., Agent]:
    """Start an agent that calls a real ``@protect``-ed ``transfer_funds(**call)`` which needs
    approval (amount > 1000 under the sample rules) and prints what the call returned or raised."""
    from sentinel_tui.sample import SAMPLE_RULES

    rules = tmp_path / "agent-rules.yaml"
    rules.write_text(SAMPLE_RULES)

    def run(env: dict[str, str] | None = None, **call: Any) -> Agent:
        agent = agents("protect", str(db_path), str(rules), json.dumps(call), env=env)
        agent.expect("CALLING")
        return agent

    return run


def helper(*args: str) -> str:
    """Run the helper once (another operator deciding, events appended); its output."""
    out = subprocess.run(
        [PYTHON, AGENT, *args], capture_output=True, text=True, env=python_env(), timeout=60
    )
    return out.stdout + out.stderr


async def wait_for(pilot: Any, cond: Callable[[], bool], timeout: float = 40.0) -> None:
    """Let the app run until ``cond()`` holds (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


def notifications(app: Any) -> list[str]:
    return [n.message for n in app._notifications]
