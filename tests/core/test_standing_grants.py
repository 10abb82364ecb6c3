"""Standing grants in the decision core: real rules files, the real SQLite store, signing on
(the tester is a trusted operator, as in every test). A call the policy sends for approval runs
at once when it fits a valid grant; otherwise it waits (here: a short timeout, so "waits" shows
as SentinelTimeoutError)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, SentinelTimeoutError
from sentinel.guard import Guard
from sentinel.identity import current_operator
from sentinel.policy import Action, Verdict
from sentinel.runtime import Escalation, GovernedCall
from sentinel.store import GrantBound, NewGrant, Store
from sentinel.trust.decide import Decider
from sentinel.trust.grants import sign_grant

POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} needs approval"
  - id: huge_transfer
    function_pattern: "transfer"
    conditions:
      - {param: amount, operator: gt, value: 1000000}
    action: block
    message: "Transfers above a million are blocked"
  - id: wire
    function_pattern: "wire"
    action: require_approval
    grantable: false
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "home" / "sentinel.db"


@pytest.fixture
def guard(write_rules: Any, db: Path) -> Guard:
    rules = write_rules(POLICY)
    return Guard(SentinelConfig(rules_path=rules, db_path=db, agent_id="billing", timeout_seconds=0.4))


def run(guard: Guard, function: str, **params: Any) -> str:
    return guard.run_sync(function, params, lambda: "ran")


def make(db: Path, function: str = "transfer", **terms: Any) -> Any:
    store = Store(db)
    try:
        new = NewGrant(agent="billing", function=function, **terms)
        return Decider.local("cli").create_grant(store, new)
    finally:
        store.close()


def kinds(db: Path) -> list[str]:
    from sentinel import runtime

    for sink in list(runtime._sinks.values()):
        sink.flush()
    store = Store(db)
    try:
        return [e.kind for e in store.events_after(0)]
    finally:
        store.close()


def test_a_fitting_call_runs_without_waiting(guard: Guard, db: Path) -> None:
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=4000, destination="ACC-1")
    g = make(db, bounds=(GrantBound("amount", "lte", 5000), GrantBound("destination", "in", ["ACC-1"])))
    start = time.monotonic()
    assert run(guard, "transfer", amount=4000, destination="ACC-1") == "ran"
    assert time.monotonic() - start < 0.4  # no wait for a person
    store = Store(db)
    try:
        events = store.events_after(0)
        used = [e for e in events if e.kind == "grant_used"]
        assert len(used) == 1 and used[0].data["grant_id"] == g.id
        assert used[0].rule_id == "big_transfer" and used[0].value_at_risk == 4000
        assert store.get_grant(g.id).used_count == 1
    finally:
        store.close()
    # The use is recorded (in the chain, in the consuming transaction) before the call runs;
    # its outcome names the grant.
    assert kinds(db)[-2:] == ["grant_used", "executed"]
    store = Store(db)
    try:
        executed = store.events_after(0)[-1]
        assert executed.data["grant_id"] == g.id and executed.rule_id == "big_transfer"
    finally:
        store.close()


@pytest.mark.parametrize(
    "params",
    [
        {"amount": 5001, "destination": "ACC-1"},  # over the amount bound
        {"amount": 2000, "destination": "ACC-2"},  # destination not in the set
        {"amount": 2000},  # a bounded parameter missing
        {"amount": 2000, "destination": ["ACC-1"]},  # a list is not a member of the set
    ],
)
def test_a_call_outside_any_bound_waits(guard: Guard, db: Path, params: dict[str, Any]) -> None:
    make(db, bounds=(GrantBound("amount", "lte", 5000), GrantBound("destination", "in", ["ACC-1"])))
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", **params)
    assert "grant_used" not in kinds(db)


def test_other_agent_or_function_does_not_match(write_rules: Any, db: Path) -> None:
    other = Guard(
        SentinelConfig(
            rules_path=write_rules(POLICY), db_path=db, agent_id="sales", timeout_seconds=0.3
        )
    )
    make(db)
    with pytest.raises(SentinelTimeoutError):
        run(other, "transfer", amount=2000)


def test_expiry_ends_it_and_is_recorded(guard: Guard, db: Path) -> None:
    make(db, expires_at=time.time() + 0.6)
    assert run(guard, "transfer", amount=2000) == "ran"
    time.sleep(0.65)
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)
    assert "grant_expired" in kinds(db)


def test_revoke_makes_the_next_call_wait(guard: Guard, db: Path) -> None:
    g = make(db)
    assert run(guard, "transfer", amount=2000) == "ran"
    store = Store(db)
    try:
        store.revoke_grant(g.id, current_operator("cli"))
    finally:
        store.close()
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)


def test_count_and_total_exhaust(guard: Guard, db: Path) -> None:
    make(db, max_count=2)
    assert run(guard, "transfer", amount=2000) == "ran"
    assert run(guard, "transfer", amount=2000) == "ran"
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)
    assert kinds(db).count("grant_exhausted") == 1
    make(db, max_total=5000.0)
    assert run(guard, "transfer", amount=3000) == "ran"
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2500)  # 5500 > 5000
    assert run(guard, "transfer", amount=2000) == "ran"


def test_a_block_is_never_lowered(guard: Guard, db: Path) -> None:
    make(db)  # no bound at all
    with pytest.raises(SentinelBlockedError) as err:
        run(guard, "transfer", amount=2_000_000)
    assert not isinstance(err.value, SentinelTimeoutError)
    assert "grant_used" not in kinds(db)


def test_grantable_false_always_waits(guard: Guard, db: Path) -> None:
    make(db, function="wire")
    with pytest.raises(SentinelTimeoutError):
        run(guard, "wire", amount=1)


class _Escalate:
    """A hook standing in for anomaly detection: escalates every call to ``action``."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def assess(self, call: GovernedCall, verdict: Verdict) -> Escalation:
        return Escalation(self.action, "unusual amount for this agent", "anomaly", 9.0)

    def observe(self, call: GovernedCall, succeeded: bool) -> None:
        pass

    def abandon(self, call: GovernedCall) -> None:
        pass


