"""Cross-process: a decision made through the API releases a real @protect'ed call waiting in
another process — through the queue, and through the webhook channel pointed at the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, python_env
from tests.server.conftest import (
    ALICE,
    BOT,
    SECRET,
    ApiServer,
    result_of,
    start_server,
    wait_pending,
)

AGENT = Path(__file__).parent / "agents" / "protected_agent.py"
POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} needs approval"
"""


def start_agent(
    rules: Path, db: Path, channel: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(AGENT), str(rules), str(db), channel, "5000"],
        cwd=str(ROOT),
        env=python_env(SENTINEL_TIMEOUT="60", **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@pytest.mark.e2e
def test_api_approval_releases_a_queue_agent_in_another_process(
    server: ApiServer, rules: Path
) -> None:
    agent = start_agent(rules, server.db, "queue")
    try:
        row = wait_pending(server, ALICE)
        assert row["function_name"] == "transfer_funds" and row["parameters"]["amount"] == 5000
        with server.client(ALICE) as c:
            assert (
                c.post(f"/approval/{row['action_id']}/approve", json={"reason": "ok"}).status_code
                == 200
            )
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True and result["value"] == "sent 5000 to acct-7"


@pytest.mark.e2e
def test_api_denial_reaches_the_agent_with_the_token_name(server: ApiServer, rules: Path) -> None:
    agent = start_agent(rules, server.db, "queue")
    try:
        row = wait_pending(server, ALICE)
        with server.client(ALICE) as c:
            assert (
                c.post(
                    f"/approval/{row['action_id']}/deny", json={"reason": "wrong account"}
                ).status_code
                == 200
            )
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is False
    assert result["error"].startswith("SentinelDeniedError")
    assert "api:alice" in result["error"] and "wrong account" in result["error"]


@pytest.mark.e2e
def test_webhook_agent_pointed_at_the_api_is_released_by_an_operator(
    server: ApiServer, rules: Path
) -> None:
    env = {
        "SENTINEL_WEBHOOK_URL": f"{server.url}/approval",
        "SENTINEL_STATUS_URL": f"{server.url}/approval/{{action_id}}/status",
        "SENTINEL_WEBHOOK_TOKEN": BOT,
        "SENTINEL_WEBHOOK_SECRET": SECRET,
        "SENTINEL_POLL_INTERVAL": "0.1",
    }
    agent = start_agent(rules, server.db, "webhook", env)
    try:
        row = wait_pending(server, ALICE)
        # The agent's own credential cannot approve its request.
        with server.client(BOT) as c:
            assert c.post(f"/approval/{row['action_id']}/approve").status_code == 403
        with server.client(ALICE) as c:
            assert c.post(f"/approval/{row['action_id']}/approve").status_code == 200
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True
