"""A process with more than 1024 open files: select() refuses such descriptors, poll() does not.

Found in the full suite: the rules watcher thread died with "filedescriptor out of range in
select()", so rules edits stopped reloading in a long-lived process with many open files.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.fdwait import readable
from sentinel.policy.watch import FileWatcher


@pytest.fixture
def many_open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1400
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the hard open-file limit {hard} is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    held: list[int] = []
    try:
        base = os.open(os.devnull, os.O_RDONLY)
        held.append(base)
        while held[-1] < 1100:
            held.append(os.dup(base))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_readable_reports_a_pipe_above_descriptor_1024(many_open_files: None) -> None:
    r, w = os.pipe()
    try:
        assert r > 1024
        assert readable([r], 0) == set()
        os.write(w, b"x")
        assert readable([r], 1.0) == {r}
    finally:
        os.close(r)
        os.close(w)


def test_readable_names_a_closed_descriptor() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(ValueError, match=f"file descriptor {r} is not open"):
        readable([r], 0)


def test_the_rules_watcher_sees_a_save_with_more_than_1024_files_open(
    many_open_files: None, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\n")
    changed = threading.Event()
    watcher = FileWatcher(rules, changed.set).start()
    try:
        assert watcher.started.wait(5)
        changed.clear()
        rules.write_text("version: 1\nrules: []\n")
        assert changed.wait(5), "the watcher never reported the save"
        assert watcher.thread.is_alive()
    finally:
        watcher.stop()
