"""Many pending requests: the newest page is shown first, older pages come on scrolling, the
selection stays on the same request id, and paged-in rows are not announced as new arrivals."""

from __future__ import annotations

import time
from pathlib import Path

from sentinel.store import NewRequest, Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from tests.tui.conftest import notifications, wait_for

N = 250


def rid(i: int) -> str:
    return f"{i:04d}" + "0" * 28


def seed_pending(db_path: Path, n: int = N) -> None:
    now = time.time()
    with Store(db_path) as store:
        for i in range(n):  # i = n - 1 is the newest
            store.submit(NewRequest(
                id=rid(i), function=f"tool_{i % 7}", arguments={"i": i}, digest="cd" * 32, timeout_seconds=3600, agent_id=f"agent-{i % 3}",
                rule_id="r", reason="many", value_at_risk=float(i), created_at=now - (n - i),
            ))


def make_app(db_path: Path) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, sweep_interval=0,
                       config=TuiConfig(queue_page=100, bell=False, toast_new=True))


async def test_newest_page_first_then_older_pages_keep_the_selection(db_path: Path) -> None:
    seed_pending(db_path)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.queue.table
        await wait_for(pilot, lambda: table.row_count > 0)
        assert table.row_count == 100  # one page, not every pending request
        assert app.queue.total == N and app.status.state.pending == N
        assert "Pending 250" in str(table.border_title)
        shown = [str(table.coordinate_to_cell_key((r, 0)).row_key.value) for r in range(table.row_count)]
        assert shown == [rid(i) for i in range(N - 1, N - 101, -1)]  # newest first
        assert app.queue.card.request_id == rid(N - 1)

        await pilot.press("ctrl+end")  # to the last row shown: the next older page is fetched
        await wait_for(pilot, lambda: table.row_count == 200)
        assert table.selected_id == rid(N - 100)  # the selection stayed on the same request
        assert app.queue.card.request_id == rid(N - 100)
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: table.row_count == N)
        last = str(table.coordinate_to_cell_key((N - 1, 0)).row_key.value)
        assert last == rid(0)  # the oldest pending request is reachable
        assert not app.queue.page_older()  # everything is shown: nothing more to ask for
        await pilot.pause(0.3)
        assert not any("new request" in m.lower() for m in notifications(app))


async def test_a_new_arrival_is_announced_and_shown_on_top(db_path: Path) -> None:
    seed_pending(db_path)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.queue.table
        await wait_for(pilot, lambda: table.row_count == 100)
        await pilot.press("down", "down")
        selected = table.selected_id
        with Store(db_path) as store:
            store.submit(NewRequest(
                id="f" * 32, function="wire_money", arguments={}, digest="ab" * 32, timeout_seconds=3600, agent_id="late", value_at_risk=5.0,
            ))
        await wait_for(pilot, lambda: app.queue.total == N + 1)
        await wait_for(pilot, lambda: str(table.coordinate_to_cell_key((0, 0)).row_key.value) == "f" * 32)
        assert table.selected_id == selected  # kept by id while a row arrived above it
        assert any("wire_money" in m for m in notifications(app))
