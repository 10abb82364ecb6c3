"""The anchor folder as a whole: records bound to a database file, older records still valid,
writers refusing to anchor a chain that contradicts the folder, the periodic anchorer saying so."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sentinel.audit.anchors import (
    ANCHOR,
    AnchorConflict,
    _message,
    anchor_path,
    append_record,
    conflicts,
    db_location,
    make_record,
    read_records,
    write_anchor,
)
from sentinel.audit.keys import generate_ed25519, load_signer, load_verifier, verifier_for
from sentinel.audit.prune import prune
from sentinel.audit.verify import verify
from sentinel.store import Store
from tests.audit.test_verify import DAY, T0, attacker, fill, rehash_from


def db_at(tmp_path: Path, name: str = "db") -> Path:
    path = tmp_path / name / "s.db"
    with Store(path) as store:
        fill(store)
    return path


def signer():  # type: ignore[no-untyped-def]
    s = load_signer()
    assert s is not None
    return s


def problems(db: Path) -> list[str]:
    with Store(db) as store:
        return [str(p) for p in verify(store).problems]


def test_new_records_sign_the_database_file(tmp_path: Path, anchors: Path) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        record = write_anchor(store, signer())
    assert record is not None and record["db_path"] == db_location(db)
    [line] = read_records(anchor_path(db, record["db_id"]), record["db_id"], load_verifier())
    assert line.ok
    # Moving the record to another database file breaks the signature.
    forged = dict(record, db_path=str(tmp_path / "elsewhere.db"))
    assert not load_verifier().verify(forged["alg"], _message(forged), forged["sig"])


def test_records_of_an_older_version_without_a_path_still_verify(
    tmp_path: Path, anchors: Path
) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        db_id, _f, last, head, _w = store.audit_state()
        append_record(anchor_path(db, db_id), make_record(ANCHOR, db_id, last, head, signer()))
        report = verify(store, require_anchor=True)
    assert report.ok and report.anchors_checked == 1, report.problems


def test_an_older_file_of_another_id_is_a_warning_not_an_error(
    tmp_path: Path, anchors: Path
) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        _id, _f, last, head, _w = store.audit_state()
        append_record(anchor_path(db, "0" * 32), make_record(ANCHOR, "0" * 32, 3, head, signer()))
        write_anchor(store, signer())
        report = verify(store, require_anchor=True)
    assert report.ok, report.problems
    assert any("older Sentinel" in w for w in report.warnings)


def test_a_database_moved_keeps_its_anchors(tmp_path: Path, anchors: Path) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
    moved = tmp_path / "new-home" / "s.db"
    moved.parent.mkdir()
    db.rename(moved)
    with Store(moved) as store:
        fill(store, 2, T0 + 2 * DAY)
        assert write_anchor(store, signer()) is not None  # same id: no conflict
        report = verify(store, require_anchor=True)
    assert report.ok and report.anchors_checked == 2, report.problems


def test_a_missing_db_id_is_tampering(tmp_path: Path, anchors: Path) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
    sqlite3.connect(db, isolation_level=None).execute("DELETE FROM audit_meta")
    found = problems(db)
    assert found[0] == "audit_meta: the database has no db_id: its identity was removed by hand"
    assert any("anchored chain is gone" in p for p in found), found


def test_another_database_rewritten_under_its_id_is_reported(tmp_path: Path, anchors: Path) -> None:
    mine, other = db_at(tmp_path, "mine"), db_at(tmp_path, "other")
    for path in (mine, other):
        with Store(path) as store:
            write_anchor(store, signer())
    conn = attacker(other)
    conn.execute("UPDATE events SET value_at_risk = 0 WHERE seq = 14")
    rehash_from(conn, 14)
    found = problems(mine)
    assert len(found) == 1 and "differs: the history was rewritten" in found[0], found
    assert found[0].startswith("anchors/") and db_location(other) in found[0]


def test_anchor_refuses_a_chain_that_does_not_extend_the_newest_anchor(
    tmp_path: Path, anchors: Path
) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
        fill(store, 4, T0 + 2 * DAY)
    conn = attacker(db)
    # Rewrite only events after the anchor: the anchored head is intact, what follows is not.
    conn.execute("UPDATE events SET prev_hash = ? WHERE seq = 32", ("0" * 64,))
    with Store(db) as store:
        with pytest.raises(AnchorConflict, match="the chain after it breaks at seq 32"):
            write_anchor(store, signer())
        assert len(read_records(anchor_path(db, store.audit_state()[0]), "", load_verifier())) == 1


def test_prune_refuses_a_rewritten_chain(tmp_path: Path, anchors: Path) -> None:
    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
    conn = attacker(db)
    conn.execute("UPDATE events SET value_at_risk = 0 WHERE seq = 3")
    rehash_from(conn, 3)
    with Store(db) as store:
        with pytest.raises(AnchorConflict, match="nothing pruned"):
            prune(store, "2100-01-01", signer())
        assert store.audit_state()[1] == 1  # nothing was deleted


def test_ed25519_writers_check_the_folder_with_the_public_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, pub = tmp_path / "op" / "a.key", tmp_path / "op" / "a.pub"
    generate_ed25519(key, pub)
    monkeypatch.setenv("SENTINEL_AUDIT_SIGNING_KEY", str(key))
    monkeypatch.setenv("SENTINEL_ANCHOR_DIR", str(tmp_path / "anchors"))
    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
    conn = attacker(db)
    conn.execute("UPDATE events SET value_at_risk = 0 WHERE seq = 3")
    rehash_from(conn, 3)
    with Store(db) as store:
        found = conflicts(store, None, verifier_for(signer()))
    assert found and "differs (the history was rewritten)" in found[0]


def test_the_periodic_anchorer_writes_nothing_on_a_conflict(tmp_path: Path, anchors: Path) -> None:
    """It raises (the sink logs it once and calls go on, as for any anchor failure)."""
    from sentinel.audit.anchors import Anchorer

    db = db_at(tmp_path)
    with Store(db) as store:
        write_anchor(store, signer())
    conn = attacker(db)
    conn.execute("UPDATE audit_meta SET value = ? WHERE key = 'db_id'", ("e" * 32,))
    anchorer = Anchorer(signer(), every_events=1)
    with Store(db) as store:
        with pytest.raises(AnchorConflict, match="replaced, recreated or its id rewritten"):
            anchorer.after_commit(store, 5)
    assert not anchor_path(db, "e" * 32).exists()


def test_an_outcome_whose_approval_was_pruned_is_a_warning(tmp_path: Path, anchors: Path) -> None:
    db = tmp_path / "db" / "s.db"
    with Store(db) as store:
        store.append_events(
            [
                {"kind": "approval_requested", "request_id": "r1", "ts": T0},
                {"kind": "approved", "request_id": "r1", "ts": T0 + 1},
                {"kind": "executed", "request_id": "r1", "ts": T0 + 2 * DAY},
                {"kind": "executed", "request_id": "r2", "ts": T0 + 2 * DAY},
            ]
        )
        assert [p.what for p in verify(store).problems] == [
            "request r2 ran, but no approved event for it comes before "
            "(an outcome recorded without its approval)"
        ]
        day = time.strftime("%Y-%m-%d", time.gmtime(T0 + DAY))
        assert prune(store, day, signer()).up_to_seq == 2
        report = verify(store)
    assert report.ok, report.problems
    assert any("2 executed/failed event(s)" in w and "pruned" in w for w in report.warnings)


def test_the_periodic_anchorer_keeps_the_folder_it_was_started_with(
    tmp_path: Path, anchors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.audit.anchors import Anchorer

    db = db_at(tmp_path)
    anchorer = Anchorer(signer())
    monkeypatch.setenv("SENTINEL_ANCHOR_DIR", str(tmp_path / "elsewhere"))
    with Store(db) as store:
        anchorer.after_commit(store, 0, force=True)
        db_id = store.audit_state()[0]
    assert (anchors / f"{db_id}.jsonl").exists()
    assert not (tmp_path / "elsewhere").exists()