@pytest.mark.parametrize("action", [Action.BLOCK, Action.REQUIRE_APPROVAL])
def test_an_anomaly_escalation_is_not_overridden(
    write_rules: Any, db: Path, action: Action
) -> None:
    guard = Guard(
        SentinelConfig(
            rules_path=write_rules(POLICY), db_path=db, agent_id="billing", timeout_seconds=0.3
        ),
        hooks=[_Escalate(action)],
    )
    make(db)
    with pytest.raises(SentinelBlockedError):
        run(guard, "transfer", amount=2000)
    assert "grant_used" not in kinds(db)


def test_an_unsigned_grant_row_is_refused_and_audited(guard: Guard, db: Path) -> None:
    store = Store(db)
    try:  # written straight to the store: what anyone who can write the database could do
        forged = store.create_grant(NewGrant("billing", "transfer"), current_operator("cli"))
    finally:
        store.close()
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)
    store = Store(db)
    try:
        refused = [e for e in store.events_after(0) if e.kind == "grant_refused"]
        assert refused and refused[0].data["grant_id"] == forged.id
        assert "no operator signature" in (refused[0].reason or "")
        assert store.get_grant(forged.id).used_count == 0
    finally:
        store.close()


def test_a_signature_over_other_terms_is_refused(guard: Guard, db: Path, tester_key: Any) -> None:
    narrow = NewGrant(
        "billing", "transfer", (GrantBound("amount", "lte", 10),), created_at=time.time()
    )
    signed = sign_grant(tester_key, narrow, "tester")
    wide = NewGrant(  # the same id, time and signature on wider terms
        "billing", "transfer", (), id=signed.id, created_at=signed.created_at,
        signer=signed.signer, signature=signed.signature,
    )  # fmt: skip
    store = Store(db)
    try:
        store.create_grant(wide, current_operator("cli"))
    finally:
        store.close()
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)
    assert "grant_refused" in kinds(db)


def test_a_store_error_while_checking_means_no_grant(
    guard: Guard, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.errors import StoreError
    from sentinel.store.operations import StoreOperations

    make(db)

    def broken(*_a: Any, **_k: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(StoreOperations, "consume_grant", broken)
    with pytest.raises(SentinelTimeoutError):  # asked a person instead of running
        run(guard, "transfer", amount=2000)


async def test_async_calls_use_grants_too(guard: Guard, db: Path) -> None:
    make(db, max_count=1)

    async def invoke() -> str:
        return "ran"

    assert await guard.run_async("transfer", {"amount": 2000}, invoke) == "ran"
    with pytest.raises(SentinelTimeoutError):
        await guard.run_async("transfer", {"amount": 2000}, invoke)


def test_preview_says_a_grant_covers_the_call_and_counts_nothing(guard: Guard, db: Path) -> None:
    assert guard.preview("transfer", {"amount": 2000}).action is Action.REQUIRE_APPROVAL
    g = make(db, max_count=1, bounds=(GrantBound("amount", "lte", 5000),))
    seen = guard.preview("transfer", {"amount": 2000})
    assert seen.action is Action.ALLOW and g.id[:12] in seen.reason
    assert guard.preview("transfer", {"amount": 9000}).action is Action.REQUIRE_APPROVAL
    assert guard.preview("transfer", {"amount": 2_000_000}).action is Action.BLOCK
    store = Store(db)
    try:
        assert store.get_grant(g.id).used_count == 0  # a preview counts nothing
    finally:
        store.close()
    assert run(guard, "transfer", amount=2000) == "ran"
    assert guard.preview("transfer", {"amount": 2000}).action is Action.REQUIRE_APPROVAL  # used up


def test_a_grant_still_answers_after_the_shared_store_was_closed(guard: Guard, db: Path) -> None:
    """The guard keeps its database's location, not a store: once ``close_shared`` closed the
    store, the next granted call opens one again (and the use is counted, the revocation seen)."""
    from sentinel.runtime import close_shared, store_at

    g = make(db, max_count=5)
    assert run(guard, "transfer", amount=2000) == "ran"
    where, _gate = guard._grant_gate_of()
    first = store_at(where)
    close_shared(under=db.parent)
    assert first.closed
    assert run(guard, "transfer", amount=2000) == "ran"
    assert store_at(where) is not first and not store_at(where).closed
    store = Store(db)
    try:
        assert store.get_grant(g.id).used_count == 2
        store.revoke_grant(g.id, current_operator("cli"))
    finally:
        store.close()
    with pytest.raises(SentinelTimeoutError):
        run(guard, "transfer", amount=2000)
