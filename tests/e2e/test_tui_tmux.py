"""End to end: the real command center in tmux while a real agent process waits for approval.

Skips only when tmux is not installed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sentinel_tui.sample import SAMPLE_RULES
from tests.helpers import ROOT, python_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

AGENT = str(ROOT / "tests" / "tui" / "agent_proc.py")


def _tmux(*args: str, socket: str) -> str:
    out = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=20)
    return out.stdout


def _wait_pane(socket: str, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", "tui", socket=socket)
        if needle in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared; last screen:\n{screen}")


def test_operator_approves_in_tmux_and_the_agent_proceeds(tmp_path: Path) -> None:
    db = tmp_path / "sentinel.db"
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    env = python_env(TERM="xterm-256color")
    agent = subprocess.Popen(
        [sys.executable, AGENT, "protect", str(db), str(rules),
         json.dumps({"amount": 4200, "destination": "ACC-TMUX"})],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=env,
    )
    socket = f"sentinel-test-{uuid.uuid4().hex[:8]}"
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("PYTHONPATH", "TERM", "PATH", "HOME", "SENTINEL_HOME"))
    command = f"env {envs} {shlex.quote(sys.executable)} -m sentinel_tui --db {shlex.quote(str(db))} --rules {shlex.quote(str(rules))}"
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "CALLING"
        _tmux("new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", command, socket=socket)
        screen = _wait_pane(socket, "ACC-TMUX")  # the card of the waiting call
        assert "transfer_funds" in screen and "1 pending" in screen
        _tmux("send-keys", "-t", "tui", "a", socket=socket)
        out, _ = agent.communicate(timeout=60)
        assert "RESULT transferred 4200 to ACC-TMUX" in out
        screen = _wait_pane(socket, "0 pending")
        assert "ACC-TMUX" not in screen.split("Request")[0]  # the row left the table
        _tmux("send-keys", "-t", "tui", "q", socket=socket)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "tui" in _tmux("ls", socket=socket):
            time.sleep(0.2)
        assert "tui" not in _tmux("ls", socket=socket), "the app did not quit on q"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=20)
