"""Escalation through a real waiting call: when nobody decides within the rule's
``escalate_after``, the waiting process records one ``escalated`` event and notifies the
configured targets ("escalated to security"); an ``escalate_to`` operator's signed approval is
refused before the delay and counts after it. Real store, real keys, real HTTP receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.approval.webhook import verify
from sentinel.notify.deliver import Notifier
from sentinel.store import HistoryFilter, RequestRecord, Store
from sentinel.trust import add_operator, generate_key
from sentinel.trust.check import UNTRUSTED
from sentinel.trust.decide import Decider
from sentinel.trust.operators import load_operators
from tests.webhook.receiver import Receiver, Reply

SECRET = "escalation-secret"

RULES = """
rules:
  - id: big_pay
    function_pattern: "pay*"
    action: require_approval
    conditions: [{param: amount, operator: gt, value: 1000}]
    approvers: [finance]
    self_approval: true   # the tests decide as the OS user the agent runs as
    escalate_after: {after}
    escalate_to: [security]
    timeout_seconds: 60
"""


@dataclass
class Operators:
    path: Path
    keys: dict[str, Path] = field(default_factory=dict)

    def decider(self, name: str) -> Decider:
        return Decider.local("cli", key_path=self.keys[name], trusted=load_operators(self.path))


@pytest.fixture
def operators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operators:
    """alice (finance) and sam (security), trusted by a real operators file: signing is on."""
    folder = tmp_path / "etc-sentinel"
    folder.mkdir(mode=0o755)
    ops = Operators(folder / "operators.json")
    for name, group in (("alice", "finance"), ("sam", "security")):
        key_path = tmp_path / "keys" / name / "operator-key.pem"
        add_operator(ops.path, name, generate_key(key_path).public_key, [group])
        ops.keys[name] = key_path
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(ops.path))
    return ops


@dataclass
class Waiting:
    """A protected call waiting on its own thread, and what it ended with."""

    thread: threading.Thread
    outcome: dict[str, Any]

    def result(self) -> Any:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the waiting call never returned"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["value"]


@pytest.fixture
def start_call(write_rules: Callable[..., Path], db_path: Path) -> Iterator[Callable[..., Waiting]]:
    def start(after: str) -> Waiting:
        config = SentinelConfig(
            rules_path=write_rules(RULES.replace("{after}", after)),
            db_path=db_path,
            agent_id="billing-bot",
            show_waiting_hint=False,
        )

        @protect(config)
        def pay(amount: int) -> str:
            return f"paid {amount}"

        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = pay(5000)
            except BaseException as exc:  # handed to the test thread
                outcome["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return Waiting(thread, outcome)

    yield start


def wait_until(what: str, probe: Callable[[], Any], limit: float = 30.0) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def pending_one(store: Store) -> RequestRecord:
    found: list[RequestRecord] = wait_until("the pending request", store.list_pending)
    (rec,) = found
    return rec


def escalated_events(store: Store, request_id: str) -> list[Any]:
    return [
        e
        for e in store.history(HistoryFilter(kinds=("escalated",)), limit=50)
        if e.request_id == request_id
    ]


def test_nobody_decided_in_time_escalates_once_notifies_and_security_may_approve(
    operators: Operators,
    start_call: Callable[..., Waiting],
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver(lambda *a: Reply(200)) as rx, Store(db_path) as store:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        monkeypatch.setenv("SENTINEL_NOTIFY_SLACK", f"{rx.url}/services/T0/B0/X")
        monkeypatch.setenv("SENTINEL_NOTIFY_SECRET", SECRET)
        call = start_call("0.3")
        rec = pending_one(store)
        escalated = wait_until(
            "the escalation",
            lambda: store.get(rec.id).escalated_at is not None and store.get(rec.id),
        )
        assert escalated.is_pending and escalated.escalated_to == ("security",)
        assert escalated.escalated_at >= rec.created_at + 0.3
        sam = operators.decider("sam")
        assert sam.signs and sam.refusal(escalated, True) is None
        sam.decide(store, rec.id, True, "finance is away")
        assert call.result() == "paid 5000"  # the escalate_to operator's approval counted

        (event,) = escalated_events(store, rec.id)  # exactly once, through the store's chain
        assert event.rule_id == "big_pay" and event.function == "pay"
        assert event.data["to"] == ["security"]
        assert event.data["may_decide"] == ["finance", "security"]
        assert store.escalate(rec.id, ["security"]) is None  # decided: nothing more to record
        assert len(escalated_events(store, rec.id)) == 1

        assert Notifier.shared().flush(10)
        posts = rx.requests("POST")
    hooks = {
        s.headers.get("X-Sentinel-Event") or s.headers.get("x-sentinel-event"): s
        for s in posts
        if s.path == "/hook"
    }
    assert set(hooks) == {"approval_requested", "approval_escalated"}
    sent = hooks["approval_escalated"]
    h = {k.lower(): v for k, v in sent.headers.items()}
    assert verify(SECRET, h["x-sentinel-timestamp"], h["x-sentinel-signature"], sent.body) is None
    doc = sent.json()
    assert doc["event"] == "approval_escalated"
    assert doc["request"]["id"] == rec.id and doc["request"]["rule_id"] == "big_pay"
    assert doc["escalation"]["to"] == ["security"]
    assert doc["escalation"]["may_decide"] == ["finance", "security"]
    assert doc["escalation"]["after_seconds"] >= 0.3
    assert doc["decide"]["cli"]["approve"] == f"sentinel approve {rec.id[:12]}"
    slack = [s.json() for s in posts if s.path.startswith("/services/")]
    assert len(slack) == 2
    (message,) = [m for m in slack if "escalated to security" in m["text"]]
    text = str(message)
    assert "big_pay" in text and "May decide now:* finance, security" in text


def test_security_before_the_delay_is_refused_by_the_waiting_call_and_nothing_escalates(
    operators: Operators, start_call: Callable[..., Waiting], db_path: Path
) -> None:
    with Store(db_path) as store:
        call = start_call("30s")
        rec = pending_one(store)
        sam = operators.decider("sam")
        refusal = sam.refusal(rec, True)
        assert refusal is not None and "only finance may decide" in refusal
        # Past the keyboard's refusal (a forged or hurried write): the signed vote is recorded,
        # the row says approved, and the waiting call still refuses it by the signed time.
        vote = sam.vote(rec, True, "too early")
        assert store.decide(rec.id, True, sam.operator, "too early", vote=vote).status == "approved"
        with pytest.raises(SentinelBlockedError) as info:
            call.result()
        assert UNTRUSTED in str(info.value)
        assert "not among the approvers (finance)" in str(info.value)
        assert escalated_events(store, rec.id) == []
        assert store.get(rec.id).escalated_at is None
        (blocked,) = [
            e
            for e in store.history(HistoryFilter(kinds=("blocked",)), limit=10)
            if e.request_id == rec.id
        ]
        assert blocked.data["refused"] == "untrusted_decision"


def test_finance_in_time_runs_the_call_and_never_escalates(
    operators: Operators, start_call: Callable[..., Waiting], db_path: Path
) -> None:
    with Store(db_path) as store:
        call = start_call("30s")
        rec = pending_one(store)
        operators.decider("alice").decide(store, rec.id, True, "fine")
        assert call.result() == "paid 5000"
        assert escalated_events(store, rec.id) == []
