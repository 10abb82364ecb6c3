"""``sentinel serve --db postgresql://…``: the API runs on PostgreSQL (submit, list, decide), and
its start-up line names the database with the password masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sentinel.store.location import open_store
from tests.server.conftest import ALICE, BOT, ApiServer, start_server


@pytest.fixture
def pg_api(pg_url: str, tmp_path: Path) -> Any:
    open_store(pg_url).close()  # the schema, as `sentinel db migrate` makes it
    server = start_server(tmp_path, db=pg_url)  # type: ignore[arg-type]
    yield server
    server.stop()


def test_api_on_postgresql_submits_lists_and_decides(pg_api: ApiServer, pg_url: str) -> None:
    secret = urlsplit(pg_url).password or ""
    log = pg_api.log.read_text()
    assert "(database postgresql://sentinel:***@127.0.0.1" in log, log
    assert secret not in log
    with pg_api.client(BOT) as c:
        reply = c.post(
            "/approval",
            json={"action_id": "pg-request-1", "function_name": "transfer_funds", "parameters": {"amount": 9}},
        )
    assert reply.status_code == 202, reply.text
    rid = reply.json()["action_id"]
    with pg_api.client(ALICE) as c:
        listed = [p["action_id"] for p in c.get("/approvals/pending").json()]
        assert rid in listed
        ok = c.post(f"/approval/{rid}/approve", json={"reason": "fine"})
    assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text
    with open_store(pg_url, create=False) as store:
        assert store.get(rid).status == "approved"
    assert secret not in pg_api.log.read_text()
