"""The examples run offline as real processes, with the scripted operator and with the real
queue decided from this (another) process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentinel.identity import current_operator
from sentinel.store import Store
from tests.helpers import ROOT, python_env, signed_decide

EXAMPLES = ROOT / "examples"


def run_example(name: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=python_env(SENTINEL_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(home.parent),
    )


def test_langchain_example(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    out = run_example("langchain_agent.py", tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert "tool[transfer_funds] (success): transferred 5000 to ACC-9" in out.stdout
    assert "tool[send_email] (error): send_email not executed: denied by" in out.stdout
    assert "tool[delete_user] (error): delete_user not executed: Delete operations" in out.stdout
    assert "'amount': {'type': 'integer'}" in out.stdout  # the schema the model is offered


def test_openai_agents_example(tmp_path: Path) -> None:
    pytest.importorskip("agents")
    out = run_example("openai_agents_tool.py", tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert "tool output: transferred 2500 to ACC-3" in out.stdout
    assert "send_email not executed: denied by" in out.stdout
    assert "interruption: transfer_funds" in out.stdout
    assert "tool output: transferred 8000 to ACC-8" in out.stdout


def test_langgraph_example_waits_in_the_queue_for_another_process(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "langgraph_graph.py"), "--queue"],
        env=python_env(SENTINEL_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(tmp_path),
    )
    try:
        db = home / "sentinel.db"
        deadline = time.monotonic() + 60
        pending = []
        while not pending:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the example never asked for approval"
            if db.exists():
                pending = Store(db).list_pending()
            time.sleep(0.05)
        (request,) = pending
        assert request.function == "deploy_service"
        assert request.arguments == {"service": "api", "environment": "prod"}
        signed_decide(Store(db), request.id, True, current_operator("test"), "ship it")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "waiting for approval" in stderr  # the hint telling the operator what to run
    assert "tool[deploy_service] (success): api deployed to prod" in stdout
    assert "delete_user not executed" in stdout


@pytest.mark.e2e
def test_mcp_example_client_through_the_proxy(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    out = run_example("mcp/client.py", tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert "connected to notes through sentinel mcp" in out.stdout
    assert "add_note    -> error=False: saved todo" in out.stdout
    assert "delete_note -> error=True: delete_note not executed: Deleting notes" in out.stdout
    assert "send_email  -> error=False: sent 17 characters to partner@elsewhere.org" in out.stdout
    assert "resource notes://welcome: Sentinel guards" in out.stdout


def test_mcp_example_desktop_config_is_a_valid_sentinel_mcp_command() -> None:
    import json

    from sentinel.cli import build_parser

    config = json.loads((EXAMPLES / "mcp" / "claude_desktop_config.json").read_text())
    server = config["mcpServers"]["notes"]
    assert server["command"] == "sentinel"
    args = build_parser().parse_args(server["args"])
    assert args.command == "mcp" and args.rules.endswith("examples/mcp/rules.yaml")
    assert args.upstream[-2:] == ["python", "/path/to/sentinel/examples/mcp/notes_server.py"]


def test_langgraph_interrupt_example_resumes_in_another_process(tmp_path: Path) -> None:
    pytest.importorskip("langgraph.checkpoint.sqlite")
    home = tmp_path / "home"
    start = run_example("langgraph_interrupt.py", home, "start")
    assert start.returncode == 0, start.stderr
    assert "interrupted: deploy_service {'environment': 'prod', 'service': 'api'}" in start.stdout
    (request,) = Store(home / "sentinel.db").list_pending()
    assert f"sentinel approve {request.id}" in start.stdout
    signed_decide(Store(home / "sentinel.db"), request.id, True, current_operator("test"), "go")
    resume = run_example("langgraph_interrupt.py", home, "resume")
    assert resume.returncode == 0, resume.stderr
    assert "tool[deploy_service] (success): api deployed to prod" in resume.stdout
    assert "tool[delete_user] (error): delete_user not executed" in resume.stdout
    again = run_example("langgraph_interrupt.py", home, "resume")
    assert "Nothing to resume" in again.stdout
