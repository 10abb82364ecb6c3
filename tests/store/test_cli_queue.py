"""``sentinel pending/show/approve/deny/history`` end to end, as real processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.store import Store
from tests.helpers import PYTHON, python_env
from tests.store.factories import new_request


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *args],
        env=env or python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def queue(db_path: Path) -> Iterator[tuple[Store, list[str]]]:
    """A database with three pending requests, one with hostile text. This test process is their
    waiting agent (it holds the liveness lock), so the CLI's sweep leaves them pending."""
    s = Store(db_path)
    ids = [
        s.submit(new_request(id="aaaa1111" + "0" * 24)).id,
        s.submit(
            new_request(
                id="aaaa2222" + "0" * 24, agent_id="evil\x1b]0;pwned\x07", function="rm\u202eexe"
            )
        ).id,
        s.submit(new_request(id="bbbb3333" + "0" * 24, value_at_risk=None)).id,
    ]
    yield s, ids
    s.close()


def test_pending_table_and_json(queue: tuple[Store, list[str]], db_path: Path) -> None:
    _, ids = queue
    out = cli("pending", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert "ID" in out.stdout and "EXPIRES IN" in out.stdout
    assert "aaaa1111" in out.stdout and "1,500" in out.stdout and "large-transfer" in out.stdout
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout  # neutralised agent text
    assert "\\x1b" in out.stdout and "\\u202e" in out.stdout
    js = json.loads(cli("pending", "--json", "--db", str(db_path)).stdout)
    assert [r["id"] for r in js] == ids
    # Only the redacted copy exists to print (the real values are never stored).
    assert js[0]["arguments"]["api_key"] == "[REDACTED]"
    assert "sk-live" not in json.dumps(js)


def test_show_prints_redacted_arguments_only(queue: tuple[Store, list[str]], db_path: Path) -> None:
    out = cli("show", "aaaa1", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert "aaaa1111" in out.stdout and "[REDACTED]" in out.stdout
    assert "sk-live-secret" not in out.stdout
    assert "digest" in out.stdout and "amount over 1000" in out.stdout
    js = json.loads(cli("show", "aaaa1", "--json", "--db", str(db_path)).stdout)
    assert js["status"] == "pending" and "sk-live-secret" not in json.dumps(js)


def test_approve_then_conflict_names_the_first_decider(
    queue: tuple[Store, list[str]], db_path: Path
) -> None:
    store, ids = queue
    env = python_env(SENTINEL_OPERATOR="Night Shift", USER="someone-else")
    ok = cli("approve", "aaaa1", "--reason", "checked invoice", "--db", str(db_path), env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"approved {ids[0]}") and "[Night Shift]" in ok.stdout
    assert "someone-else" not in ok.stdout  # identity from the uid, not $USER
    rec = store.get(ids[0])
    assert rec.status == "approved" and rec.decision_reason == "checked invoice"
    again = cli("deny", ids[0], "--db", str(db_path))
    assert again.returncode == 1
    assert "already approved by" in again.stderr and "UTC" in again.stderr
    assert again.stderr.count("\n") == 1  # one line
    assert store.get(ids[0]).status == "approved"


def test_deny_and_history(queue: tuple[Store, list[str]], db_path: Path) -> None:
    store, ids = queue
    assert cli("deny", "bbbb", "-r", "too much", "--db", str(db_path)).returncode == 0
    assert store.get(ids[2]).status == "denied"
    out = cli("history", "--status", "denied", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert (
        "denied" in out.stdout
        and "too much" in out.stdout
        and "approval_requested" not in out.stdout
    )
    js = json.loads(cli("history", "--json", "--limit", "2", "--db", str(db_path)).stdout)
    assert [e["kind"] for e in js] == ["denied", "approval_requested"]
    assert js[0]["seq"] > js[1]["seq"]
    fn = json.loads(cli("history", "--json", "--function", "rm*", "--db", str(db_path)).stdout)
    assert len(fn) == 1 and fn[0]["request_id"] == ids[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("approve", "zzzz"), "no approval request with id 'zzzz'"),
        (("show", "aaaa"), "ambiguous"),
        (("history", "--filter", "colour:red"), "unknown filter field 'colour'"),
    ],
)
def test_errors_are_one_line_exit_1(
    queue: tuple[Store, list[str]], db_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = cli(*args, "--db", str(db_path))
    assert out.returncode == 1
    assert message in out.stderr and out.stderr.startswith("sentinel: error:")
    assert "Traceback" not in out.stderr


def test_expired_request_cannot_be_approved(db_path: Path) -> None:
    with Store(db_path) as s:
        rec = s.submit(new_request(timeout_seconds=0.001))
        out = cli("approve", rec.id, "--db", str(db_path))
        assert out.returncode == 1 and "expired" in out.stderr
        assert s.get(rec.id).status == "expired"


def test_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "sentinel.db"
    for args in (("pending",), ("history",), ("approve", "abc"), ("show", "abc")):
        out = cli(*args, "--db", str(missing))
        assert out.returncode == 1
        assert f"no Sentinel database at {missing}" in out.stderr
    assert not missing.exists()
    # SENTINEL_HOME is honoured without --db
    out = cli("pending", env=python_env(SENTINEL_HOME=str(tmp_path / "elsewhere")))
    assert out.returncode == 1 and str(tmp_path / "elsewhere" / "sentinel.db") in out.stderr


def test_pending_cancels_requests_of_dead_agents(db_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from tests.store.factories import new_request; from sentinel.store import Store;"
        f"Store({str(db_path)!r}).submit(new_request(id='dead0001'))"
    )
    subprocess.run([PYTHON, "-c", code], env=python_env(), check=True, timeout=60)
    out = cli("pending", "--db", str(db_path))
    assert out.returncode == 0 and "no pending requests" in out.stdout
    with Store(db_path) as s:
        rec = s.get("dead0001")
        assert rec.status == "cancelled" and "exited" in (rec.decision_reason or "")
