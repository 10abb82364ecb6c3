"""Notification failures and the sweeper, with real agent processes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from tests.tui.conftest import helper, wait_for


def make_app(db_path: Path, **kw: Any) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, config=TuiConfig(bell=False), **kw)


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toasts(app: SentinelApp) -> list[tuple[str, str]]:
    return [(n.title or "", n.message) for n in app._notifications]


async def test_failed_notification_toasts_and_shows_in_history(db_path: Path, protected: Any) -> None:
    old = {"kind": "notification_failed", "function": "old_call", "request_id": "old",
           "reason": "webhook notification failed: long ago"}
    assert "EVENTS 1" in helper("events", str(db_path), json.dumps([old]))
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshot_count >= 1)
        # A real agent whose webhook notification cannot be delivered (nothing listens).
        env = {"SENTINEL_NOTIFY_WEBHOOK": f"http://127.0.0.1:{closed_port()}/hook",
               "SENTINEL_NOTIFY_ATTEMPTS": "1", "SENTINEL_NOTIFY_BACKOFF": "0",
               "SENTINEL_NOTIFY_TIMEOUT": "2"}
        agent = protected(env=env, amount=5000, destination="ACC-1")
        await wait_for(pilot, lambda: any(t == "Notification failed" for t, _ in toasts(app)))
        failed = [m for t, m in toasts(app) if t == "Notification failed"]
        assert len(failed) == 1 and "webhook notification failed" in failed[0]
        assert "transfer_funds" in failed[0]
        assert not any("long ago" in m for _, m in toasts(app))  # history is not re-announced
        await pilot.press("2")
        hv = app.history
        await wait_for(pilot, lambda: sum(e.kind == "notification_failed" for e in hv.events.values()) == 2)
        labels = [hv.table.row_texts(i)[1] for i in range(hv.table.row_count)]
        assert labels.count("notify failed") == 2
        await pilot.press("1", "d")
        agent.expect("DENIED")


async def test_sweeper_cancels_a_killed_agents_request(db_path: Path, submit: Any) -> None:
    agent = submit({"id": "req-doomed", "function": "transfer_funds", "value": 4000})
    app = make_app(db_path, sweep_interval=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "req-doomed" in app.queue.records)
        pid = agent.proc.pid
        agent.proc.kill()  # SIGKILL: the agent cannot say goodbye
        agent.proc.wait(timeout=10)
        await wait_for(pilot, lambda: "req-doomed" not in app.queue.records)
        assert app.queue.table.row_count == 0
        await wait_for(pilot, lambda: any(t == "Cancelled" for t, _ in toasts(app)))
        (msg,) = [m for t, m in toasts(app) if t == "Cancelled"]
        assert "transfer_funds (req-doom) cancelled" in msg and f"agent process {pid}" in msg
        assert app.data.get("req-doomed").status == "cancelled"


async def test_readonly_observer_does_not_sweep(db_path: Path, submit: Any) -> None:
    agent = submit({"id": "req-kept", "function": "transfer_funds", "value": 10})
    app = make_app(db_path, readonly=True, sweep_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "req-kept" in app.queue.records)
        agent.proc.kill()
        agent.proc.wait(timeout=10)
        await pilot.pause(1.0)
        assert "req-kept" in app.queue.records  # an observer writes nothing, sweeping included
        assert app.data.get("req-kept").status == "pending"
