"""The demo: the bundled example policy, the terminal demo, and a simulated agent."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON, ROOT, python_env


def test_bundled_example_policy_is_the_readme_policy() -> None:
    assert (ROOT / "sentinel" / "example_rules.yaml").read_text() == (
        ROOT / "rules.yaml"
    ).read_text()


def test_terminal_demo_shows_allowed_blocked_and_approved(tmp_path: Path) -> None:
    out = subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "demo", "--terminal", "--home", str(tmp_path / "demo")],
        input="y\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=python_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout
    assert "result: transferred 50.00 to ACC-1001" in lines
    assert "NOT EXECUTED" in lines and "Delete operations are disabled" in lines
    assert "result: transferred 5,000.00 to ACC-9999" in lines
    assert "SENTINEL APPROVAL REQUIRED" in out.stderr


def test_simulated_agent_fills_the_queue(tmp_path: Path) -> None:
    from sentinel.store import Store

    db = tmp_path / "demo.db"
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "sentinel.demo",
            "agent",
            "payments",
            "--rules",
            str(ROOT / "rules.yaml"),
            "--db",
            str(db),
            "--seed",
            "3",
            "--pause",
            "0.01",
            "--workers",
            "2",
        ],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        pending = []
        while time.monotonic() < deadline and len(pending) < 2:
            if db.exists():
                pending = Store(db).list_pending()
            time.sleep(0.1)
        assert len(pending) == 2  # both workers wait on a large transfer
        assert {p.function for p in pending} == {"transfer_funds"}
        assert all(p.agent_id == "payments-agent" and p.value_at_risk > 1000 for p in pending)
        assert all(p.context and p.context["balance"] == 25_000 for p in pending)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_demo_signs_with_a_demo_operator_unless_one_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.demo import _demo_signing
    from sentinel.trust import load_key, load_operators
    from sentinel.trust.decide import Decider

    configured = os.environ["SENTINEL_OPERATORS_FILE"]
    assert _demo_signing(tmp_path) is None  # the person running it set up signing: left alone
    assert os.environ["SENTINEL_OPERATORS_FILE"] == configured
    monkeypatch.delenv("SENTINEL_OPERATORS_FILE")
    monkeypatch.delenv("SENTINEL_OPERATOR_KEY")
    home = tmp_path / "demo"
    home.mkdir(mode=0o770)  # shared with the agents, as the store makes it
    name = _demo_signing(home)
    trusted = load_operators()
    key = load_key()
    assert trusted.by_key[key.key_id].name == name
    assert not str(trusted.path).startswith(str(home))  # never below the group-writable home
    assert Decider.local("tui").signs
