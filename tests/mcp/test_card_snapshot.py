"""The approval card of a call that came through the MCP proxy (``mcp · server · tool``, the
client from ``initialize``), as SVG snapshots at 80x24 and 120x40 on the frozen sample data.

Update with ``pytest tests/mcp/test_card_snapshot.py --snapshot-update`` and look at the pictures.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from sentinel.store import NewRequest, Store
from sentinel_tui.app import SentinelApp
from tests.tui.test_snapshots import SIZES, T0, _until, frozen_env, make_app  # noqa: F401

MCP_ID = "3c" * 16


def add_mcp_request(db: str) -> None:
    with Store(db) as store:
        store.submit(
            NewRequest(
                id=MCP_ID,
                function="read_file",
                arguments={"path": "/etc/hosts"},
                digest=hashlib.sha256(MCP_ID.encode()).hexdigest(),
                timeout_seconds=600.0,
                agent_id="mcp:files:claude-ai",
                rule_id="review_reads",
                rule_ids=("review_reads",),
                reason="Reading /etc/hosts needs approval",
                context={
                    "mcp": {
                        "server": "files",
                        "tool": "read_file",
                        "client": "claude-ai",
                        "client_version": "0.9.2",
                        "transport": "stdio",
                    }
                },
                created_at=T0 - 5,
                requester={"account": "agent", "host": "agents-1"},
            )
        )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_mcp_card(size: tuple[int, int], frozen_env: Path, snap_compare: Any) -> None:  # noqa: F811
    add_mcp_request("sentinel.db")

    async def run(pilot: Any) -> None:
        app: SentinelApp = pilot.app
        await _until(pilot, lambda: app.queue.table.row_count == 7)
        await _until(pilot, lambda: app.query_one("RulesView").info is not None)  # type: ignore[attr-defined]
        await _until(pilot, lambda: app.queue.card.request_id == MCP_ID)  # the newest: first
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run)
