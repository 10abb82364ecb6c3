"""The README documents every SENTINEL_* variable the code reads, and only those."""

from __future__ import annotations

import re

from tests.helpers import ROOT

VAR = re.compile(r"SENTINEL_[A-Z_]*[A-Z]")


def _read_by(folders: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(VAR.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_variable_read_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(v for v in _read_by(("sentinel", "sentinel_tui")) if v not in readme)
    assert missing == []


def test_every_documented_variable_is_read() -> None:
    readme = set(VAR.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    # Variables of the test suite itself (e.g. how many fault-test agents to run) live in tests/.
    unread = sorted(readme - _read_by(("sentinel", "sentinel_tui", "tests", "benchmarks")))
    assert unread == []


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:2500]
    assert "make demo" in head and "make test" in head
