"""``sentinel serve`` signs API decisions with its service key, on behalf of the token (its name,
role and groups bound in), and refuses over HTTP what the Decider refuses everywhere else.

Real parts: a real ``sentinel serve`` process, a real @protect'ed call waiting in another process
with signing on (its own copy of the operators file), real Ed25519 keys and real files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentinel.store import Store
from sentinel.trust import (
    add_operator,
    generate_key,
    load_key,
    load_operators,
    revoke_operator,
    verify_decision,
)
from tests.helpers import ROOT, python_env
from tests.server.conftest import (
    ApiServer,
    config_dir_for,
    result_of,
    start_server,
    trust_service_key,
    wait_pending,
)

AGENT = Path(__file__).parent / "agents" / "protected_agent.py"

ALICE = "snt_alice-finance-token-0123456789"
DAVE = "snt_dave-finance-token-0123456789ab"
BOB = "snt_bob-no-groups-token-0123456789"
CAROL = "snt_carol-admins-token-0123456789a"
BOT = "snt_bot-agent-token-0123456789abcdef"
TOKENS = (
    f"alice:{ALICE}:operator:finance,dave:{DAVE}::finance+ops,bob:{BOB},"
    f"carol:{CAROL}:operator:admins,bot:{BOT}:agent"
)


def rules_text(terms: str) -> str:
    return f"""
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {{param: amount, operator: gt, value: 1000}}
    action: require_approval
    message: "Transfer of {{amount}} needs approval"
{terms}
"""


@dataclass
class Signed:
    """A signed-mode setup: the operators file (a person "tester" and the service key), the
    server's config folder, and the service key."""

    tmp: Path
    operators: Path
    config: Path

    @property
    def service_key(self) -> Path:
        return self.config / "service-key.pem"


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    ops = etc / "operators.json"
    person = generate_key(tmp_path / "keys" / "tester.pem")
    add_operator(ops, "tester", person.public_key, ["finance", "ops"])
    config = config_dir_for(tmp_path)
    trust_service_key(config, ops)
    return Signed(tmp_path, ops, config)


def serve(signed: Signed, **env: str) -> ApiServer:
    return start_server(
        signed.tmp,
        extra_env={
            "SENTINEL_API_TOKENS": TOKENS,
            "SENTINEL_OPERATORS_FILE": str(signed.operators),
            **env,
        },
    )


@pytest.fixture
def server(signed: Signed) -> Iterator[ApiServer]:
    srv = serve(signed)
    yield srv
    srv.stop()


