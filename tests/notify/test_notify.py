"""Notifications for new pending requests, delivered to real local HTTP receivers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sentinel.approval.webhook import verify
from sentinel.notify import notify_pending
from sentinel.notify.deliver import Notifier
from sentinel.notify.messages import slack_payload
from sentinel.store import HistoryFilter, NewRequest, Store
from tests.webhook.receiver import Receiver, Reply, free_port

SECRET = "notify-secret"


def submit(store: Store, **over: Any) -> Any:
    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "function": "transfer_funds",
        "arguments": {"amount": 5000, "password": "[REDACTED]"},
        "digest": "c" * 64,
        "timeout_seconds": 300,
        "agent_id": "billing-bot",
        "rule_id": "big_transfer",
        "reason": "Transfer of 5000 needs approval",
        "value_at_risk": 5000.0,
    }
    fields.update(over)
    return store.submit(NewRequest(**fields))


def events(store: Store, kind: str) -> list[Any]:
    return store.history(HistoryFilter(kinds=(kind,)), limit=50)


@pytest.fixture
def store(db_path: Path) -> Any:
    with Store(db_path) as s:
        yield s


def test_nothing_configured_means_nothing_sent(store: Store) -> None:
    assert notify_pending(None, submit(store), store) is False


def test_generic_webhook_is_signed_and_carries_the_redacted_request(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver(lambda *a: Reply(200)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        monkeypatch.setenv("SENTINEL_NOTIFY_SECRET", SECRET)
        monkeypatch.setenv("SENTINEL_NOTIFY_DECIDE_URL", "http://127.0.0.1:8765/")
        rec = submit(store)
        assert notify_pending(None, rec, store) is True
        assert Notifier.shared().flush(10)
        (seen,) = rx.requests("POST")
    h = {k.lower(): v for k, v in seen.headers.items()}
    assert verify(SECRET, h["x-sentinel-timestamp"], h["x-sentinel-signature"], seen.body) is None
    assert h["x-sentinel-event"] == "approval_requested" and h["x-sentinel-action-id"] == rec.id
    doc = seen.json()
    assert doc["event"] == "approval_requested"
    assert doc["request"]["id"] == rec.id and doc["request"]["value_at_risk"] == 5000
    assert doc["request"]["arguments"]["password"] == "[REDACTED]"
    assert "hunter2" not in seen.body.decode()
    assert doc["decide"]["cli"]["approve"] == f"sentinel approve {rec.id[:12]}"
    assert doc["decide"]["api"]["approve"] == f"http://127.0.0.1:8765/approval/{rec.id}/approve"


def test_slack_message_says_what_why_value_and_how_and_escapes_agent_text(store: Store) -> None:
    rec = submit(
        store,
        function="pay_<!channel>",
        reason="because <https://evil.example|click> & `rm -rf`",
        )
    msg = slack_payload(rec, "http://127.0.0.1:8765")
    text = json.dumps(msg)
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt;" in text
    assert "```break```" not in text
    assert "Value at risk" in text and "5,000" in text
    assert "sentinel approve" in text and "sentinel deny" in text
    assert "Why:" in text and "Expires" in text
    assert msg["text"].startswith("Sentinel: ")


def test_retries_until_delivered(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [Reply(500), Reply(429, headers={"Retry-After": "0"}), Reply(200)]

    def script(*a: Any) -> Reply:
        return answers.pop(0) if answers else Reply(200)

    with Receiver(script) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_SLACK", f"{rx.url}/services/T0/B0/SECRETPATH")
        monkeypatch.setenv("SENTINEL_NOTIFY_BACKOFF", "0.01")
        rec = submit(store)
        notify_pending(None, rec, store)
        assert Notifier.shared().flush(10)
        assert len(rx.requests("POST")) == 3
    assert not events(store, "notification_failed")


def test_failures_are_recorded_as_events_without_the_secret_url(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver(lambda *a: Reply(503)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_SLACK", f"{rx.url}/services/T0/B0/SECRETPATH")
        monkeypatch.setenv("SENTINEL_NOTIFY_ATTEMPTS", "3")
        monkeypatch.setenv("SENTINEL_NOTIFY_BACKOFF", "0.01")
        rec = submit(store)
        notify_pending(None, rec, store)
        assert Notifier.shared().flush(10)
        assert len(rx.requests("POST")) == 3
    (ev,) = events(store, "notification_failed")
    assert ev.request_id == rec.id and ev.function == "transfer_funds"
    assert (
        ev.data["target"] == "slack" and ev.data["host"] == "127.0.0.1" and ev.data["attempts"] == 3
    )
    assert "503" in (ev.reason or "")
    assert "SECRETPATH" not in json.dumps(ev.data) + (ev.reason or "")


def test_a_refusal_is_not_retried_and_a_dead_target_is_recorded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver(lambda *a: Reply(404)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        monkeypatch.setenv("SENTINEL_NOTIFY_SLACK", f"http://127.0.0.1:{free_port()}/nobody")
        monkeypatch.setenv("SENTINEL_NOTIFY_ATTEMPTS", "2")
        monkeypatch.setenv("SENTINEL_NOTIFY_BACKOFF", "0.01")
        notify_pending(None, submit(store), store)
        assert Notifier.shared().flush(10)
        assert len(rx.requests("POST")) == 1
    failed = {e.data["target"]: e for e in events(store, "notification_failed")}
    assert "not retried" in (failed["webhook"].reason or "")
    assert "ConnectError" in (failed["slack"].reason or "")


def test_a_hanging_receiver_never_delays_the_caller(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = threading.Event()

    def script(*a: Any) -> Reply:
        rx.release.wait(30)  # hold the request until the test lets go
        answered.set()
        return Reply(200)

    with Receiver(script) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        monkeypatch.setenv("SENTINEL_NOTIFY_ATTEMPTS", "1")
        rec = submit(store)
        assert notify_pending(None, rec, store) is True
        # notify_pending has returned while the receiver is still holding the request.
        deadline = time.monotonic() + 10
        while not rx.requests("POST") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.requests("POST") and not answered.is_set()
        rx.release.set()  # let the receiver answer
        assert Notifier.shared().flush(10)
        assert answered.is_set()


def test_a_broken_setting_is_reported_not_raised(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", "not a url")
    assert notify_pending(None, submit(store), store) is False


def test_a_process_exits_even_when_its_notification_target_hangs(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT, python_env

    code = f"""
