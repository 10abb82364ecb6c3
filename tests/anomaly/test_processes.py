"""Baselines live in the store: shared by processes, surviving restarts. Real subprocesses."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

from sentinel.anomaly import describe
from tests.helpers import PYTHON, python_env

CHILD = textwrap.dedent(
    """
    import json, sys
    from sentinel import SentinelBlockedError, SentinelConfig, protect
    rules, db, agent = sys.argv[1], sys.argv[2], sys.argv[3]
    amounts = json.loads(sys.argv[4])
    cfg = SentinelConfig(
        rules_path=rules, db_path=db, agent_id=agent, anomaly_detection=True, timeout_seconds=5
    )

    @protect(cfg)
    def transfer(amount, to="acme"):
        return amount

    out = []
    for a in amounts:
        try:
            transfer(a)
            out.append("ran")
        except SentinelBlockedError as e:
            out.append("blocked" if "anomaly risk" in str(e) else "not run: " + str(e))
    print(json.dumps(out))
    """
)


def run(rules: Path, db: Path, agent: str, amounts: list[float]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", CHILD, str(rules), str(db), agent, json.dumps(amounts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def result(proc: subprocess.Popen[str]) -> list[str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    outcome: list[str] = json.loads(out.strip().splitlines()[-1])
    return outcome


def test_processes_share_one_baseline_and_it_survives_restarts(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules("rules: []\n")
    # Two processes at once, learning into the same baseline: no update is lost. (Both cycle
    # through 50..90, so whatever the interleaving, no value is an outlier of the others.)
    a = run(rules, db_path, "bot", [50, 60, 70, 80, 90] * 6)
    b = run(rules, db_path, "bot", [50, 60, 70, 80, 90] * 4)
    assert result(a) == ["ran"] * 30
    assert result(b) == ["ran"] * 20
    (view,) = [v for v in describe(db_path, "transfer", "bot") if v.param == "amount"]
    assert view.n == 50 and view.size == 50
    # A third process, started after both exited, sees what they learned: 5000 is blocked
    # (twice: the blocked attempt did not enter the baseline), 75 runs.
    assert result(run(rules, db_path, "bot", [5000, 5000, 75])) == ["blocked", "blocked", "ran"]
    (view,) = [v for v in describe(db_path, "transfer", "bot") if v.param == "amount"]
    assert view.n == 51 and view.hi == 90
