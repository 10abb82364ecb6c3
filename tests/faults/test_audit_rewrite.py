"""Issue 20.1: rewriting the whole audit chain must not pass ``sentinel audit verify``.

The attacker can write the database (the agents' folder) but not the anchor folder. Each attack
runs against a real SQLite file and checks the verdict of the real command line in a child
process: a full rewrite under a new ``db_id``, a deleted database, a rewrite laundered by the next
routine ``sentinel audit anchor``, and an ``executed`` event with no approval behind it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from sentinel.store import Store
from sentinel.store.codec import GENESIS_HASH, body_text
from tests.helpers import PYTHON, python_env

KEY = "fault-audit-key-not-a-secret"


def cli(*args: str, anchors: Path) -> subprocess.CompletedProcess[str]:
    """``python -m sentinel.cli audit ...`` in a child process with the operator's key."""
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "audit", *args],
        env=python_env(SENTINEL_AUDIT_KEY=KEY, SENTINEL_ANCHOR_DIR=str(anchors)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def history(store: Store, start: int = 0) -> None:
    """Allowed calls, blocked calls and one approved transfer, as the guard records them."""
    events = []
    for i in range(start, start + 12):
        kind = "blocked" if i % 3 == 0 else "allowed"
        events.append({"kind": kind, "function": "transfer", "agent_id": "bot", "rule_id": "r"})
    rid = f"req-{start}"
    events += [
        {"kind": "approval_requested", "request_id": rid, "function": "transfer"},
        {"kind": "approved", "request_id": rid, "function": "transfer", "actor": "alice"},
        {"kind": "executed", "request_id": rid, "function": "transfer"},
    ]
    store.append_events(events)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """An agents' database with a history, anchored by the operator into its own folder."""
    db = tmp_path / "agents" / "sentinel.db"
    anchors = tmp_path / "operator" / "anchors"
    with Store(db) as store:
        history(store)
    done = cli("anchor", "--db", str(db), anchors=anchors)
    assert done.returncode == 0, done.stderr
    ok = cli("verify", "--db", str(db), "--require-anchor", anchors=anchors)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    return db, anchors


def rewrite(db: Path, *, new_id: str | None = "f" * 32, drop: str = "blocked") -> None:
    """What the attacker does: drop the triggers, delete the ``drop`` events, renumber and
    recompute the whole chain, and give the database a new id."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    rows = conn.execute("SELECT * FROM events WHERE kind != ? ORDER BY seq", (drop,)).fetchall()
    conn.execute("DELETE FROM events")
    prev = GENESIS_HASH
    for seq, row in enumerate(rows, 1):
        body = body_text(seq, *row[1:13], prev)
        h = hashlib.sha256((prev + body).encode()).hexdigest()
        conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (seq, *row[1:13], prev, h),
        )
        prev = h
    if new_id is not None:
        conn.execute("UPDATE audit_meta SET value = ? WHERE key = 'db_id'", (new_id,))
    conn.close()


def append_raw(db: Path, event: dict[str, str]) -> None:
    """Insert one event at the head with a correct chain hash (inserts pass the triggers)."""
    conn = sqlite3.connect(db, isolation_level=None)
    seq, prev = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    fields = [
        seq + 1,
        1_790_000_000.0,
        event["kind"],
        event.get("request_id"),
        "bot",
        "transfer",
        None,
        None,
        None,
        None,
        None,
        None,
        "{}",
    ]
    body = body_text(*fields, prev)
    h = hashlib.sha256((prev + body).encode()).hexdigest()
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (*fields, prev, h))
    conn.close()


def test_a_full_rewrite_under_a_new_db_id_fails_verify(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    rewrite(db)
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "FAILED" in out.stdout
    [old] = [p.name for p in anchors.glob("*.jsonl")]
    assert old in out.stdout and "f" * 32 in out.stdout  # names the anchor file and the new id


def test_a_full_rewrite_keeping_the_db_id_fails_verify(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    rewrite(db, new_id=None)
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "differs from the signed anchor" in out.stdout or "tail was truncated" in out.stdout


def test_a_db_id_that_is_a_path_cannot_move_the_anchor_folder(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """The id names the anchor file; a path in it must not point verify at a folder the
    attacker chose (here an empty one: "no anchors" would be only a warning)."""
    db, anchors = setup
    empty = tmp_path / "agents" / "empty"
    empty.mkdir()
    rewrite(db, new_id=os.path.relpath(empty, anchors) + "/x")
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "is not an id" in out.stdout and "anchored chain is gone" in out.stdout
    anchored = cli("anchor", "--db", str(db), anchors=anchors)
    assert anchored.returncode == 1 and "is not an id" in anchored.stderr
    assert list(empty.iterdir()) == []


def test_a_deleted_database_fails_verify(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with Store(db) as store:  # the next agent run creates a fresh database at the same path
        history(store)
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "FAILED" in out.stdout and "replaced" in out.stdout


def test_a_routine_anchor_cannot_launder_a_rewrite(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    rewrite(db)
    anchored = cli("anchor", "--db", str(db), anchors=anchors)
    assert anchored.returncode == 1, anchored.stdout
    assert "contradicts" in anchored.stderr
    out = cli("verify", "--db", str(db), "--require-anchor", anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "FAILED" in out.stdout


def test_a_laundering_anchor_written_anyway_does_not_hide_the_old_one(
    setup: tuple[Path, Path],
) -> None:
    """Even if a process (an old Sentinel, a copied tool) writes an anchor for the rewritten
    chain, the older anchor files are still consulted."""
    db, anchors = setup
    rewrite(db)
    from sentinel.audit.anchors import anchor_path, append_record, make_record
    from sentinel.audit.keys import load_signer

    signer = load_signer({"SENTINEL_AUDIT_KEY": KEY})
    assert signer is not None
    with Store(db) as store:
        db_id, _first, last, head, _w = store.audit_state()
    append_record(anchor_path(db, db_id, anchors), make_record("anchor", db_id, last, head, signer))
    out = cli("verify", "--db", str(db), "--require-anchor", anchors=anchors)
    assert out.returncode == 1, out.stdout


def test_an_executed_event_without_its_approval_fails_verify(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    append_raw(db, {"kind": "executed", "request_id": "req-forged"})
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert "req-forged" in out.stdout and "approv" in out.stdout


def test_an_approved_then_executed_request_and_a_second_database_pass(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """No false alarm: more history, a new anchor and a second database anchored into the same
    folder all verify."""
    db, anchors = setup
    with Store(db) as store:
        history(store, 100)
    assert cli("anchor", "--db", str(db), anchors=anchors).returncode == 0
    other = tmp_path / "agents2" / "sentinel.db"
    with Store(other) as store:
        history(store)
    assert cli("anchor", "--db", str(other), anchors=anchors).returncode == 0
    for path in (db, other):
        out = cli("verify", "--db", str(path), "--require-anchor", anchors=anchors)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "OK: the audit trail is intact" in out.stdout


def test_a_vanished_anchored_database_is_reported(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """The anchor store is checked as a whole: another anchored database that disappeared is an
    error too (its anchor file must be retired by the operator on purpose)."""
    db, anchors = setup
    other = tmp_path / "agents2" / "sentinel.db"
    with Store(other) as store:
        history(store)
    assert cli("anchor", "--db", str(other), anchors=anchors).returncode == 0
    for suffix in ("", "-wal", "-shm"):
        Path(str(other) + suffix).unlink(missing_ok=True)
    out = cli("verify", "--db", str(db), anchors=anchors)
    assert out.returncode == 1, out.stdout
    assert os.path.realpath(other) in out.stdout and "no longer exists" in out.stdout


def test_prune_with_anchors_still_verifies(setup: tuple[Path, Path]) -> None:
    db, anchors = setup
    with Store(db) as store:
        history(store, 100)
    assert cli("anchor", "--db", str(db), anchors=anchors).returncode == 0
    done = cli("prune", "--db", str(db), "--before", "2100-01-01", anchors=anchors)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        history(store, 200)
    assert cli("anchor", "--db", str(db), anchors=anchors).returncode == 0, "anchor after prune"
    out = cli("verify", "--db", str(db), "--require-anchor", anchors=anchors)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_call_approved_by_raw_sql_shows_in_verify(tmp_path: Path) -> None:
    """With signing off, whoever can write the database can approve a waiting call with a raw
    UPDATE (what unsigned mode trusts); the call runs, but its outcome has no ``approved``
    event, and verify says so. (With signing on it is refused: tests/trust/test_forgery.py.)"""
    import threading
    import time

    from sentinel import SentinelConfig, protect

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "default_action: allow\n"
        "rules:\n  - id: pay\n    function_pattern: 'pay*'\n    action: require_approval\n"
    )
    db = tmp_path / "agents" / "sentinel.db"
    config = SentinelConfig(
        rules_path=rules, db_path=db, timeout_seconds=30, show_waiting_hint=False,
        hot_reload=False, audit_sync=True, require_signed_decisions=False,
    )  # fmt: skip

    @protect(config)
    def pay(amount: int) -> str:
        return "paid"

    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.update(result=pay(10)), daemon=True)
    thread.start()
    with Store(db) as store:
        deadline = time.monotonic() + 20
        while not store.list_pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        [pending] = store.list_pending()
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        conn.execute("UPDATE requests SET status = 'approved' WHERE id = ?", (pending.id,))
        conn.close()
        thread.join(20)
        assert out.get("result") == "paid"
        while time.monotonic() < deadline:
            kinds = [e.kind for e in store.events_after(0, 100) if e.request_id == pending.id]
            if "executed" in kinds:
                break
            time.sleep(0.01)
        assert kinds == ["approval_requested", "executed"]
    result = cli("verify", "--db", str(db), anchors=tmp_path / "operator" / "anchors")
    assert result.returncode == 1, result.stdout
    assert f"request {pending.id} ran, but no approved event" in result.stdout
