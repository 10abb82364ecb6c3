"""Interrupt mode across real processes: one process runs the graph until the interrupt and
exits; an operator decides with the CLI (which also sweeps for dead waiters); another process
resumes from the SQLite checkpoint, and the tool runs exactly once, or the model reads the
denial or the expiry."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite", reason="needs langgraph-checkpoint-sqlite")
from sentinel.store import Store
from tests.helpers import PYTHON, ROOT, python_env
from tests.integrations.support import write_rules

pytestmark = pytest.mark.e2e

CHILD = ROOT / "tests" / "integrations" / "lg_interrupt_child.py"


class Agent:
    """The paths one agent's processes share; each method runs a real separate process."""

    def __init__(self, tmp_path: Path, timeout: float = 120.0) -> None:
        self.rules = write_rules(tmp_path)
        self.db = tmp_path / "sentinel.db"
        self.checkpoints = tmp_path / "checkpoints.sqlite"
        self.ran_file = tmp_path / "ran.txt"
        self.timeout = timeout

    def process(self, mode: str) -> dict[str, Any]:
        args = [str(CHILD), mode, str(self.rules), str(self.db), str(self.checkpoints)]
        done = subprocess.run(
            [PYTHON, *args, str(self.ran_file), str(self.timeout)],
            env=python_env(), capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "sentinel.cli", *args, "--db", str(self.db)],
            env=python_env(), capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip

    def ran(self) -> list[str]:
        return self.ran_file.read_text().splitlines() if self.ran_file.exists() else []


def test_approved_from_the_cli_the_resuming_process_runs_the_tool_once(tmp_path: Path) -> None:
    agent = Agent(tmp_path)
    first = agent.process("start")
    (req,) = first["requests"]
    assert req["function"] == "transfer_funds"
    assert req["arguments"] == {"amount": 5000, "destination": "ACC-9"}
    assert agent.ran() == []
    # The first process has exited: the CLI's sweep for dead waiters must leave the request.
    approved = agent.cli("approve", req["request_id"], "--reason", "checked")
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout and "(signed)" in approved.stdout
    second = agent.process("resume")
    assert second["resumed"] is True
    assert second["tools"] == [{"content": "sent 5000 to ACC-9", "status": "success"}]
    assert second["last"] == "Done." and second["still_waiting"] == []
    assert agent.ran() == ["5000 ACC-9"]
    # A third process resuming the same thread again: nothing left to resume, nothing runs.
    assert agent.process("resume") == {"resumed": False}
    assert agent.ran() == ["5000 ACC-9"]
    kinds = [
        e.kind for e in Store(agent.db).events_after(0, 100) if e.request_id == req["request_id"]
    ]
    assert kinds.count("approval_claimed") == 1 and "cancelled" not in kinds


def test_denied_from_the_cli_the_model_reads_the_denial(tmp_path: Path) -> None:
    agent = Agent(tmp_path)
    (req,) = agent.process("start")["requests"]
    denied = agent.cli("deny", req["request_id"], "--reason", "wrong account")
    assert denied.returncode == 0, denied.stderr
    second = agent.process("resume")
    (msg,) = second["tools"]
    assert msg["status"] == "error"
    assert "transfer_funds not executed: denied by" in msg["content"]
    assert "wrong account" in msg["content"]
    assert agent.ran() == []


def test_no_decision_before_the_expiry_the_model_reads_the_expiry(tmp_path: Path) -> None:
    agent = Agent(tmp_path, timeout=1.0)
    (req,) = agent.process("start")["requests"]
    time.sleep(max(0.0, req["expires_at"] - time.time()) + 0.1)
    second = agent.process("resume")
    (msg,) = second["tools"]
    assert msg["status"] == "error" and "not executed" in msg["content"]
    assert Store(agent.db).get(req["request_id"]).status == "expired"
    late = agent.cli("approve", req["request_id"])
    assert late.returncode != 0  # expired: nothing left to approve
    assert agent.ran() == []
