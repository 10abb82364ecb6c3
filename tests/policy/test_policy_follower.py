"""PolicyFollower: the library's reload (settle window, last good policy, widening diff,
watcher) for a viewer that must start and keep running whatever the rules file holds.

Real files and the real watcher thread (inotify on Linux)."""

from __future__ import annotations

import hashlib
import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sentinel.policy_source import PolicyFollower, PolicySource

BLOCK = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
"""
#: BLOCK with a condition on the block rule: it now blocks only root (a widening).
NARROWER_BLOCK = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    conditions: [{param: user, operator: eq, value: root}]
    action: block
"""
TYPO = BLOCK.replace("action: block", "action: blok")


def text(rules: str) -> str:
    return textwrap.dedent(rules).lstrip()


def save_by_rename(path: Path, rules: str) -> None:
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text(rules), encoding="utf-8")
    os.replace(tmp, path)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def watchers_of(name: str) -> list[threading.Thread]:
    return [
        t for t in threading.enumerate()
        if t.name == f"sentinel-rules-watch:{name}" and t.is_alive()
    ]


@pytest.fixture
def follow() -> Iterator[Callable[..., PolicyFollower]]:
    made: list[PolicyFollower] = []

    def make(path: Path, *, watch: bool = True) -> PolicyFollower:
        follower = PolicyFollower(path, watch=watch)
        made.append(follower)
        return follower

    yield make
    for follower in made:
        follower.close()


def test_an_invalid_file_at_start_is_a_problem_not_an_error_and_a_fix_loads_it(
    tmp_path: Path, follow: Callable[..., PolicyFollower]
) -> None:
    path = tmp_path / "typo-at-start.yaml"
    path.write_text(text(TYPO))
    follower = follow(path)
    told: list[int] = []
    follower.subscribe(lambda: told.append(1))
    state = follower.start()
    assert state.policy is None and state.last_loaded is None
    problem = state.problem
    assert problem is not None and problem.kind == "invalid"
    assert problem.line == 4 and problem.file == str(path)
    assert problem.what.startswith("rule 'no_deletes': unknown action 'blok'")
    assert "hint:" in problem.what and str(path) not in problem.what
    assert problem.message.startswith(f"{path}:4: ") and problem.kept_version == ""
    save_by_rename(path, BLOCK)  # the folder watcher tries again
    assert wait_for(lambda: follower.state().policy is not None)
    state = follower.state()
    assert state.problem is None
    assert state.policy is not None
    assert state.policy.version == hashlib.sha256(path.read_bytes()).hexdigest()
    assert told  # subscribers heard of it
    # The source's watcher replaced the waiting one (which ends on its own, soon).
    assert wait_for(lambda: len(watchers_of(path.name)) == 1)
    assert follower.source is not None and follower.source.watching


def test_a_missing_file_at_start_loads_once_created(
    tmp_path: Path, follow: Callable[..., PolicyFollower]
) -> None:
    path = tmp_path / "not-yet.yaml"
    follower = follow(path)
    problem = follower.start().problem
    assert problem is not None and "rules file not found" in problem.what
    save_by_rename(path, BLOCK)
    assert wait_for(lambda: follower.state().policy is not None)


def test_after_the_first_load_edits_carry_the_diff_and_the_widening_and_a_bad_edit_keeps_them(
    tmp_path: Path, follow: Callable[..., PolicyFollower]
) -> None:
    path = tmp_path / "edited.yaml"
    path.write_text(text(BLOCK))
    follower = follow(path)
    first = follower.start().policy
    assert first is not None
    save_by_rename(path, NARROWER_BLOCK)
    assert wait_for(lambda: follower.state().last_loaded is not None)
    state = follower.state()
    change = state.last_loaded
    assert change is not None and change.previous is first and change.policy is state.policy
    assert change.diff is not None and [c.rule_id for c in change.diff.changed] == ["no_deletes"]
    assert [(w.rule_id, w.kind) for w in change.widened] == [("no_deletes", "condition")]
    save_by_rename(path, TYPO)
    assert wait_for(lambda: follower.state().problem is not None)
    kept = follower.state()
    assert kept.policy is state.policy  # the last good policy stays in force
    assert kept.last_loaded is change  # and so does what its load changed
    assert kept.problem is not None and kept.problem.kept_version == change.policy.version
    assert "unknown action 'blok'" in kept.problem.what


