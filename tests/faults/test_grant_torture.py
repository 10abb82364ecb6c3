"""Grant torture: 8 real agent processes use one count-limited standing grant at the same moment;
the grant is never overspent (exactly its count of calls ran, across every process), each use has
its own ``grant_uses`` row and ``grant_used`` event, and the audit chain still verifies. On both
backends (the write lock: SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentinel.store import GrantBound, NewGrant
from sentinel.store.location import open_store
from sentinel.trust.decide import Decider
from tests.faults.support import Proc, verify_chain

AGENT = str(Path(__file__).parent / "agents" / "grant_agent.py")
PROCESSES = 8
CALLS = 8  # per process: 64 attempts on a grant of 20
CAP = 20

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: transfer
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
"""


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_eight_processes_never_overspend_a_grant(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db: Any = tmp_path / "home" / "sentinel.db"
    if backend == "postgresql":
        db = request.getfixturevalue("pg_url")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    store = open_store(db)
    try:
        grant = Decider.local("cli").create_grant(
            store,
            NewGrant("billing", "transfer", (GrantBound("amount", "lte", 5000),), max_count=CAP),
        )
        go = tmp_path / "go"
        procs = [Proc([str(db), str(rules), str(CALLS), str(go)], script=AGENT)
                 for _ in range(PROCESSES)]  # fmt: skip
        for p in procs:
            p.expect("READY", timeout=60)
        go.write_text("go")
        results = [json.loads(p.expect("{", timeout=90)) for p in procs]
        for p in procs:
            p.proc.wait(timeout=30)
        ran = sum(r["ran"] for r in results)
        assert ran == CAP, results
        assert sum(r["refused"] for r in results) == PROCESSES * CALLS - CAP
        after = store.get_grant(grant.id)
        assert after.used_count == CAP and after.status == "exhausted"
        uses = store.grant_uses(grant.id, 1000)
        assert sorted(u.n for u in uses) == list(range(1, CAP + 1))
        used = [e for e in store.events_after(0, 100_000) if e.kind == "grant_used"]
        assert len(used) == CAP and {e.seq for e in used} == {u.event_seq for u in uses}
        verify_chain(store)
    finally:
        store.close()