def start_agent(signed: Signed, db: Path, terms: str, operators: Path | None = None) -> Any:
    rules = signed.tmp / f"rules-{uuid.uuid4().hex[:8]}.yaml"
    rules.write_text(rules_text(terms))
    return subprocess.Popen(
        [sys.executable, str(AGENT), str(rules), str(db), "queue", "5000"],
        cwd=str(ROOT),
        env=python_env(
            SENTINEL_TIMEOUT="60",
            SENTINEL_OPERATORS_FILE=str(operators or signed.operators),
            SENTINEL_HOME=str(signed.tmp / "agent-home"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def decide(api: ApiServer, token: str, rid: str, verb: str = "approve") -> Any:
    with api.client(token) as c:
        return c.post(f"/approval/{rid}/{verb}", json={"reason": f"{verb} by test"})


def votes(api: ApiServer, rid: str) -> Any:
    with Store(api.db) as store:
        return store.get(rid)


# -- the waiting call ------------------------------------------------------------------------


@pytest.mark.e2e
def test_an_api_approval_is_signed_by_the_service_key_and_the_call_runs(
    server: ApiServer, signed: Signed
) -> None:
    agent = start_agent(signed, server.db, "    approvers: [finance]")
    try:
        rid = wait_pending(server, ALICE)["action_id"]
        r = decide(server, ALICE, rid)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved" and r.json()["approvals"] == 1
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result
    rec = votes(server, rid)
    (vote,) = rec.votes
    assert vote.operator == "alice" and vote.groups == ("finance",) and vote.role == "operator"
    assert vote.account == "token:alice" and vote.channel == "api"
    # Signed by the service key, for the token: the operators file verifies it as alice via it.
    assert vote.signature is not None
    assert vote.signature.startswith(load_key(signed.service_key).key_id + ":")
    who = verify_decision(
        load_operators(signed.operators), vote.signature, request_id=rec.id, digest=rec.digest,
        verdict="approve", operator="alice", decided_at=vote.decided_at,
        expires_at=rec.expires_at, role="operator", groups=("finance",), account="token:alice",
    )  # fmt: skip
    assert who.via == "sentinel-serve" and "finance" in who.names


@pytest.mark.e2e
def test_a_token_outside_the_approvers_is_refused_and_nothing_is_recorded(
    server: ApiServer, signed: Signed
) -> None:
    agent = start_agent(signed, server.db, "    approvers: [finance]")
    try:
        rid = wait_pending(server, ALICE)["action_id"]
        for verb in ("approve", "deny"):
            r = decide(server, BOB, rid, verb)
            assert r.status_code == 403, r.text
            assert "only finance may decide" in r.json()["error"]
            assert "you are bob (no groups), role operator" in r.json()["error"]
        rec = votes(server, rid)
        assert rec.status == "pending" and rec.votes == ()
        assert decide(server, ALICE, rid).status_code == 200
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result
    assert [v.operator for v in votes(server, rid).votes] == ["alice"]


@pytest.mark.e2e
def test_approvers_admins_are_matched_by_what_the_token_carries(
    server: ApiServer, signed: Signed
) -> None:
    agent = start_agent(signed, server.db, "    approvers: [admins]")
    try:
        rid = wait_pending(server, ALICE)["action_id"]
        assert decide(server, ALICE, rid).status_code == 403  # finance, not admins
        r = decide(server, CAROL, rid)
        assert r.status_code == 200, r.text
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result
    (vote,) = votes(server, rid).votes
    assert vote.operator == "carol" and vote.groups == ("admins",)


@pytest.mark.e2e
def test_approvers_naming_the_token_role_count_its_signed_role(
    server: ApiServer, signed: Signed
) -> None:
    agent = start_agent(signed, server.db, "    approvers: [operator]")
    try:
        rid = wait_pending(server, ALICE)["action_id"]
        r = decide(server, BOB, rid)  # no groups: the role the service key bound is enough
        assert r.status_code == 200, r.text
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result


@pytest.mark.e2e
def test_a_quorum_vote_returns_the_tally_and_each_token_counts_once(
    server: ApiServer, signed: Signed
) -> None:
    agent = start_agent(signed, server.db, "    approvers: [finance]\n    quorum: 2")
    try:
        listed = wait_pending(server, ALICE)
        rid = listed["action_id"]
        assert listed["terms"]["quorum"] == 2 and listed["terms"]["approvers"] == ["finance"]
        assert (listed["approvals"], listed["votes"]) == (0, [])
        first = decide(server, ALICE, rid)
        assert first.status_code == 202, first.text
        assert wait_pending(server, ALICE)["votes"] == [
            {"operator": "alice", "verdict": "approve", "signed": True}
        ]
        tally = first.json()
        assert tally["status"] == "pending"
        assert (tally["approvals"], tally["quorum"]) == (1, 2)
        assert tally["votes"] == [{"operator": "alice", "verdict": "approve", "signed": True}]
        again = decide(server, ALICE, rid)
        assert again.status_code == 403 and "you already voted" in again.json()["error"]
        assert len(votes(server, rid).votes) == 1
        second = decide(server, DAVE, rid)
        assert second.status_code == 200, second.text
        assert second.json()["status"] == "approved" and second.json()["approvals"] == 2
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is True, result


@pytest.mark.e2e
def test_a_revoked_service_keys_approval_is_refused_by_the_waiting_call(
    server: ApiServer, signed: Signed
) -> None:
    # The agent's host has the updated operators file (service key revoked); the server's copy
    # is stale, so it still signs. The waiting call checks with what it trusts, not the server.
    agent_etc = signed.tmp / "agent-etc"
    agent_etc.mkdir(mode=0o755)
    agent_ops = agent_etc / "operators.json"
    shutil.copy(signed.operators, agent_ops)
    revoke_operator(agent_ops, "sentinel-serve")
    agent = start_agent(signed, server.db, "    approvers: [finance]", operators=agent_ops)
    try:
        rid = wait_pending(server, ALICE)["action_id"]
        assert decide(server, ALICE, rid).status_code == 200
        result = result_of(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert result["ok"] is False
    assert result["error"].startswith("SentinelBlockedError")
    assert "decision not signed by a trusted operator" in result["error"]
    assert "'sentinel-serve' was revoked" in result["error"]


def test_a_service_key_revoked_while_serving_stops_signing_at_once(
    server: ApiServer, signed: Signed
) -> None:
    rid = submit(server, BOT)["request_id"]
    revoke_operator(signed.operators, "sentinel-serve")
    r = decide(server, ALICE, rid)
    assert r.status_code == 403, r.text
    assert "no trusted service key" in r.json()["error"]
    assert "sentinel operator init --service" in r.json()["error"]
    rec = votes(server, rid)
    assert rec.status == "pending" and rec.votes == ()


# -- requests submitted over the API -------------------------------------------------------------


def submit(api: ApiServer, token: str, **over: Any) -> dict[str, Any]:
    body = {
        "action_id": uuid.uuid4().hex,
        "function_name": "transfer_funds",
        "parameters": {"amount": 5000},
        "agent_id": "http-agent",
        "timeout_seconds": 60,
        **over,
    }
    with api.client(token) as c:
        r = c.post("/approval", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def test_a_token_cannot_approve_its_own_api_request(server: ApiServer) -> None:
    rid = submit(server, ALICE)["request_id"]
    rec = votes(server, rid)
    assert rec.requester == {"token": "alice", "role": "operator"}
    assert rec.terms.self_approval is False
    r = decide(server, ALICE, rid)
    assert r.status_code == 403, r.text
    assert "was made by you (token:alice)" in r.json()["error"]
    assert votes(server, rid).votes == ()
    # Another token may approve it.
    assert decide(server, DAVE, rid).status_code == 200
    assert votes(server, rid).status == "approved"


def test_submitted_terms_say_who_decides(server: ApiServer) -> None:
    rid = submit(
        server, BOT, terms={"approvers": ["finance"], "quorum": 2, "self_approval": False}
    )["request_id"]
    assert decide(server, BOB, rid).status_code == 403
    assert decide(server, ALICE, rid).status_code == 202
    done = decide(server, DAVE, rid)
    assert done.status_code == 200 and done.json()["approvals"] == 2
    mine = submit(server, ALICE, terms={"self_approval": True})["request_id"]
    assert decide(server, ALICE, mine).status_code == 200
    with server.client(BOT) as c:
        bad = c.post(
            "/approval",
            json={"function_name": "f", "terms": {"approvers": "finance"}},
        )
        odd = c.post("/approval", json={"function_name": "f", "terms": {"who": 1}})
    assert bad.status_code == 422 and bad.json()["field"] == "terms.approvers"
    assert odd.status_code == 422 and "unknown field 'who'" in odd.json()["error"]


# -- start-up ----------------------------------------------------------------------------------


def run_serve(signed: Signed, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "serve", "--db", str(signed.tmp / "s.db"),
         "--port", "1", *args],
        cwd=str(ROOT), capture_output=True, text=True, timeout=60,
        env=python_env(
            SENTINEL_API_TOKENS=TOKENS, SENTINEL_CONFIG_DIR=str(signed.config),
            SENTINEL_OPERATORS_FILE=str(signed.operators), **env,
        ),
    )  # fmt: skip


def test_serve_refuses_to_start_without_a_trusted_service_key(signed: Signed) -> None:
    signed.service_key.unlink()
    missing = run_serve(signed)
    assert missing.returncode == 1
    assert "API decisions must be signed" in missing.stderr
    assert f"there is no service key at {signed.service_key}" in missing.stderr
    assert "sentinel operator init --service" in missing.stderr
    assert "sentinel operator add sentinel-serve --service --key" in missing.stderr

    stranger = generate_key(signed.tmp / "other" / "k.pem")
    untrusted = run_serve(signed, "--service-key", str(stranger.path))
    assert untrusted.returncode == 1
    assert f"is not in the operators file {signed.operators}" in untrusted.stderr
    assert f"--key {stranger.public_key}" in untrusted.stderr

    person = load_key(signed.tmp / "keys" / "tester.pem")
    as_person = run_serve(signed, SENTINEL_SERVICE_KEY=str(person.path))
    assert as_person.returncode == 1
    assert "as operator 'tester', not as a service (field 'kind'" in as_person.stderr

    revoke_operator(signed.operators, "sentinel-serve")
    nowhere = signed.tmp / "nowhere.pem"
    gone = run_serve(signed, "--service-key", str(nowhere))
    assert gone.returncode == 1
    assert f"service key {nowhere} does not exist (named by --service-key)" in gone.stderr
    assert f"sentinel operator init --service --key {nowhere}" in gone.stderr


def test_without_operators_serve_starts_unsigned(tmp_path: Path) -> None:
    nobody = tmp_path / "no-etc" / "operators.json"  # whatever file the suite sets up elsewhere
    env = {"SENTINEL_API_TOKENS": TOKENS, "SENTINEL_OPERATORS_FILE": str(nobody)}
    srv = start_server(tmp_path, extra_env=env)
    try:
        assert "decisions unsigned" in srv.log.read_text()
        rid = submit(srv, BOT)["request_id"]
        assert decide(srv, ALICE, rid).status_code == 200
        (vote,) = votes(srv, rid).votes
        assert vote.signature is None and vote.operator == "alice"
    finally:
        srv.stop()


def test_add_token_with_groups_and_list_them(tmp_path: Path) -> None:
    tokens = tmp_path / "cfg" / "tokens.json"
    made = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "serve", "--tokens", str(tokens),
         "--add-token", "alice", "--group", "finance", "--group", "ops"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "token 'alice' (operator, groups finance, ops)" in made.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "serve", "--tokens", str(tokens), "--list-tokens"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    assert listed.stdout == "alice\toperator\tfinance,ops\n"
