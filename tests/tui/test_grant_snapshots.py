"""SVG snapshots of the grant dialog (``g``) and the Grants view (``5``) at 80x24 and 120x40,
frozen like the other screens (tests/tui/test_snapshots.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from sentinel_tui.app import SentinelApp
from sentinel_tui.grant_dialog import GrantDialog
from sentinel_tui.sample import add_grants
from sentinel_tui.views.grants import GrantsView
from tests.tui.test_snapshots import SIZES, T0, _ready, _until, make_app, measured
from tests.tui.test_snapshots import frozen_env as frozen_env


def _steps(name: str) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        app: SentinelApp = pilot.app
        await _ready(pilot)
        if name.startswith("grant_"):
            await pilot.press("down", "g")  # the HIGH risk 12,000 transfer
            await _until(pilot, lambda: isinstance(app.screen, GrantDialog))
            dialog = app.screen
            assert isinstance(dialog, GrantDialog)
            for field in dialog.query(Input):
                field.cursor_blink = False  # a steady cursor in the picture
            await pilot.pause()
            if name == "grant_bad_bound":
                dialog.bound_inputs()[0][1].value = "amount <= lots"
                await pilot.pause()
                dialog.confirm()
            elif name == "grant_no_bound":
                for on, _ in dialog.bound_inputs():
                    on.value = False
                await pilot.pause()
                dialog.confirm()
        elif name == "grants":
            await pilot.press("5")
            view = app.query_one(GrantsView)
            await _until(pilot, lambda: len(view.grants) == 5 and measured(view.table))
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ["grant_dialog", "grant_bad_bound", "grant_no_bound", "grants"])
def test_screen(name: str, size: tuple[int, int], frozen_env: Path, snap_compare: Any) -> None:
    if name == "grants":
        add_grants("sentinel.db", T0)
    assert snap_compare(make_app(), terminal_size=size, run_before=_steps(name))
