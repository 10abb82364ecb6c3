"""Tampering with the table or the JSONL mirror is caught with the first bad position; a prune
with a signed checkpoint is not tampering; a truncated tail and a recomputed history are caught
by the signed anchors."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from sentinel.audit.anchors import anchor_path, write_anchor
from sentinel.audit.keys import load_signer
from sentinel.audit.mirror import JsonlMirror, mirror_files
from sentinel.audit.prune import prune
from sentinel.audit.verify import verify
from sentinel.cli import main
from sentinel.store import Store
from sentinel.store.codec import GENESIS_HASH, body_text

N = 30
DAY = 86400.0
T0 = 1_790_000_000.0 - (1_790_000_000.0 % DAY)  # a UTC midnight


def fill(store: Store, n: int = N, start: float = T0) -> None:
    store.append_events(
        [
            {
                "kind": "allowed" if i % 2 == 0 else "executed",
                "ts": start + i * 3600.0,  # 24 events a day: files span two days
                "function": "transfer",
                "agent_id": "bot-1",
                "value_at_risk": float(i),
                "data": {"args": {"amount": i}},
            }
            for i in range(n)
        ]
    )


@pytest.fixture
def trail(tmp_path: Path, anchors: Path) -> tuple[Path, Path]:
    """A database with N events, mirrored to JSONL, with a signed anchor of its head."""
    db = tmp_path / "db" / "s.db"
    logs = tmp_path / "logs"
    with Store(db) as store:
        fill(store)
        JsonlMirror(logs).catch_up(store)
        signer = load_signer()
        assert signer is not None
        write_anchor(store, signer)
    return db, logs


def attacker(db: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped, as an attacker would."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    return conn


def check(db: Path, logs: Path | None = None) -> list[str]:
    with Store(db) as store:
        report = verify(store, jsonl_dir=logs)
    return [str(p) for p in report.problems]


def rehash_from(conn: sqlite3.Connection, seq: int) -> None:
    """Recompute every hash from ``seq`` on, so the chain itself is consistent again."""
    prev = conn.execute(
        "SELECT hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1", (seq,)
    ).fetchone()
    prev_hash = prev[0] if prev else GENESIS_HASH
    rows = conn.execute("SELECT * FROM events WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
    for row in rows:
        body = body_text(*row[:13], prev_hash)
        h = hashlib.sha256((prev_hash + body).encode()).hexdigest()
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, h, row[0])
        )
        prev_hash = h


def test_an_untouched_trail_verifies(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, logs = trail
    assert check(db, logs) == []
    assert main(["audit", "verify", "--db", str(db), "--jsonl", str(logs)]) == 0
    out = capsys.readouterr().out
    assert f"{N} events checked" in out and "OK" in out
    assert len(mirror_files(logs)) == 2  # two UTC days


def test_table_changed_byte(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    attacker(db).execute("UPDATE events SET value_at_risk = 0 WHERE seq = 12")
    assert check(db) == ["table seq 12: hash does not match the event's contents (edited)"]


def test_table_changed_data_byte_in_place(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    attacker(db).execute("UPDATE events SET data = replace(data, '11', '99') WHERE seq = 12")
    assert check(db)[0].startswith("table seq 12: hash does not match")


def test_table_removed_event(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    attacker(db).execute("DELETE FROM events WHERE seq = 7")
    assert check(db) == ["table seq 8: expected seq 7, found 8: events 7..7 are missing"]


def test_table_removed_event_renumbered(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    conn = attacker(db)
    conn.execute("DELETE FROM events WHERE seq = 7")
    conn.execute("UPDATE events SET seq = seq - 1 WHERE seq > 7")
    assert check(db)[0].startswith("table seq 7: prev_hash does not match")


def test_table_inserted_event(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    conn = attacker(db)
    conn.execute("UPDATE events SET seq = seq + 1000 WHERE seq > 9")
    conn.execute("UPDATE events SET seq = seq - 999 WHERE seq > 1000")
    row = conn.execute("SELECT * FROM events WHERE seq = 9").fetchone()
    conn.execute("INSERT INTO events VALUES (10,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row[1:])
    assert check(db)[0].startswith("table seq 10: prev_hash does not match")


def test_table_reordered_events(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    conn = attacker(db)
    conn.execute("UPDATE events SET seq = -1 WHERE seq = 5")
    conn.execute("UPDATE events SET seq = 5 WHERE seq = 6")
    conn.execute("UPDATE events SET seq = 6 WHERE seq = -1")
    assert check(db)[0].startswith("table seq 5: prev_hash does not match")


def test_table_truncated_tail_is_caught_by_the_anchor(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    attacker(db).execute("DELETE FROM events WHERE seq > 25")
    problems = check(db)
    assert problems[0].startswith("table seq 26: table ends at seq 25 but the signed anchor")
    assert "truncated" in problems[0]


def test_table_history_recomputed_is_caught_by_the_anchor(trail: tuple[Path, Path]) -> None:
    db, _ = trail
    conn = attacker(db)
    conn.execute("UPDATE events SET value_at_risk = 0 WHERE seq = 14")
    rehash_from(conn, 14)
    problems = check(db)
    assert problems == [
        f"table seq {N}: differs from the signed anchor (anchors line 1): the history was "
        "rewritten and its hashes recomputed"
    ]


def test_a_forged_anchor_is_reported(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = trail
    with Store(db) as store:
        db_id = store.audit_state()[0]
    path = anchor_path(db, db_id)
    record = json.loads(path.read_text().splitlines()[0])
    record["seq"] = N + 5  # claims more events than there are, signature no longer fits
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    assert check(db) == ["anchors:2: anchor record: bad signature"]


def test_jsonl_changed_byte(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    first = mirror_files(logs)[0]
    lines = first.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace('"amount":4', '"amount":5')
    first.write_text("".join(lines))
    assert check(db, logs) == [f"{first.name}:5: hash does not match the line's contents (edited)"]


def test_jsonl_removed_line(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    first = mirror_files(logs)[0]
    lines = first.read_text().splitlines(keepends=True)
    del lines[9]
    first.write_text("".join(lines))
    assert check(db, logs) == [
        f"{first.name}:10: expected seq 10, found 11: events 10..10 are missing"
    ]


def test_jsonl_inserted_line(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    first = mirror_files(logs)[0]
    lines = first.read_text().splitlines(keepends=True)
    lines.insert(3, lines[2])
    first.write_text("".join(lines))
    assert check(db, logs) == [
        f"{first.name}:4: expected seq 4, found 3: out of order or duplicated"
    ]


def test_jsonl_reordered_lines(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    first = mirror_files(logs)[0]
    lines = first.read_text().splitlines(keepends=True)
    lines[6], lines[7] = lines[7], lines[6]
    first.write_text("".join(lines))
    assert check(db, logs)[0].startswith(f"{first.name}:7: expected seq 7, found 8")


def test_jsonl_truncated_tail(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    last = mirror_files(logs)[-1]
    lines = last.read_text().splitlines(keepends=True)
    last.write_text("".join(lines[:-2]))
    problems = check(db, logs)
    assert problems == [
        f"{last.name}:end: the files end at seq {N - 2} but the table goes to seq {N}: the files "
        "were truncated, or the mirror is behind (`sentinel audit mirror` catches up)"
    ]


def test_jsonl_removed_day_file(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    mirror_files(logs)[0].unlink()
    problems = check(db, logs)
    assert problems[0].endswith(
        ":1: the files start at seq 25 without a signed checkpoint before it"
    )


def test_jsonl_recomputed_line_is_caught_against_the_table(trail: tuple[Path, Path]) -> None:
    db, logs = trail
    last = mirror_files(logs)[-1]
    lines = last.read_text().splitlines(keepends=True)
    # Rewrite the very last line consistently (valid hash), as if the attacker had no table.
    body = json.loads(lines[-1])
    body["value_at_risk"] = 0.0
    h = body.pop("hash")
    del h
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    new_hash = hashlib.sha256((body["prev_hash"] + text).encode()).hexdigest()
    lines[-1] = text[:-1] + f',"hash":"{new_hash}"}}\n'
    last.write_text("".join(lines))
    assert check(db, logs) == [f"{last.name}:{len(lines)}: differs from the table's event seq {N}"]


def test_cli_reports_the_first_bad_position_and_exits_1(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, logs = trail
    attacker(db).execute("DELETE FROM events WHERE seq = 3")
    assert main(["audit", "verify", "--db", str(db), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"][0]["where"] == "table seq 4"


def test_prune_with_a_checkpoint_is_not_tampering(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, logs = trail
    second_day = mirror_files(logs)[1].stem
    assert (
        main(["audit", "prune", "--db", str(db), "--before", second_day, "--jsonl", str(logs)]) == 0
    )
    out = capsys.readouterr().out
    assert "pruned 24 events up to seq 24" in out
    assert len(mirror_files(logs)) == 1
    with Store(db) as store:
        assert store.audit_state()[1] == 25
    assert check(db, logs) == []
    # More events after the prune still chain on.
    with Store(db) as store:
        fill(store, 3, T0 + 2 * DAY)
        JsonlMirror(logs).catch_up(store)
    assert check(db, logs) == []


def test_deleting_old_events_without_a_signed_checkpoint_is_tampering(
    trail: tuple[Path, Path],
) -> None:
    db, _ = trail
    conn = sqlite3.connect(db, isolation_level=None)
    # The attacker imitates a prune: a prune_window row lets the trigger delete the rows.
    head = conn.execute("SELECT hash FROM events WHERE seq = 10").fetchone()[0]
    conn.execute("INSERT INTO prune_window VALUES (10, ?, 0)", (head,))
    conn.execute("DELETE FROM events WHERE seq <= 10")
    assert check(db) == [
        "table seq 11: events up to seq 10 were deleted but no signed prune checkpoint records it "
        "(a prune_window row written by hand)"
    ]


def test_prune_needs_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(tmp_path / "db" / "s.db") as store:
        fill(store)
        with pytest.raises(ValueError, match="signed checkpoint"):
            prune(store, "2030-01-01", None)


def test_anchors_inside_the_database_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside the database folder"):
        anchor_path(tmp_path / "db" / "s.db", "x", tmp_path / "db" / "anchors")
