"""Standing grants in the store contract, on both backends (SQLite file, real PostgreSQL server):
create / get by prefix / list / revoke, approve-with-grant in one transaction, atomic
consumption within bounds and caps, expiry recorded when noticed, every change audited and
linked to the grant, and the database refusing edits of a grant's terms or counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.audit.keys import Verifier
from sentinel.audit.verify import verify
from sentinel.errors import (
    AmbiguousGrantId,
    DecisionConflict,
    GrantConflict,
    GrantNotFound,
)
from sentinel.store import GrantBound, NewGrant
from sentinel.store.models import DecisionTerms
from tests.store.factories import new_request, operator
from tests.store.test_contract import Backend, backend  # noqa: F401 - the parametrized fixture

AMOUNT_500 = GrantBound("amount", "lte", 500)


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:  # noqa: F811
    s = backend.open()
    yield s
    s.close()


def grant(**over: Any) -> NewGrant:
    fields: dict[str, Any] = dict(agent="billing", function="transfer", bounds=(AMOUNT_500,))
    fields.update(over)
    return NewGrant(**fields)


def kinds(store: Any) -> list[str]:
    return [e.kind for e in store.events_after(0)]


def test_create_get_list_and_prefix(store: Any) -> None:
    g = store.create_grant(grant(max_count=3, max_total=900.0), operator("alice"))
    assert g.status == "active" and g.used_count == 0 and g.max_count == 3
    assert g.created_by.startswith("alice@")
    assert store.get_grant(g.id[:8]) == g
    assert store.get_grant(g.id) == g
    assert [x.id for x in store.list_grants()] == [g.id]
    assert store.list_grants("revoked") == []
    with pytest.raises(GrantNotFound, match="too short"):
        store.get_grant("ab")
    with pytest.raises(GrantNotFound, match="no grant"):
        store.get_grant("ffffffff")
    (ev,) = store.events_after(0)
    assert ev.kind == "grant_created" and ev.data["grant_id"] == g.id
    assert ev.data["bounds"] == [{"param": "amount", "op": "lte", "value": 500}]


def test_ambiguous_prefix(store: Any) -> None:
    store.create_grant(grant(id="abcd1" + "0" * 27), operator())
    store.create_grant(grant(id="abcd2" + "0" * 27), operator())
    with pytest.raises(AmbiguousGrantId, match="ambiguous"):
        store.get_grant("abcd")
    with pytest.raises(GrantConflict, match="already exists"):
        store.create_grant(grant(id="abcd1" + "0" * 27), operator())


def test_consume_within_bounds_and_count(store: Any) -> None:
    g = store.create_grant(grant(max_count=2), operator())
    assert store.consume_grant("billing", "transfer", {"amount": 600}, 600.0) is None
    assert store.consume_grant("other", "transfer", {"amount": 1}, 1.0) is None
    assert store.consume_grant("billing", "pay", {"amount": 1}, 1.0) is None
    assert store.consume_grant("billing", "transfer", {}, None) is None  # bound param missing
    use = store.consume_grant("billing", "transfer", {"amount": 400}, 400.0, digest="d1")
    assert use.grant.id == g.id and use.n == 1 and use.grant.used_count == 1
    use2 = store.consume_grant("billing", "transfer", {"amount": "500"}, 500.0)
    assert use2.n == 2 and use2.grant.status == "exhausted"
    assert store.consume_grant("billing", "transfer", {"amount": 1}, 1.0) is None
    assert kinds(store) == ["grant_created", "grant_used", "grant_used", "grant_exhausted"]
    uses = store.grant_uses(g.id)
    assert [u.n for u in uses] == [2, 1] and uses[1].digest == "d1"
    used_events = [e for e in store.events_after(0) if e.kind == "grant_used"]
    assert [u.event_seq for u in reversed(uses)] == [e.seq for e in used_events]
    assert all(e.data["grant_id"] == g.id for e in used_events)


def test_max_total_counts_value(store: Any) -> None:
    store.create_grant(grant(bounds=(), max_total=1000.0), operator())
    assert store.consume_grant("billing", "transfer", {"amount": 600}, 600.0) is not None
    assert store.consume_grant("billing", "transfer", {"amount": 500}, 500.0) is None  # 1100
    assert store.consume_grant("billing", "transfer", {"amount": 1}, None) is None  # no value
    last = store.consume_grant("billing", "transfer", {"amount": 400}, 400.0)
    assert last.grant.used_total == 1000.0 and last.grant.status == "exhausted"


def test_every_bound_operator(store: Any) -> None:
    bounds = (
        GrantBound("amount", "lt", 100),
        GrantBound("amount", "gte", 10),
        GrantBound("destination", "in", ["ACC-1", "ACC-2"]),
        GrantBound("memo", "startswith", "inv-"),
        GrantBound("currency", "eq", "EUR"),
    )
    store.create_grant(grant(bounds=bounds), operator())
    ok = {"amount": 50, "destination": "ACC-2", "memo": "inv-7", "currency": "EUR"}
    for bad in (
        {"amount": 100}, {"amount": 9.99}, {"destination": "ACC-3"}, {"memo": "x-inv-"},
        {"currency": "USD"}, {"amount": "lots"}, {"amount": True}, {"memo": 7},
    ):  # fmt: skip
        assert store.consume_grant("billing", "transfer", {**ok, **bad}, None) is None, bad
    assert store.consume_grant("billing", "transfer", ok, 50.0) is not None


def test_revoke_makes_it_unusable(store: Any) -> None:
    g = store.create_grant(grant(), operator())
    revoked = store.revoke_grant(g.id[:10], operator("bob"), "done")
    assert revoked.status == "revoked" and revoked.ended_by.startswith("bob@")
    assert store.consume_grant("billing", "transfer", {"amount": 1}, 1.0) is None
    with pytest.raises(GrantConflict, match="already revoked"):
        store.revoke_grant(g.id, operator())
    assert kinds(store) == ["grant_created", "grant_revoked"]


def test_expired_grant_is_recorded_when_noticed(store: Any) -> None:
    g = store.create_grant(grant(expires_at=time.time() + 0.3), operator())
    assert store.consume_grant("billing", "transfer", {"amount": 1}, 1.0) is not None
    time.sleep(0.35)
    assert store.get_grant(g.id).state(time.time()) == "expired"
    assert store.consume_grant("billing", "transfer", {"amount": 1}, 1.0) is None
    assert store.get_grant(g.id).status == "expired"
    assert kinds(store) == ["grant_created", "grant_used", "grant_expired"]
    assert store.expire_grants() == 0
    g2 = store.create_grant(grant(expires_at=time.time() + 0.1), operator())
    time.sleep(0.15)
    assert store.expire_grants() == 1
    assert store.get_grant(g2.id).status == "expired"


def test_accept_refuses_and_audits(store: Any) -> None:
    g = store.create_grant(grant(), operator())
    assert (
        store.consume_grant(
            "billing", "transfer", {"amount": 1}, 1.0, accept=lambda _g: "no signature"
        )
        is None
    )
    assert store.get_grant(g.id).used_count == 0
    ev = store.events_after(0)[-1]
    assert ev.kind == "grant_refused" and ev.reason == "no signature"
    assert ev.data["grant_id"] == g.id
    other = store.create_grant(grant(), operator())
    use = store.consume_grant("billing", "transfer", {"amount": 1}, 1.0, only=[other.id])
    assert use.grant.id == other.id


def test_approve_with_grant_is_one_decision(store: Any) -> None:
    req = store.submit(new_request(agent_id="billing", function="transfer"))
    rec, g = store.approve_with_grant(
        req.id[:8], grant(request_id=req.id, max_count=5), operator("alice"), "ok"
    )
    assert rec.status == "approved" and g.request_id == req.id
    assert kinds(store) == ["approval_requested", "approved", "grant_created"]
    with pytest.raises(DecisionConflict, match="already approved"):
        store.approve_with_grant(req.id, grant(request_id=req.id), operator("bob"))
    assert len(store.list_grants()) == 1  # the losing approval made no grant


def test_approve_with_grant_refusals_write_nothing(store: Any) -> None:
    quorum = store.submit(
        new_request(agent_id="billing", function="transfer", terms=DecisionTerms(quorum=2))
    )
    with pytest.raises(GrantConflict, match="still pending"):
        store.approve_with_grant(quorum.id, grant(), operator("alice"))
    assert store.get(quorum.id).votes == ()
    other = store.submit(new_request(agent_id="billing", function="transfer"))
    with pytest.raises(GrantConflict, match="must be for its agent"):
        store.approve_with_grant(other.id, grant(function="pay"), operator("alice"))
    assert store.get(other.id).is_pending and store.list_grants() == []


def test_approve_with_grant_on_expired_request(store: Any) -> None:
    req = store.submit(new_request(agent_id="billing", timeout_seconds=0.2))
    time.sleep(0.25)
    with pytest.raises(DecisionConflict, match="expired"):
        store.approve_with_grant(req.id, grant(), operator())
    assert store.get(req.id).status == "expired"  # the expiry was recorded
    assert store.list_grants() == []


def test_the_database_refuses_rewriting_a_grant(store: Any, backend: Backend) -> None:  # noqa: F811
    g = store.create_grant(grant(max_count=2), operator())
    for statement in (
        "UPDATE grants SET bounds = '[]' WHERE id = ?",
        "UPDATE grants SET expires_at = 1e18 WHERE id = ?",
        "UPDATE grants SET used_count = 3 WHERE id = ?",
        "UPDATE grants SET signature = 'x' WHERE id = ?",
    ):
        with pytest.raises(backend.refused):
            backend.raw(statement, (g.id,))
    store.consume_grant("billing", "transfer", {"amount": 1}, 1.0)
    with pytest.raises(backend.refused):
        backend.raw("UPDATE grants SET used_count = 0 WHERE id = ?", (g.id,))
    store.revoke_grant(g.id, operator())
    with pytest.raises(backend.refused):
        backend.raw("UPDATE grants SET status = 'active' WHERE id = ?", (g.id,))


def test_threads_never_overspend(store: Any, backend: Backend) -> None:  # noqa: F811
    store.create_grant(grant(bounds=(), max_count=7), operator())
    won: list[int] = []

    def use() -> None:
        s = backend.open()
        try:
            for _ in range(4):
                if s.consume_grant("billing", "transfer", {"amount": 1}, 1.0) is not None:
                    won.append(1)
        finally:
            s.close()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 7
    assert len(store.grant_uses(store.list_grants()[0].id)) == 7


def test_grant_events_keep_the_chain(store: Any, tmp_path: Path) -> None:
    g = store.create_grant(grant(max_count=1), operator())
    store.consume_grant("billing", "transfer", {"amount": 1}, 1.0)
    store.create_grant(grant(), operator())
    assert store.get_grant(g.id).status == "exhausted"
    report = verify(store, anchor_dir=tmp_path / "anchors", verifier=Verifier({}, {}))
    assert report.ok, report.problems

