"""A database value that is neither a path nor a PostgreSQL URL is refused by name and never
creates anything; the SQLite store itself takes paths only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.config import SentinelConfig
from sentinel.errors import SentinelConfigError
from sentinel.store import Store
from sentinel.store.paths import DatabaseValueError, parse_db_value

URLS = [
    "postgresql://alice:s3cret@db.example/sentinel",
    "postgres://db.example/sentinel",
    "mysql://db.example/x",
    "https://example.com/db",
    "postgresql:host/db",
]
#: Refused everywhere (the SQLite store refuses the PostgreSQL URLs above as well).
REFUSED = "mysql://alice:s3cret@db.example/sentinel"


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("value", URLS)
def test_store_refuses_url_and_creates_nothing(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatabaseValueError) as info:
        Store(value)
    assert "expected a file path" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert _tree(tmp_path) == []


def test_sqlite_parse_names_postgresql_and_masks_password() -> None:
    with pytest.raises(DatabaseValueError) as info:
        parse_db_value(URLS[0], source="SENTINEL_DB")
    text = str(info.value)
    assert "SENTINEL_DB" in text and "a PostgreSQL URL where a SQLite database file is needed" in text
    assert "alice:***@db.example" in text and "s3cret" not in text


def test_sqlite_url_and_plain_paths_are_accepted(tmp_path: Path) -> None:
    target = tmp_path / "q.db"
    assert parse_db_value(f"sqlite:///{target}") == target
    assert parse_db_value(str(target)) == target
    with Store(f"sqlite:///{target}") as store:
        assert store.path == target
    assert target.exists()
    with pytest.raises(DatabaseValueError, match="absolute path"):
        parse_db_value("sqlite://relative.db")


def test_config_rejects_url_in_env_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rules = Path(__file__).resolve().parents[2] / "rules.yaml"
    monkeypatch.setenv("SENTINEL_RULES_PATH", str(rules))
    monkeypatch.setenv("SENTINEL_DB", REFUSED)
    with pytest.raises(SentinelConfigError) as info:
        SentinelConfig()
    assert info.value.field == "db" and "SENTINEL_DB" in str(info.value)
    assert "s3cret" not in str(info.value)
    monkeypatch.delenv("SENTINEL_DB")
    with pytest.raises(SentinelConfigError, match="db_path 'mysql://db.example/x'") as info:
        SentinelConfig(db_path="mysql://db.example/x")
    assert info.value.field == "db_path"
    with pytest.raises(SentinelConfigError, match="db 'mysql://db.example/x'") as info:
        SentinelConfig(db="mysql://db.example/x")
    assert info.value.field == "db"
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("argv", [["pending"], ["show", "abc"]])
def test_cli_db_flag_and_env_refuse_url(argv: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "SENTINEL_DB": REFUSED}
    run = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "mysql:// is not a supported database" in run.stderr, run.stderr
    assert "SENTINEL_DB" in run.stderr
    assert "s3cret" not in run.stderr + run.stdout
    assert _tree(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["pending"],
        ["show", "abcd"],
        ["audit", "verify"],
        ["rules", "replay", "rules.yaml"],
        ["anomaly", "baseline"],
        ["serve"],
        ["tui"],
        ["db", "info"],
    ],
)
def test_every_db_flag_names_itself_when_refused(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    run = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *argv, "--db", REFUSED],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "argument --db: 'mysql://alice:***@db.example/sentinel'" in run.stderr, run.stderr
    assert "mysql:// is not a supported database" in run.stderr
    assert "s3cret" not in run.stderr + run.stdout
    assert _tree(tmp_path) == []
