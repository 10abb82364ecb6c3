"""The history view's line-based table (EventTable), driven through the real app and a real db."""

from __future__ import annotations

from pathlib import Path

from textual.strip import Strip

from sentinel.store import Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.widgets.event_table import Cell, Column, EventTable, fit
from tests.tui.conftest import wait_for


def make_app(db_path: Path) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, config=TuiConfig(bell=False))


def seed(db_path: Path, n: int, start: int = 0) -> None:
    """``n`` events, ``fn_<i>`` for event i; kinds alternate so zebra rows differ in content too."""
    kinds = ("allowed", "denied", "blocked")
    specs = [
        {"kind": kinds[i % 3], "function": f"fn_{i}", "agent_id": f"agent-{i % 5}", "request_id": f"r{i}",
         "value_at_risk": 1000 + i, "actor": "alice@ops-1 via tui" if i % 3 == 1 else None,
         "reason": f"reason {i}"}
        for i in range(start, start + n)
    ]
    with Store(db_path) as store:
        store.append_events(specs)


def fn_of(app: SentinelApp, row: int) -> str:
    return app.history.table.row_texts(row)[2]


async def open_history(pilot: object, app: SentinelApp, expect: int) -> None:
    await pilot.press("2")  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: len(app.history.events) == expect)


async def test_cursor_keys_move_the_selection_and_the_detail_pane(db_path: Path) -> None:
    seed(db_path, 40)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot, app, 40)
        hv, table = app.history, app.history.table
        assert table.has_focus
        assert [fn_of(app, r) for r in range(3)] == ["fn_39", "fn_38", "fn_37"]  # newest first
        await wait_for(pilot, lambda: "fn_39" in str(hv.detail.render()))
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await wait_for(pilot, lambda: "fn_37" in str(hv.detail.render()))
        assert hv.events[table.selected_key or -1].function == "fn_37"
        await pilot.press("up")
        await wait_for(pilot, lambda: "fn_38" in str(hv.detail.render()))
        await pilot.press("up", "up", "up")  # clamps at the top
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        page_row = table.cursor_row
        assert page_row > 10  # a screenful, not one row
        await wait_for(pilot, lambda: f"fn_{39 - page_row}" in str(hv.detail.render()))
        await pilot.press("pageup")
        assert table.cursor_row == 0
        await pilot.press("ctrl+end")
        assert table.cursor_row == 39  # all 40 loaded (fewer than a page): the oldest
        await wait_for(pilot, lambda: "fn_0" in str(hv.detail.render()))
        assert table.scroll_y > 0  # scrolled so the cursor row is on screen
        await pilot.press("ctrl+home")
        assert table.cursor_row == 0 and table.scroll_y == 0
        await pilot.press("g")  # the view's "newest" key goes through move_cursor too
        assert table.cursor_row == 0


async def test_ctrl_end_loads_the_next_older_page_and_keeps_the_cursor(db_path: Path) -> None:
    seed(db_path, 250)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        page = app.config.history_page
        await open_history(pilot, app, page)
        hv, table = app.history, app.history.table
        await pilot.press("ctrl+end")
        last = table.selected_key
        assert table.cursor_row == page - 1 and last is not None
        await wait_for(pilot, lambda: len(hv.events) == 2 * page)
        assert table.row_count == 2 * page
        assert table.cursor_row == page - 1 and table.selected_key == last  # the page went below
        assert fn_of(app, page) == f"fn_{249 - page}"  # the next older event follows on
        assert table.keys == sorted(table.keys, reverse=True)
        await wait_for(pilot, lambda: f"fn_{249 - (page - 1)}" in str(hv.detail.render()))


async def test_clicking_a_row_selects_it(db_path: Path) -> None:
    seed(db_path, 30)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot, app, 30)
        hv, table = app.history, app.history.table
        # y: 0 is the border, 1 the header, 2 the first row → 5 is row 3.
        await pilot.click("#history-table", offset=(10, 5))
        assert table.cursor_row == 3
        await wait_for(pilot, lambda: "fn_26" in str(hv.detail.render()))
        await pilot.click("#history-table", offset=(10, 1))  # the header selects nothing
        assert table.cursor_row == 3
        await pilot.press("down")
        assert table.cursor_row == 4


async def test_a_reload_with_new_events_keeps_the_selected_event(db_path: Path) -> None:
    seed(db_path, 20)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot, app, 20)
        hv, table = app.history, app.history.table
        await pilot.press("down", "down", "down")
        chosen = table.selected_key
        assert chosen is not None and fn_of(app, 3) == "fn_16"
        seed(db_path, 5, start=20)
        hv.reload()
        await wait_for(pilot, lambda: len(hv.events) == 25)
        assert table.selected_key == chosen and table.cursor_row == 8  # five newer rows above it
        assert fn_of(app, 8) == "fn_16"


