"""The approval queue across real processes: racing deciders, waiting agents, SIGKILLed writers."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from sentinel.store import GENESIS_HASH, Store, event_hash
from tests.helpers import PYTHON, ROOT, python_env

pytestmark = pytest.mark.e2e

AGENTS = ROOT / "tests" / "e2e" / "agents"


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _verify_chain(db: Path) -> int:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    prev = GENESIS_HASH
    n = 0
    for row in conn.execute("SELECT * FROM events ORDER BY seq"):
        fields = dict(row)
        fields["data"] = json.loads(fields["data"])
        assert fields["seq"] == n + 1, "gap in event sequence"
        assert fields["prev_hash"] == prev, f"chain broken at seq {fields['seq']}"
        assert fields["hash"] == event_hash(prev, fields), f"bad hash at seq {fields['seq']}"
        prev = fields["hash"]
        n += 1
    conn.close()
    return n


def test_four_agents_two_racing_deciders(tmp_path: Path) -> None:
    db = tmp_path / "q" / "sentinel.db"
    Store(db).close()
    per_agent, n_agents = 25, 4
    total = per_agent * n_agents
    env = python_env()
    agents = [
        subprocess.Popen(
            [PYTHON, str(AGENTS / "queue_agent.py"), "submit-wait", str(db), str(per_agent), "90"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n_agents)
    ]
    deciders = [
        subprocess.Popen(
            [PYTHON, str(AGENTS / "queue_decider.py"), str(db), name, str(total), "90"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("op-one", "op-two")
    ]
    agent_out = [p.communicate(timeout=120) for p in agents]
    decider_out = [p.communicate(timeout=120) for p in deciders]
    for p, (_, err) in zip(agents + deciders, agent_out + decider_out, strict=True):
        assert p.returncode == 0, err

    submitted: set[str] = set()
    seen: dict[str, str] = {}
    for out, _ in agent_out:
        for line in _lines(out):
            if line["event"] == "submitted":
                submitted.add(str(line["id"]))
            else:
                seen[str(line["id"])] = str(line["status"])
    assert len(submitted) == total

    wins = Counter(str(line["id"]) for out, _ in decider_out for line in _lines(out) if line["won"])
    with Store(db) as store:
        finals = {rid: store.get(rid) for rid in submitted}  # nothing lost
        events = store.history(limit=10 * total)
    decisions = Counter(
        e.request_id for e in events if e.kind in ("approved", "denied", "expired", "cancelled")
    )
    for rid in submitted:
        rec = finals[rid]
        assert rec.status in ("approved", "denied"), (rid, rec.status)
        assert decisions[rid] == 1, f"{rid} has {decisions[rid]} decision events"
        assert wins[rid] == 1, f"{rid} won by {wins[rid]} deciders"
        assert seen[rid] == rec.status, "the waiter saw something other than the final decision"
        assert rec.decided_by in ("op-one@test", "op-two@test")
    assert _verify_chain(db) == len(events)


WRITER = textwrap.dedent(
    """
    import sys, uuid
    from sentinel.store import NewRequest, Store
    s = Store(sys.argv[1])
    while True:
        rid = uuid.uuid4().hex
        s.submit(NewRequest(id=rid, function="f", arguments={"i": 1}, digest="0" * 64, timeout_seconds=60, agent_id="k"))
        s.append_events([{"kind": "allowed", "function": "g"}, {"kind": "executed", "function": "g"}])
        s.cancel(rid, "done")
        sys.stdout.write(rid + "\\n")
        sys.stdout.flush()
    """
)


def test_writer_sigkilled_mid_transaction_leaves_database_consistent(tmp_path: Path) -> None:
    db = tmp_path / "k" / "sentinel.db"
    Store(db).close()
    rng = random.Random(7)
    acked: list[str] = []
    for _ in range(12):
        proc = subprocess.Popen(
            [PYTHON, "-c", WRITER, str(db)], env=python_env(), stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is writing now
        time.sleep(rng.uniform(0.005, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(timeout=10)
        proc.stdout.close()
        acked.extend(x for x in (first + rest).split() if x)
        # The next writer must get the lock at once and the file must be intact.
        with Store(db, busy_timeout=2.0) as s:
            s.append_events([{"kind": "policy_loaded"}])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    have = {r[0]: r[1] for r in conn.execute("SELECT id, status FROM requests")}
    conn.close()
    assert acked and all(
        have.get(rid) == "cancelled" for rid in acked
    )  # nothing acknowledged is lost
    assert _verify_chain(db) > len(acked)
