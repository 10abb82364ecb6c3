"""Real keys and real files for the trust tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.trust import OperatorKey, add_operator, generate_key


@pytest.fixture
def ops_file(tmp_path: Path) -> Path:
    folder = tmp_path / "etc-sentinel"
    folder.mkdir(mode=0o755)
    return folder / "operators.json"


@pytest.fixture
def make_key(tmp_path: Path):
    def make(name: str) -> OperatorKey:
        return generate_key(tmp_path / "keys" / name / "operator-key.pem")

    return make


@pytest.fixture
def alice(make_key, ops_file: Path) -> OperatorKey:
    key = make_key("alice")
    add_operator(ops_file, "alice", key.public_key, ["finance"])
    return key
