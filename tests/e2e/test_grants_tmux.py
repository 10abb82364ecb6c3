"""End to end: a standing grant made and revoked from the real command center in tmux, while one
real agent process makes calls that need approval.

The first call waits; ``g`` on its card (the dialog prefilled from it: ``amount <= 4200``,
``destination == ACC-TMUX``, 15 minutes) approves it and makes the grant; three more calls inside
the bounds run without waiting (no request is ever queued for them); ``5`` then ``r`` revokes the
grant, and the next call waits again. Skips only when tmux is not installed.
"""

from __future__ import annotations

import json
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sentinel.store import Store
from sentinel_tui.sample import SAMPLE_RULES
from tests.e2e.test_tui_tmux import _tmux, _wait_pane
from tests.helpers import ROOT, python_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

AGENT = str(ROOT / "tests" / "tui" / "agent_proc.py")


class Calls:
    """The agent process: one guard, a call per line written to it."""

    def __init__(self, db: Path, rules: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, AGENT, "calls", str(db), str(rules)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def call(self, **arguments: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(arguments) + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"agent never printed {prefix!r}; output: {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def test_grant_from_a_card_lets_three_calls_run_and_revoking_makes_the_next_wait(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sentinel.db"
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    env = python_env(TERM="xterm-256color",
                     SENTINEL_OPERATORS_FILE=str(tmp_path / "none" / "operators.json"),
                     SENTINEL_OPERATOR_KEY=str(tmp_path / "none" / "operator-key.pem"))
    agent = Calls(db, rules, env)
    socket = f"sentinel-grant-{uuid.uuid4().hex[:8]}"
    keep = ("PYTHONPATH", "TERM", "PATH", "HOME", "SENTINEL_HOME", "SENTINEL_OPERATORS_FILE",
            "SENTINEL_OPERATOR_KEY")
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in keep)
    command = (f"env {envs} {shlex.quote(sys.executable)} -m sentinel_tui "
               f"--db {shlex.quote(str(db))} --rules {shlex.quote(str(rules))}")
    try:
        agent.expect("READY")
        agent.call(amount=4200, destination="ACC-TMUX")
        agent.expect("CALLING 1")
        _tmux("new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", command, socket=socket)
        _wait_pane(socket, "ACC-TMUX")  # the card of the waiting call
        _tmux("send-keys", "-t", "tui", "g", socket=socket)
        screen = _wait_pane(socket, "Approve and grant")
        assert "amount <= 4200" in screen and "destination == ACC-TMUX" in screen
        _tmux("send-keys", "-t", "tui", "Tab", socket=socket)  # Cancel → Approve + grant
        _tmux("send-keys", "-t", "tui", "Enter", socket=socket)
        assert agent.expect("RESULT 1") == "RESULT 1 transferred 4200 to ACC-TMUX"
        _wait_pane(socket, "0 pending")

        for n, amount in ((2, 1500), (3, 4200), (4, 3999)):  # inside the bounds: no waiting
            agent.call(amount=amount, destination="ACC-TMUX")
            assert agent.expect(f"RESULT {n}", timeout=10) == (
                f"RESULT {n} transferred {amount} to ACC-TMUX")
        with Store(db) as store:
            (grant,) = store.list_grants()
            assert grant.used_count == 3 and grant.used_total == 1500 + 4200 + 3999
            assert store.pending_summary().total == 0  # none of the three was ever queued

        _tmux("send-keys", "-t", "tui", "5", socket=socket)
        _wait_pane(socket, "3 calls")  # the Grants view, live: use so far
        _tmux("send-keys", "-t", "tui", "r", socket=socket)
        _wait_pane(socket, "revoked")

        agent.call(amount=1500, destination="ACC-TMUX")
        agent.expect("CALLING 5")
        _wait_pane(socket, "1 pending")  # it waits for a person again
        assert agent.lines.empty()  # and has not run
        with Store(db) as store:
            assert store.get_grant(grant.id).status == "revoked"
            assert store.pending_summary().total == 1
        _tmux("send-keys", "-t", "tui", "q", socket=socket)
    finally:
        agent.stop()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=20)
