"""SVG snapshots of every view and dialog at 80x24 and 120x40, with frozen clock, ids and data.

Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` (then look at the pictures:
``python scripts/screenshots.py`` renders the same screens to PNG).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from sentinel.store import OperatorIdentity, Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.dialogs import DecisionDialog, HelpScreen, TextScreen
from sentinel_tui.sample import QUORUM_ID, SAMPLE_RULES, add_quorum_request, seed
from sentinel_tui.views.rules import RulesView
from tests.tui.conftest import Operators

T0 = 1_900_000_000.0  # 2030-03-17 17:46:40 UTC; sample requests are created shortly before
OPERATOR = OperatorIdentity("alice", 1000, 1000, "alice", "ops-1", "10.0.0.5 52114", channel="tui")
SIZES = [(80, 24), (120, 40)]
NOTIFY_FAILED = {
    "kind": "notification_failed", "ts": T0, "request_id": "7e3de98aa2d0" + "0" * 20,
    "agent_id": "payments-agent", "function": "transfer_funds", "rule_id": "large_transfer",
    "reason": "slack notification failed: HTTP 503 after 4 attempts",
    "data": {"target": "slack", "host": "hooks.example.com", "attempts": 4, "error": "HTTP 503"},
}
#: The sample rules with a lower transfer threshold and one more rule (the "rules_changed" screen).
EDITED_RULES = SAMPLE_RULES.replace("value: 1000}", "value: 100}") + (
    "  - id: night_reports\n    function_pattern: read_report\n    action: require_approval\n"
)


@pytest.fixture
def frozen_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp folder with a seeded database and rules file, as the current directory, in UTC."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.setenv("SENTINEL_HOST", "agents-1")  # the card shows it: the same on every machine
    # No trusted operators here, whatever the suite sets up: the header shows no signing state
    # (test_quorum_card shows it).
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(tmp_path / "no-trust" / "operators.json"))
    monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(tmp_path / "no-trust" / "operator-key.pem"))
    time.tzset()
    seed("sentinel.db", T0, rules_path="rules.yaml")
    yield tmp_path
    monkeypatch.delenv("TZ")
    time.tzset()


def make_app(**kwargs: Any) -> SentinelApp:
    return SentinelApp(
        "sentinel.db",
        kwargs.pop("rules_path", "rules.yaml"),
        clock=lambda: T0,
        tick_interval=0,
        operator=OPERATOR,
        config=TuiConfig(bell=False, toast_new=False),
        watch_terminal=False,
        **kwargs,
    )


async def _until(pilot: Any, cond: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "screen never became ready"
        await pilot.pause(0.05)


def measured(table: Any) -> bool:
    """Whether a DataTable has measured its rows: it widens its columns on idle, so a picture
    taken before that (a loaded machine) shows every column cut to its label's width."""
    return all(
        col.content_width >= max((len(str(c)) for c in table.get_column(key)), default=0)
        for key, col in table.columns.items()
    )


async def _ready(pilot: Any) -> None:
    app: SentinelApp = pilot.app
    await _until(pilot, lambda: app.queue.table.row_count == 6 and app.status.state.operator != "")
    await _until(pilot, lambda: measured(app.queue.table))
    await _until(pilot, lambda: app.query_one("RulesView").info is not None)  # type: ignore[attr-defined]
    await pilot.pause()


