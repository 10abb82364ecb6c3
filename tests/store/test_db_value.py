"""A database value that is not a path is refused by name and never creates anything."""

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


def test_postgresql_says_not_supported_yet_and_masks_password() -> None:
    with pytest.raises(DatabaseValueError) as info:
        parse_db_value(URLS[0], source="SENTINEL_DB")
    text = str(info.value)
    assert "SENTINEL_DB" in text and "SQLite database file is needed" in text
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
    monkeypatch.setenv("SENTINEL_DB", URLS[0])
    with pytest.raises(SentinelConfigError) as info:
        SentinelConfig()
    assert info.value.field == "db_path" and "SENTINEL_DB" in str(info.value)
    monkeypatch.delenv("SENTINEL_DB")
    with pytest.raises(SentinelConfigError, match="db_path 'mysql://db.example/x'"):
        SentinelConfig(db_path="mysql://db.example/x")
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("argv", [["pending"], ["show", "abc"]])
def test_cli_db_flag_and_env_refuse_url(argv: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "SENTINEL_DB": URLS[0]}
    run = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "SQLite database file is needed" in run.stderr, run.stderr
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
    ],
)
def test_every_db_flag_names_itself_when_refused(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    run = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *argv, "--db", URLS[0]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "argument --db: 'postgresql://alice:***@db.example/sentinel'" in run.stderr, run.stderr
    assert "SQLite database file is needed" in run.stderr
    assert "s3cret" not in run.stderr + run.stdout
    assert _tree(tmp_path) == []
