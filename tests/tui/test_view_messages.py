"""The views ask the app for what they need by posting messages; they never call it. Each view
runs here in a bare Textual app that only records what it is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.message import Message

from sentinel.store import Store
from sentinel.store.models import HistoryFilter, RequestRecord
from sentinel_tui.config import TuiConfig
from sentinel_tui.views.history import HistoryView
from sentinel_tui.views.queue import QueueView
from sentinel_tui.views.rules import REPLAY_DAYS, RulesView
from tests.store.factories import new_request
from tests.tui.conftest import wait_for


class Host(App[None]):
    """Holds one view and records every message it asks with."""

    def __init__(self, view: Any) -> None:
        super().__init__()
        self.view = view
        self.asked: list[Message] = []

    def compose(self) -> ComposeResult:
        yield self.view

    def on_queue_view_decision_asked(self, msg: QueueView.DecisionAsked) -> None:
        self.asked.append(msg)

    def on_queue_view_batch_asked(self, msg: QueueView.BatchAsked) -> None:
        self.asked.append(msg)

    def on_queue_view_arguments_asked(self, msg: QueueView.ArgumentsAsked) -> None:
        self.asked.append(msg)

    def on_queue_view_older_page_wanted(self, msg: QueueView.OlderPageWanted) -> None:
        self.asked.append(msg)

    def on_history_view_page_wanted(self, msg: HistoryView.PageWanted) -> None:
        self.asked.append(msg)

    def on_rules_view_edit_asked(self, msg: RulesView.EditAsked) -> None:
        self.asked.append(msg)

    def on_rules_view_reload_asked(self, msg: RulesView.ReloadAsked) -> None:
        self.asked.append(msg)

    def on_rules_view_replay_asked(self, msg: RulesView.ReplayAsked) -> None:
        self.asked.append(msg)


def pending(db_path: Path, n: int) -> list[RequestRecord]:
    with Store(db_path) as store:
        for i in range(n):
            store.submit(new_request(function=f"transfer_{i}", created_at=1000.0 + i))
        return store.pending_newest(n)


async def test_queue_keys_become_messages_naming_the_request_on_the_card(db_path: Path) -> None:
    rows = pending(db_path, 3)
    view = QueueView(TuiConfig(queue_page=2, pending_limit=100), lambda: 2000.0)
    host = Host(view)
    async with host.run_test(size=(120, 40)) as pilot:
        view.apply(rows[:2], total=3)  # a window of 2 of the 3 pending requests
        view.table.focus()
        await pilot.pause()
        on_card = view.card.request_id
        assert on_card == rows[0].id
        await pilot.press("a", "d", "r", "v")
        await wait_for(pilot, lambda: len([m for m in host.asked
                                           if not isinstance(m, QueueView.OlderPageWanted)]) == 4)
        asked = [m for m in host.asked if not isinstance(m, QueueView.OlderPageWanted)]
        decisions = [(m.request_id, m.approve) for m in asked[:3]]  # type: ignore[attr-defined]
        assert decisions == [(on_card, True), (on_card, False), (on_card, None)]
        assert isinstance(asked[3], QueueView.ArgumentsAsked) and asked[3].record == rows[0]
        # The cursor is near the end of a window that leaves one request out: a deeper one.
        pages = [m for m in host.asked if isinstance(m, QueueView.OlderPageWanted)]
        assert [m.depth for m in pages] == [4]  # 2 shown + a page of 2, asked once
        host.asked.clear()
        await pilot.press("space", "space", "A")
        await wait_for(pilot, lambda: any(isinstance(m, QueueView.BatchAsked) for m in host.asked))
        batch = [m for m in host.asked if isinstance(m, QueueView.BatchAsked)]
        assert batch[0].ids == sorted(r.id for r in rows[:2]) and batch[0].approve is True


async def test_a_read_only_queue_asks_for_no_decision(db_path: Path) -> None:
    rows = pending(db_path, 1)
    view = QueueView(TuiConfig(), lambda: 2000.0, readonly=True)
    host = Host(view)
    async with host.run_test(size=(120, 40)) as pilot:
        view.apply(rows, total=1)
        view.table.focus()
        await pilot.press("a", "d", "v")
        await wait_for(pilot, lambda: bool(host.asked))
        await pilot.pause()
        assert [type(m) for m in host.asked] == [QueueView.ArgumentsAsked]  # only the view


async def test_rules_keys_become_messages_and_edit_and_replay_need_a_file() -> None:
    view = RulesView()
    host = Host(view)
    async with host.run_test(size=(120, 40)) as pilot:
        view.query_one("#rules-table").focus()
        await pilot.press("r", "R", "e")
        await wait_for(pilot, lambda: len(host.asked) == 3)
        assert [type(m) for m in host.asked] == [
            RulesView.ReloadAsked, RulesView.ReplayAsked, RulesView.EditAsked
        ]
        assert host.asked[1].window == REPLAY_DAYS * 86_400  # type: ignore[attr-defined]
        assert view.replay_running  # shown as running until the app answers
    view = RulesView(has_rules_file=False)
    host = Host(view)
    async with host.run_test(size=(120, 40)) as pilot:
        view.query_one("#rules-table").focus()
        await pilot.press("R", "e", "r")
        await wait_for(pilot, lambda: bool(host.asked))
        await pilot.pause()
        assert [type(m) for m in host.asked] == [RulesView.ReloadAsked]


async def test_history_asks_for_pages_and_a_short_page_is_the_last(db_path: Path) -> None:
    with Store(db_path) as store:
        store.append_events([{"kind": "allowed", "ts": 1000.0 + i, "function": f"f{i}"}
                             for i in range(8)])
        newest = store.history(HistoryFilter(), limit=8)
    assert len(newest) == 8
    view = HistoryView(page_size=5)
    host = Host(view)
    async with host.run_test(size=(120, 40)) as pilot:
        view.reload()
        await wait_for(pilot, lambda: bool(host.asked))
        first = host.asked[0]
        assert isinstance(first, HistoryView.PageWanted)
        assert (first.query, first.before_seq) == ("", None)
        view.apply_page("", newest[:5], append=False, error=None)
        assert not view.exhausted  # a full page: there may be older ones
        view.table.focus()
        await pilot.press("down")  # near the end of the rows: the next older page
        await wait_for(pilot, lambda: len(host.asked) == 2)
        older = host.asked[1]
        assert isinstance(older, HistoryView.PageWanted)
        assert older.before_seq == min(e.seq for e in newest[:5])
        view.apply_page("", newest[5:], append=True, error=None)
        assert view.exhausted and len(view.events) == 8  # 3 < 5: nothing older
