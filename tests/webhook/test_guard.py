"""``approval_interface="webhook"`` through @protect: the request is a queue row too, and the
first decision (webhook or command center) wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig, SentinelDeniedError, protect
from sentinel.identity import current_operator
from sentinel.store import Store
from tests.helpers import signed_decide
from tests.webhook.receiver import Receiver, Reply, json_reply

SECRET = "guard-test-secret"
POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} needs approval"
"""


def replying(decide: Callable[[str], Reply]) -> Any:
    """A webhook receiver script: POST → 202; GET /approval/<id>/status → decide(id)."""

    def script(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST":
            return Reply(202, b"{}")
        return decide(path.split("/")[2])

    return script


def config(rules: Path, db: Path, url: str, **kw: Any) -> SentinelConfig:
    return SentinelConfig(
        rules_path=rules,
        db_path=db,
        approval_interface="webhook",
        webhook_url=f"{url}/approval",
        webhook_status_url=f"{url}/approval/{{action_id}}/status",
        webhook_secret=SECRET,
        webhook_poll_interval=0.05,
        timeout_seconds=kw.pop("timeout_seconds", 20),
        show_waiting_hint=False,
        **kw,
    )


def test_a_signed_webhook_approval_runs_the_call_and_is_recorded(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(POLICY)
    script = replying(
        lambda rid: json_reply(
            {"action_id": rid, "status": "approved", "approved_by": "carol"}, secret=SECRET
        )
    )
    with Receiver(script) as rx:

        @protect(config(rules, db_path, rx.url))
        def transfer(amount: int, api_token: str) -> str:
            return f"sent {amount}"

        assert transfer(5000, api_token="tok-abcdefgh") == "sent 5000"
        posted = rx.requests("POST")[0].json()
    assert posted["parameters"]["api_token"] == "[REDACTED]"
    with Store(db_path) as store:
        rec = store.get(posted["action_id"])
    assert rec.status == "approved"
    assert rec.channel == "webhook"
    assert rec.operator is not None and rec.operator["display_name"] == "carol"


def test_an_unsigned_approval_cannot_release_the_call(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(POLICY)
    forged = replying(lambda rid: json_reply({"action_id": rid, "status": "approved"}))
    with Receiver(forged) as rx:

        @protect(config(rules, db_path, rx.url, timeout_seconds=1))
        def transfer(amount: int) -> str:
            return "sent"

        with pytest.raises(Exception) as info:
            transfer(5000)
    assert type(info.value).__name__ == "SentinelTimeoutError"


def test_the_command_center_can_decide_a_webhook_request_first(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    rules = write_rules(POLICY)
    pending = replying(
        lambda rid: json_reply({"action_id": rid, "status": "pending"}, secret=SECRET)
    )
    with Receiver(pending) as rx:

        @protect(config(rules, db_path, rx.url))
        def transfer(amount: int) -> str:
            return "sent"

        def operator() -> None:
            with Store(db_path) as store:
                for _ in range(400):
                    rows = store.list_pending()
                    if rows and rx.requests("GET"):  # decide while the webhook is being polled
                        signed_decide(store, rows[0].id, False, current_operator("tui"), "not today")
                        return
                    time.sleep(0.02)

        t = threading.Thread(target=operator)
        t.start()
        with pytest.raises(SentinelDeniedError, match="not today"):
            transfer(5000)
        t.join()
        assert rx.requests("GET")  # the webhook was being polled while the TUI decided


def test_a_webhook_that_refuses_the_request_blocks_the_call(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    from sentinel import SentinelBlockedError

    rules = write_rules(POLICY)

    def refuse(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return Reply(401, b"bad token")

    with Receiver(refuse) as rx:

        @protect(config(rules, db_path, rx.url))
        def transfer(amount: int) -> str:
            return "sent"

        with pytest.raises(SentinelBlockedError, match="401") as info:
            transfer(5000)
    assert info.value.request_id
    with Store(db_path) as store:
        assert store.get(info.value.request_id).status == "cancelled"
