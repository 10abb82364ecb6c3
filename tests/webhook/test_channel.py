"""The webhook approval channel against a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig
from sentinel.approval.base import ApprovalRequest, ApprovalStatus
from sentinel.approval.webhook import WebhookApprovalInterface, verify
from sentinel.errors import SentinelConfigError
from tests.webhook.receiver import Receiver, Reply, free_port, json_reply

SECRET = "s3cret-key-for-tests"


def make_request(**over: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {
        "function_name": "transfer_funds",
        "parameters": {"amount": 5000, "password": "hunter2"},
        "display_parameters": {"amount": 5000, "password": "[REDACTED]"},
        "rule_id": "big_transfer",
        "reason": "Transfer of 5000 needs approval",
        "agent_id": "billing-bot",
        "context": {"ticket": "T-1"},
        "digest": "a" * 64,
        "timeout_seconds": 10.0,
    }
    fields.update(over)
    return ApprovalRequest(**fields)


def channel(url: str, **kw: Any) -> WebhookApprovalInterface:
    kw.setdefault("poll_interval_seconds", 0.05)
    kw.setdefault("timeout_seconds", 10)
    return WebhookApprovalInterface(f"{url}/approval", f"{url}/approval/{{action_id}}/status", **kw)


def status_script(replies: list[Reply], post: Reply | None = None) -> Any:
    """POST answers ``post`` (202); GETs answer ``replies`` in turn, repeating the last one."""
    state = {"n": 0}

    def script(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST":
            return post or Reply(202, b'{"status":"received"}')
        i = min(state["n"], len(replies) - 1)
        state["n"] += 1
        return replies[i]

    return script


async def test_post_carries_original_headers_body_and_a_valid_signature() -> None:
    req = make_request()
    with Receiver(
        status_script(
            [json_reply({"action_id": req.request_id, "status": "approved"}, secret=SECRET)]
        )
    ) as rx:
        result = await channel(rx.url, token="tok-123", secret=SECRET).request_approval(req)
        post = rx.requests("POST")[0]
    assert result.status is ApprovalStatus.APPROVED
    h = {k.lower(): v for k, v in post.headers.items()}
    assert h["x-sentinel-token"] == "tok-123"
    assert h["x-sentinel-action-id"] == req.request_id
    assert h["content-type"] == "application/json"
    assert verify(SECRET, h["x-sentinel-timestamp"], h["x-sentinel-signature"], post.body) is None
    assert (
        verify("wrong", h["x-sentinel-timestamp"], h["x-sentinel-signature"], post.body) is not None
    )
    body = post.json()
    for key in (
        "action_id",
        "agent_id",
        "function_name",
        "rule_id",
        "parameters",
        "reason",
        "timestamp",
        "timeout_at",
        "context",
    ):
        assert key in body, key
    assert body["action_id"] == req.request_id
    assert body["parameters"] == {"amount": 5000, "password": "[REDACTED]"}  # display copy only
    assert "hunter2" not in post.body.decode()
    assert body["context"] == {"ticket": "T-1"}
    assert body["digest"] == "a" * 64
    assert 0 < body["timeout_seconds"] <= 10


async def test_unserialisable_parameters_are_sent_safely_and_redacted() -> None:
    req = make_request(
        parameters={
            "amount": Decimal("12.50"),
            "when": dt.datetime(2026, 1, 2, 3, 4),
            "api_key": "sk-" + "x" * 30,
            "obj": object(),
        },
        display_parameters=None,
    )
    with Receiver(status_script([json_reply({"status": "denied", "reason": "no"})])) as rx:
        result = await channel(rx.url).request_approval(req)
        body = rx.requests("POST")[0].json()
    assert result.status is ApprovalStatus.DENIED and result.reason == "no"
    assert body["parameters"]["amount"] == 12.5
    assert body["parameters"]["when"] == "2026-01-02T03:04:00"
    assert body["parameters"]["api_key"] == "[REDACTED]"
    assert "$repr" in body["parameters"]["obj"]


async def test_unsigned_reply_is_refused_when_a_secret_is_set() -> None:
    req = make_request()
    unsigned = json_reply({"action_id": req.request_id, "status": "approved"})
    signed_deny = json_reply(
        {"action_id": req.request_id, "status": "denied", "decided_by": "bob"}, secret=SECRET
    )
    with Receiver(status_script([unsigned, unsigned, signed_deny])) as rx:
        result = await channel(rx.url, secret=SECRET).request_approval(req)
        polls = len(rx.requests("GET"))
    assert result.status is ApprovalStatus.DENIED  # the forged approvals were ignored
    assert result.approved_by == "bob"
    assert polls == 3


@pytest.mark.parametrize(
    "reply",
    [
        "stale",
        "wrong_key",
        "other_action",
        "no_action_id",
        "tampered",
    ],
)
async def test_bad_signed_replies_never_decide(reply: str) -> None:
    req = make_request(timeout_seconds=0.6)
    data = {"action_id": req.request_id, "status": "approved"}
    if reply == "stale":
        r = json_reply(data, secret=SECRET, ts=time.time() - 3600)
    elif reply == "wrong_key":
        r = json_reply(data, secret="another-key")
    elif reply == "other_action":
        r = json_reply({**data, "action_id": "f" * 32}, secret=SECRET)
    elif reply == "no_action_id":
        r = json_reply({"status": "approved"}, secret=SECRET)
    else:
        r = json_reply(data, secret=SECRET)
        r.body = r.body.replace(b"approved", b"approved", 1) + b" "
    with Receiver(status_script([r])) as rx:
        result = await channel(rx.url, secret=SECRET).request_approval(req)
        polls = len(rx.requests("GET"))
    assert result.status is ApprovalStatus.TIMEOUT
    assert polls >= 2  # it kept polling instead of accepting


async def test_garbage_replies_are_survived_until_a_real_answer() -> None:
    req = make_request()
    replies = [
        Reply(200, b"<html>not json</html>"),
        json_reply([1, 2, 3]),
        json_reply({"status": 5}),
        json_reply({"status": None}),
        json_reply({"status": "maybe"}),
        json_reply({"status": "approved", "action_id": "someone-else"}),
        json_reply({"status": "approved", "digest": "b" * 64}),  # for other arguments
        Reply(404, b"not found"),
        Reply(500, b"oops"),
        Reply(503, b""),
        Reply(200, b"\xff\xfe\x00"),
        json_reply({"status": "pending"}),
        json_reply({"status": "  APPROVED ", "approved_by": "alice\x1b[31m", "reason": "ok"}),
    ]
    with Receiver(status_script(replies)) as rx:
        result = await channel(rx.url, max_backoff_seconds=0.1).request_approval(req)
        polls = len(rx.requests("GET"))
    assert result.status is ApprovalStatus.APPROVED
    assert polls == len(replies)
    assert "\x1b" not in (result.approved_by or "")  # terminal-safe


async def test_denial_words_deny_and_expired_ends_without_deciding() -> None:
    req = make_request()
    with Receiver(status_script([json_reply({"status": "Rejected"})])) as rx:
        assert (await channel(rx.url).request_approval(req)).status is ApprovalStatus.DENIED
    with Receiver(status_script([json_reply({"status": "expired"})])) as rx:
        assert (
            await channel(rx.url).request_approval(make_request())
        ).status is ApprovalStatus.TIMEOUT


async def test_no_secret_accepts_unsigned_replies() -> None:
    with Receiver(status_script([json_reply({"status": "approved"})])) as rx:
        result = await channel(rx.url).request_approval(make_request())
    assert result.status is ApprovalStatus.APPROVED


async def test_slow_status_server_cannot_hold_the_call_past_its_deadline() -> None:
    req = make_request(timeout_seconds=1.0)
    with Receiver(status_script([Reply(200, b'{"status":"approved"}', delay=60)])) as rx:
        start = time.monotonic()
        result = await channel(rx.url, request_timeout=30).request_approval(req)
        elapsed = time.monotonic() - start
    assert result.status is ApprovalStatus.TIMEOUT
    assert elapsed < 5  # the 60 s reply (and the 30 s per-request timeout) did not hold it


async def test_slow_webhook_post_is_bounded_by_the_deadline() -> None:
    req = make_request(timeout_seconds=0.8)
    with Receiver(
        status_script([json_reply({"status": "approved"})], post=Reply(202, b"", delay=60))
    ) as rx:
        start = time.monotonic()
        result = await channel(rx.url).request_approval(req)
        elapsed = time.monotonic() - start
        gets = rx.requests("GET")
    assert result.status is ApprovalStatus.TIMEOUT
    assert not gets
    assert elapsed < 5


async def test_delivery_failures_give_an_error_after_the_retries() -> None:
    with Receiver(status_script([json_reply({"status": "approved"})], post=Reply(500))) as rx:
        result = await channel(rx.url, max_retries=3, max_backoff_seconds=0.05).request_approval(
            make_request()
        )
        posts = len(rx.requests("POST"))
    assert result.status is ApprovalStatus.ERROR
    assert "3 attempts" in (result.reason or "")
    assert posts == 3


async def test_a_refused_post_is_not_retried() -> None:
    with Receiver(status_script([json_reply({"status": "approved"})], post=Reply(401))) as rx:
        result = await channel(rx.url, max_retries=3).request_approval(make_request())
        posts = len(rx.requests("POST"))
    assert result.status is ApprovalStatus.ERROR
    assert "401" in (result.reason or "")
    assert posts == 1


async def test_network_errors_while_polling_never_crash() -> None:
    # The POST goes to a live receiver; the status URL points at a port nobody listens on.
    dead = free_port()
    with Receiver(status_script([json_reply({"status": "approved"})])) as rx:
        ch = WebhookApprovalInterface(
            f"{rx.url}/approval",
            f"http://127.0.0.1:{dead}/approval/{{action_id}}/status",
            poll_interval_seconds=0.05,
        )
        result = await ch.request_approval(make_request(timeout_seconds=0.7))
    assert result.status is ApprovalStatus.TIMEOUT


def test_construction_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(SentinelConfigError, match="action_id"):
        WebhookApprovalInterface("http://127.0.0.1:1/a", "http://127.0.0.1:1/status")
    with pytest.raises(SentinelConfigError, match="webhook_url"):
        WebhookApprovalInterface("ftp://x", "http://127.0.0.1:1/{action_id}")
    with pytest.raises(SentinelConfigError, match="poll_interval_seconds"):
        WebhookApprovalInterface(
            "http://127.0.0.1:1/a", "http://127.0.0.1:1/{action_id}", poll_interval_seconds=0
        )
    rules = tmp_path / "rules.yaml"
    rules.write_text('version: "1.0"\ndefault_action: allow\nrules: []\n')
    with pytest.raises(SentinelConfigError, match="SENTINEL_WEBHOOK_URL"):
        WebhookApprovalInterface.from_config(
            SentinelConfig(rules_path=rules, approval_interface="webhook")
        )


def test_from_config_reads_the_sentinel_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text('version: "1.0"\ndefault_action: allow\nrules: []\n')
    monkeypatch.setenv("SENTINEL_WEBHOOK_URL", "http://127.0.0.1:9/approval")
    monkeypatch.setenv("SENTINEL_STATUS_URL", "http://127.0.0.1:9/approval/{action_id}/status")
    monkeypatch.setenv("SENTINEL_WEBHOOK_SECRET", "k")
    monkeypatch.setenv("SENTINEL_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("SENTINEL_WEBHOOK_TIMEOUT", "4")
    ch = WebhookApprovalInterface.from_config(SentinelConfig(rules_path=rules, timeout_seconds=42))
    assert ch.secret == "k" and ch.token is None
    assert ch.poll_interval_seconds == 0.5 and ch.request_timeout == 4 and ch.timeout_seconds == 42
    assert ch.status_url("abc") == "http://127.0.0.1:9/approval/abc/status"
