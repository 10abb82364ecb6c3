"""Rules files under attack and accident: replaced mid-write, truncated, swapped for a symlink
(dangling, to a device, to a FIFO), and generated invalid files. The policy in force is always a
complete, validated version; a bad file never loads partially and is reported with file:line."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.errors import PolicyError
from sentinel.policy import Action, load_policy, parse_policy
from sentinel.policy_source import PolicySource

A = """\
version: "1.0"
default_action: require_approval
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
  - id: reads
    function_pattern: "read_*"
    action: allow
"""
B = A.replace("read_*", "get_*") + """\
  - id: big_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
"""


def _v(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _wait(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


class Sampler:
    """Reads ``source.current`` in a tight loop and records every version seen."""

    def __init__(self, source: PolicySource) -> None:
        self.source = source
        self.seen: set[str] = set()
        self.rule_counts: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            p = self.source.current
            self.seen.add(p.version)
            self.rule_counts.add((p.version, len(p.rules)))
            time.sleep(0.0005)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)


@pytest.fixture
def source(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "rules" / "rules.yaml"
    path.parent.mkdir()
    path.write_text(A)
    src = PolicySource.for_path(path, watch=True)
    assert _wait(lambda: src._watcher is not None and src._watcher.started.is_set())
    return src


def test_replaced_mid_write_never_exposes_a_partial_policy(source):
    path = source.path
    sampler = Sampler(source)
    for _ in range(3):
        with open(path, "w") as fh:  # truncate, write half, pause, write the rest
            fh.write(B[: len(B) // 2])
            fh.flush()
            time.sleep(0.08)
            fh.write(B[len(B) // 2 :])
        assert _wait(lambda: source.current.version == _v(B))
        path.write_text(A)
        assert _wait(lambda: source.current.version == _v(A))
    sampler.stop()
    assert sampler.seen <= {_v(A), _v(B)}, "a version other than the two complete files was in force"
    assert sampler.rule_counts <= {(_v(A), 2), (_v(B), 3)}


GUARDED = """\
version: "1.0"
default_action: block
rules:
  - id: small_transfers
    function_pattern: "transfer*"
    action: allow
    conditions:
      - {param: amount, operator: lte, value: 1000}
