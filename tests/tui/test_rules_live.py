"""Rules view: the diff after a reload, invalid edits kept apart from the shown policy, replay."""

from __future__ import annotations

from pathlib import Path

from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.sample import SAMPLE_RULES, history_events, seed
from sentinel_tui.views.rules import RulesView
from tests.tui.conftest import notifications, wait_for

NEW_RULE = """\
  - id: night_reports
    function_pattern: "read_report"
    action: require_approval
"""


def make_app(db_path: Path, rules: Path, **cfg: object) -> SentinelApp:
    return SentinelApp(
        db_path, rules, tick_interval=0, config=TuiConfig(bell=False, **cfg), sweep_interval=0  # type: ignore[arg-type]
    )


async def test_edit_on_disk_shows_the_diff(db_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        await pilot.press("4")
        first = view.info.version if view.info else None
        edited = SAMPLE_RULES.replace("value: 1000}", "value: 500}") + NEW_RULE
        rules.write_text(edited)  # the folder watcher picks it up; nothing is pressed
        await wait_for(pilot, lambda: view.info is not None and view.info.version != first)
        notes = view.notes_text.plain
        assert "+1 added, -0 removed, 1 changed" in notes
        assert "+ night_reports added" in notes
        assert "~ large_transfer changed" in notes
        assert '{"operator": "gt", "param": "amount", "value": 1000}' in notes  # old condition
        assert '"value": 500}' in notes
        assert "block_deletes" not in notes  # unchanged rules are not listed
        table = view.query_one("#rules-table")
        states = {str(table.get_row(rid)[1]): table.get_row(rid)[5].plain for rid in ("night_reports", "large_transfer", "block_deletes")}  # type: ignore[attr-defined]
        assert states == {"night_reports": "on +new", "large_transfer": "on ~changed", "block_deletes": "on"}
        assert any("+1 added" in m for m in notifications(app))


async def test_invalid_edit_is_shown_until_fixed_and_the_good_policy_stays(
    db_path: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        good = view.info.version if view.info else None
        await pilot.press("4")
        rules.write_text(SAMPLE_RULES.replace("action: block", "action: blok"))
        await wait_for(pilot, lambda: view.info is not None and view.info.problem is not None)
        info = view.info
        assert info is not None and not info.valid
        assert info.version == good and len(info.rules) == 4  # the last good policy is still shown
        assert view.query_one("#rules-table").row_count == 4  # type: ignore[attr-defined]
        notes = view.notes_text.plain
        assert f"the last good policy ({good[:12]}) is still shown" in notes  # type: ignore[index]
        assert "line 7" in notes and "unknown action 'blok'" in notes
        bar = app.status.render().plain
        assert "✖ rules: rules.yaml:7: rule 'block_deletes': unknown…" in bar
        assert app.status.state.policy_version == good
        rules.write_text(SAMPLE_RULES)  # fixed
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        assert app.status.state.policy_error is None
        assert "✖ rules" not in app.status.render().plain
        assert "INVALID" not in view.notes_text.plain
        assert any("valid again" in m for m in notifications(app))


async def test_r_revalidates_without_a_watcher(db_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules, watch_rules=False)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        await pilot.press("4")
        rules.write_text(SAMPLE_RULES + "  - id: [\n")
        await pilot.pause(0.5)
        assert view.info is not None and view.info.valid  # nobody watches: nothing changed yet
        await pilot.press("r")
        await wait_for(pilot, lambda: view.info is not None and view.info.problem is not None)
        assert "YAML syntax error" in view.notes_text.plain
        assert view.info.problem is not None and view.info.problem.line == 31


async def test_replay_of_the_file_on_disk(tmp_path: Path) -> None:
    """Lowering the transfer threshold to 100 would send the allowed transfers of 120 and 480
    in the recorded history to approval."""
    db = tmp_path / "s.db"
    rules = tmp_path / "rules.yaml"
    now = __import__("time").time()
    seed(db, now, rules_path=rules)
    expected = [e for e in history_events(now) if e["kind"] == "allowed"
                and e["function"] == "transfer_funds" and e["value_at_risk"] in (120, 480)]
    assert expected  # the sample has some
    app = make_app(db, rules, watch_rules=False)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        await pilot.press("4")
        rules.write_text(SAMPLE_RULES.replace("value: 1000}", "value: 100}"))  # not yet loaded
        await pilot.press("R")
        await wait_for(pilot, lambda: view.replay is not None)
        report = view.replay.report if view.replay else None
        assert report is not None and not view.replay.same_as_active  # type: ignore[union-attr]
        flips = {(g.before, g.after, g.rule_id): g for g in report.flips}
        group = flips[("allow", "require_approval", "large_transfer")]
        assert group.count == len(expected)
        assert group.value_at_risk == sum(e["value_at_risk"] for e in expected)
        notes = view.notes_text.plain
        assert "not yet active" in notes
        assert f"allow → require_approval  ▲ stricter: {len(expected)} calls" in notes
        assert "large_transfer  allow → require_approval" in notes


async def test_a_widening_edit_is_marked_widened_by_this_edit_and_a_tightening_is_not(
    db_path: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        await pilot.press("4")
        first = view.info.version if view.info else None
        # Tightening (a lower approval threshold, a new approval rule): nothing is flagged.
        tighter = SAMPLE_RULES.replace("value: 1000}", "value: 500}") + NEW_RULE
        rules.write_text(tighter)
        await wait_for(pilot, lambda: view.info is not None and view.info.version != first)
        assert view.info is not None and view.info.widened == ()
        assert "WIDENED" not in view.notes_text.plain
        second = view.info.version
        # Widening: the approval threshold raised far above where it was.
        wider = tighter.replace("value: 500}", "value: 50000}")
        rules.write_text(wider)
        await wait_for(pilot, lambda: view.info is not None and view.info.version != second)
        notes = view.notes_text.plain
        assert "▲ WIDENED BY THIS EDIT (1)" in notes
        assert "▲ large_transfer asks for approval on fewer calls" in notes
        table = view.query_one("#rules-table")
        assert table.get_row("large_transfer")[5].plain == "on ~changed ▲widened"  # type: ignore[attr-defined]
        assert table.get_row("block_deletes")[5].plain == "on"  # type: ignore[attr-defined]


async def test_a_slow_in_place_save_is_shown_as_in_progress_never_as_the_cut_off_policy(
    db_path: Path, tmp_path: Path
) -> None:
    import hashlib

    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    app = make_app(db_path, rules)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(RulesView)
        await wait_for(pilot, lambda: view.info is not None and view.info.valid)
        await pilot.press("4")
        first = view.info.version if view.info else None
        edited = SAMPLE_RULES.replace("value: 1000}", "value: 500}")
        cut = edited.index("    conditions")
        seen: set[str | None] = set()
        with open(rules, "w") as fh:  # an editor writing in place, pausing mid-file
            fh.write(edited[:cut])
            fh.flush()

            def in_progress() -> bool:
                seen.add(view.info.version if view.info else None)
                p = view.info.problem if view.info else None
                return p is not None and "save is in progress" in p.what

            await wait_for(pilot, in_progress)
            assert view.info is not None and view.info.version == first  # the last good one
            assert "save is in progress" in view.notes_text.plain
            fh.write(edited[cut:])
        full = hashlib.sha256(edited.encode()).hexdigest()

        def done() -> bool:
            seen.add(view.info.version if view.info else None)
            return view.info is not None and view.info.version == full and view.info.problem is None

        await wait_for(pilot, done)
        assert seen <= {first, full}, "the cut-off file was shown as the policy"
