"""``sentinel approve`` / ``deny`` in real processes: they sign with the operator's key, and a
decision the operator may not make is refused by name, with nothing recorded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

from sentinel.store import NewRequest, Store
from sentinel.store.models import DecisionTerms
from tests.helpers import PYTHON, ROOT, python_env


def _submit(db: Path, terms: DecisionTerms) -> str:
    rid = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:32]
    with Store(db) as store:
        store.submit(NewRequest(id=rid, function="wipe", arguments={}, digest="ab" * 32,
                                timeout_seconds=600, rule_id="sec", terms=terms,
                                requester={"account": "agent-svc"}))  # fmt: skip
    return rid


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = python_env(SENTINEL_HOME=os.environ["SENTINEL_HOME"])
    return subprocess.run([PYTHON, "-m", "sentinel.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)  # fmt: skip


def test_a_refused_decision_is_a_named_error_and_records_nothing(db_path: Path) -> None:
    rid = _submit(db_path, DecisionTerms(approvers=("security",), self_approval=False))
    out = _cli("approve", rid[:8])
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "sentinel: error: refused: only security may decide request" in out.stderr
    assert "you are tester" in out.stderr and "nothing was recorded" in out.stderr
    with Store(db_path) as store:
        rec = store.get(rid)
    assert rec.status == "pending" and rec.votes == ()


def test_an_allowed_decision_is_signed_and_a_quorum_vote_says_so(db_path: Path) -> None:
    rid = _submit(db_path, DecisionTerms(approvers=("finance",), quorum=2))
    out = _cli("approve", rid[:8])
    assert out.returncode == 0, out.stderr
    assert "voted approve" in out.stdout and "(signed)" in out.stdout
    assert "1 of 2 approvals; still pending" in out.stdout
    with Store(db_path) as store:
        [vote] = store.get(rid).votes
    assert vote.operator == "tester" and vote.signature and vote.signature.startswith("ed25519:")
