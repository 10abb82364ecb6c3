"""Approve with edited arguments: the store contract on both backends (SQLite, PostgreSQL).

An approval may carry an :class:`ArgumentEdit`; it is recorded in the same compare-and-set as the
decision (exactly once), its ``approved`` event keeps both versions and who changed what, and a
request it cannot apply to (a quorum, an unknown parameter) is refused with nothing written.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sentinel.edits import argument_schema, build_edit, check_edit, edit_digest
from sentinel.errors import DecisionConflict, EditRefused
from sentinel.store.models import DecisionTerms
from tests.store import test_contract as _contract
from tests.store.factories import new_request, operator
from tests.store.test_contract import Backend

backend = _contract.backend  # the same fixtures: both backends
store = _contract.store


def transfer(amount: int, to: str, api_key: str = "") -> None: ...


SCHEMA = argument_schema(transfer)


def test_schema_is_recorded_and_an_edit_is_decided_once_with_both_versions(store: Any) -> None:
    rec = store.submit(new_request(arg_schema=SCHEMA))
    assert store.get(rec.id).arg_schema == SCHEMA
    values = check_edit(rec, {"amount": "400"})
    assert values == {"amount": 400}
    edit = build_edit(rec, values, "alice", operator("alice").label)
    done = store.decide(rec.id, True, operator("alice"), "lowered", edit=edit)
    assert done.status == "approved" and done.edit is not None
    assert done.edit.values == {"amount": 400} and done.edit.digest == edit_digest(
        rec.digest, values
    )
    assert done.edited_arguments == {**rec.arguments, "amount": 400}
    again = store.get(rec.id)
    assert again.edit == done.edit and again.to_dict()["edit"]["values"] == {"amount": 400}
    event = store.history()[0]
    assert event.kind == "approved"
    recorded = event.data["edit"]
    assert recorded["changes"] == [{"name": "amount", "before": 1500, "after": 400}]
    assert recorded["arguments_before"]["amount"] == 1500
    assert recorded["arguments_after"]["amount"] == 400
    assert recorded["operator"] == "alice" and recorded["digest"] == edit.digest
    with pytest.raises(DecisionConflict, match="already approved"):
        store.decide(
            rec.id, True, operator("bob"), edit=build_edit(rec, {"amount": 300}, "bob", None)
        )
    assert store.get(rec.id).edit.values == {"amount": 400}  # the first decision stands


def test_edit_refused_with_nothing_written(store: Any) -> None:
    quorum = store.submit(new_request(arg_schema=SCHEMA, terms=DecisionTerms(quorum=2)))
    with pytest.raises(EditRefused, match="needs 2 approvals"):
        store.decide(
            quorum.id,
            True,
            operator("alice"),
            edit=build_edit(quorum, {"amount": 1}, "alice", None),
        )
    plain = store.submit(new_request(arg_schema=SCHEMA))
    with pytest.raises(EditRefused, match="no parameter 'nope'"):
        store.decide(
            plain.id, True, operator("alice"), edit=build_edit(plain, {"nope": 1}, "alice", None)
        )
    with pytest.raises(EditRefused, match="only an approval"):
        store.decide(
            plain.id, False, operator("alice"), edit=build_edit(plain, {"amount": 1}, "alice", None)
        )
    assert store.get(quorum.id).is_pending and not store.get(quorum.id).votes
    assert store.get(plain.id).is_pending
    assert [e.kind for e in store.history()] == ["approval_requested"] * 2


def test_check_edit_names_the_parameter_and_its_type() -> None:
    rec = _record()
    with pytest.raises(
        EditRefused, match=r"parameter 'amount' expects integer, got 'lots'"
    ) as info:
        check_edit(rec, {"amount": "lots"})
    assert info.value.parameter == "amount"
    with pytest.raises(
        EditRefused, match=r"no parameter 'amt' \(parameters: amount, api_key, to\)"
    ):
        check_edit(rec, {"amt": "1"})
    with pytest.raises(EditRefused, match="'api_key' is masked"):
        check_edit(rec, {"api_key": "x"})
    with pytest.raises(EditRefused, match="changes nothing"):
        check_edit(rec, {"amount": "1500"})
    with pytest.raises(EditRefused, match="recorded no argument schema"):
        check_edit(_record(arg_schema=None), {"amount": "1"})
    assert check_edit(rec, {"to": "400"}) == {"to": "400"}  # a string stays a string


def test_two_editors_racing_decide_once(backend: Backend) -> None:
    first = backend.open()
    rec = first.submit(new_request(arg_schema=SCHEMA))
    outcomes: list[str] = []

    def edit(amount: int, who: str) -> None:
        s = backend.open()
        try:
            s.decide(
                rec.id, True, operator(who), edit=build_edit(rec, {"amount": amount}, who, None)
            )
            outcomes.append(f"won:{amount}")
        except DecisionConflict:
            outcomes.append("lost")
        finally:
            s.close()

    threads = [threading.Thread(target=edit, args=(a, f"op{a}")) for a in (100, 200, 300, 400)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if o.startswith("won")]
    assert len(won) == 1 and outcomes.count("lost") == 3
    assert first.get(rec.id).edit.values == {"amount": int(won[0].split(":")[1])}
    assert [e.kind for e in first.history()].count("approved") == 1
    first.close()


def _record(**overrides: Any) -> Any:
    from sentinel.store.models import RequestRecord

    new = new_request(**{"arg_schema": SCHEMA, **overrides})
    return RequestRecord(
        id=new.id, status="pending", function=new.function, arguments=new.arguments,
        digest=new.digest, agent_id=None, pid=1, host="h", context=None, rule_id=None,
        rule_ids=(), reason="", value_at_risk=None, risk_score=None, risk_explanation=None,
        policy_version=None, channel="queue", created_at=0.0, expires_at=1e12,
        arg_schema=new.arg_schema,
    )  # fmt: skip
