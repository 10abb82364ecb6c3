"""Audit fixtures: a signing key and an anchor folder outside the database folder."""

from __future__ import annotations

from pathlib import Path

import pytest

KEY = "test-audit-key-not-a-secret"


@pytest.fixture
def anchors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SENTINEL_AUDIT_KEY set and anchors kept in tmp_path/anchors."""
    folder = tmp_path / "anchors"
    monkeypatch.setenv("SENTINEL_AUDIT_KEY", KEY)
    monkeypatch.setenv("SENTINEL_ANCHOR_DIR", str(folder))
    return folder