import uuid
from sentinel.store import NewRequest, Store
from sentinel.notify import notify_pending
store = Store({str(tmp_path / "exit.db")!r})
rec = store.submit(NewRequest(id=uuid.uuid4().hex, function="f", arguments={{}},
                              digest="d" * 64, timeout_seconds=60))
assert notify_pending(None, rec, store)
print("queued", flush=True)
"""
    with Receiver(lambda *a: Reply(200, delay=120)) as rx:
        env = python_env(SENTINEL_NOTIFY_WEBHOOK=f"{rx.url}/hook", SENTINEL_NOTIFY_TIMEOUT="60")
        start = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-c", code],
            cwd=str(ROOT),
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
        elapsed = time.monotonic() - start
    assert run.returncode == 0 and "queued" in run.stdout, run.stderr
    assert elapsed < 30  # a 3 s grace at exit, not the 4 x 60 s of retries


def test_the_watcher_pages_through_a_burst_and_skips_decided_requests(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.identity import current_operator
    from sentinel.notify.watch import PendingWatcher

    submit(store, function="old_one")
    with Receiver(lambda *a: Reply(200)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        watcher = PendingWatcher(store, page=3)
        assert watcher.poll() == 0
        ids = [submit(store, function=f"burst_{i}").id for i in range(7)]
        store.decide(ids[0], True, current_operator("cli"))  # decided before the poll: skipped
        assert watcher.poll() == 6
        assert watcher.poll() == 0  # nothing new
        assert Notifier.shared().flush(10)
        names = sorted(json.loads(p.body)["request"]["function"] for p in rx.requests("POST"))
    assert names == [f"burst_{i}" for i in range(1, 7)]


def test_the_watcher_announces_escalations_of_pending_requests(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.identity import current_operator
    from sentinel.notify.watch import PendingWatcher
    from sentinel.store.models import DecisionTerms

    terms = DecisionTerms(approvers=("finance",), escalate_after=60.0, escalate_to=("security",))
    waiting = submit(store, terms=terms)
    decided = submit(store, terms=terms)
    with Receiver(lambda *a: Reply(200)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        watcher = PendingWatcher(store)
        assert watcher.poll() == 0  # both were submitted before the watcher started
        store.escalate(waiting.id, ["security"])
        store.escalate(decided.id, ["security"])
        store.decide(decided.id, True, current_operator("cli"))  # decided before the poll
        assert watcher.poll() == 1
        assert watcher.poll() == 0
        assert Notifier.shared().flush(10)
        (seen,) = rx.requests("POST")
    doc = seen.json()
    assert doc["event"] == "approval_escalated" and doc["request"]["id"] == waiting.id
    assert doc["escalation"]["to"] == ["security"]
    assert doc["escalation"]["may_decide"] == ["finance", "security"]
