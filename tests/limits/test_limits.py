"""Limits over time windows through @protect, against a real store."""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, SentinelDeniedError, protect
from sentinel.errors import PolicyError
from sentinel.identity import current_operator
from sentinel.limits import remaining
from sentinel.policy import parse_policy
from sentinel.store import Store
from sentinel.store.models import HistoryFilter
from tests.helpers import PYTHON, python_env, signed_decide

RATE = """
rules:
  - id: rate
    function_pattern: "send_*"
    limit: {count: 3, window: 1h, per: agent}
    action: block
"""

SPEND = """
rules:
  - id: daily_spend
    function_pattern: "transfer*"
    limit: {sum: amount, max: 5000, window: 24h, per: agent}
    action: require_approval
"""


def cfg(rules: Path, db: Path, agent: str = "bot-1", **kw: object) -> SentinelConfig:
    return SentinelConfig(rules_path=rules, db_path=db, agent_id=agent, **kw)  # type: ignore[arg-type]


def test_rate_limit_blocks_the_call_over_the_count(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    config = cfg(write_rules(RATE), db_path)

    @protect(config)
    def send_email(to: str) -> str:
        return f"sent to {to}"

    for i in range(3):
        assert send_email(f"a{i}") == f"sent to a{i}"
    with pytest.raises(SentinelBlockedError, match="limit rate: 3 of 3 calls used in 1h") as info:
        send_email("a4")
    assert info.value.rule_id == "limit:rate"
    # The blocked call released its reservation: the count stays at the cap, not above it.
    assert remaining(config, "send_email")["rate"]["used"] == 3


def test_limits_are_per_agent_and_per_parameter_value(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(
        """
        rules:
          - id: per_dest
            function_pattern: pay
            limit: {count: 1, window: 1h, per: [agent, destination]}
            action: block
        """
    )

    def make(agent: str) -> Callable[..., str]:
        @protect(cfg(rules, db_path, agent))
        def pay(destination: str, amount: int) -> str:
            return "ok"

        return pay

    pay_a, pay_b = make("a"), make("b")
    assert pay_a("acme", 1) == "ok"
    assert pay_a("globex", 1) == "ok"  # another destination: its own counter
    assert pay_b("acme", 1) == "ok"  # another agent: its own counter
    with pytest.raises(SentinelBlockedError):
        pay_a("acme", 1)


def test_cumulative_limit_escalates_and_the_approver_sees_spend_cap_and_would_be(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    config = cfg(write_rules(SPEND), db_path, timeout_seconds=20)

    @protect(config)
    def transfer(amount: int, destination: str = "acme") -> str:
        return f"sent {amount}"

    assert transfer(3000) == "sent 3000"
    assert transfer(1500) == "sent 1500"
    assert remaining(config, "transfer", params={"amount": 1})["daily_spend"]["remaining"] == 500

    seen: dict[str, object] = {}

    def operator() -> None:
        with Store(db_path) as store:
            for _ in range(500):
                rows = store.list_pending()
                if rows:
                    seen["context"] = rows[0].context
                    seen["rule_id"] = rows[0].rule_id
                    signed_decide(store, rows[0].id, True, current_operator("tui"), "one-off")
                    return
                time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    assert transfer(1000) == "sent 1000"  # over the cap: waited for approval, approved, ran
    t.join()
    assert seen["rule_id"] == "limit:daily_spend"
    card = seen["context"]["sentinel"]["limit:daily_spend"]["limits"][0]  # type: ignore[index]
    assert card["used"] == 4500 and card["cap"] == 5000
    assert card["this_call"] == 1000 and card["would_be"] == 5500 and card["exceeded"] is True
    # Approved calls count too.
    assert remaining(config, "transfer", params={"amount": 1})["daily_spend"]["used"] == 5500


def test_a_denied_call_does_not_count(write_rules: Callable[..., Path], db_path: Path) -> None:
    config = cfg(write_rules(SPEND), db_path, timeout_seconds=20)

    @protect(config)
    def transfer(amount: int) -> str:
        return "sent"

    assert transfer(4900) == "sent"

    def operator() -> None:
        with Store(db_path) as store:
            for _ in range(500):
                rows = store.list_pending()
                if rows:
                    signed_decide(store, rows[0].id, False, current_operator("tui"), "no")
                    return
                time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    with pytest.raises(SentinelDeniedError):
        transfer(200)
    t.join()
    assert remaining(config, "transfer", params={"amount": 1})["daily_spend"]["used"] == 4900
    assert transfer(100) == "sent"  # exactly reaches the cap: allowed


def test_a_call_that_raised_still_counts(write_rules: Callable[..., Path], db_path: Path) -> None:
    config = cfg(write_rules(RATE), db_path)

    @protect(config)
    def send_sms(to: str) -> None:
        raise RuntimeError("gateway down")

    with pytest.raises(RuntimeError):
        send_sms("x")
    assert remaining(config, "send_sms")["rate"]["used"] == 1


def test_an_unreadable_amount_applies_the_limit(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(SPEND.replace("require_approval", "block"))

    @protect(cfg(rules, db_path))
    def transfer(amount: object) -> str:
        return "sent"

    with pytest.raises(SentinelBlockedError, match="cannot be checked"):
        transfer("5,000")
    assert transfer(10) == "sent"


def test_counters_survive_a_restart(write_rules: Callable[..., Path], db_path: Path) -> None:
    rules = write_rules(RATE)
    script = textwrap.dedent(
        f"""
        from sentinel import SentinelConfig, protect, SentinelBlockedError
        cfg = SentinelConfig(rules_path={str(rules)!r}, db_path={str(db_path)!r}, agent_id="bot-1")
        @protect(cfg)
        def send_email(to):
            return "ok"
        try:
            print(send_email("x"))
        except SentinelBlockedError:
            print("blocked")
        """
    )
    outs = [
        subprocess.run(
            [PYTHON, "-c", script], env=python_env(), capture_output=True, text=True, timeout=60
        ).stdout.strip()
        for _ in range(4)
    ]
    assert outs == ["ok", "ok", "ok", "blocked"]


def test_concurrent_processes_cannot_slip_under_the_cap(
    write_rules: Callable[..., Path], db_path: Path, tmp_path: Path
) -> None:
    rules = write_rules(
        """
        rules:
          - id: shared_cap
            function_pattern: withdraw
            limit: {sum: amount, max: 500, window: 1h, per: global}
            action: block
        """
    )
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, time, sys
        from sentinel import SentinelConfig, protect, SentinelBlockedError
        cfg = SentinelConfig(rules_path={str(rules)!r}, db_path={str(db_path)!r},
                             agent_id=f"p{{os.getpid()}}")
        @protect(cfg)
        def withdraw(amount):
            return "ok"
        withdraw.__sentinel_guard__.policy_source  # loaded; now wait for the start signal
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.002)
        results = []
        for _ in range(5):
            try:
                results.append(withdraw(25))
            except SentinelBlockedError:
                results.append("blocked")
        print(" ".join(results), flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", script], env=python_env(), stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.write_text("go")
    words: list[str] = []
    for p in procs:
        out, _ = p.communicate(timeout=90)
        words += out.split()
    # 6 processes x 5 calls x 25 = 750 asked; the cap of 500 lets exactly 20 through.
    assert words.count("ok") == 20
    assert words.count("blocked") == 10
    with Store(db_path) as store:
        blocked = store.history(HistoryFilter(kinds=("blocked",)), limit=100)
    assert len(blocked) == 10 and all(e.rule_id == "limit:shared_cap" for e in blocked)


def test_shadow_limit_records_but_never_blocks(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(RATE.replace("action: block", "action: block\n    mode: shadow"))
    config = cfg(rules, db_path)

    @protect(config)
    def send_email(to: str) -> str:
        return "sent"

    for _ in range(5):
        assert send_email("x") == "sent"
    protect_guard = send_email.__sentinel_guard__  # type: ignore[attr-defined]
    protect_guard.flush()
    with Store(db_path) as store:
        allowed = store.history(HistoryFilter(kinds=("allowed",)), limit=10)
    last = allowed[0]  # newest first: the 5th call, over the limit
    assert last.data["escalations"][0]["source"] == "limits"
    assert last.data["escalations"][0]["reason"].startswith("shadow limit rate: 4 of 3")


def test_hot_reload_adds_and_removes_the_limits_hook(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules("rules: []\n")
    config = cfg(rules, db_path, hot_reload=False)

    @protect(config)
    def send_email(to: str) -> str:
        return "sent"

    guard = send_email.__sentinel_guard__  # type: ignore[attr-defined]
    assert guard.hooks == ()  # no limits: the allowed-call fast path stays
    for _ in range(5):
        send_email("x")
    rules.write_text(textwrap.dedent(RATE))
    change = config.policy_source().reload()
    assert change is not None and change.kind == "loaded"
    assert len(guard.hooks) == 1
    for _ in range(3):
        send_email("x")
    with pytest.raises(SentinelBlockedError):
        send_email("x")
    rules.write_text("rules: []\n")
    config.policy_source().reload()
    assert guard.hooks == ()
    assert send_email("x") == "sent"


def test_an_unavailable_store_is_a_governance_error(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    rules = write_rules(RATE)
    bad_db = tmp_path / "not-a-db"
    bad_db.mkdir()  # a directory where the database file should be

    @protect(cfg(rules, bad_db))
    def send_email(to: str) -> str:
        return "sent"

    with pytest.raises(SentinelBlockedError, match="governance error"):
        send_email("x")

    @protect(cfg(rules, bad_db, fail_mode="safe"))
    def send_email_safe(to: str) -> str:
        return "sent"

    assert send_email_safe("x") == "sent"


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        ("{count: 0, window: 1h}", "greater than 0"),
        ("{sum: amount, window: 1h}", "needs `max`"),
        ("{count: 3, sum: amount, max: 4, window: 1h}", "either `count` or `sum`"),
        ("{count: 3, window: 1y}", "not a window"),
        ("{count: 3, window: 0}", "longer than 0"),
        ("{count: 3, windw: 1h}", "did you mean 'window'"),
        ("{count: 3, max: 5, window: 1h}", "`max` belongs to `sum`"),
    ],
)
def test_bad_limits_are_load_errors_with_a_line(limit: str, problem: str) -> None:
    text = f"rules:\n  - id: x\n    function_pattern: f\n    action: block\n    limit: {limit}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert problem in str(info.value)
    assert info.value.line == 5


def test_a_limit_rule_cannot_allow() -> None:
    with pytest.raises(PolicyError, match="'allow' would do nothing"):
        parse_policy(
            "rules: [{id: x, function_pattern: f, action: allow, limit: {count: 1, window: 60}}]"
        )


def test_limit_rules_never_decide_a_verdict_themselves() -> None:
    policy = parse_policy(
        "rules: [{id: x, function_pattern: f, action: block, limit: {count: 1, window: 60}}]"
    )
    verdict = policy.evaluate("f", {})
    assert verdict.action.value == "allow" and verdict.rule_id is None
    trace = policy.explain("f", {})[0]
    assert "limit rule" in trace.note and not trace.decided


def test_calls_leave_the_window(write_rules: Callable[..., Path], db_path: Path) -> None:
    rules = write_rules(
        """
        rules:
          - id: burst
            function_pattern: ping
            limit: {count: 2, window: 1s, per: global}
            action: block
        """
    )

    @protect(cfg(rules, db_path))
    def ping() -> str:
        return "pong"

    assert [ping(), ping()] == ["pong", "pong"]
    with pytest.raises(SentinelBlockedError):
        ping()
    # A call stops counting between one window and one window plus a slice (1/60th) later.
    time.sleep(1.1)
    assert ping() == "pong"


def test_remaining_for_a_context_provider_and_without_any_limit(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    config = cfg(write_rules(SPEND), db_path)

    @protect(config)
    def transfer(amount: float) -> str:
        return "sent"

    assert remaining(config, "read_file") == {}  # no limit counts this function
    before = remaining(config, "transfer", params={"amount": 1})["daily_spend"]
    assert before["remaining"] == 5000 and before["used"] == 0 and before["per"] == "agent=bot-1"
    transfer(1234.5)
    after = remaining(config, "transfer", params={"amount": 1})["daily_spend"]
    assert after["remaining"] == 3765.5
    other = remaining(config, "transfer", agent_id="bot-2", params={"amount": 1})
    assert other["daily_spend"]["remaining"] == 5000  # per agent
