"""Creating, migrating and protecting the database file."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from sentinel.errors import StoreError
from sentinel.store import MIGRATIONS, Store, default_db_path, schema_version
from sentinel.store.schema import migrate
from tests.store.factories import new_request, operator


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_DB", raising=False)
    monkeypatch.delenv("SENTINEL_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_db_path() == tmp_path / ".sentinel" / "sentinel.db"
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path / "h"))
    assert default_db_path() == tmp_path / "h" / "sentinel.db"
    monkeypatch.setenv("SENTINEL_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_new_database_is_migrated_in_wal_with_private_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a permissive umask must not leak the arguments to other users
    try:
        path = tmp_path / "deep" / "folder" / "sentinel.db"
        with Store(path) as s:
            s.submit(new_request())  # forces -wal/-shm to exist
            conn = sqlite3.connect(path)
            assert (
                conn.execute("PRAGMA user_version").fetchone()[0]
                == schema_version()
                == len(MIGRATIONS)
            )
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            assert {"requests", "events"} <= tables
            conn.close()
            assert _mode(path.parent) == 0o770
            assert _mode(path) == 0o660
            for suffix in ("-wal", "-shm"):
                assert _mode(Path(str(path) + suffix)) == 0o660, suffix
            assert _mode(path.parent / "live") == 0o770
    finally:
        os.umask(old)


def test_reopen_is_idempotent_and_keeps_data(db_path: Path) -> None:
    with Store(db_path) as s:
        rec = s.submit(new_request())
    conn = sqlite3.connect(db_path)
    assert migrate(conn, str(db_path)) == 0  # nothing left to apply
    conn.close()
    with Store(db_path) as s:
        assert s.get(rec.id).id == rec.id
        assert s.count_events() == 1


def test_migration_steps_apply_in_order_from_any_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    extra = [*MIGRATIONS, "CREATE TABLE later_feature (x INTEGER);"]
    assert migrate(conn, "m.db", MIGRATIONS) == len(MIGRATIONS)
    assert migrate(conn, "m.db", extra) == 1  # only the appended step runs
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(extra)
    assert migrate(conn, "m.db", extra) == 0


def test_newer_schema_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {schema_version() + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this Sentinel"):
        Store(db_path)


def test_decided_request_is_immutable_in_the_database(store: Store) -> None:
    rec = store.submit(new_request())
    store.decide(rec.id, True, operator())
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="already decided"):
        conn.execute("UPDATE requests SET status='denied' WHERE id=?", (rec.id,))
    conn.close()
    assert store.get(rec.id).status == "approved"


def test_events_are_append_only(store: Store) -> None:
    store.submit(new_request())
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET kind='approved'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()
    assert store.count_events() == 1


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_missing_database_without_create(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "sentinel.db"
    with pytest.raises(
        StoreError, match=r"no Sentinel database at .*nope.*SENTINEL_HOME or pass --db"
    ):
        Store(missing, create=False)
    assert not missing.parent.exists()  # nothing created


def test_corrupt_file_names_the_problem_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StoreError) as info:
        Store(bad)
    assert "corrupted or not a Sentinel database" in str(info.value)
    assert str(bad) in str(info.value)
    assert bad.read_bytes().startswith(b"this is not sqlite")  # never overwritten


def test_read_only_database_refuses_writes_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "ro" / "sentinel.db"
    with Store(path) as s:
        kept = s.submit(new_request())
    # chattr +i makes the files immutable even for root (tests may run as root).
    files = [p for p in path.parent.iterdir() if p.name.startswith("sentinel.db")]
    chattr = [os.system(f"chattr +i '{p}' 2>/dev/null") for p in files]
    if any(chattr):
        for p in files:
            os.system(f"chattr -i '{p}' 2>/dev/null")
        if os.geteuid() == 0:
            pytest.skip("cannot make the database read-only here (running as root without chattr)")
        for p in files:
            p.chmod(0o440)
        path.parent.chmod(0o550)
    try:
        with pytest.raises(StoreError) as info:
            s = Store(path)
            try:
                s.submit(new_request())
            finally:
                s.close()
        text = str(info.value)
        assert str(path) in text
        assert "read-only" in text or "cannot open" in text
    finally:
        path.parent.chmod(0o770)
        for p in files:
            os.system(f"chattr -i '{p}' 2>/dev/null")
            p.chmod(0o660)
    with Store(path) as s:
        assert s.get(kept.id).id == kept.id


def test_locked_past_busy_timeout_names_the_problem(db_path: Path) -> None:
    with Store(db_path) as s:
        kept = s.submit(new_request())
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with Store(db_path, busy_timeout=0.2) as s:
            with pytest.raises(StoreError) as info:
                s.submit(new_request())
            assert "is locked by another process" in str(info.value)
            assert str(db_path) in str(info.value) and "0.2s" in str(info.value)
            assert s.get(kept.id).id == kept.id  # reads still work (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_disk_full_is_reported_and_committed_data_survives(db_path: Path) -> None:
    with Store(db_path) as s:
        kept = s.submit(new_request())
        pages = s._writer.execute("PRAGMA page_count").fetchone()[0]
        # SQLITE_FULL exactly as a full disk raises it: cap the file at its current size.
        s._writer.execute(f"PRAGMA max_page_count = {pages}")
        big = {"blob": "x" * 200_000}
        with pytest.raises(StoreError, match=r"disk full: cannot write database"):
            s.submit(new_request(arguments=big))
        assert s.get(kept.id).status == "pending"
        assert s.count_events() == 1 and len(s.list_pending()) == 1


def test_a_request_written_before_step_9_keeps_its_redacted_arguments(tmp_path: Path) -> None:
    """Step 9 drops the second copy of the arguments (display_arguments); a pending request from
    before it reads the same after, and the database holds the arguments once."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, str(db), MIGRATIONS[:8])
    conn.execute(
        "INSERT INTO requests (id, function, arguments, display_arguments, digest, pid, host, "
        "timeout_seconds, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        ("a" * 32, "pay", '{"to":"x","pw":"[REDACTED]"}', '{"to":"x","pw":"[REDACTED]"}',
         "0" * 64, os.getpid(), "h", 60.0, 1.0, 1e12),
    )  # fmt: skip
    conn.close()
    with Store(db) as store:
        rec = store.get("a" * 32)
        assert rec.arguments == {"to": "x", "pw": "[REDACTED]"} == rec.display_arguments
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(requests)")]
    conn.close()
    assert "arguments" in columns and "display_arguments" not in columns
