"""`sentinel rules check` and `sentinel rules explain`."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from sentinel.cli import main
from tests.helpers import PYTHON, python_env

GOOD = """
version: "1.0"
rules:
  - id: big_transfer
    function_pattern: "transfer_*"
    conditions:
      - {param: amount, operator: gt, value: 100}
    action: require_approval
    priority: 200
    message: "Transfer of {amount} needs approval"
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
  - id: trial
    function_pattern: "*"
    action: block
    mode: shadow
tests:
  - name: big one
    call: {function: transfer_funds, args: {amount: 5000}}
    expect: {action: require_approval, rule: big_transfer}
"""

BAD = """
rules:
  - id: big_transfer
    function_pattern: "transfer_*"
    conditions:
      - {param: amount, operator: greater_than, value: 100}
    action: require_approval
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "rules", *args],
        cwd=cwd,
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_valid_file_subprocess(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    proc = run_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "valid" in out and "3 rule(s)" in out
    # evaluation order: priority 200 first, then file order
    assert out.index("big_transfer") < out.index("no_deletes") < out.index("trial")
    assert "amount gt 100" in out and "shadow" in out
    assert "ok   'big one'" in out
    assert proc.stderr == ""


def test_check_invalid_file_subprocess(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    proc = run_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"{path}:5: rule 'big_transfer': unknown operator 'greater_than'" in proc.stderr
    assert "did you mean 'gt'" in proc.stderr


def test_check_uses_env_then_cwd_default(tmp_path: Path) -> None:
    env_file = write(tmp_path, GOOD, "custom.yaml")
    proc = run_cli("check", cwd=tmp_path, SENTINEL_RULES_PATH=str(env_file))
    assert proc.returncode == 0 and "custom.yaml" in proc.stdout
    proc = run_cli("check", cwd=tmp_path)  # ./rules.yaml does not exist here
    assert proc.returncode == 1 and "not found" in proc.stderr
    write(tmp_path, GOOD)
    proc = run_cli("check", cwd=tmp_path)
    assert proc.returncode == 0


def test_check_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(write(tmp_path, GOOD))]) == 0
    assert "big_transfer" in capsys.readouterr().out
    assert main(["rules", "check", "-q", str(write(tmp_path, GOOD))]) == 0
    assert capsys.readouterr().out == ""
    assert main(["rules", "check", str(write(tmp_path, BAD, "bad.yaml"))]) == 1
    assert "unknown operator" in capsys.readouterr().err


def test_check_reports_failing_policy_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, GOOD.replace("expect: {action: require_approval", "expect: {action: block")
    )
    assert main(["rules", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "policy test 'big one' failed" in err


def test_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    code = main(
        ["rules", "explain", "transfer_funds", "amount=5000", "note=hi", "--rules", str(path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "verdict: REQUIRE_APPROVAL by rule big_transfer" in out
    assert "Transfer of 5000 needs approval" in out
    assert "amount gt 100: true" in out
    assert "no_deletes" in out and "function name does not match" in out
    assert "shadow:  rule trial would block" in out


def test_explain_says_who_decides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    terms = GOOD.replace(
        "    priority: 200\n",
        "    priority: 200\n    approvers: [finance]\n    quorum: 2\n"
        "    escalate_after: 10m\n    escalate_to: [security]\n",
    )
    path = write(tmp_path, terms)
    assert main(["rules", "explain", "transfer_funds", "amount=5000", "--rules", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "who decides: finance; 2 approvals needed; not the agent's own identity; "
        "after 600s also security (escalation)"
    ) in out
    plain = write(tmp_path, GOOD, "plain.yaml")
    assert main(["rules", "explain", "transfer_funds", "amount=5000", "--rules", str(plain)]) == 0
    assert "who decides" not in capsys.readouterr().out


def test_explain_string_value_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    assert main(["rules", "explain", "transfer_funds", "amount=lots", "--rules", str(path)]) == 0
    out = capsys.readouterr().out
    assert "could not be evaluated" in out
    assert "amount gt 100: error" in out
    assert main(["rules", "explain", "transfer_funds", "oops", "--rules", str(path)]) == 2


def test_rules_without_subcommand_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 2
    assert "check" in capsys.readouterr().err
