"""Edit, then approve, end to end: a real @protect call waits in a real SQLite queue, an operator
approves it with edited arguments (signed with the tester's real key), and the function runs once
with the edited values; everything an edit must never do is refused and audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.edits import build_edit, edit_digest
from sentinel.errors import EditRefused
from sentinel.policy.loader import load_policy
from sentinel.store import Store
from sentinel.trust.decide import Decider

POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: huge_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 10000}
    action: block
    message: "Transfers above 10,000 are not allowed"
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(POLICY)
    return path


def cfg(rules: Path, db: Path) -> SentinelConfig:
    return SentinelConfig(rules_path=rules, db=db, timeout_seconds=30, show_waiting_hint=False)


def operator_does(db: Path, act: Callable[[Store, Any], None]) -> threading.Thread:
    """Run ``act(store, pending request)`` in another thread once a request waits."""
    errors: list[BaseException] = []

    def run() -> None:
        store = Store(db)
        try:
            for _ in range(500):
                pending = store.list_pending()
                if pending:
                    act(store, pending[0])
                    return
                time.sleep(0.01)
        except BaseException as exc:  # shown by the test that joins
            errors.append(exc)
        finally:
            store.close()

    t = threading.Thread(target=run)
    t.errors = errors  # type: ignore[attr-defined]
    t.start()
    return t


def events(db: Path, request_id: str) -> list[Any]:
    with Store(db) as store:
        return [e for e in reversed(store.history(limit=100)) if e.request_id == request_id]


def test_edited_approval_runs_once_with_the_edit_and_audits_both_versions(
    rules: Path, db_path: Path
) -> None:
    ran: list[tuple[Any, str]] = []

    @protect(cfg(rules, db_path))
    def transfer(amount: Decimal, destination: str, memo: str = "") -> str:
        ran.append((amount, destination))
        return f"sent {amount} to {destination}"

    t = operator_does(
        db_path,
        lambda s, rec: Decider.local("cli").decide(
            s, rec.id, True, "lowered", edits={"amount": "400.50", "destination": "ACC-2"},
            policy=load_policy(rules),
        ),
    )  # fmt: skip
    assert transfer(Decimal("5000"), "ACC-1") == "sent 400.5 to ACC-2"
    t.join()
    assert not t.errors  # type: ignore[attr-defined]
    assert ran == [(Decimal("400.50"), "ACC-2")]  # once, with the function's own type
    transfer.__sentinel_guard__.flush()  # type: ignore[attr-defined]
    req_id = store_request_id(db_path)
    kinds = [e.kind for e in events(db_path, req_id)]
    assert kinds == ["approval_requested", "approved", "executed"]
    requested, approved, executed = events(db_path, req_id)
    assert requested.data["arguments"]["amount"] == 5000
    schema = Store(db_path).get(req_id).arg_schema
    assert set(schema["properties"]) == {"amount", "destination", "memo"}
    edit = approved.data["edit"]
    assert {c["name"]: (c["before"], c["after"]) for c in edit["changes"]} == {
        "amount": (5000, 400.5),
        "destination": ("ACC-1", "ACC-2"),
    }
    assert edit["arguments_after"] == {"amount": 400.5, "destination": "ACC-2", "memo": ""}
    assert edit["operator"] and edit["digest"] == edit_digest(requested.digest, edit["values"])
    # The outcome is bound to the edited arguments, and names the edit.
    assert executed.digest not in (None, requested.digest)
    assert executed.data["edit"]["changes"] == edit["changes"]
    assert requested.value_at_risk == 5000 and executed.value_at_risk == 400.5  # what ran


def store_request_id(db: Path) -> str:
    with Store(db) as store:
        return next(e.request_id for e in store.history(limit=50) if e.kind == "approval_requested")


def test_an_edit_never_turns_a_blocked_call_into_an_allowed_one(rules: Path, db_path: Path) -> None:
    @protect(cfg(rules, db_path))
    def transfer(amount: int, destination: str) -> str:
        raise AssertionError("must not run")

    refusals: list[str] = []

    def decide(store: Store, rec: Any) -> None:
        decider = Decider.local("cli")
        # With the rules at hand the decider refuses it, writing nothing ...
        try:
            decider.decide(
                store, rec.id, True, edits={"amount": "20000"}, policy=load_policy(rules)
            )
        except EditRefused as exc:
            refusals.append(str(exc))
        assert store.get(rec.id).is_pending
        # ... and without them the waiting call refuses it itself.
        decider.decide(store, rec.id, True, edits={"amount": "20000"})

    t = operator_does(db_path, decide)
    with pytest.raises(SentinelBlockedError, match="edited call is blocked") as info:
        transfer(5000, "ACC-1")
    t.join()
    assert not t.errors  # type: ignore[attr-defined]
    transfer.__sentinel_guard__.flush()  # type: ignore[attr-defined]
    assert refusals and "blocked by rule huge_transfer" in refusals[0]
    kinds = [e.kind for e in events(db_path, info.value.request_id)]
    assert kinds == ["approval_requested", "approved", "blocked"]
    blocked = events(db_path, info.value.request_id)[-1]
    assert blocked.data["refused"] == "edited_call_blocked"


def test_an_edit_the_function_refuses_is_not_run(rules: Path, db_path: Path) -> None:
    @protect(cfg(rules, db_path))
    def transfer(amount: int, destination: str) -> str:
        raise AssertionError("must not run")

    bad: list[str] = []

    def decide(store: Store, rec: Any) -> None:
        try:
            Decider.local("cli").decide(store, rec.id, True, edits={"amount": "lots"})
        except EditRefused as exc:
            bad.append(str(exc))
        Decider.local("cli").decide(store, rec.id, False, "no")

    t = operator_does(db_path, decide)
    with pytest.raises(SentinelBlockedError):
        transfer(5000, "ACC-1")
    t.join()
    assert bad and "parameter 'amount' expects integer, got 'lots'" in bad[0]


def test_an_edit_written_onto_a_plain_signed_approval_does_not_verify(
    rules: Path, db_path: Path
) -> None:
    @protect(cfg(rules, db_path))
    def transfer(amount: int, destination: str) -> str:
        raise AssertionError("must not run")

    def forge(store: Store, rec: Any) -> None:
        decider = Decider.local("cli")
        plain = decider.vote(rec, True, None)  # signed over the call as sent
        forged = build_edit(rec, {"destination": "EVIL"}, decider.name, None)
        store.decide(rec.id, True, decider.operator, vote=plain, edit=forged)

    t = operator_does(db_path, forge)
    with pytest.raises(SentinelBlockedError, match="decision not signed by a trusted operator"):
        transfer(5000, "ACC-1")
    t.join()
    assert not t.errors  # type: ignore[attr-defined]


async def test_async_edited_call_runs_with_the_edit(rules: Path, db_path: Path) -> None:
    ran: list[int] = []

    @protect(cfg(rules, db_path))
    async def transfer(amount: int, destination: str) -> int:
        ran.append(amount)
        return amount

    t = operator_does(
        db_path,
        lambda s, rec: Decider.local("cli").decide(s, rec.id, True, edits={"amount": "900"}),
    )
    assert await transfer(5000, "ACC-1") == 900
    t.join()
    assert ran == [900]


def test_run_sync_without_rebind_refuses_an_edit(rules: Path, db_path: Path) -> None:
    from sentinel.guard import Guard

    guard = Guard(cfg(rules, db_path))
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}}
    t = operator_does(
        db_path, lambda s, rec: Decider.local("cli").decide(s, rec.id, True, edits={"amount": "9"})
    )
    with pytest.raises(SentinelBlockedError, match="cannot be run with other arguments"):
        guard.run_sync("transfer", {"amount": 5000}, lambda: 1 / 0, schema=schema)
    t.join()
