"""``sentinel anomaly baseline`` and ``sentinel anomaly reset``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.cli import main
from sentinel.store import Store
from sentinel.store.models import HistoryFilter


@pytest.fixture
def learned(write_rules: Callable[..., Path], db_path: Path) -> Callable[..., None]:
    rules = write_rules("rules: []\n")

    def make(agent: str) -> Callable[..., None]:
        config = SentinelConfig(
            rules_path=rules, db_path=db_path, agent_id=agent, anomaly_detection=True
        )

        @protect(config)
        def transfer(amount: float, to: str) -> None:
            return None

        return transfer

    alice, bob = make("alice"), make("bob")
    for a in (50, 60, 70, 80, 90):
        alice(a, to="acme")
        bob(a * 10, to="\x1b[31mred")
    return alice


def test_baseline_prints_what_is_normal(
    learned: Callable[..., None], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["anomaly", "baseline", "--db", str(db_path), "--agent", "alice"]) == 0
    out = capsys.readouterr().out
    assert (
        "alice / transfer  amount (number): 5 values in window, 5 learned; median 70, MAD 10, range 50..90; recent: 50, 60, 70, 80, 90"
        in out
    )
    assert "to (text): 5 learned; 1 known values: 'acme' ×5" in out
    assert "bob" not in out
    assert main(["anomaly", "baseline", "--db", str(db_path), "--agent", "bob"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31mred" in out  # agent-supplied text made safe
    assert main(["anomaly", "baseline", "--db", str(db_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["agent"], r["param"], r["kind"]) for r in rows} >= {
        ("alice", "amount", "number"),
        ("bob", "amount", "number"),
        ("alice", "", "rate"),
    }


def test_reset_clears_one_agent_with_an_audit_event(
    learned: Callable[..., None], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SentinelBlockedError):
        learned(5000, to="acme")
    assert main(["anomaly", "reset", "--db", str(db_path)]) == 2  # refuses without a scope
    code = main(
        ["anomaly", "reset", "--db", str(db_path), "--agent", "alice", "-r", "new contract"]
    )
    assert code == 0
    assert "cleared 3 baseline(s) (agent alice)" in capsys.readouterr().out
    learned(5000, to="acme")  # no baseline: cold start, the rules decide
    with Store(db_path) as store:
        (event,) = store.history(HistoryFilter(kinds=("anomaly_reset",)))
    assert event.reason == "new contract" and event.agent_id == "alice"
    assert event.data["baselines_removed"] == 3 and event.actor
    assert main(["anomaly", "baseline", "--db", str(db_path), "--agent", "bob"]) == 0
    assert "bob / transfer" in capsys.readouterr().out  # the other agent is untouched


def test_missing_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["anomaly", "baseline", "--db", str(tmp_path / "none.db")]) == 1
    assert "no Sentinel database" in capsys.readouterr().err
