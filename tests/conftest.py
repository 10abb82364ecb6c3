"""Shared fixtures: every test gets its own Sentinel home, so nothing touches the repository."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith("SENTINEL_"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SENTINEL_HOME", str(home))
    yield home
    from sentinel.guard import close_shared
    from sentinel.policy_source import PolicySource

    PolicySource.reset()
    # Release the per-database writers, stores and watchers this test opened: the suite would
    # otherwise hold about a thousand descriptors by its end.
    close_shared(under=tmp_path)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules file (YAML or JSON text, dedented) and return its path."""

    def write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "sentinel.db"