"""


def test_slow_in_place_save_never_puts_a_weaker_policy_in_force(tmp_path):
    path = tmp_path / "rules" / "guarded.yaml"
    path.parent.mkdir()
    path.write_text(GUARDED)
    src = PolicySource.for_path(path, watch=True)
    assert _wait(lambda: src._watcher is not None and src._watcher.started.is_set())
    sampler = Sampler(src)
    edited = GUARDED.replace("lte, value: 1000", "lte, value: 500")
    cut = edited.index("    conditions")
    with open(path, "w") as fh:  # an editor or `cat` writing in place, pausing mid-file
        fh.write(edited[:cut])
        fh.flush()
        time.sleep(0.4)
        fh.write(edited[cut:])
    assert _wait(lambda: src.current.version == _v(edited))
    sampler.stop()
    assert sampler.seen <= {_v(GUARDED), _v(edited)}, "a partial file was in force"


def test_truncated_file_keeps_the_last_good_policy(source):
    path = source.path
    for cut in (0, 10, len(A) // 2 + 3):
        with open(path, "r+") as fh:
            fh.truncate(cut)
        assert _wait(lambda: source.problem is not None)
        assert source.current.version == _v(A)
        assert source.current.evaluate("delete_all", {}).action is Action.BLOCK
        path.write_text(A)
        assert _wait(lambda: source.problem is None)


def test_every_prefix_of_a_policy_fails_or_loads_only_whole_rules_of_the_file():
    """A truncation that falls on a rule boundary is itself a valid, smaller policy (the loader
    cannot know text is missing; see README.md, "Faults and abuse"). What must hold: no prefix loads a
    rule that is not in the full file, and no rule changes its action."""
    full = {r.id: r for r in parse_policy(B).rules}
    loaded = 0
    for cut in range(len(B)):
        try:
            p = parse_policy(B[:cut])
        except PolicyError:
            continue
        loaded += 1
        for r in p.rules:
            assert r.id in full, (cut, r.id)
            assert r.action == full[r.id].action, (cut, r.id)
    assert loaded < len(B) // 4  # most cuts are refused


def test_symlink_swaps_keep_the_last_good_policy_or_load_a_complete_one(source, tmp_path):
    path = source.path
    # Dangling symlink: treated as a deleted file.
    path.unlink()
    os.symlink(tmp_path / "nowhere.yaml", path)
    assert _wait(lambda: source.problem is not None)
    assert source.current.version == _v(A)
    # Symlink to a complete valid file: that file is the policy now.
    good = tmp_path / "other.yaml"
    good.write_text(B)
    path.unlink()
    os.symlink(good, path)
    assert _wait(lambda: source.current.version == _v(B))
    assert source.problem is None


def test_symlink_to_a_device_is_refused_without_reading_it_all(source):
    path = source.path
    path.unlink()
    os.symlink("/dev/zero", path)
    t = threading.Thread(target=source.reload, daemon=True)
    t.start()
    t.join(3)
    assert not t.is_alive(), "reloading a symlink to /dev/zero did not finish"
    assert source.problem is not None and source.current.version == _v(A)


def test_symlink_to_a_fifo_does_not_hang_the_reloader(source, tmp_path):
    path = source.path
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path.unlink()
    os.symlink(fifo, path)
    t = threading.Thread(target=source.reload, daemon=True)
    t.start()
    t.join(3)
    try:
        assert not t.is_alive(), "reload blocked forever opening a FIFO (holding the reload lock)"
        assert source.current.version == _v(A) and source.problem is not None
        path.unlink()
        path.write_text(B)
        assert _wait(lambda: source.current.version == _v(B))
    finally:
        if t.is_alive():  # unblock the stuck open so the thread can end
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)


# --- generated invalid files ---------------------------------------------------------------------

_VALID_RULE = {"id": "r1", "function_pattern": "transfer*", "action": "block"}
_BREAKERS = [
    ("action", "maybe"),
    ("action", 3),
    ("action", None),
    ("priority", "high"),
    ("priority", [1]),
    ("function_pattern", 7),
    ("function_pattern", ""),
    ("enabled", "yes please"),
    ("conditions", "amount > 5"),
    ("conditions", [{"param": "amount", "operator": "greater", "value": 5}]),
    ("conditions", [{"param": "amount", "operator": "gt"}]),
    ("conditions", [{"param": "amount", "operator": "gt", "value": "lots"}]),
    ("conditions", [{"param": "amount", "operator": "gt", "value": float("nan")}]),
    ("conditions", [{"param": "amount", "operator": "gt", "value": float("inf")}]),
    ("conditions", [{"param": "a", "operator": "regex", "value": "(a)\\1"}]),
    ("conditions", [{"param": "a", "operator": "regex", "value": "(unclosed"}]),
    ("conditions", [{"param": "a", "operator": "in", "value": 5}]),
    ("conditions", [{"operator": "eq", "value": 5}]),
    ("unknown_field", 1),
    ("timeout_seconds", -1),
]


@st.composite
def invalid_files(draw: st.DrawFn) -> tuple[str, int]:
    """A YAML policy with several valid rules and exactly one broken rule; returns the text and
    the 1-based line where the broken rule starts."""
    n_before = draw(st.integers(0, 4))
    n_after = draw(st.integers(0, 4))
    field, value = draw(st.sampled_from(_BREAKERS))
    bad = dict(_VALID_RULE, id="bad")
    bad[field] = value
    rules = [dict(_VALID_RULE, id=f"ok{i}") for i in range(n_before)]
    rules.append(bad)
    rules += [dict(_VALID_RULE, id=f"ok{n_before + 1 + i}") for i in range(n_after)]
    header = draw(st.sampled_from(["", "version: '1.0'\n", "default_action: allow\n"]))
    text = header + yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line.strip() in ("- id: bad", "id: bad") or "id: bad" in line)
    return text, start


_STRUCTURAL = st.sampled_from(
    [
        "rules: [",  # unclosed flow sequence
        "rules:\n  - id: a\n   action: block\n",  # bad indentation
        "rules:\n  - id: a\n    function_pattern: x\n    action: block\n  - id: a\n    function_pattern: y\n    action: block\n",  # duplicate ids
        "default_action: allow\ndefault_action: block\nrules: []\n",  # duplicate key
        "a: &x [1]\nb: *x\nrules: []\n",  # alias
        "rules: !!python/object/apply:os.getpid []\n",
        "rules:\n  - id: a\n    function_pattern: x\n    action: block\n\t\n",
        "default_action: on\nrules: []\n",
        "- just\n- a list\n",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invalid_files())
def test_generated_invalid_rule_fails_with_file_and_line(tmp_path, case):
    text, start = case
    path = tmp_path / "gen.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    msg = str(err.value)
    assert err.value.line is not None, msg
    assert f"{path}:{err.value.line}" in msg, msg
    # The error points into the broken rule, not somewhere else in the file.
    end = start + sum(1 for _ in yaml.safe_load(text)["rules"][0]) + 40
    assert start <= err.value.line <= end, (msg, start)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_STRUCTURAL, st.integers(0, 3))
def test_structurally_broken_files_fail_located_and_never_load_partially(tmp_path, text, pad):
    path = tmp_path / "s.yaml"
    path.write_text("# comment\n" * pad + text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.line is not None and f"{path}:{err.value.line}" in str(err.value), str(err.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invalid_files())
def test_an_invalid_reload_never_replaces_the_policy_in_force(tmp_path, case):
    text, _ = case
    path = tmp_path / "live.yaml"
    path.write_text(A)
    src = PolicySource(path)
    before = src.current
    path.write_text(text)
    change = src.reload()
    assert change is not None and change.kind == "rejected"
    assert src.current is before and src.problem is not None and src.problem.line is not None


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_start_up_with_a_fifo_or_device_as_rules_file_fails_fast(tmp_path, kind):
    path = tmp_path / "rules.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)
    done: list[BaseException] = []

    def load() -> None:
        try:
            load_policy(path)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(3)
    try:
        assert not t.is_alive(), f"loading a {kind} as the rules file never returned"
        assert isinstance(done[0], PolicyError) and "regular file" in str(done[0])
    finally:
        if t.is_alive() and kind == "fifo":
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


# --- slow in-place saves, watched from a real agent process ---------------------------------------

# A separate agent process with its own watcher calls two protected functions in a tight loop:
# `transfer(5000)` (blocked by the old and the new policy) and `transfer(800)` (allowed by the old,
# blocked by the new). It reports every call that ran although both complete files block it, and
# every policy version that was in force.
_POLLING_AGENT = """
import json, sys, threading
from sentinel import SentinelBlockedError, SentinelConfig, protect
cfg = SentinelConfig(rules_path=sys.argv[1], db_path=sys.argv[2], agent_id="poller")
@protect(cfg)
def transfer(amount):
    return "ran"
