"""Edit, then approve over the API: a real ``sentinel serve`` process signs the edited approval
with its service key (over the edit digest), a real @protect'ed call waiting in another process
checks it and runs once with the edit; a value the recorded schema refuses is a 422 naming the
parameter, with nothing recorded."""

from __future__ import annotations

import pytest

from tests.server import test_service_key as sk
from tests.server.conftest import ApiServer, result_of, wait_pending

signed = sk.signed  # the same fixtures: operators file, service key, a running server
server = sk.server


@pytest.mark.e2e
def test_an_api_approval_with_edits_runs_the_edited_call(server: ApiServer, signed: sk.Signed) -> None:
    agent = sk.start_agent(signed, server.db, "    approvers: [finance]")
    try:
        rid = wait_pending(server, sk.ALICE)["action_id"]
        with server.client(sk.ALICE) as c:
            bad = c.post(f"/approval/{rid}/approve", json={"arguments": {"amount": "lots"}})
            assert bad.status_code == 422, bad.text
            assert bad.json()["field"] == "arguments.amount"
            assert "parameter 'amount' expects integer" in bad.json()["error"]
            unknown = c.post(f"/approval/{rid}/approve", json={"arguments": {"amt": 1}})
            assert unknown.status_code == 422 and "no parameter 'amt'" in unknown.json()["error"]
            assert sk.votes(server, rid).is_pending and not sk.votes(server, rid).votes
            ok = c.post(
                f"/approval/{rid}/approve",
                json={"reason": "lowered", "arguments": {"amount": 400}},
            )
        assert ok.status_code == 200, ok.text
        assert ok.json()["edit"]["values"] == {"amount": 400}
        assert ok.json()["edit"]["changes"] == [{"name": "amount", "before": 5000, "after": 400}]
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result
    assert result["value"] == "sent 400 to acct-7"


@pytest.mark.e2e
def test_an_api_submission_records_its_schema_and_its_status_carries_the_edit(
    server: ApiServer,
) -> None:
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "to": {"type": "string"}},
        "required": ["amount", "to"],
    }
    with server.client(sk.BOT) as agent:
        bad = agent.post(
            "/approval", json={"function_name": "transfer", "arguments_schema": {"type": "x"}}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "arguments_schema"
        sent = agent.post(
            "/approval",
            json={
                "action_id": "pay-0001",
                "function_name": "transfer",
                "parameters": {"amount": 5000, "to": "acct-1"},
                "arguments_schema": schema,
            },
        )
        assert sent.status_code == 202, sent.text
    rid = sent.json()["request_id"]
    assert sk.votes(server, rid).arg_schema == schema
    with server.client(sk.ALICE) as op:
        ok = op.post(f"/approval/{rid}/approve", json={"arguments": {"amount": 250}})
    assert ok.status_code == 200, ok.text
    with server.client(sk.BOT) as agent:
        status = agent.get("/approval/pay-0001/status").json()
    assert status["status"] == "approved"
    assert status["edit"]["values"] == {"amount": 250}
