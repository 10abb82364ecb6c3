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
            rid = uuid.uuid4().hex
            body = {"action_id": rid, "function_name": "deploy", "parameters": {"env": "prod"}}
            with srv.client(BOT) as c:
                assert c.post("/approval", json=body).status_code == 202
                assert c.post("/approval", json=body).status_code == 202  # a retry: no new message
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
