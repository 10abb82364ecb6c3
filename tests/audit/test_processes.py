"""Real processes: several writers form one valid chain and share one JSONL folder; a crash
between the commit and the JSONL mirror loses nothing."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from sentinel.audit.mirror import JsonlMirror, mirror_files
from sentinel.audit.verify import verify
from sentinel.store import Store
from tests.audit.conftest import KEY
from tests.helpers import PYTHON, python_env

RULES = "rules: []\n"

WRITER = textwrap.dedent(
    """
    import sys
    from sentinel import SentinelConfig, protect
    from sentinel.audit import attach
    from sentinel.protect import get_guard

    rules, db, logs, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg = SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_log_dir=logs,
                         hot_reload=False)

    @protect(cfg)
    def transfer(amount, to):
        return amount

    attach(get_guard(cfg, None))
    for i in range(n):
        transfer(i, "acme")
    print("done", flush=True)
    """
)

CRASHER = textwrap.dedent(
    """
    import os, sys
    from sentinel import SentinelConfig, protect
    from sentinel.audit import attach
    from sentinel.protect import get_guard

    rules, db, logs = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_log_dir=logs,
                         hot_reload=False, audit_sync=True)

    @protect(cfg)
    def transfer(amount, to):
        return amount

    sink = attach(get_guard(cfg, None))
    transfer(1, "acme")  # committed and mirrored
    # The crash: the next events are committed, then the process dies before mirroring them
    # (the mirror is detached to stand for the moment between commit and mirror).
    sink._mirrors.clear()
    transfer(2, "acme")
    transfer(3, "acme")
    # ...and a torn half line, as if the process died in the middle of a mirror write.
    name = sorted(n for n in os.listdir(logs) if n.endswith(".jsonl"))[-1]
    with open(os.path.join(logs, name), "a") as fh:
        fh.write('{"actor":null,"agent_id":nu')
    os._exit(9)
    """
)


def test_processes_writing_at_once_form_one_valid_chain(
    write_rules, db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    rules = write_rules(RULES)
    logs = tmp_path / "logs"
    Store(db_path).close()
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", WRITER, str(rules), str(db_path), str(logs), "150"],
            env=python_env(SENTINEL_AUDIT_KEY=KEY, SENTINEL_ANCHOR_DIR=str(anchors)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Store(db_path) as store:
        # Each writer anchored the head at exit (it had the key): the tail is covered.
        report = verify(store, jsonl_dir=logs, require_anchor=True)
        assert report.ok, report.problems
        assert report.anchors_checked >= 1
        assert not any("not anchored" in n for n in report.notes), report.notes
        assert report.table_events == 4 * 150 * 2
        assert report.jsonl_events == report.table_events
        seqs = [r[0] for r in store.event_rows(0, 10_000)]
    assert seqs == list(range(1, 1201))


def test_a_crash_between_commit_and_mirror_loses_nothing(
    write_rules, db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    rules = write_rules(RULES)
    logs = tmp_path / "logs"
    crashed = subprocess.run(
        [PYTHON, "-c", CRASHER, str(rules), str(db_path), str(logs)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == 9, crashed.stderr
    with Store(db_path) as store:
        assert store.count_events() == 6
        before = verify(store, jsonl_dir=logs)
        assert not before.ok  # the files are behind the table (and end in a torn line)
        assert any("torn last line" in w for w in before.warnings)
        # The next process catches up from the table (the sink does this when it starts).
        assert JsonlMirror(logs).catch_up(store) == 4
        assert JsonlMirror(logs).catch_up(store) == 0  # idempotent by seq
        after = verify(store, jsonl_dir=logs)
    assert after.ok, after.problems
    assert after.jsonl_events == 6
    text = "".join(p.read_text() for p in mirror_files(logs))
    assert text.count("\n") == 6 and '"agent_id":nu{' not in text


DENIED_LAST = textwrap.dedent(
    """
    import sys, threading, time
    from sentinel import SentinelConfig, SentinelDeniedError, protect
    from sentinel.audit import attach
    from sentinel.identity import current_operator
    from sentinel.protect import get_guard
    from sentinel.store import Store

    rules, db, logs = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_log_dir=logs,
                         hot_reload=False)

    @protect(cfg)
    def pay(amount):
        return amount

    attach(get_guard(cfg, None))
    pay(1)
    get_guard(cfg, None).flush()  # the last batch: the denial below comes after it

    def operator():
        with Store(db) as store:
            while not store.list_pending():
                time.sleep(0.01)
            store.decide(store.list_pending()[0].id, False, current_operator("cli"), "no")

    threading.Thread(target=operator).start()
    try:
        pay(500)
    except SentinelDeniedError:
        print("denied", flush=True)
    """
)


def test_events_the_store_writes_last_reach_the_mirror_and_the_anchor_at_exit(
    write_rules, db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    rules = write_rules(
        "rules:\n  - {id: big, function_pattern: pay, action: require_approval,"
        " conditions: [{param: amount, operator: gt, value: 100}]}\n"
    )
    logs = tmp_path / "logs"
    out = subprocess.run(
        [PYTHON, "-c", DENIED_LAST, str(rules), str(db_path), str(logs)],
        env=python_env(SENTINEL_AUDIT_KEY=KEY, SENTINEL_ANCHOR_DIR=str(anchors)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "denied", out.stderr
    lines = "".join(p.read_text() for p in mirror_files(logs)).splitlines()
    assert sum('"kind":"denied"' in line for line in lines) == 1
    with Store(db_path) as store:
        report = verify(store, jsonl_dir=logs, require_anchor=True)
    assert report.ok, report.problems
    assert report.jsonl_events == report.table_events == len(lines) == 4
    assert not any("not anchored" in n for n in report.notes), report.notes


KILLED = textwrap.dedent(
    """
    import os, sys, time
    from sentinel import SentinelConfig, protect

    rules, db, sync, n = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    cfg = SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_sync=sync,
                         hot_reload=False)

    @protect(cfg)
    def transfer(amount, to):
        return amount

    for i in range(n):
        transfer(i, "acme")
    if not sync:
        time.sleep(2)  # 40 times the batch interval: the writer has committed these
    transfer(n, "acme")
    os._exit(0)  # killed right after the last function ran: no flush, no atexit
    """
)


def test_a_process_killed_after_a_call_ran_keeps_what_the_durability_contract_says(
    tmp_path: Path,
) -> None:
    """audit_sync=True: every call's `allowed` and `executed` events are written before the call
    returns, so a kill loses nothing. Batched: what was queued more than a batch interval ago is
    committed; the last call's events may be lost, never half-chained or out of order."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    n = 200
    for sync in (True, False):
        db = tmp_path / f"sync{int(sync)}.db"
        res = subprocess.run(
            [PYTHON, "-c", KILLED, str(rules), str(db), "1" if sync else "0", str(n)],
            capture_output=True,
            text=True,
            env=python_env(),
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        with Store(db) as store:
            report = verify(store)
            rows = store.event_rows(0, 10 * n)
        assert report.ok, report.problems
        kinds = [r[2] for r in rows if r[2] in ("allowed", "executed")]
        pairs = ["allowed", "executed"] * (n + 1)
        if sync:
            assert kinds == pairs
        else:
            assert kinds[: 2 * n] == pairs[: 2 * n]
            assert kinds == pairs[: len(kinds)]  # the last call: nothing, its allowed, or both