source = cfg.policy_source()
while not (source._watcher is not None and source._watcher.started.is_set()):
    pass
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
calls, wrongly_allowed, versions, problems = 0, [], [], []
print("ready", source.current.version, flush=True)
while not stop.is_set():
    version = cfg.policy.version
    if version not in versions:
        versions.append(version)
        print("version", version, flush=True)
    try:
        transfer(5000)
        wrongly_allowed.append(version)
    except SentinelBlockedError:
        pass
    calls += 1
    problem = source.problem
    if problem is not None and problem.kind not in problems:
        problems.append(problem.kind)
print(json.dumps({"calls": calls, "allowed": wrongly_allowed, "versions": versions,
                  "problems": problems}), flush=True)
"""

SLOW_EDIT = GUARDED.replace("lte, value: 1000", "lte, value: 500")


def _chunks(text: str) -> list[str]:
    """Pieces that cut the file where a prefix is a valid, *weaker* policy (right after
    `action: allow`, the rule has no conditions yet) and elsewhere."""
    cuts = [text.index("rules:"), text.index("    conditions"), text.index("{param"), len(text)]
    out, start = [], 0
    for cut in cuts:
        out.append(text[start:cut])
        start = cut
    return out


def _slow_save_under_a_polling_agent(tmp_path: Path, pauses: list[float], env: dict[str, str]):  # type: ignore[no-untyped-def]
    import json
    import subprocess

    from tests.helpers import PYTHON, python_env

    path = tmp_path / "rules" / "guarded.yaml"
    path.parent.mkdir()
    path.write_text(GUARDED)
    db = tmp_path / "agent.db"
    # The cut right after `action: allow` really is a valid policy that allows transfer(5000).
    weak = parse_policy(SLOW_EDIT[: SLOW_EDIT.index("    conditions")])
    assert weak.evaluate("transfer", {"amount": 5000}).action is Action.ALLOW
    agent = subprocess.Popen(
        [PYTHON, "-c", _POLLING_AGENT, str(path), str(db)],
        env=python_env(**env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None and agent.stdin is not None
        ready = agent.stdout.readline().split()
        assert ready == ["ready", _v(GUARDED)], ready
        assert agent.stdout.readline().split() == ["version", _v(GUARDED)]
        with open(path, "w") as fh:  # an editor or sync tool writing in place, pausing
            for piece, pause in zip(_chunks(SLOW_EDIT), pauses, strict=True):
                fh.write(piece)
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(pause)
        # Versions the agent put in force, until the complete file (at most a few).
        went_in = [agent.stdout.readline().split()]
        while went_in[-1] not in (["version", _v(SLOW_EDIT)], []) and len(went_in) < 5:
            went_in.append(agent.stdout.readline().split())
        agent.stdin.write("stop\n")
        agent.stdin.flush()
        last = agent.stdout.readline()
        while last.startswith("version"):
            last = agent.stdout.readline()
        report = json.loads(last)
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert went_in == [["version", _v(SLOW_EDIT)]], f"a partial file went into force: {went_in}"
    assert report["allowed"] == [], "a call both complete files block was allowed"
    assert report["versions"] == [_v(GUARDED), _v(SLOW_EDIT)]
    assert report["calls"] > len(pauses)  # the agent really polled while the file was partial
    return report, db


def test_chunked_in_place_save_with_pauses_up_to_2s_never_allows_a_blocked_call(tmp_path):
    _slow_save_under_a_polling_agent(tmp_path, [0.2, 2.0, 1.0, 0.0], {})


def test_pauses_longer_than_the_settle_window_keep_the_last_good_policy_and_say_why(tmp_path):
    # Settle window 0.2 s; each pause is 5 times as long. The file is valid (and weaker) at the
    # second pause, yet the agent keeps the last good policy because the writer has not closed it,
    # and records why.
    report, db = _slow_save_under_a_polling_agent(
        tmp_path, [1.0, 1.0, 1.0, 0.0], {"SENTINEL_RELOAD_SETTLE": "0.2"}
    )
    assert "incomplete" in report["problems"]
    from sentinel.store import Store
    from sentinel.store.models import HistoryFilter

    with Store(db) as store:
        rejected = store.history(HistoryFilter(kinds=("policy_rejected",)))
        loaded = store.history(HistoryFilter(kinds=("policy_loaded",)))
    assert [e.data["problem"] for e in rejected] == ["incomplete"]
    assert "save is in progress" in (rejected[0].reason or "")
    assert rejected[0].policy_version == _v(GUARDED)  # the version kept in force
    assert [e.policy_version for e in loaded] == [_v(SLOW_EDIT)]


def test_a_bad_settle_window_is_a_clear_error(tmp_path, monkeypatch):
    from sentinel.errors import SentinelConfigError

    path = tmp_path / "r.yaml"
    path.write_text(A)
    monkeypatch.setenv("SENTINEL_RELOAD_SETTLE", "soon")
    with pytest.raises(SentinelConfigError, match="SENTINEL_RELOAD_SETTLE='soon'"):
        PolicySource.for_path(path, watch=True)
