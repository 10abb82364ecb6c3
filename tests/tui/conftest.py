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


class Operators:
    """A trusted operators file with real keys; :meth:`use` makes one of them this process's
    operator (``$SENTINEL_OPERATOR_KEY``), as ``sentinel operator init`` + ``add`` would."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / "operators.json"
        self.keys: dict[str, Path] = {}
        self._monkeypatch = monkeypatch
        monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(self.path))

    def add(self, name: str, *groups: str) -> Path:
        from sentinel.trust import add_operator, generate_key

        key = generate_key(self.folder / "keys" / name / "operator-key.pem")
        add_operator(self.path, name, key.public_key, groups)
        self.keys[name] = key.path
        return key.path

    def use(self, name: str) -> None:
        """Decide as ``name`` (a key not in the file when ``name`` was never added)."""
        path = self.keys.get(name, self.folder / "keys" / name / "missing.pem")
        self._monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(path))

    def env(self) -> dict[str, str]:
        """What an agent subprocess needs to check signatures against this file."""
        return {"SENTINEL_OPERATORS_FILE": str(self.path)}


@pytest.fixture
def operators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operators:
    """Trusted operators ``tester`` (finance, ops), ``bob`` (finance) and ``carol`` (security);
    this process decides as ``tester``."""
    ops = Operators(tmp_path / "trust", monkeypatch)
    ops.add("tester", "finance", "ops")
    ops.add("bob", "finance")
    ops.add("carol", "security")
    ops.use("tester")
    return ops
