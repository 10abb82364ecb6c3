"""The terminal channel, driven through a real child process and its standard input."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON, python_env

POLICY = """
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
"""

AGENT = textwrap.dedent(
    """
    import sys, threading
    from sentinel import protect, SentinelConfig, SentinelBlockedError
    cfg = SentinelConfig(rules_path=sys.argv[1], db_path=sys.argv[2], approval_interface="terminal",
                         timeout_seconds=float(sys.argv[3]))

    @protect(cfg)
    def transfer(amount, destination):
        return f"moved {amount} to {destination}"

    out = threading.Lock()

    def say(line):
        with out:  # two threads report: keep each line whole
            print(line, flush=True)

    def call(amount, dest):
        try:
            say(f"RESULT {transfer(amount, dest)}")
        except SentinelBlockedError as exc:
            say(f"STOPPED {type(exc).__name__} {exc.reason}")

    calls = [(5000, "ACC-1"), (90000, "ATTACKER")][: int(sys.argv[4])]
    threads = [threading.Thread(target=call, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("EXIT", flush=True)
    """
)


def run_agent(
    tmp_path: Path,
    write_rules,
    stdin_text: str | None,
    *,
    timeout: float = 20,
    calls: int = 1,
    close_stdin: bool = False,
) -> tuple[str, str, float]:
    rules = write_rules(POLICY)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    start = time.monotonic()
    proc = subprocess.Popen(
        [PYTHON, str(script), str(rules), str(tmp_path / "s.db"), str(timeout), str(calls)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdin is not None
    if close_stdin:
        out, err = proc.communicate("", timeout=30)  # writes nothing, then closes stdin
    elif stdin_text is None:
        out, err = proc.communicate(timeout=30)  # stdin stays open, nobody answers
    else:
        out, err = proc.communicate(stdin_text, timeout=30)
    return out, err, time.monotonic() - start


def test_yes_approves_and_prompt_shows_request(tmp_path: Path, write_rules) -> None:
    out, err, _ = run_agent(tmp_path, write_rules, "y\n")
    assert "RESULT moved 5000 to ACC-1" in out
    assert "SENTINEL APPROVAL REQUIRED" in err
    assert "Transfer of 5000 to ACC-1 needs approval" in err
    assert "Approve request" in err


def test_no_with_reason_denies(tmp_path: Path, write_rules) -> None:
    out, _, _ = run_agent(tmp_path, write_rules, "n not today\n")
    assert "STOPPED SentinelDeniedError" in out and "not today" in out


def test_garbage_then_yes_reprompts(tmp_path: Path, write_rules) -> None:
    out, err, _ = run_agent(tmp_path, write_rules, "maybe\nyes\n")
    assert "Please answer y or n" in err
    assert "RESULT moved" in out


def test_eof_denies_with_reason(tmp_path: Path, write_rules) -> None:
    out, _, _ = run_agent(tmp_path, write_rules, None, close_stdin=True)
    assert "STOPPED SentinelDeniedError" in out
    assert "closed" in out


def test_timeout_leaves_no_thread_behind(tmp_path: Path, write_rules) -> None:
    """The original hung until stdin closed because an orphaned input() thread blocked exit."""
    rules = write_rules(POLICY)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    proc = subprocess.Popen(
        [PYTHON, str(script), str(rules), str(tmp_path / "s.db"), "1.0", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        out = proc.stdout.read()  # type: ignore[union-attr]  # EOF when the process exits
        proc.wait(timeout=10)  # exits although stdin is still open
    finally:
        proc.kill()
    assert "STOPPED SentinelTimeoutError" in out
    assert "EXIT" in out


def test_concurrent_prompts_are_served_one_at_a_time(tmp_path: Path, write_rules) -> None:
    out, err, _ = run_agent(tmp_path, write_rules, "y\nn\n", calls=2)
    # Exactly one block is on screen before the first answer: the second appears after it.
    first_answer_point = err.index("Approve request")
    assert err.count("SENTINEL APPROVAL REQUIRED", 0, first_answer_point) == 1
    assert out.count("RESULT") == 1 and out.count("STOPPED SentinelDeniedError") == 1
    # The approved transfer is the one whose prompt was shown first.
    first_shown = "ATTACKER" if err.index("ATTACKER") < err.index("ACC-1") else "ACC-1"
    assert f"to {first_shown}" in out.split("RESULT", 1)[1].splitlines()[0]


@pytest.mark.parametrize("answer", ["y\n"])
def test_terminal_request_is_a_row_in_the_queue(tmp_path: Path, write_rules, answer: str) -> None:
    run_agent(tmp_path, write_rules, answer)
    from sentinel.store import Store

    history = Store(tmp_path / "s.db").history(None, limit=50)
    kinds = [e.kind for e in history]
    assert "approval_requested" in kinds and "approved" in kinds
    approved = next(e for e in history if e.kind == "approved")
    assert approved.actor  # who: the OS account at the terminal
