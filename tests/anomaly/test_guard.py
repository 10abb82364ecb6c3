"""Anomaly detection through @protect, against a real store."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, SentinelDeniedError, protect
from sentinel.anomaly import describe
from sentinel.identity import current_operator
from sentinel.store import Store
from sentinel.store.models import HistoryFilter
from tests.helpers import signed_decide

NO_RULES = "rules: []\n"


def cfg(rules: Path, db: Path, agent: str | None = "bot-1", **kw: Any) -> SentinelConfig:
    return SentinelConfig(
        rules_path=rules, db_path=db, agent_id=agent, anomaly_detection=True, **kw
    )


def make_transfer(config: SentinelConfig) -> Callable[..., Any]:
    @protect(config)
    def transfer(amount: float, to: str = "acme") -> float:
        return amount

    return transfer


def amounts(db: Path, agent: str = "bot-1", function: str = "transfer") -> list[float]:
    """The values the detector learned for ``amount`` (its window, oldest first)."""
    views = [v for v in describe(db, function, agent) if v.param == "amount"]
    return views[0].recent if views else []


def kinds(db: Path, kind: str) -> list[Any]:
    with Store(db) as store:
        return store.history(HistoryFilter(kinds=(kind,)), limit=100)


def decide_next(db: Path, approve: bool, seen: dict[str, Any]) -> threading.Thread:
    """An operator in another thread who decides the next pending request."""

    def operator() -> None:
        with Store(db) as store:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = store.list_pending()
                if rows:
                    seen["request"] = rows[0]
                    signed_decide(store, rows[0].id, approve, current_operator("tui"), "test")
                    return
                time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    return t


def test_readme_example_blocks_5000_after_50_to_90_without_any_rule(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path))
    for a in (50, 60, 70, 80, 90):
        assert transfer(a) == a
    with pytest.raises(SentinelBlockedError) as info:
        transfer(5000)
    err = info.value
    assert err.rule_id == "anomaly"
    assert "anomaly risk 10.0" in str(err)
    assert "amount 5,000 is 493 MADs above the median 70 of the last 5 calls" in str(err)
    blocked = kinds(db_path, "blocked")
    assert blocked[0].data["escalations"][0]["risk_score"] == 10.0
    escalated = kinds(db_path, "anomaly_escalated")
    assert len(escalated) == 1
    card = escalated[0].data["anomaly"]
    assert card["score"] == 10.0 and card["action"] == "block"
    assert card["value"] == 5000 and card["median"] == 70
    assert card["baseline"] == [50, 60, 70, 80, 90]
    with Store(db_path) as store:
        assert store.metrics().anomalies == 1


def test_a_repeated_anomaly_stays_blocked_and_never_enters_the_baseline(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path))
    for a in (50, 60, 70, 80, 90):
        transfer(a)
    for _ in range(5):
        with pytest.raises(SentinelBlockedError, match="anomaly risk 10.0"):
            transfer(5000)
    assert amounts(db_path) == [50, 60, 70, 80, 90]
    assert transfer(65) == 65  # normal calls keep flowing and are learned
    assert amounts(db_path) == [50, 60, 70, 80, 90, 65]


def test_constant_history_does_not_flag_a_small_change(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path))
    for _ in range(5):
        transfer(100)
    assert transfer(101) == 101  # the original blocked this (stdev 0 gave z = 10)
    assert transfer(99) == 99
    with pytest.raises(SentinelBlockedError, match="anomaly"):
        transfer(5000)  # a constant history still knows what a gross outlier is


def test_cold_start_scores_nothing_until_min_samples(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path))
    for a in (50, 60, 70, 80):
        transfer(a)
    assert transfer(5000) == 5000  # 4 learned calls: no baseline yet, the rules decide
    assert kinds(db_path, "anomaly_escalated") == []
    # The cold-start call was learned (it ran and was not anomalous): 5 samples now.
    assert amounts(db_path) == [50, 60, 70, 80, 5000]


def test_baselines_are_per_agent(write_rules: Callable[..., Path], db_path: Path) -> None:
    rules = write_rules(NO_RULES)
    small = make_transfer(cfg(rules, db_path, "small-spender"))
    big = make_transfer(cfg(rules, db_path, "big-spender"))
    for a in (50, 60, 70, 80, 90):
        small(a)
        big(a * 100)
    assert big(7000) == 7000  # normal for this agent
    with pytest.raises(SentinelBlockedError):
        small(7000)  # far outside the other agent's baseline
    newcomer = make_transfer(cfg(rules, db_path, "newcomer"))
    assert newcomer(7000) == 7000  # a new agent has no baseline: cold start


def test_a_rules_block_is_never_lowered(write_rules: Callable[..., Path], db_path: Path) -> None:
    rules = write_rules(
        """
        rules:
          - id: no_acme
            function_pattern: transfer
            conditions: [{param: to, operator: eq, value: evil}]
            action: block
        """
    )
    transfer = make_transfer(cfg(rules, db_path))
    for a in (50, 60, 70, 80, 90):
        transfer(a)
    with pytest.raises(SentinelBlockedError) as info:
        transfer(70, "evil")  # perfectly normal amount: the rule still blocks
    assert info.value.rule_id == "no_acme"
    with pytest.raises(SentinelBlockedError) as info:
        transfer(5000, "evil")
    assert info.value.rule_id == "no_acme"
    assert kinds(db_path, "anomaly_escalated") == []  # the detector did not change the outcome


def test_an_escalated_call_asks_a_person_with_the_baseline_on_the_card(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path, timeout_seconds=20))
    for a in (50, 60, 70, 80, 90):
        transfer(a)
    seen: dict[str, Any] = {}
    t = decide_next(db_path, True, seen)
    assert transfer(160) == 160  # 2.3x the median: escalated, approved, ran
    t.join()
    req = seen["request"]
    assert req.rule_id == "anomaly"
    assert 7.0 <= req.risk_score < 9.0
    assert "amount 160 is 9 MADs above the median 70 of the last 5 calls" in req.risk_explanation
    card = req.context["sentinel"]["anomaly"]
    assert card["score"] == req.risk_score and card["action"] == "require_approval"
    assert card["param"] == "amount" and card["value"] == 160 and card["median"] == 70
    assert card["baseline"] == [50, 60, 70, 80, 90]
    assert card["findings"][0]["scale"] == "log"
    # Approved, but it was anomalous: it does not become normal (learn_approved is off).
    assert amounts(db_path) == [50, 60, 70, 80, 90]
    assert len(kinds(db_path, "anomaly_escalated")) == 1


def test_learn_approved_lets_an_approved_anomaly_into_the_baseline(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules("anomaly: {learn_approved: true}\nrules: []\n")
    transfer = make_transfer(cfg(rules, db_path, timeout_seconds=20))
    for a in (50, 60, 70, 80, 90):
        transfer(a)
    t = decide_next(db_path, True, {})
    transfer(160)
    t.join()
    assert amounts(db_path) == [50, 60, 70, 80, 90, 160]


def test_denied_and_failed_calls_never_enter(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    config = cfg(write_rules(NO_RULES), db_path, timeout_seconds=20)
    transfer = make_transfer(config)

    @protect(config)
    def flaky(amount: float) -> float:
        raise RuntimeError("downstream failed")

    for a in (50, 60, 70, 80, 90):
        transfer(a)
    t = decide_next(db_path, False, {})
    with pytest.raises(SentinelDeniedError):
        transfer(160)
    t.join()
    for a in (50, 60):
        with pytest.raises(RuntimeError):
            flaky(a)
    assert amounts(db_path) == [50, 60, 70, 80, 90]
    assert amounts(db_path, function="flaky") == []


def test_a_rule_approval_is_learned_when_the_value_is_normal(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(
        """
        rules:
          - id: review_all
            function_pattern: transfer
            action: require_approval
        """
    )
    transfer = make_transfer(cfg(rules, db_path, timeout_seconds=20))
    seen: dict[str, Any] = {}
    for a in (50, 60, 70, 80, 90, 75):
        t = decide_next(db_path, True, seen)
        transfer(a)
        t.join()
    # The sixth request was scored: normal, so the rule decided, and the card shows the score.
    req = seen["request"]
    assert req.rule_id == "review_all"
    card = req.context["sentinel"]["anomaly"]
    assert card["score"] < 7 and card["action"] == "allow"
    assert card["baseline"] == [50, 60, 70, 80, 90]
    assert amounts(db_path) == [50, 60, 70, 80, 90, 75]


def test_per_function_thresholds_from_the_policy(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(
        """
        anomaly:
          functions:
            "transfer*": {escalate: 3, block: 6}
            "search": {enabled: false}
        rules: []
        """
    )
    config = cfg(rules, db_path)
    transfer = make_transfer(config)

    @protect(config)
    def search(limit: int) -> int:
        return limit

    for a in (50, 60, 70, 80, 90):
        transfer(a)
        search(a)
    with pytest.raises(SentinelBlockedError, match=r"blocks at 6"):
        transfer(200)  # risk ~7.5: under the default block threshold, over this function's
    assert search(1_000_000) == 1_000_000  # detection off for this function
    assert describe(db_path, "search") == []


def test_first_seen_recipient_asks_but_never_blocks(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    transfer = make_transfer(cfg(write_rules(NO_RULES), db_path, timeout_seconds=20))
    for _ in range(5):
        transfer(70, "alice")
    seen: dict[str, Any] = {}
    t = decide_next(db_path, True, seen)
    assert transfer(70, "mallory") == 70
    t.join()
    req = seen["request"]
    assert req.risk_score == 7.5
    assert "to 'mallory' is new: the 5 calls learned so far used 1 value" in req.risk_explanation
    finding = req.context["sentinel"]["anomaly"]["findings"]
    assert any(f["kind"] == "category" and f["value"] == "mallory" for f in finding)
    assert transfer(70, "alice") == 70  # known recipient: no question


def test_detection_errors_follow_fail_mode(write_rules: Callable[..., Path], db_path: Path) -> None:
    rules = write_rules(NO_RULES)
    transfer = make_transfer(cfg(rules, db_path))
    transfer(50)
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE anomaly_baselines")  # the detector can no longer read baselines
    conn.close()
    with pytest.raises(SentinelBlockedError, match="governance error, call blocked"):
        transfer(60)
    safe = make_transfer(cfg(rules, db_path, fail_mode="safe"))
    assert safe(60) == 60
    assert kinds(db_path, "governance_error")
    assert kinds(db_path, "fail_safe_passthrough")


def test_decay_lets_old_behaviour_fade(write_rules: Callable[..., Path], db_path: Path) -> None:
    from sentinel.anomaly import AnomalyHook
    from sentinel.policy import parse_policy

    class Source:
        current = parse_policy("anomaly: {half_life: 1d}\nrules: []\n")

    now = [1_000_000.0]
    hook = AnomalyHook(Source(), db_path, clock=lambda: now[0])
    settings = hook.settings_for("transfer")
    from sentinel.anomaly.features import Features

    hook.learn(
        "transfer",
        Features(),
        "a",
        settings,
        batch={"amount": [50, 60, 70, 80, 90]},
        times=[now[0]] * 5,
    )
    assert hook.score("transfer", {"amount": 5000}, "a").risk == 10.0
    now[0] += 2 * 86400  # two half-lives: 5 calls now weigh 1.25, under min_samples
    fresh = hook.score("transfer", {"amount": 5000}, "a")
    assert fresh.risk == 0.0 and fresh.findings[0].cold


def test_a_burst_of_calls_against_the_agents_own_rate(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    from sentinel.anomaly import AnomalyHook
    from sentinel.guard import Guard

    # Let a burst block (by default it only asks a person) so the test needs no operator.
    rules = write_rules("anomaly: {rate_risk: 10, escalate: 7, block: 7}\nrules: []\n")
    config = cfg(rules, db_path, timeout_seconds=2)
    now = [1_000_000.0]
    hook = AnomalyHook(config.policy_source(), db_path, clock=lambda: now[0])
    guard = Guard(config, hooks=[hook])

    def ping(host: str) -> str:
        return host

    protected = guard.wrap(ping)
    for _ in range(60):  # one call a minute for an hour
        protected("db1")
        now[0] += 60
    outcomes = []
    for _ in range(30):  # then a call a second
        try:
            protected("db1")
            outcomes.append("ran")
        except SentinelBlockedError as exc:
            assert "call rate: about" in str(exc) and "against this agent's usual" in str(exc)
            outcomes.append("blocked")
        now[0] += 1
    assert outcomes[:5] == ["ran"] * 5  # a few quick calls are not a burst
    assert outcomes[-1] == "blocked"
    (rate,) = [v for v in describe(db_path, "ping") if v.kind == "rate"]
    assert rate.n == 60 + outcomes.count("ran")  # blocked calls are not counted as usual


def test_learning_off_the_callers_thread_gives_the_same_baselines_and_scores(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """Calls learned by the background learner end with exactly the baselines and scores of
    learning each call on the caller's thread before it returns (a reference hook does that)."""
    import dataclasses

    from sentinel.anomaly import AnomalyHook
    from sentinel.anomaly.hook import flush_learning
    from sentinel.guard import Guard

    rules = write_rules("anomaly: {rate_risk: 10, escalate: 7, block: 7}\nrules: []\n")
    now = [1_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    config = cfg(rules, tmp_path / "bg.db", timeout_seconds=2)
    hook = AnomalyHook(config.policy_source(), tmp_path / "bg.db", clock=clock)
    guard = Guard(config, hooks=[hook])
    ref = AnomalyHook(config.policy_source(), tmp_path / "ref.db", clock=clock)
    learned_on: list[str] = []
    real_learn = hook.learn

    def spy(*args: Any, **kw: Any) -> None:
        real_learn(*args, **kw)
        learned_on.append(threading.current_thread().name)

    hook.learn = spy  # type: ignore[method-assign]

    def transfer(amount: float, to: str) -> float:
        return amount

    protected = guard.wrap(transfer)
    calls = [(50 + (i * 7) % 40, "acme" if i % 3 else "globex") for i in range(40)]
    calls += [(5000, "acme"), (70, "initech"), (65, "acme")] + [(60, "acme")] * 20
    outcomes = []
    for amount, to in calls:
        params = {"amount": amount, "to": to}
        ref_a = ref.score("transfer", params, "bot-1")
        # The background hook scores the call about to be made exactly like the reference.
        assert hook.score("transfer", params, "bot-1").risk == ref_a.risk
        try:
            protected(amount, to)
            outcomes.append("ran")
        except SentinelBlockedError:
            outcomes.append("blocked")
            continue
        if not ref_a.anomalous:
            ref.learn("transfer", ref_a.features, "bot-1", ref_a.settings)
        now[0] += 5
    assert "blocked" in outcomes and outcomes.count("ran") > 50

    # Learning happens on the learner thread: a call returns before its learning is done.
    # (Finish what is queued first: scoring the next call would learn it on this thread.)
    flush_learning()
    done = len(learned_on)
    protected(61, "acme")
    deadline = time.monotonic() + 10
    while len(learned_on) == done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert learned_on[-1] == "sentinel-anomaly-learner"
    ref.learn("transfer", ref.score("transfer", {"amount": 61, "to": "acme"}, "bot-1").features,
              "bot-1", ref.settings_for("transfer"))  # fmt: skip
    flush_learning()

    def views(db: Path) -> list[dict[str, Any]]:
        out = []
        for v in describe(db, "transfer", "bot-1"):
            d = dataclasses.asdict(v)
            d.pop("updated_at", None)
            out.append(d)
        return sorted(out, key=lambda d: (d["param"], d["kind"]))

    assert views(tmp_path / "bg.db") == views(tmp_path / "ref.db")
    assert {v["kind"] for v in views(tmp_path / "bg.db")} == {"number", "category", "rate"}
