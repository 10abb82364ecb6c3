"""The command center on PostgreSQL: a request from a real @protect-ed agent process on another
(claimed) host is listed with its host, approved with one key, and the agent's call runs; the
status bar names the database with its password masked; the metrics view reads the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sentinel.store.location import open_store
from sentinel_tui.app import SentinelApp
from sentinel_tui.sample import SAMPLE_RULES
from tests.tui.conftest import wait_for


@pytest.fixture
def pg_db(pg_url: str) -> str:
    open_store(pg_url).close()  # the schema, as `sentinel db migrate` makes it
    return pg_url


async def test_pg_request_listed_with_host_and_approved(
    pg_db: str, agents: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "agent-rules.yaml"
    rules.write_text(SAMPLE_RULES)
    call = json.dumps({"amount": 4200, "destination": "ACC-42"})
    agent = agents("protect", pg_db, str(rules), call, env={"SENTINEL_HOST": "worker-pg-2"})
    agent.expect("CALLING")
    app = SentinelApp(pg_db, None, tick_interval=0)
    secret = urlsplit(pg_db).password or ""
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.request_id is not None, timeout=60)
        card = app.queue.card.text.plain
        assert "transfer_funds" in card and "ACC-42" in card
        assert "host worker-pg-2" in card
        bar = app.status.render().plain
        assert ":***@127.0.0.1" in bar, bar
        assert secret not in bar and secret not in app.data.db_display
        await pilot.press("a")
        line = agent.expect("RESULT", timeout=60)
        assert line == "RESULT transferred 4200 to ACC-42"
        await pilot.press("3")
        await wait_for(pilot, lambda: app._metrics is not None)
        await wait_for(pilot, lambda: app._metrics.counts.get("approved", 0) == 1)
        counts = str(app.query_one("#metrics-counts").render())
        assert "approved" in counts
    with open_store(pg_db, create=False) as store:
        (event,) = [e for e in store.history(None, limit=50) if e.kind == "approved"]
        assert event.actor and store.metrics().counts["approved"] == 1
