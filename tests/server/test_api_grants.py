"""Standing grants over the API: a real ``sentinel serve`` process, a real HTTP client (unsigned,
and once with signing on: the service key signs the grant for the token). Operators only; bad
terms are 422 naming the field."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sentinel.store import Store
from sentinel.trust import load_operators
from sentinel.trust.grants import verify_grant
from tests.server import test_service_key as sk
from tests.server.conftest import ALICE, BOT, ApiServer

signed = sk.signed  # the fixtures of the signed server: operators file, service key, server
server = sk.server

GRANT = {
    "agent": "billing-bot",
    "function": "transfer_funds",
    "where": ["amount <= 500", "destination in ACC-1,ACC-2"],
    "for": "1h",
    "count": 3,
}


def submit(api: ApiServer) -> dict[str, Any]:
    body = {
        "action_id": uuid.uuid4().hex,
        "function_name": "transfer_funds",
        "rule_id": "big_transfer",
        "parameters": {"amount": 5000, "password": "hunter2", "to": "ACC-9"},
        "agent_id": "billing-bot",
        "timeout_seconds": 60,
    }
    with api.client(BOT) as c:
        r = c.post("/approval", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def test_create_list_show_revoke(api: ApiServer) -> None:
    with api.client(ALICE) as c:
        r = c.post("/grants", json=GRANT)
        assert r.status_code == 201, r.text
        g = r.json()
        assert g["signed"] is False and g["signer"] == "alice" and g["state"] == "active"
        assert [b["op"] for b in g["bounds"]] == ["lte", "in"] and g["max_count"] == 3
        listed = c.get("/grants", params={"status": "active"}).json()
        assert g["id"] in [x["id"] for x in listed]
        shown = c.get(f"/grants/{g['id'][:10]}").json()
        assert shown["id"] == g["id"] and shown["uses"] == []
        r = c.post(f"/grants/{g['id']}/revoke", json={"reason": "done"})
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        again = c.post(f"/grants/{g['id']}/revoke")
        assert again.status_code == 409 and "already revoked" in again.json()["error"]
        assert c.get("/grants/ffffffffffff").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"where": ["amount ~ 5"]}, "where", "'amount ~ 5' is not a bound"),
        ({"for": "1y"}, "where", "give a duration"),
        ({"where": None}, "confirm", '"confirm": true'),
        ({"count": 0}, "count", "at least 1"),
        ({"color": "red"}, "color", "unknown field"),
    ],
)
def test_bad_terms_are_422_naming_the_field(
    api: ApiServer, change: dict[str, Any], field: str, text: str
) -> None:
    body = {k: v for k, v in {**GRANT, **change}.items() if v is not None}
    with api.client(ALICE) as c:
        r = c.post("/grants", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and text in r.json()["error"]


def test_agents_cannot_grant(api: ApiServer) -> None:
    with api.client(BOT) as c:
        assert c.post("/grants", json=GRANT).status_code == 403
        assert c.get("/grants").status_code == 403
    with api.client() as c:
        assert c.get("/grants").status_code == 401


def test_approve_with_grant(api: ApiServer) -> None:
    rid = submit(api)["request_id"]
    with api.client(ALICE) as c:
        r = c.post(f"/approval/{rid}/approve-with-grant", json={"for": "8h", "count": 5})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "approved" and out["grant"]["request_id"] == rid
        bounds = {(b["param"], b["op"], b["value"]) for b in out["grant"]["bounds"]}
        assert ("amount", "lte", 5000) in bounds and ("to", "eq", "ACC-9") in bounds
        assert not any(b[0] == "password" for b in bounds)  # masked: left out, said so
        assert any("password" in n for n in out["notes"])
        again = c.post(f"/approval/{rid}/approve-with-grant", json={"for": "8h"})
        assert again.status_code == 409
        mine = [g for g in c.get("/grants").json() if g["request_id"] == rid]
        assert len(mine) == 1


@pytest.mark.e2e
def test_a_signed_servers_grant_verifies_for_the_token(server: ApiServer, signed: sk.Signed) -> None:
    with server.client(sk.ALICE) as c:
        r = c.post("/grants", json=GRANT)
    assert r.status_code == 201, r.text
    g = r.json()
    assert g["signed"] is True and g["signer"] == "alice"
    store = Store(server.db)
    try:
        stored = store.get_grant(g["id"])
    finally:
        store.close()
    who = verify_grant(load_operators(signed.operators), stored, stored.created_at)
    assert who.name == "alice" and who.via == "sentinel-serve"