def test_without_watch_only_reload_reads_the_file(
    tmp_path: Path, follow: Callable[..., PolicyFollower]
) -> None:
    path = tmp_path / "unwatched.yaml"
    path.write_text(text(BLOCK))
    follower = follow(path, watch=False)
    first = follower.start().policy
    assert first is not None and not watchers_of(path.name)
    path.write_text(text(TYPO))
    assert follower.state().problem is None  # nobody has read it
    problem = follower.reload().problem
    assert problem is not None and problem.line == 4
    assert follower.state().policy is first
    path.write_text(text(NARROWER_BLOCK))
    state = follower.reload()
    assert state.problem is None and state.policy is not first
    assert state.last_loaded is not None and state.last_loaded.widened


def test_a_file_written_in_place_is_not_loaded_before_the_writer_closes_it(
    tmp_path: Path, follow: Callable[..., PolicyFollower]
) -> None:
    """Before the first load too: the cut-off file is valid YAML (an allow-everything file
    without its rules), so only the open writer says it is not complete."""
    path = tmp_path / "slow-save.yaml"
    follower = follow(path)
    assert follower.start().problem is not None  # missing: the folder watcher waits
    waiting = follower._waiting
    assert waiting is not None and waiting.started.wait(10)  # armed: it sees every write
    full = text(BLOCK)
    cut = full.index("  - id")
    with open(path, "w") as fh:
        fh.write(full[:cut])
        fh.flush()
        if not wait_for(lambda: (p := follower.state().problem) is not None
                        and p.kind == "incomplete"):
            if not waiting.knows_close:
                pytest.skip("no close events here (no inotify): only the settle window applies")
            raise AssertionError(f"never told of the save in progress: {follower.state()}")
        assert follower.state().policy is None
        assert "save is in progress" in (follower.state().problem.what)  # type: ignore[union-attr]
        fh.write(full[cut:])
    assert wait_for(lambda: follower.state().policy is not None)
    policy = follower.state().policy
    assert policy is not None and [r.id for r in policy.rules] == ["no_deletes"]


def test_close_stops_the_watcher(tmp_path: Path, follow: Callable[..., PolicyFollower]) -> None:
    path = tmp_path / "closed.yaml"
    path.write_text(text(BLOCK))
    follower = follow(path)
    follower.start()
    assert wait_for(lambda: len(watchers_of(path.name)) == 1)
    follower.close()
    assert wait_for(lambda: not watchers_of(path.name))


def test_the_follower_keeps_the_path_as_given_and_is_not_the_shared_source(
    tmp_path: Path, follow: Callable[..., PolicyFollower], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A viewer shows the path it was given; a guard's shared source is a different object
    (the viewer records no events and can stop its watcher without stopping the guard's)."""
    monkeypatch.chdir(tmp_path)
    Path("relative.yaml").write_text(text(TYPO))
    problem = follow(Path("relative.yaml"), watch=False).start().problem
    assert problem is not None and problem.message.startswith("relative.yaml:4: ")
    Path("relative.yaml").write_text(text(BLOCK))
    follower = follow(Path("relative.yaml"), watch=False)
    policy = follower.start().policy
    assert policy is not None and str(policy.source) == "relative.yaml"
    assert follower.source is not PolicySource.for_path("relative.yaml", watch=False)


def test_a_sources_state_is_read_together(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(text(BLOCK))
    source = PolicySource(path)
    assert source.state().last_loaded is None and source.state().policy is source.current
    path.write_text(text(NARROWER_BLOCK))
    change = source.reload()
    assert change is not None and source.state().last_loaded is change
    path.write_text(text(TYPO))
    rejected = source.reload()
    assert rejected is not None and rejected.kind == "rejected"
    state = source.state()
    assert state.last_loaded is change and state.problem is rejected.problem
    assert state.problem is not None and state.problem.what.startswith("rule 'no_deletes'")
