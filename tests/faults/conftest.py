"""Fault tests start many child processes: none may outlive its test, even a failed one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults import support


@pytest.fixture(autouse=True)
def _no_child_left_behind() -> Iterator[None]:
    yield
    while support.LIVE:
        child = support.LIVE.pop()
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(timeout=10)
