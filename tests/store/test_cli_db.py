"""``sentinel db info`` and ``sentinel db migrate`` in real processes on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from sentinel.store import MIGRATIONS, NewRequest, Store, schema_version
from sentinel.store.schema import migrate
from tests.helpers import PYTHON, ROOT, python_env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "sentinel.cli", "db", *args], capture_output=True,
                          text=True, env=python_env(), cwd=ROOT, timeout=60)  # fmt: skip


def test_migrate_brings_an_old_database_to_the_latest_and_says_how_far(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, str(db), MIGRATIONS[:8])  # a database as an older Sentinel left it
    conn.close()
    out = _cli("migrate", "--db", str(db))
    latest = schema_version()
    assert out.returncode == 0, out.stderr
    assert f"migrated from schema version 8 to {latest} ({latest - 8} steps)" in out.stdout
    again = _cli("migrate", "--db", str(db))
    assert f"schema version {latest}, already the latest" in again.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    conn.close()


def test_info_counts_what_is_there(tmp_path: Path) -> None:
    db = tmp_path / "sentinel.db"
    with Store(db) as store:
        store.submit(NewRequest(id="a" * 32, function="pay", arguments={}, digest="ab" * 32,
                                timeout_seconds=60))  # fmt: skip
    out = _cli("info", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["backend"] == "sqlite" and info["location"] == str(db)
    assert info["schema_version"] == info["latest_version"] == schema_version()
    assert (info["requests"], info["pending"], info["events"]) == (1, 1, 1)
    assert info["size_bytes"] > 0
    text = _cli("info", "--db", str(db)).stdout
    assert f"version {schema_version()} of {schema_version()} (latest)" in text
    assert "requests  1 (1 pending)" in text


def test_a_missing_database_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    db = tmp_path / "none" / "sentinel.db"
    for verb in ("info", "migrate"):
        out = _cli(verb, "--db", str(db))
        assert out.returncode == 1
        assert f"no Sentinel database at {db}" in out.stderr
    assert not db.parent.exists()
    created = _cli("migrate", "--db", str(db), "--create")
    assert created.returncode == 0 and db.exists()


async def test_the_async_store_reports_the_same(tmp_path: Path) -> None:
    from sentinel.store import AsyncStore

    db = tmp_path / "sentinel.db"
    with Store(db) as store:
        expected = store.info()
    assert expected.migrated_from == 0  # it created the database
    async with AsyncStore(db) as astore:
        got = await astore.info()
    assert got.migrated_from == got.schema_version == schema_version()  # found it up to date
    same = ("backend", "location", "schema_version", "latest_version", "requests", "events")
    assert [getattr(got, f) for f in same] == [getattr(expected, f) for f in same]
    assert got.size_bytes > 0


def test_info_and_migrate_on_postgresql(pg_url: str) -> None:
    from sentinel.store.pgschema import pg_schema_version
    from sentinel.store.postgres import PgStore

    password = pg_url.split(":")[2].split("@")[0]
    bare = _cli("info", "--db", pg_url)  # a database without the schema
    assert bare.returncode == 1 and "run `sentinel db migrate`" in bare.stderr
    assert password not in bare.stderr
    out = _cli("migrate", "--db", pg_url)
    latest = pg_schema_version()
    assert out.returncode == 0, out.stderr
    assert f"migrated from schema version 0 to {latest} ({latest} steps)" in out.stdout
    assert "***" in out.stdout and password not in out.stdout
    assert f"schema version {latest}, already the latest" in _cli("migrate", "--db", pg_url).stdout
    with PgStore(pg_url) as store:
        store.submit(NewRequest(id="b" * 32, function="pay", arguments={}, digest="ab" * 32,
                                timeout_seconds=60))  # fmt: skip
    info = json.loads(_cli("info", "--db", pg_url, "--json").stdout)
    assert info["backend"] == "postgresql" and "***" in info["location"]
    assert info["schema_version"] == info["latest_version"] == latest
    assert info["migrated_from"] == latest
    assert (info["requests"], info["pending"], info["events"]) == (1, 1, 1)
    assert info["size_bytes"] > 0
    text = _cli("info", "--db", pg_url).stdout
    assert "backend   postgresql" in text and f"version {latest} of {latest} (latest)" in text


def test_info_says_a_postgresql_schema_is_behind(pg_url: str) -> None:
    import psycopg

    from sentinel.store.postgres import PgStore

    PgStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 10")  # as an older Sentinel left it
    info = json.loads(_cli("info", "--db", pg_url, "--json").stdout)
    assert (info["schema_version"], info["migrated_from"]) == (10, 10)
    assert "(behind)" in _cli("info", "--db", pg_url).stdout


def test_db_values_that_are_no_database_are_refused_by_name(tmp_path: Path) -> None:
    out = _cli("info", "--db", "mysql://u:secret@h/db")
    assert out.returncode == 2 and "argument --db" in out.stderr and "secret" not in out.stderr