def _steps(name: str) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        app: SentinelApp = pilot.app
        await _ready(pilot)
        if name == "queue":
            await pilot.press("down")  # the HIGH risk transfer
        elif name == "history":
            await pilot.press("2")
            await _until(pilot, lambda: len(app.history.events) >= 100)
            # past the six approval_requested events (their data holds the agent's pid)
            await pilot.press(*["down"] * 7)
        elif name == "history_filter":
            await pilot.press("2")
            await _until(pilot, lambda: len(app.history.events) >= 100)
            await pilot.press("slash", *"status:denied")
            app.query_one("#history-filter", Input).cursor_blink = False
            await _until(pilot, lambda: bool(app.history.events) and all(
                e.kind == "denied" for e in app.history.events.values()))
        elif name == "metrics":
            await pilot.press("3")
            await _until(pilot, lambda: app._metrics is not None)
        elif name == "rules":
            await pilot.press("4")
            await _until(pilot, lambda: app._metrics is not None)
            await _until(pilot, lambda: measured(app.query_one("#rules-table")))
        elif name == "rules_changed":
            # An edit on disk (reloaded by the folder watcher), then R: the diff and the replay.
            await pilot.press("4")
            await _until(pilot, lambda: app._metrics is not None)
            view = app.query_one(RulesView)
            first = view.info.version if view.info else None
            Path("rules.yaml").write_text(EDITED_RULES)
            await _until(pilot, lambda: view.info is not None and view.info.version != first)
            await pilot.press("R")
            await _until(pilot, lambda: view.replay is not None)
            app.clear_notifications()
        elif name == "rules_invalid":
            await pilot.press("4")
            await _until(pilot, lambda: app._metrics is not None)
            view = app.query_one(RulesView)
            Path("rules.yaml").write_text(SAMPLE_RULES.replace("action: block", "action: blok"))
            await _until(pilot, lambda: view.info is not None and view.info.problem is not None)
            app.clear_notifications()
        elif name == "notify_failed":
            # What sentinel/notify records when a webhook cannot be delivered, arriving live.
            with Store("sentinel.db") as store:
                store.append_events([NOTIFY_FAILED])
            await _until(pilot, lambda: any(n.title == "Notification failed" for n in app._notifications))
        elif name == "confirm":
            await pilot.press("down", "a")
            await _until(pilot, lambda: isinstance(app.screen, DecisionDialog))
        elif name == "reason":
            await pilot.press("r")
            await _until(pilot, lambda: isinstance(app.screen, DecisionDialog))
        elif name == "batch":
            await pilot.press("space", "space", "space", "D")
            await _until(pilot, lambda: isinstance(app.screen, DecisionDialog))
        elif name == "help":
            await pilot.press("question_mark")
            await _until(pilot, lambda: isinstance(app.screen, HelpScreen))
        elif name == "full":
            await pilot.press("down", "down", "down", "down", "v")  # the long email
            await _until(pilot, lambda: isinstance(app.screen, TextScreen))
        await pilot.pause()

    return run


SCREENS = ["queue", "history", "history_filter", "metrics", "rules", "rules_changed", "rules_invalid",
           "notify_failed", "confirm", "reason", "batch", "help", "full"]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", SCREENS)
def test_screen(name: str, size: tuple[int, int], frozen_env: Path, snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_steps(name))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_quorum_card(size: tuple[int, int], frozen_env: Path, monkeypatch: pytest.MonkeyPatch,
                     snap_compare: Any) -> None:
    """A two-person rule's card (approvers, escalation, self-approval off, 1 of 2 approvals) with
    alice signing as a trusted finance operator."""
    ops = Operators(frozen_env / "trust", monkeypatch)
    ops.add("alice", "finance")
    ops.use("alice")
    add_quorum_request("sentinel.db", T0)

    async def run(pilot: Any) -> None:
        app: SentinelApp = pilot.app
        await _until(pilot, lambda: app.queue.table.row_count == 7 and app.status.state.operator != "")
        await _until(pilot, lambda: app.status.state.signing_as == "alice")
        await _until(pilot, lambda: app.query_one("RulesView").info is not None)  # type: ignore[attr-defined]
        await pilot.press("down", "down", "down")  # newest first: the fourth row
        await _until(pilot, lambda: app.queue.card.request_id == QUORUM_ID)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run)


def test_unsigned_warning(frozen_env: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any) -> None:
    """Signatures are expected (the operators file trusts bob) but alice has no key."""
    ops = Operators(frozen_env / "trust", monkeypatch)
    ops.add("bob", "finance")
    ops.use("alice")

    async def run(pilot: Any) -> None:
        app: SentinelApp = pilot.app
        await _ready(pilot)
        await _until(pilot, lambda: app.status.state.unsigned is not None)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run)


def test_empty_queue_and_readonly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any) -> None:
    monkeypatch.chdir(tmp_path)

    async def run(pilot: Any) -> None:
        await _until(pilot, lambda: pilot.app.snapshot_count >= 1 and pilot.app.status.state.operator != "")
        await pilot.pause()

    app = make_app(rules_path=None, readonly=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run)


def test_ssh_session_turns_off_animation_and_ticks_coarsely(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.5 52114 10.0.0.1 22")
    app = SentinelApp("x.db", None, config=TuiConfig())
    assert app.animation_level == "none"
    assert app.tick_interval >= 10
    monkeypatch.delenv("SSH_CONNECTION")
    monkeypatch.delenv("SSH_TTY", raising=False)
    assert SentinelApp("x.db", None, config=TuiConfig()).tick_interval == 1.0
    assert os.environ.get("SSH_CONNECTION") is None
