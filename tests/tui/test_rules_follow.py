"""The Rules view follows the rules file through the library (sentinel.policy_source): a file
invalid at start is shown as such and picked up once fixed; the watcher stops with the app."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.sample import SAMPLE_RULES
from sentinel_tui.views.rules import RulesView
from tests.tui.conftest import wait_for


def watchers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name == f"sentinel-rules-watch:{name}" and t.is_alive()]


async def test_a_file_invalid_at_start_is_shown_and_loaded_once_fixed(
    db_path: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "broken-at-start.yaml"
    rules.write_text(SAMPLE_RULES.replace("action: block", "action: blok"))
    app = SentinelApp(db_path, rules, tick_interval=0, config=TuiConfig(bell=False), sweep_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.problem is not None)
        info = view.info
        assert info is not None and info.version is None and info.rules == ()
        assert info.problem is not None and info.problem.line == 7
        assert "unknown action 'blok'" in view.notes_text.plain
        assert "✖ rules:" in app.status.render().plain
        rules.write_text(SAMPLE_RULES)  # fixed on disk: the library's watcher loads it
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        assert len(view.info.rules) == 4  # type: ignore[union-attr]
        assert view.query_one("#rules-table").row_count == 4  # type: ignore[attr-defined]
        assert "✖ rules" not in app.status.render().plain
        await wait_for(pilot, lambda: len(watchers(rules.name)) == 1)
    # The app is gone: so is its rules watcher (it ends on its own once asked).
    deadline = time.monotonic() + 10
    while watchers(rules.name) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not watchers(rules.name)