async def test_rows_render_with_zebra_stripes_cursor_and_aligned_columns(db_path: Path) -> None:
    seed(db_path, 9)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot, app, 9)
        table = app.history.table
        await pilot.press("down")
        header = table.row_strip(-1).text
        labels = ["Time", "Event", "Function", "Agent", "Value", "By"]
        assert [header.index(label) for label in labels] == sorted(header.index(label) for label in labels)
        row0, row1, row2 = (table.row_strip(i) for i in range(3))
        assert row1.text.split() == list(table.row_texts(1))
        assert table.row_texts(1)[1:] == ("denied", "fn_7", "agent-2", "1,007", "alice@ops-1")  # actor: 1st word
        value_end = header.index("By") - 2  # a space of padding each side of a cell
        assert row0.text[:value_end].endswith("1,008")  # right aligned: ends where the column ends
        cursor_bg = table.get_component_rich_style("datatable--cursor").bgcolor
        even = table.get_component_styles("datatable--even-row").rich_style.bgcolor
        odd = table.get_component_styles("datatable--odd-row").rich_style.bgcolor

        def bg(strip: Strip) -> object:
            style = next(iter(strip)).style
            return style.bgcolor if style else None

        assert even != odd  # zebra stripes
        assert bg(row0) == even and bg(row2) == even and bg(row1) == cursor_bg != odd
        denied = [s for s in row1 if s.text == "denied"]
        assert denied and denied[0].style.bold  # the event kind keeps its own style
        assert row0.cell_length == table.size.width == row1.cell_length  # the row fills the width
        await pilot.press("up")
        assert bg(table.row_strip(0)) == cursor_bg and bg(table.row_strip(1)) == odd


async def test_narrow_layout_stacks_a_short_table_above_the_detail(db_path: Path) -> None:
    # Rows wider than 80 columns (long names, the longest kind label), as in real use.
    with Store(db_path) as store:
        store.append_events([
            {"kind": "notification_failed" if i % 2 else "approved", "function": f"transfer_funds_{i:03d}",
             "agent_id": "payments-agent", "actor": "alice@ops-1", "value_at_risk": 1000 + i}
            for i in range(60)])
    app = make_app(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, app, 60)
        table = app.history.table
        detail = app.query_one("#history-detail")
        assert table.region.height <= 10  # the narrow layout's max-height
        assert table.region.width == 80 and detail.region.y >= table.region.bottom
        await pilot.press("ctrl+end")
        visible = table.scrollable_content_region.height - 1
        assert table.cursor_row == 59
        assert table.scroll_y <= 59 < table.scroll_y + visible  # the cursor row is on screen
        await pilot.press("end")  # wider than 80 columns: end scrolls right, home back
        assert table.scroll_x == table.max_scroll_x > 0
        await pilot.press("home")
        assert table.scroll_x == 0


async def test_table_caches_strips_and_invalidates_only_changed_rows() -> None:
    from textual.app import App, ComposeResult

    highlighted: list[int] = []

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield EventTable([Column("a", "A"), Column("b", "B", "right")], id="t")

        def on_event_table_row_highlighted(self, message: EventTable.RowHighlighted) -> None:
            highlighted.append(message.key)

    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(EventTable)
        table.add_rows((k, (Cell(f"r{k}"), Cell(str(k)))) for k in range(5))
        await pilot.pause()
        assert highlighted == [0]  # the cursor appeared on the first row
        strips = [table.row_strip(i) for i in range(5)]
        table.move_cursor(row=1)
        await pilot.pause()
        assert highlighted == [0, 1]
        again = [table.row_strip(i) for i in range(5)]
        assert [a is b for a, b in zip(strips, again, strict=True)] == [False, False, True, True, True]
        table.add_rows([(5, (Cell("r5"), Cell("5"))), (2, (Cell("dup"), Cell("x")))])  # key 2 is kept
        assert table.row_count == 6 and table.row_texts(2) == ("r2", "2")
        assert table.row_strip(4) is again[4]  # appending does not re-render the others
        table.add_rows([(6, (Cell("a much wider cell"), Cell("6")))])
        assert table.row_strip(4) is not again[4]  # a column grew: every row is laid out again
        assert table.row_strip(4).text.startswith(" r4" + " " * len("a much wider cell"))
        table.clear()
        assert table.row_count == 0 and table.selected_key is None and table.cursor_row == 0


def test_fit_pads_crops_with_an_ellipsis_and_counts_wide_characters() -> None:
    assert fit("abc", 5) == "abc  "
    assert fit("abc", 5, "right") == "  abc"
    assert fit("abcdef", 4) == "abc…"
    assert fit("日本語", 4) == "日 …"  # two cells per character: padded to exactly four
    assert fit("日本語", 5) == "日本…"
    assert fit("日本", 4) == "日本"


async def test_detail_pane_grows_and_shrinks_with_the_selected_event(db_path: Path) -> None:
    """Same-height details repaint without a layout; a taller one must still get its height."""
    with Store(db_path) as store:
        store.append_events([
            {"kind": "denied", "function": "tall", "request_id": "r1", "reason": "because " * 120},
            {"kind": "allowed", "function": "short_a", "request_id": "r2"},
            {"kind": "allowed", "function": "short_b", "request_id": "r3"},
        ])
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot, app, 3)
        body = app.history.detail
        await wait_for(pilot, lambda: "short_b" in str(body.render()))
        await pilot.pause()
        short = body.size.height
        await pilot.press("down")
        await wait_for(pilot, lambda: "short_a" in str(body.render()))
        await pilot.pause()
        assert body.size.height == short
        await pilot.press("down")
        await wait_for(pilot, lambda: "tall" in str(body.render()) and body.size.height > short + 5)
        await pilot.press("up")
        await wait_for(pilot, lambda: "short_a" in str(body.render()) and body.size.height == short)


async def test_start_up_objects_are_frozen_out_of_the_cyclic_gc(db_path: Path) -> None:
    import gc

    gc.unfreeze()
    app = make_app(db_path)
    try:
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: app.snapshot_count >= 1)
            await wait_for(pilot, lambda: gc.get_freeze_count() > 0)
    finally:
        gc.unfreeze()
