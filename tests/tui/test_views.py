"""History, Metrics and Rules views, and the settings file, against real databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.errors import SentinelConfigError
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig, load_config
from sentinel_tui.sample import SAMPLE_RULES
from sentinel_tui.views.rules import RulesView
from tests.tui.conftest import helper, notifications, wait_for

EVENTS = [
    {"kind": "approved", "function": "transfer_funds", "agent_id": "billing-1", "value_at_risk": 5000,
     "actor": "alice@ops-1", "reason": "checked with finance", "request_id": "r1"},
    {"kind": "denied", "function": "transfer_funds", "agent_id": "billing-2", "value_at_risk": 25000,
     "actor": "bob@ops-2", "reason": "unknown destination", "request_id": "r2"},
    {"kind": "denied", "function": "send_email", "agent_id": "mailer", "value_at_risk": None,
     "actor": "bob@ops-2", "reason": "external address", "request_id": "r3"},
    {"kind": "blocked", "function": "delete_user", "agent_id": "ops", "value_at_risk": 700,
     "reason": "deletes are disabled", "request_id": "r4"},
    {"kind": "allowed", "function": "read_report", "agent_id": "ops", "request_id": "r5"},
]


def make_app(db_path: Path, rules: Path | None = None, **kw: object) -> SentinelApp:
    return SentinelApp(db_path, rules, tick_interval=0, config=TuiConfig(bell=False), **kw)  # type: ignore[arg-type]


async def test_history_newest_first_filter_and_detail(db_path: Path) -> None:
    assert "EVENTS 5" in helper("events", str(db_path), json.dumps(EVENTS))
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        hv = app.history
        await wait_for(pilot, lambda: len(hv.events) == 5)
        assert [hv.events[k].kind for k in hv.table.keys] == [
            "allowed", "blocked", "denied", "denied", "approved"]
        await pilot.press("slash", *"status:denied")
        await wait_for(pilot, lambda: len(hv.events) == 2 and hv.query_text == "status:denied")
        assert {e.kind for e in hv.events.values()} == {"denied"}
        await pilot.press("enter", "down")
        detail = str(hv.detail.render())
        assert "bob@ops-2" in detail and "unknown destination" in detail  # who decided and why
        await pilot.press("slash", *"value:>1000")  # focusing the bar selects its text: typing replaces
        await wait_for(pilot, lambda: hv.query_text == "value:>1000" and len(hv.events) == 2)
        assert {e.kind for e in hv.events.values()} == {"approved", "denied"}
        await pilot.press("escape")  # clears the filter
        await wait_for(pilot, lambda: len(hv.events) == 5)
        await pilot.press("slash", *"colour:red")
        await wait_for(pilot, lambda: "unknown filter field" in str(hv.detail.render()))


async def test_history_pages_with_keyset_as_the_cursor_nears_the_end(db_path: Path) -> None:
    many = [{"kind": "allowed", "function": f"fn_{i}", "request_id": f"r{i}"} for i in range(450)]
    helper("events", str(db_path), json.dumps(many))
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await pilot.press("2")
        hv = app.history
        await wait_for(pilot, lambda: len(hv.events) == app.config.history_page)
        page = app.config.history_page
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: len(hv.events) == 2 * page)  # one more page, not all
        while not hv.exhausted:
            loaded = len(hv.events)
            await pilot.press("ctrl+end")
            await wait_for(pilot, lambda n=loaded: len(hv.events) > n or hv.exhausted)
        assert len(hv.events) == 450
        assert max(hv.events) - min(hv.events) == 449  # every event once, none skipped


async def test_metrics_show_value_protected_and_counts(db_path: Path) -> None:
    helper("events", str(db_path), json.dumps(EVENTS))
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app._metrics is not None)
        head = str(app.query_one("#metrics-headline").render())
        assert "all time 25,700" in head  # denied 25,000 + blocked 700; approvals do not count
        counts = str(app.query_one("#metrics-counts").render())
        assert "denied" in counts and "p50" in counts


async def test_rules_view_shows_policy_and_reports_invalid_file(db_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None)
        assert view.info is not None and view.info.valid
        assert [r.id for r in view.info.rules] == [
            "block_deletes", "large_transfer", "external_email", "prod_deploy"]
        assert app.status.state.policy_version == view.info.version
        await pilot.press("4")
        first = view.info.version
        rules.write_text(SAMPLE_RULES.replace("Deletes are disabled", "Deletes are off"))
        # The file is watched: the new version shows without pressing anything.
        await wait_for(pilot, lambda: view.info is not None and view.info.version != first)
        assert any("Rules reloaded" in m for m in notifications(app))
        rules.write_text(SAMPLE_RULES.replace("action: block", "action: explode"))
        await pilot.press("r")
        await wait_for(pilot, lambda: view.info is not None and not view.info.valid)
        assert "rules.yaml" in (view.info.error or "")
        assert any("explode" in m or "action" in m for m in notifications(app))
        assert "INVALID" in str(app.query_one("#rules-header").render())
        await pilot.press("e")  # headless: cannot suspend; says so instead of crashing
        await wait_for(pilot, lambda: any("editor" in m for m in notifications(app)))


def test_settings_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "tui.toml"
    good.write_text('confirm_value = 500\nbell = false\n[keymap]\n"queue.deny" = "x"\n')
    cfg = load_config(good)
    assert cfg.confirm_value == 500 and cfg.bell is False and cfg.keymap == {"queue.deny": "x"}
    bad = tmp_path / "bad.toml"
    bad.write_text("bell = 3\n")
    with pytest.raises(SentinelConfigError, match="bell must be bool"):
        load_config(bad)
    bad.write_text("colour = 'red'\n")
    with pytest.raises(SentinelConfigError, match="unknown setting 'colour'"):
        load_config(bad)
    with pytest.raises(SentinelConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    assert load_config(None) == TuiConfig()  # no default file in the isolated home
