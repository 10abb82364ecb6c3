"""Hot reload: real files, the real watcher thread, and real agent processes."""

from __future__ import annotations

import os
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.errors import SentinelConfigError
from sentinel.policy_source import POLICY_EVENT_KINDS, PolicyChange, PolicySource
from sentinel.store import Store
from sentinel.store.models import HistoryFilter
from tests.helpers import PYTHON, python_env

BLOCK = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
"""
ALLOW = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    conditions: [{param: user, operator: eq, value: root}]
    action: block
  - id: audit_reads
    function_pattern: "read_*"
    action: block
    mode: shadow
"""


def save_by_rename(path: Path, text: str) -> None:
    """Save the way editors do: write a temporary file, then rename it over the original."""
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    os.replace(tmp, path)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def watcher_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("sentinel-rules-watch") and t.is_alive()
    ]


def test_a_saved_edit_takes_effect_for_the_next_call(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(BLOCK)
    config = SentinelConfig(rules_path=rules, db_path=db_path)

    @protect(config)
    def delete_user(user: str) -> str:
        return f"deleted {user}"

    with pytest.raises(SentinelBlockedError):
        delete_user("bob")
    old_version = config.policy.version
    save_by_rename(rules, ALLOW)
    assert wait_for(lambda: config.policy.version != old_version)
    assert delete_user("bob") == "deleted bob"
    with pytest.raises(SentinelBlockedError):
        delete_user("root")
    # The reload is recorded with both versions and the rule diff.
    with Store(db_path) as store:
        assert wait_for(lambda: bool(store.history(HistoryFilter(kinds=POLICY_EVENT_KINDS))))
        event = store.history(HistoryFilter(kinds=POLICY_EVENT_KINDS), limit=1)[0]
    assert event.kind == "policy_loaded"
    assert event.policy_version == config.policy.version
    assert event.data["previous_version"] == old_version
    assert event.data["diff"]["added"] == ["audit_reads"]
    assert event.data["diff"]["changed"][0]["rule_id"] == "no_deletes"


def test_an_invalid_edit_keeps_the_last_good_policy_and_says_where(
    write_rules: Callable[..., Path], db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(BLOCK)
    config = SentinelConfig(rules_path=rules, db_path=db_path)

    @protect(config)
    def delete_user(user: str) -> str:
        return "deleted"

    source = config.policy_source()
    good = source.current
    broken = BLOCK.replace("action: block", "action: blok")
    save_by_rename(rules, broken)
    assert wait_for(lambda: source.problem is not None)
    assert source.current is good  # still in force
    with pytest.raises(SentinelBlockedError):
        delete_user("bob")
    assert source.problem is not None
    assert source.problem.kind == "invalid" and source.problem.line == 4
    assert "unknown action 'blok'" in (source.last_error or "")
    assert "did you mean 'block'" in (source.last_error or "")
    # The same broken text saved again is not logged or recorded a second time.
    save_by_rename(rules, broken + "\n")
    time.sleep(0.3)
    with Store(db_path) as store:
        rejected = store.history(HistoryFilter(kinds=("policy_rejected",)))
    assert len(rejected) == 1  # same problem, same place: recorded and logged once
    assert rejected[0].data["line"] == 4 and rejected[0].data["kept_version"] == good.version
    assert [r for r in caplog.records if "rejected" in r.getMessage()].__len__() == 1
    # Fixed: loaded and the problem clears.
    save_by_rename(rules, ALLOW)
    assert wait_for(lambda: source.problem is None and source.current is not good)
    assert delete_user("bob") == "deleted"


def test_a_deleted_file_keeps_the_last_good_policy_and_says_so(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(BLOCK)
    config = SentinelConfig(rules_path=rules, db_path=db_path)

    @protect(config)
    def delete_user(user: str) -> str:
        return "deleted"

    source = config.policy_source()
    rules.unlink()
    assert wait_for(lambda: source.problem is not None)
    assert source.problem is not None and source.problem.kind == "deleted"
    assert "deleted" in (source.last_error or "") and "stays in force" in (source.last_error or "")
    with pytest.raises(SentinelBlockedError):
        delete_user("bob")
    # Restoring the same text clears the problem without a new version.
    version = source.current.version
    save_by_rename(rules, BLOCK)
    assert wait_for(lambda: source.problem is None)
    assert source.current.version == version


def test_a_missing_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SentinelConfigError):
        SentinelConfig(rules_path=tmp_path / "nope.yaml").policy_source()


def test_one_watcher_per_file_for_many_configs_and_subscribers_see_the_diff(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(BLOCK)
    before = set(watcher_threads())  # a watcher of an earlier test may still be ending
    configs = [
        SentinelConfig(rules_path=rules, db_path=db_path, agent_id=f"a{i}") for i in range(3)
    ]
    sources = {id(c.policy_source()) for c in configs}
    assert len(sources) == 1
    assert len(set(watcher_threads()) - before) == 1
    assert all(t.daemon for t in watcher_threads())
    changes: list[PolicyChange] = []
    unsubscribe = PolicySource.for_path(rules).subscribe(changes.append)
    save_by_rename(rules, ALLOW)
    assert wait_for(lambda: bool(changes))
    diff = changes[0].diff
    assert changes[0].kind == "loaded" and diff is not None
    assert diff.added == ("audit_reads",)
    fields = {f.field for f in diff.changed[0].fields}
    assert fields == {"conditions"}
    assert all(c.policy is changes[0].policy for c in configs)
    unsubscribe()
    save_by_rename(rules, BLOCK)
    assert wait_for(lambda: configs[0].policy.rules[0].conditions == [])
    assert len(changes) == 1


def test_hot_reload_off_never_watches(write_rules: Callable[..., Path]) -> None:
    rules = write_rules(BLOCK)
    config = SentinelConfig(rules_path=rules, hot_reload=False)
    source = config.policy_source()
    assert not source.watching
    save_by_rename(rules, ALLOW)
    time.sleep(0.3)
    assert source.current.rules[0].conditions == []
    # `r` in the command center: an explicit reload still works.
    change = source.reload()
    assert change is not None and change.kind == "loaded"


def test_the_watcher_does_not_keep_a_process_alive(write_rules: Callable[..., Path]) -> None:
    rules = write_rules(BLOCK)
    script = textwrap.dedent(
        f"""
        from sentinel import SentinelConfig
        source = SentinelConfig(rules_path={str(rules)!r}).policy_source()
        assert source.watching
        print("done", flush=True)
        """
    )
    proc = subprocess.run(
        [PYTHON, "-c", script], env=python_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"


AGENT = """
import sys
from sentinel import SentinelConfig, SentinelBlockedError, protect
cfg = SentinelConfig(rules_path={rules!r}, db_path={db!r}, agent_id="agent-{n}")
@protect(cfg)
def delete_user(user):
    return "ran"
print("ready", flush=True)
for line in sys.stdin:
    try:
        out = delete_user("bob")
    except SentinelBlockedError:
        out = "blocked"
    print(out + " " + cfg.policy.version[:12], flush=True)
"""


def test_an_edit_reaches_every_running_agent_process(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(BLOCK)
    agents = [
        subprocess.Popen(
            [PYTHON, "-c", AGENT.format(rules=str(rules), db=str(db_path), n=n)],
            env=python_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        for n in range(2)
    ]
    try:

        def ask(proc: subprocess.Popen[str]) -> str:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("call\n")
            proc.stdin.flush()
            return proc.stdout.readline().split()[0]

        for proc in agents:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            assert ask(proc) == "blocked"
        save_by_rename(rules, ALLOW)
        for proc in agents:
            assert wait_for(lambda p=proc: ask(p) == "ran", timeout=10)  # type: ignore[misc]
        # Each agent process recorded its reload in the shared database.
        with Store(db_path) as store:
            assert wait_for(
                lambda: len(store.history(HistoryFilter(kinds=("policy_loaded",)))) == 2
            )
            pids = {e.data["pid"] for e in store.history(HistoryFilter(kinds=("policy_loaded",)))}
        assert pids == {p.pid for p in agents}
    finally:
        for proc in agents:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)


def test_a_call_in_flight_keeps_the_policy_it_started_with(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(ALLOW)
    config = SentinelConfig(rules_path=rules, db_path=db_path, audit_log=True, audit_sync=True)
    source = config.policy_source()
    started, release = threading.Event(), threading.Event()

    @protect(config)
    def delete_user(user: str) -> str:
        started.set()
        release.wait(10)
        return "ran"

    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(delete_user("bob")))
    t.start()
    assert started.wait(10)
    first = source.current.version
    save_by_rename(rules, BLOCK)
    assert wait_for(lambda: source.current.version != first)
    release.set()
    t.join()
    assert result == ["ran"]  # decided under the old policy, finished under it
    with pytest.raises(SentinelBlockedError):
        delete_user("bob")
    with Store(db_path) as store:
        allowed = store.history(HistoryFilter(kinds=("allowed",)))
        blocked = store.history(HistoryFilter(kinds=("blocked",)))
    assert allowed[0].policy_version == first
    assert blocked[0].policy_version == source.current.version


def test_a_fifo_in_place_of_the_file_is_rejected_without_hanging(
    write_rules: Callable[..., Path],
) -> None:
    rules = write_rules(BLOCK)
    source = SentinelConfig(rules_path=rules, hot_reload=False).policy_source()
    good = source.current
    rules.unlink()
    os.mkfifo(rules)
    change = source.reload()  # would block forever reading a FIFO
    assert change is not None and change.kind == "rejected"
    assert "not a regular file" in (source.last_error or "")
    assert source.current is good


def test_a_widening_edit_is_recorded_with_the_rules_it_widens(
    write_rules: Callable[..., Path], db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(BLOCK)
    config = SentinelConfig(rules_path=rules, db_path=db_path)

    @protect(config)
    def delete_user(user: str) -> str:
        return "deleted"

    source = config.policy_source()
    changes: list[PolicyChange] = []
    source.subscribe(changes.append)
    # ALLOW adds a condition to the block rule (it now blocks only root): a widening.
    save_by_rename(rules, ALLOW)
    assert wait_for(lambda: any(c.kind == "loaded" for c in changes))
    widened = [(w.rule_id, w.kind) for c in changes for w in c.widened]
    assert widened == [("no_deletes", "condition")]
    assert "widens what is allowed" in caplog.text
    # Back to BLOCK: a tightening, not flagged.
    save_by_rename(rules, BLOCK)
    assert wait_for(lambda: sum(c.kind == "loaded" for c in changes) == 2)
    assert changes[-1].widened == ()
    with Store(db_path) as store:
        assert wait_for(
            lambda: len(store.history(HistoryFilter(kinds=("policy_loaded",)))) == 2
        )
        newest, first = store.history(HistoryFilter(kinds=("policy_loaded",)), limit=2)
    assert first.data["widened"] == [
        {"rule_id": "no_deletes", "kind": "condition", "reason": first.data["widened"][0]["reason"]}
    ]
    assert "widened by this edit: no_deletes" in (first.reason or "")
    assert newest.data["widened"] == [] and "widened" not in (newest.reason or "")


def test_without_inotify_the_watchfiles_fallback_still_reloads_and_knows_no_closes(
    write_rules: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.policy import watch

    def unavailable(*_args: object) -> None:
        raise OSError(28, "inotify_init1: No space left on device")

    monkeypatch.setattr(watch, "_Inotify", unavailable)
    rules = write_rules(BLOCK)
    source = PolicySource.for_path(rules, watch=True)
    assert wait_for(lambda: source._watcher is not None and source._watcher.started.is_set())
    assert not source._watcher.knows_close and not source.save_in_progress()
    first = source.current.version
    rules.write_text(textwrap.dedent(ALLOW).lstrip())  # in place: waits the blind settle window
    assert wait_for(lambda: source.current.version != first, timeout=20)
    assert [r.id for r in source.current.rules] == ["no_deletes", "audit_reads"]
    save_by_rename(rules, BLOCK)
    assert wait_for(lambda: source.current.version == first, timeout=20)
