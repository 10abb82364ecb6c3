"""``sentinel approve ID --set NAME=VALUE``: values typed by the request's recorded schema; bad
input is one clear line naming the parameter and what it expects, and nothing is decided."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sentinel.edits import argument_schema
from sentinel.store import Store
from tests.helpers import PYTHON, python_env
from tests.store.factories import new_request


def transfer(amount: int, to: str, api_key: str = "", urgent: bool = False) -> None: ...


RULES = """
version: "1.0"
default_action: allow
rules:
  - id: huge
    function_pattern: "transfer"
    conditions:
      - {param: amount, operator: gt, value: 10000}
    action: block
    message: "Transfers above 10,000 are not allowed"
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=python_env(), timeout=60,
    )  # fmt: skip


def test_set_types_values_and_refuses_bad_ones_naming_the_parameter(
    db_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    with Store(db_path) as store:
        rec = store.submit(new_request(arg_schema=argument_schema(transfer)))
    rid, db = rec.id[:12], str(db_path)
    cases = [
        (["--set", "amount=lots"], "parameter 'amount' expects integer, got 'lots'"),
        (["--set", "amt=400"], "has no parameter 'amt' (parameters: amount, api_key, to, urgent)"),
        (["--set", "urgent=maybe"], "parameter 'urgent' expects boolean, got 'maybe'"),
        (["--set", "amount"], "write it as NAME=VALUE"),
        (["--set", "amount=1", "--set", "amount=2"], "--set amount: given twice"),
        (["--set", "api_key=x"], "'api_key' is masked"),
        (["--set", "amount=20000"], "the edited call is blocked by rule huge"),
    ]
    for extra, message in cases:
        out = cli("approve", rid, "--db", db, *extra, cwd=tmp_path)
        assert out.returncode == 1, (extra, out.stdout, out.stderr)
        assert message in out.stderr, (extra, out.stderr)
        assert out.stderr.count("\n") == 1  # one line
    with Store(db_path) as store:
        assert store.get(rec.id).is_pending  # nothing was decided
    ok = cli("approve", rid, "--db", db, "--set", "amount=400", "--set", "urgent=true", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "approved with edits (amount: 1500 → 400; urgent: null → true)" in ok.stdout
    with Store(db_path) as store:
        done = store.get(rec.id)
    assert done.status == "approved" and done.edit.values == {"amount": 400, "urgent": True}
    shown = cli("show", rid, "--db", db, cwd=tmp_path)
    assert "approved with edits by" in shown.stdout and "amount: 1500 → 400" in shown.stdout
    again = cli("approve", rid, "--db", db, "--set", "amount=300", cwd=tmp_path)
    assert again.returncode == 1 and "already approved" in again.stderr
