"""Request-id squatting (issue 20.3): an agent credential must not be able to choose a request
id — e.g. the 12-character prefix ``sentinel pending`` prints for someone else's request — so
that ``sentinel approve <prefix>`` decides the squatter's request; a prefix that matches more than
one request is an ambiguity error in every verb; an agent credential reads only its own requests.

A real ``sentinel serve`` process, real ``sentinel`` CLI processes, one real SQLite file.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.errors import AmbiguousRequestId
from sentinel.store import Store
from tests.helpers import PYTHON, python_env
from tests.server.conftest import ALICE, BOT, TOKENS_ENV, ApiServer, start_server
from tests.store.factories import new_request

MALLORY = "snt_mallory-agent-token-0123456789ab"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = start_server(
        tmp_path, extra_env={"SENTINEL_API_TOKENS": f"{TOKENS_ENV},mallory:{MALLORY}:agent"}
    )
    yield server
    server.stop()


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *args, "--db", str(db)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def post(api: ApiServer, token: str, **body: Any) -> Any:
    data = {"function_name": "transfer_funds", "parameters": {"amount": 10}, **body}
    with api.client(token) as c:
        r = c.post("/approval", json=data)
    assert r.status_code == 202, r.text
    return r.json()


def test_a_squatted_prefix_never_approves_the_squatters_request(api: ApiServer) -> None:
    victim = post(api, BOT, action_id=uuid.uuid4().hex, parameters={"amount": 10})
    victim_id = victim["action_id"]
    prefix = victim_id[:12]  # what `sentinel pending` prints
    squat = post(
        api, MALLORY, action_id=prefix, function_name="wire_everything", parameters={"to": "m"}
    )
    # The server chose the squatter's id; the caller's value is only a correlation key.
    assert squat["request_id"] != prefix and squat["client_action_id"] == prefix
    assert not squat["request_id"].startswith(prefix)

    done = cli(api.db, "approve", prefix)
    assert done.returncode == 0, done.stderr
    with Store(api.db) as store:
        assert store.get(victim_id).status == "approved"
        assert store.get(squat["request_id"]).status == "pending"


def test_a_prefix_matching_two_requests_is_an_error_in_every_verb(
    api: ApiServer, tmp_path: Path
) -> None:
    # A row from before the fix (or written by anything with database access) whose whole id is
    # the short prefix of another: the exact match must not win.
    with Store(api.db) as store:
        victim = store.submit(new_request(function="transfer_funds"))
        prefix = victim.id[:12]
        squat = store.submit(new_request(id=prefix, function="wire_everything"))
        for verb in ("approve", "deny", "show"):
            run = cli(api.db, verb, prefix)
            assert run.returncode == 1, (verb, run.stdout)
            assert "ambiguous" in run.stderr, (verb, run.stderr)
            assert victim.id in run.stderr and "wire_everything" in run.stderr, run.stderr
        with api.client(ALICE) as c:
            r = c.post(f"/approval/{prefix}/approve")
        assert r.status_code == 409, r.text
        assert any(victim.id in cand for cand in r.json()["candidates"])
        with pytest.raises(AmbiguousRequestId) as err:
            store.get(prefix)
        assert len(err.value.candidates) == 2
        # The short row can no longer be named by its own id either: that is the point.
        assert {r.id for r in store.list_pending()} >= {victim.id, squat.id}
        # The whole id still names the victim's request.
        assert cli(api.db, "approve", victim.id).returncode == 0
        assert store.get(victim.id).status == "approved"
        assert squat.id in {r.id for r in store.list_pending()}


def test_an_agent_credential_reads_only_its_own_requests(api: ApiServer) -> None:
    key = uuid.uuid4().hex
    mine = post(api, BOT, action_id=key)
    rid = mine["request_id"]
    with api.client(BOT) as c:
        by_key = c.get(f"/approval/{key}/status")
        by_id = c.get(f"/approval/{rid}/status")
    assert by_key.status_code == 200 and by_key.json()["action_id"] == key  # what it asked
    assert by_key.json()["request_id"] == rid
    assert by_id.status_code == 200 and by_id.json()["request_id"] == rid
    with api.client(MALLORY) as c:
        assert c.get(f"/approval/{rid}/status").status_code == 404
        assert c.get(f"/approval/{key}/status").status_code == 404
    # The same correlation key from another credential is another request, not a conflict.
    other = post(api, MALLORY, action_id=key, parameters={"amount": 99})
    assert other["request_id"] != rid
    with api.client(ALICE) as c:  # operators read everything, and see who sent what
        assert c.get(f"/approval/{rid}/status").status_code == 200
        listed = {p["action_id"]: p for p in c.get("/approvals/pending").json()}
    assert listed[rid]["client_action_id"] == key and listed[rid]["submitted_by"] == "bot"


def test_a_prefix_too_short_to_name_a_request_decides_nothing(tmp_path: Path) -> None:
    # Found by trying the README as a new user: `sentinel deny 6` denied the only request whose id
    # started with 6. A typo must never decide a request.
    db = tmp_path / "s.db"
    with Store(db) as store:
        rec = store.submit(new_request(function="transfer_funds"))
        for key in (rec.id[:1], rec.id[:3]):
            run = cli(db, "deny", key)
            assert run.returncode == 1, run.stdout
            assert "too short" in run.stderr and "at least 4" in run.stderr, run.stderr
        assert store.get(rec.id).status == "pending"
        assert cli(db, "approve", rec.id[:4]).returncode == 0
        assert store.get(rec.id).status == "approved"


def test_the_command_center_refuses_an_ambiguous_id_too(tmp_path: Path) -> None:
    """The command center decides a queue row by its id through the same lookup: a legacy row
    whose whole id is the short prefix of another request is ambiguous there as well, and the
    decision records nothing; the victim's full id still decides only the victim's request."""
    from sentinel.identity import current_operator
    from sentinel_tui.data import DataSource

    db = tmp_path / "s.db"
    with Store(db) as store:
        victim = store.submit(new_request(function="transfer_funds"))
        squat = store.submit(new_request(id=victim.id[:12], function="wire_everything"))
    source = DataSource(db, operator=current_operator("tui"))
    try:
        outcome = source.decide(squat.id, True, None)
        assert not outcome.ok and outcome.error is not None
        assert "ambiguous" in outcome.error and victim.id in outcome.error, outcome.error
        with Store(db) as store:
            assert store.get(victim.id).status == "pending"
            assert {r.id for r in store.list_pending()} == {victim.id, squat.id}
        assert source.decide(victim.id, True, None).ok
    finally:
        source.close()
    with Store(db) as store:
        assert store.get(victim.id).status == "approved"
        assert squat.id in {r.id for r in store.list_pending()}
