"""``sentinel serve`` notifies once for each request submitted over HTTP (not for re-posts)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.server.conftest import BOT, start_server
from tests.webhook.receiver import Receiver, Reply


def test_server_notifies_slack_once_per_new_request_with_its_own_decide_url(tmp_path: Path) -> None:
    with Receiver(lambda *a: Reply(200, b"ok")) as rx:
        srv = start_server(tmp_path, extra_env={"SENTINEL_NOTIFY_SLACK": f"{rx.url}/services/x"})
        try:
            key = uuid.uuid4().hex
            body = {"action_id": key, "function_name": "deploy", "parameters": {"env": "prod"}}
            with srv.client(BOT) as c:
                first = c.post("/approval", json=body)
                assert first.status_code == 202
                assert c.post("/approval", json=body).status_code == 202  # a retry: no new message
            rid = first.json()["request_id"]  # chosen by the server; the decide URL names it
            deadline = time.monotonic() + 15
            while not rx.requests("POST") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            posts = rx.requests("POST")
        finally:
            srv.stop()
    assert len(posts) == 1
    text = posts[0].body.decode()
    assert "deploy" in text and f"{srv.url}/approval/{rid}/approve" in text


def test_notify_all_announces_every_new_request_once_whoever_submitted_it(tmp_path: Path) -> None:
    from sentinel.store import NewRequest, Store

    db = tmp_path / "shared.db"
    store = Store(db)

    def queue_request(fn: str) -> str:
        rid = uuid.uuid4().hex
        store.submit(
            NewRequest(
                id=rid,
                function=fn,
                arguments={},
                digest="e" * 64,
                timeout_seconds=600,
            )
        )
        return rid

    queue_request("already_waiting")  # pending before the server starts: not re-announced
    with Receiver(lambda *a: Reply(200, b"ok")) as rx:
        srv = start_server(
            tmp_path,
            db=db,
            extra_env={"SENTINEL_NOTIFY_SLACK": f"{rx.url}/services/x"},
            args=["--notify-all"],
        )
        try:
            queue_request("from_a_queue_agent")  # written straight to the database
            with srv.client(BOT) as c:
                body = {
                    "action_id": uuid.uuid4().hex,
                    "function_name": "from_http",
                    "parameters": {},
                }
                assert c.post("/approval", json=body).status_code == 202
            deadline = time.monotonic() + 15
            while len(rx.requests("POST")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # a duplicate would arrive within a watch interval or two
            texts = [p.body.decode() for p in rx.requests("POST")]
        finally:
            srv.stop()
            store.close()
    assert len(texts) == 2, texts
    assert any("from_a_queue_agent" in t for t in texts) and any("from_http" in t for t in texts)
    assert not any("already_waiting" in t for t in texts)
