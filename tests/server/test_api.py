"""The approval API as a client sees it: a real server process, a real HTTP client."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from sentinel.approval.webhook import sign, signed_headers, verify
from sentinel.server.run import is_loopback
from sentinel.store import Store
from tests.server.conftest import ALICE, BOB, BOT, SECRET, ApiServer

ENDPOINTS = [
    ("GET", "/openapi.json"),
    ("POST", "/approval"),
    ("GET", "/approval/{id}/status"),
    ("POST", "/approval/{id}/approve"),
    ("POST", "/approval/{id}/deny"),
    ("GET", "/approvals/pending"),
]
OPERATOR_ONLY = [e for e in ENDPOINTS if e[1].endswith(("approve", "deny", "pending"))]


def new_id() -> str:
    return uuid.uuid4().hex


def submit(api: ApiServer, token: str = BOT, **over: Any) -> dict[str, Any]:
    body = {
        "action_id": new_id(),
        "function_name": "transfer_funds",
        "rule_id": "big_transfer",
        "parameters": {"amount": 5000, "password": "hunter2"},
        "reason": "Transfer of 5000 needs approval",
        "agent_id": "billing-bot",
        "timeout_seconds": 60,
    }
    body.update(over)
    with api.client(token) as c:
        r = c.post("/approval", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def test_health_needs_no_credentials(api: ApiServer) -> None:
    r = httpx.get(f"{api.url}/health", trust_env=False)
    assert r.status_code == 200 and r.json()["status"] == "healthy"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong-token-000000000000", "Basic YWxpY2U6eA==", "Bearer x"]
)
def test_every_other_endpoint_requires_credentials(
    api: ApiServer, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = httpx.request(
        method,
        api.url + path.format(id=new_id()),
        headers=headers,
        json={"function_name": "f"},
        trust_env=False,
    )
    assert r.status_code == 401, r.text
    assert "Bearer" in r.headers["www-authenticate"]
    assert "error" in r.json()


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
def test_agent_credentials_cannot_decide_or_list(api: ApiServer, method: str, path: str) -> None:
    rid = submit(api)["action_id"]
    with api.client(BOT) as c:
        r = c.request(method, path.format(id=rid), json={})
    assert r.status_code == 403
    with Store(api.db) as store:
        assert store.get(rid).status == "pending"


def test_signed_requests_are_agents_and_bad_signatures_are_refused(api: ApiServer) -> None:
    body = json.dumps(
        {"action_id": new_id(), "function_name": "deploy", "parameters": {"env": "prod"}}
    ).encode()
    headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
    r = httpx.post(f"{api.url}/approval", content=body, headers=headers, trust_env=False)
    assert r.status_code == 202
    rid = r.json()["action_id"]
    # the same signature over another body, a stale one, and a signed decision attempt
    tampered = body.replace(b"prod", b"dev!")
    assert (
        httpx.post(
            f"{api.url}/approval", content=tampered, headers=headers, trust_env=False
        ).status_code
        == 401
    )
    old = str(int(time.time()) - 3600)
    stale = {"X-Sentinel-Timestamp": old, "X-Sentinel-Signature": sign(SECRET, old, body)}
    assert (
        httpx.post(f"{api.url}/approval", content=body, headers=stale, trust_env=False).status_code
        == 401
    )
    approve = httpx.post(
        f"{api.url}/approval/{rid}/approve",
        content=b"",
        headers=signed_headers(SECRET, b""),
        trust_env=False,
    )
    assert approve.status_code == 403


def test_the_original_token_header_is_accepted(api: ApiServer) -> None:
    rid = submit(api)["action_id"]
    r = httpx.get(
        f"{api.url}/approval/{rid}/status", headers={"X-Sentinel-Token": BOT}, trust_env=False
    )
    assert r.status_code == 200 and r.json()["status"] == "pending"


def test_submit_stores_a_redacted_pending_row(api: ApiServer) -> None:
    key = new_id()
    reply = submit(
        api, action_id=key, context={"ticket": "T-9", "auth_header": "Bearer abcdefghijkl"}
    )
    assert reply["status"] == "pending"
    assert reply["client_action_id"] == key and reply["request_id"] == reply["action_id"] != key
    with Store(api.db) as store:
        rec = store.get(reply["action_id"])
    assert rec.status == "pending" and rec.channel == "api"
    # Stored once, redacted: the real values never reach the database.
    assert rec.arguments == {"amount": 5000, "password": "[REDACTED]"}
    # The server records who sent it and the caller's own id (a correlation key only).
    assert rec.context == {
        "ticket": "T-9",
        "auth_header": "[REDACTED]",
        "sentinel_api": {"client_action_id": key, "submitted_by": "bot"},
    }
    assert 55 < rec.expires_at - rec.created_at <= 60
    with api.client(ALICE) as c:
        listed = {
            p["action_id"]: p for p in c.get("/approvals/pending", params={"limit": 10000}).json()
        }
    assert listed[rec.id]["parameters"]["password"] == "[REDACTED]"
    assert "hunter2" not in json.dumps(listed[rec.id])


def test_reposting_never_resets_and_a_different_body_conflicts(api: ApiServer) -> None:
    key = new_id()
    first = submit(api, action_id=key)
    rid = first["action_id"]
    with api.client(ALICE) as c:
        assert c.post(f"/approval/{rid}/deny", json={"reason": "no"}).status_code == 200
    with api.client(BOT) as c:
        again = c.post(
            "/approval",
            json={
                "action_id": key,
                "function_name": "transfer_funds",
                "parameters": {"amount": 5000, "password": "hunter2"},
            },
        )
        assert again.status_code == 202 and again.json()["status"] == "denied"
        assert again.json()["request_id"] == rid
        other = c.post(
            "/approval",
            json={"action_id": key, "function_name": "transfer_funds", "parameters": {"amount": 1}},
        )
        assert other.status_code == 409


def test_first_decision_wins_and_the_loser_is_told_who(api: ApiServer) -> None:
    rid = submit(api)["action_id"]
    with api.client(ALICE) as alice, api.client(BOB) as bob:
        ok = alice.post(f"/approval/{rid}/approve", json={"reason": "looks right"})
        late = bob.post(f"/approval/{rid}/deny", json={"reason": "no!"})
        again = alice.post(f"/approval/{rid}/deny")
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert ok.json()["decided_by"].startswith("api:alice@")
    assert late.status_code == 409 and again.status_code == 409
    assert late.json()["status"] == "approved"
    assert late.json()["decided_by"].startswith("api:alice@")
    assert "already approved by api:alice" in late.json()["message"]
    with api.client(BOT) as c:
        status = c.get(f"/approval/{rid}/status").json()
    assert status["status"] == "approved" and status["approved_by"].startswith("api:alice@")
    assert status["reason"] == "looks right"
    with Store(api.db) as store:
        rec = store.get(rid)
    assert (
        rec.operator is not None
        and rec.operator["channel"] == "api"
        and rec.operator["account"] == "api:alice"
    )


def test_no_decision_after_expiry(api: ApiServer) -> None:
    rid = submit(api, timeout_seconds=0.3)["action_id"]
    time.sleep(0.5)
    with api.client(BOT) as c:
        assert c.get(f"/approval/{rid}/status").json()["status"] == "expired"
    with api.client(ALICE) as c:
        r = c.post(f"/approval/{rid}/approve")
        assert rid not in {
            p["action_id"] for p in c.get("/approvals/pending", params={"limit": 10000}).json()
        }
    assert r.status_code == 409 and r.json()["status"] == "expired"
    with Store(api.db) as store:
        assert store.get(rid).status == "expired"


def test_unknown_ids_are_not_found_and_a_unique_prefix_names_one_request(
    api: ApiServer,
) -> None:
    rid = submit(api)["action_id"]
    with api.client(BOT) as c:  # agents name whole ids only
        assert c.get(f"/approval/{rid[:10]}/status").status_code == 404
    with api.client(ALICE) as c:
        assert c.get(f"/approval/{new_id()}/status").status_code == 404
        assert c.get("/approval/..%2F..%2Fetc/status").status_code == 404
        with Store(api.db) as store:
            assert store.get(rid).status == "pending"
        # Like `sentinel approve`, the API takes a unique prefix of the request id.
        r = c.post(f"/approval/{rid[:10]}/approve")
        assert r.status_code == 200 and r.json()["action_id"] == rid
    with Store(api.db) as store:
        assert store.get(rid).status == "approved"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, None),
        (b"[1,2]", 422, None),
        (b'{"parameters": {}}', 422, "function_name"),
        (b'{"function_name": "f", "parameters": [1]}', 422, "parameters"),
        (b'{"function_name": "f", "timeout_seconds": -1}', 422, "timeout_seconds"),
        (b'{"function_name": "f", "timeout_at": "yesterday"}', 422, "timeout_at"),
        (b'{"function_name": "f", "action_id": "../x"}', 422, "action_id"),
        (b'{"function_name": "f", "value_at_risk": "lots"}', 422, "value_at_risk"),
    ],
)
def test_bad_bodies_get_a_clear_error(
    api: ApiServer, body: bytes, status: int, field: str | None
) -> None:
    with api.client(BOT) as c:
        r = c.post("/approval", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert r.json()["error"]
    if field:
        assert r.json()["field"] == field


def test_oversized_bodies_are_refused(api: ApiServer) -> None:
    with api.client(BOT) as c:
        r = c.post("/approval", content=b"{" + b" " * (2 << 20) + b"}")
    assert r.status_code == 413


def test_original_timeout_at_is_honoured(api: ApiServer) -> None:
    from datetime import UTC, datetime, timedelta

    at = (datetime.now(UTC) + timedelta(seconds=30)).replace(tzinfo=None).isoformat()
    rid = submit(api, timeout_seconds=None, timeout_at=at)["action_id"]
    with Store(api.db) as store:
        rec = store.get(rid)
    assert 25 < rec.expires_at - rec.created_at <= 30


def test_responses_are_signed_and_carry_no_cors(api: ApiServer) -> None:
    rid = submit(api)["action_id"]
    with api.client(BOT) as c:
        r = c.get(f"/approval/{rid}/status", headers={"Origin": "https://evil.example"})
        pre = c.options(
            f"/approval/{rid}/status",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert (
        verify(
            SECRET, r.headers["x-sentinel-timestamp"], r.headers["x-sentinel-signature"], r.content
        )
        is None
    )
    for resp in (r, pre):
        assert not any(h.lower().startswith("access-control-") for h in resp.headers)


def test_openapi_describes_every_endpoint(api: ApiServer) -> None:
    with api.client(BOT) as c:
        doc = c.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for method, path in ENDPOINTS + [("GET", "/health")]:
        assert (method, path.replace("{id}", "{action_id}")) in paths


def test_loopback_detection() -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.8.0.1")
    )
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("10.0.0.1")
        and not is_loopback("example.com")
    )


def test_the_pending_list_follows_every_change_and_pages(api: ApiServer) -> None:
    a = submit(api)["action_id"]
    b = submit(api)["action_id"]
    with api.client(ALICE) as c:
        before = [
            p["action_id"] for p in c.get("/approvals/pending", params={"limit": 10000}).json()
        ]
        assert a in before and b in before and before.index(a) < before.index(b)  # oldest first
        assert (
            c.get("/approvals/pending", params={"limit": 10000}).json()
            == c.get("/approvals/pending", params={"limit": 10000}).json()
        )
        assert c.post(f"/approval/{a}/approve").status_code == 200
        after = [
            p["action_id"] for p in c.get("/approvals/pending", params={"limit": 10000}).json()
        ]
        assert a not in after and b in after  # the cached list was rebuilt after the decision
        assert len(c.get("/approvals/pending", params={"limit": 1}).json()) == 1
        for bad in ("0", "10001", "abc", "-1"):
            r = c.get("/approvals/pending", params={"limit": bad})
            assert r.status_code == 422 and r.json()["field"] == "limit"
