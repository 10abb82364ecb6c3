"""Which database a value names (sentinel.store.location): SQLite paths, PostgreSQL locations
with their passwords kept out of every display, refused values, and opening either backend."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from sentinel.errors import StoreError
from sentinel.store import Store
from sentinel.store.location import (
    PASSWORD_FILE_ENV,
    PgLocation,
    open_store,
    parse_location,
    parse_or_default,
)
from sentinel.store.paths import DatabaseValueError, mask_password, parse_db_value

REFUSED = [
    "mysql://alice:s3cret@db.example/x",
    "https://alice:s3cret@example.com/db",
    "postgresql:host/db",
    "postgresql+psycopg://alice:s3cret@db.example/x",
    "postgresql://alice:s3cret@db.example:port/x",
]


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _without_password(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    assert parts.password
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), parts.password


def test_paths_and_sqlite_urls_are_sqlite(tmp_path: Path) -> None:
    assert parse_location(str(tmp_path / "a.db")) == tmp_path / "a.db"
    assert parse_location(f"sqlite:///{tmp_path}/b.db") == tmp_path / "b.db"
    assert parse_location(tmp_path / "c.db") == tmp_path / "c.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
def test_postgresql_urls_are_locations_shown_masked(scheme: str) -> None:
    url = f"{scheme}://alice:s3cret@db.example:5433/sentinel"
    loc = parse_location(url, source="SENTINEL_DB")
    assert isinstance(loc, PgLocation)
    assert loc.url == url and loc.has_password
    for shown in (str(loc), repr(loc), loc.display, f"{loc}", str([loc]), str({"db": loc})):
        assert "s3cret" not in shown
        assert "alice:***@db.example:5433/sentinel" in shown
    assert parse_location(url) == loc and hash(parse_location(url)) == hash(loc)
    assert {loc: 1}[PgLocation(url)] == 1
    assert loc.host == "db.example" and loc.dbname == "sentinel"


def test_query_password_is_masked_too() -> None:
    loc = parse_location("postgresql://alice@db/x?sslmode=require&password=s3cret")
    assert isinstance(loc, PgLocation) and loc.has_password
    assert "s3cret" not in repr(loc) and "password=***" in str(loc)
    # An unescaped @ or / in a password hides everything up to the last @.
    assert mask_password("postgresql://a:p@ss/w@h/db") == "postgresql://a:***@h/db"
    # The driver gets the password where every display masks it (userinfo), not the query.
    dsn = loc.dsn()
    assert urlsplit(dsn).password == "s3cret" and "password=" not in dsn
    from sentinel.store.postgres import mask_url

    assert "s3cret" not in mask_url(dsn)


@pytest.mark.parametrize("value", REFUSED)
def test_other_values_refused_by_source_masked_nothing_created(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path / "home"))
    for call in (
        lambda: parse_location(value, source="--db"),
        lambda: open_store(value, source="--db"),
    ):
        with pytest.raises(DatabaseValueError) as info:
            call()
        text = str(info.value)
        assert text.startswith("--db "), text
        assert "s3cret" not in text
        assert "postgresql://" in text  # says what would have been accepted
    assert _tree(tmp_path) == []


def test_sqlite_store_still_refuses_a_postgresql_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatabaseValueError, match="SQLite database file is needed") as info:
        Store("postgresql://alice:s3cret@db.example/x")
    assert "s3cret" not in str(info.value)
    with pytest.raises(DatabaseValueError, match="SQLite database file is needed"):
        parse_db_value("postgres://db.example/x")
    assert _tree(tmp_path) == []


def test_default_location_follows_sentinel_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    monkeypatch.delenv("SENTINEL_DB", raising=False)
    assert parse_or_default(None) == tmp_path / "sentinel.db"
    monkeypatch.setenv("SENTINEL_DB", "postgresql://u:pw@h/d")
    assert parse_or_default(None) == PgLocation("postgresql://u:pw@h/d")
    monkeypatch.setenv("SENTINEL_DB", "mysql://u:pw@h/d")
    with pytest.raises(DatabaseValueError, match=r"^SENTINEL_DB 'mysql://u:\*\*\*@h/d'"):
        parse_or_default(None)


def test_password_file_supplies_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss/wörd\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    loc = PgLocation("postgresql://alice@db.example:5432/x")
    dsn = loc.dsn()
    assert urlsplit(dsn).password is not None
    assert urlsplit(dsn).hostname == "db.example" and urlsplit(dsn).username == "alice"
    from urllib.parse import unquote

    assert unquote(urlsplit(dsn).password or "") == "p@ss/wörd"
    assert "wörd" not in str(loc)
    # A password in the URL wins; the file is not even read.
    assert PgLocation("postgresql://alice:inurl@db/x").dsn() == "postgresql://alice:inurl@db/x"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_password_file_readable_by_others_is_refused(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    os.chmod(secret, mode)
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    with pytest.raises(DatabaseValueError) as info:
        open_store("postgresql://alice@127.0.0.1:1/x")
    text = str(info.value)
    assert PASSWORD_FILE_ENV in text and str(secret) in text and f"{mode:04o}" in text
    assert "s3cret" not in text


def test_missing_password_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(tmp_path / "nope"))
    with pytest.raises(DatabaseValueError, match=f"{PASSWORD_FILE_ENV} {tmp_path / 'nope'}: cannot read"):
        PgLocation("postgresql://alice@h/x").dsn()


def test_open_store_sqlite(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as store:
        assert isinstance(store, Store) and store.path == tmp_path / "s.db"
    with pytest.raises(StoreError, match="no Sentinel database"):
        open_store(tmp_path / "missing.db", create=False)


# --- against the real PostgreSQL cluster -------------------------------------------------------


def test_open_store_postgresql(pg_url: str) -> None:
    from sentinel.store.postgres import PgStore

    with open_store(pg_url) as store:
        assert isinstance(store, PgStore)
        assert store.count_events() == 0
        password = urlsplit(pg_url).password or ""
        assert password not in repr(store) and password not in str(store.path)


def test_open_store_with_password_file(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare, password = _without_password(pg_url)
    secret = tmp_path / "pw"
    secret.write_text(password + "\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with open_store(bare) as store:
        assert store.count_events() == 0


def test_open_store_with_libpq_pgpassword(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bare, password = _without_password(pg_url)
    monkeypatch.delenv(PASSWORD_FILE_ENV, raising=False)
    monkeypatch.setenv("PGPASSWORD", password)
    with open_store(bare) as store:
        assert store.count_events() == 0


def test_wrong_password_is_clear_and_masked(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    wrong = pg_url.replace(f":{parts.password}@", ":WrongPassw0rd@")
    with pytest.raises(StoreError) as info:
        open_store(wrong)
    text = str(info.value)
    assert "WrongPassw0rd" not in text and (parts.password or "") not in text
    assert "***" in text and "password authentication failed" in text


def test_no_schema_says_run_migrate(pg_url: str) -> None:
    with pytest.raises(StoreError, match=r"run `sentinel db migrate`"):
        open_store(pg_url, create=False)


def test_unreachable_server_fails_at_once(pg_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        dead = urlunsplit(urlsplit(pg_url)._replace(netloc=f"sentinel:pw@127.0.0.1:{port}"))
        with pytest.raises(StoreError, match="cannot reach database") as info:
            open_store(dead)
    assert ":pw@" not in str(info.value)
