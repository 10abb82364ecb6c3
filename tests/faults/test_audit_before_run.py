"""Issue 20.5: with auditing on, an allowed call is recorded — or the failure to record it blocks
it — before the function runs, and a one-call process loses nothing.

Each case runs a real child process that makes one (or two) audited allowed calls against a real
database file that is corrupted, read-only (a read-only bind mount: root ignores file modes) or on
a full disk (a 4 MB tmpfs), in both the batched (default) and the ``audit_sync=True`` mode. The
function prints ``RAN`` when it runs; it must not run when its record cannot be made.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from sentinel.store import Store
from tests.faults.support import all_events, verify_chain
from tests.faults.test_storage import readonly_view, tmpfs  # noqa: F401 - fixtures
from tests.helpers import PYTHON, python_env

RULES = """\
version: "1.0"
default_action: allow
rules:
  - id: deletes
    function_pattern: "delete_*"
    action: block
"""

CHILD = """
import json, sqlite3, sys
from sentinel import SentinelConfig, protect
from sentinel.errors import SentinelBlockedError

rules, db, sync, calls, memo = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
cfg = SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_sync=sync, hot_reload=False)

@protect(cfg)
def lookup(key, memo=""):
    # What another process sees in the database while the call runs.
    seen = sqlite3.connect(db).execute("SELECT count(*) FROM events WHERE kind = 'allowed'").fetchone()[0]
    print("RAN", key, "allowed-rows-visible", seen, flush=True)
    return key

for i in range(calls):
    try:
        lookup(f"k{i}", "m" * memo)
    except SentinelBlockedError as exc:
        print("BLOCKED", exc.reason, flush=True)
"""


def _run(rules: Path, db: Path, *, sync: bool, calls: int = 1, memo: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", CHILD, str(rules), str(db), "1" if sync else "0", str(calls), str(memo)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def _kinds(db: Path) -> list[str]:
    store = Store(db)
    try:
        verify_chain(store)
        return [e.kind for e in all_events(store) if e.kind in ("allowed", "executed", "failed")]
    finally:
        store.close()


@pytest.mark.parametrize("sync", [False, True], ids=["batched", "audit_sync"])
def test_corrupted_database_blocks_the_first_audited_call(tmp_path: Path, rules: Path, sync: bool) -> None:
    db = tmp_path / "sentinel.db"
    db.write_bytes(os.urandom(64 * 1024))  # not a database at all
    res = _run(rules, db, sync=sync)
    assert "RAN" not in res.stdout, res.stdout
    assert "BLOCKED" in res.stdout and "fail_mode=secure" in res.stdout, res.stdout + res.stderr
    assert "corrupt" in res.stdout and str(db) in res.stdout, res.stdout


@pytest.mark.parametrize("sync", [False, True], ids=["batched", "audit_sync"])
def test_read_only_database_blocks_the_first_audited_call(readonly_view, rules: Path, sync: bool) -> None:  # noqa: F811
    rw, ro = readonly_view
    Store(rw / "sentinel.db").close()
    db = ro / "sentinel.db"
    res = _run(rules, db, sync=sync)
    assert "RAN" not in res.stdout, res.stdout
    assert "BLOCKED" in res.stdout and "fail_mode=secure" in res.stdout, res.stdout + res.stderr
    assert "read-only" in res.stdout or "writable" in res.stdout, res.stdout
    subprocess.run(["mount", "-o", "remount,bind,rw", str(ro)], check=True)
    # Nothing claims that a call ran: no `allowed` row for the blocked call.
    assert _kinds(rw / "sentinel.db") == []


@pytest.mark.parametrize("sync", [False, True], ids=["batched", "audit_sync"])
def test_full_disk_blocks_the_first_audited_call(tmpfs, rules: Path, sync: bool) -> None:  # noqa: F811
    db = tmpfs / "sentinel.db"
    assert "RAN" in _run(rules, db, sync=sync).stdout  # the database exists and works
    filler = tmpfs / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass  # ENOSPC: the disk is full
    res = _run(rules, db, sync=sync, memo=1_500_000)  # its record needs fresh pages
    filler.unlink()
    assert "RAN" not in res.stdout, res.stdout
    assert "BLOCKED" in res.stdout and "fail_mode=secure" in res.stdout, res.stdout + res.stderr
    assert _kinds(db) == ["allowed", "executed"]  # only the first process's call


@pytest.mark.parametrize("sync", [False, True], ids=["batched", "audit_sync"])
def test_allowed_call_is_in_the_database_before_it_runs(tmp_path: Path, rules: Path, sync: bool) -> None:
    db = tmp_path / "sentinel.db"
    res = _run(rules, db, sync=sync)
    assert res.returncode == 0, res.stderr
    assert "RAN k0 allowed-rows-visible 1" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("sync", [False, True], ids=["batched", "audit_sync"])
def test_short_process_loses_no_event(tmp_path: Path, rules: Path, sync: bool) -> None:
    db = tmp_path / "sentinel.db"
    res = _run(rules, db, sync=sync, calls=3)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("RAN") == 3
    assert _kinds(db) == ["allowed", "executed"] * 3
    rows = sqlite3.connect(db).execute(
        "SELECT kind, digest FROM events WHERE kind IN ('allowed', 'executed') ORDER BY seq"
    ).fetchall()
    # Each outcome carries its call's digest (taken from the `allowed` event it follows).
    assert all(d for _, d in rows) and rows[0][1] == rows[1][1] != rows[2][1] == rows[3][1]
