"""Policy tooling: rules diff, `sentinel rules test`, replay against recorded history, shadow rules
through @protect, and the lazy verdict."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.cli import main
from sentinel.policy import Action, parse_policy
from sentinel.policy.diff import diff_policies
from sentinel.policy.replay import replay_history
from sentinel.store import Store
from sentinel.store.models import HistoryFilter

BASE = """
rules:
  - id: big_transfer
    function_pattern: "transfer_*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    message: "Transfer of {amount} needs approval"
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
  - id: unused
    function_pattern: "format_disk"
    action: block
tests:
  - name: big transfers wait
    call: {function: transfer_funds, args: {amount: 5000}}
    expect: {action: require_approval, rule: big_transfer}
  - call: {function: delete_user, args: {id: 1}}
    expect: {action: block, rule: no_deletes}
"""


# --- diff ----------------------------------------------------------------------------------------


def test_diff_names_added_removed_and_changed_fields() -> None:
    old = parse_policy(BASE)
    new = parse_policy(
        BASE.replace("value: 1000", "value: 500")
        .replace('  - id: unused\n    function_pattern: "format_disk"\n    action: block\n', "")
        .replace(
            "rules:\n",
            "default_action: block\nrules:\n  - {id: fresh, function_pattern: x, action: allow}\n",
        )
    )
    d = diff_policies(old, new)
    assert d.added == ("fresh",)
    assert d.removed == ("unused",)
    assert [c.rule_id for c in d.changed] == ["big_transfer"]
    (change,) = d.changed[0].fields
    assert change.field == "conditions"
    assert change.old[0]["value"] == 1000 and change.new[0]["value"] == 500
    assert [(s.field, s.old, s.new) for s in d.settings] == [("default_action", "allow", "block")]
    assert not d.is_empty and "1 changed" in d.summary()


def test_diff_of_a_reordering_reports_positions_and_a_comment_edit_is_empty() -> None:
    a = parse_policy(
        "rules: [{id: a, function_pattern: x, action: block}, {id: b, function_pattern: y, action: block}]"
    )
    b = parse_policy(
        "rules: [{id: b, function_pattern: y, action: block}, {id: a, function_pattern: x, action: block}]"
    )
    d = diff_policies(a, b)
    assert {c.rule_id for c in d.changed} == {"a", "b"}
    assert all(f.field == "position" for c in d.changed for f in c.fields)
    same = parse_policy(
        "# a comment\nrules: [{id: a, function_pattern: x, action: block}, {id: b, function_pattern: y, action: block}]"
    )
    assert diff_policies(a, same).is_empty


# --- sentinel rules test ---------------------------------------------------------------------------


def test_rules_test_prints_cases_deciding_rules_and_coverage(
    write_rules: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rules(BASE)
    assert main(["rules", "test", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "ok   'big transfers wait': transfer_funds({\"amount\": 5000}) -> require_approval by rule big_transfer"
        in out
    )
    assert "-> block by rule no_deletes" in out
    assert "coverage: 2/3 enabled rule(s) reached by a case" in out
    assert "not reached: unused" in out
    assert main(["rules", "test", str(path), "--require-coverage"]) == 1


def test_rules_test_fails_with_exit_1_and_shows_every_failing_case(
    write_rules: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rules(
        BASE.replace("expect: {action: block, rule: no_deletes}", "expect: {action: allow}")
    )
    assert main(["rules", "test", str(path)]) == 1
    captured = capsys.readouterr()
    assert "ok   'big transfers wait'" in captured.out  # the passing case still runs and shows
    assert "FAIL #2 (delete_user)" in captured.out
    assert "expected allow, got block" in captured.out
    assert "1 of 2 case(s) FAILED" in captured.err


def test_rules_test_counts_limit_rules_reached_by_a_case(
    write_rules: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rules(
        """
        rules:
          - id: spend
            function_pattern: transfer
            limit: {sum: amount, max: 10, window: 1h}
            action: block
        tests:
          - call: {function: transfer, args: {amount: 5}}
            expect: {action: allow}
        """
    )
    assert main(["rules", "test", str(path)]) == 0
    assert "coverage: 1/1" in capsys.readouterr().out


# --- replay --------------------------------------------------------------------------------------


def _record(db: Path) -> None:
    now = time.time()
    events = [
        # small transfers allowed by default; one big one went to approval
        *[
            {"kind": "allowed", "ts": now - 60, "function": "transfer_funds", "agent_id": "bot",
             "value_at_risk": a, "data": {"args": {"amount": a}}}
            for a in (10, 600, 900)
        ],
        {"kind": "approval_requested", "ts": now - 50, "function": "transfer_funds", "agent_id": "bot",
         "rule_id": "big_transfer", "value_at_risk": 5000, "data": {"arguments": {"amount": 5000}}},
        {"kind": "blocked", "ts": now - 40, "function": "delete_user", "rule_id": "no_deletes",
         "data": {"args": {"id": 1}}},
        # escalated by a limit: not the rules' doing
        {"kind": "blocked", "ts": now - 30, "function": "transfer_funds", "rule_id": "limit:spend",
         "data": {"args": {"amount": 1}}},
        # a digest-mismatch block carries no arguments
        {"kind": "blocked", "ts": now - 20, "function": "transfer_funds", "rule_id": "big_transfer"},
        # too old for --since 1h
        {"kind": "allowed", "ts": now - 7200, "function": "transfer_funds", "data": {"args": {"amount": 700}}},
        {"kind": "executed", "ts": now - 10, "function": "transfer_funds"},
    ]  # fmt: skip
    with Store(db) as store:
        store.append_events(events)


CANDIDATE = (
    BASE.replace("value: 1000", "value: 500")
    .replace(
        '  - id: no_deletes\n    function_pattern: "delete_*"\n    action: block\n',
        '  - id: no_deletes\n    function_pattern: "delete_*"\n    action: require_approval\n',
    )
    .replace("tests:", "tests: []\nold_tests:")
    .split("old_tests:")[0]
)


def test_replay_reports_flips_by_rule_with_value_at_risk(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    _record(db_path)
    policy = parse_policy(CANDIDATE)
    with Store(db_path) as store:
        report = replay_history(policy, store, since=time.time() - 3600)
    assert report.events == 7  # decision events in the window (executed is not one)
    assert report.by_hooks == 1 and report.no_arguments == 1
    assert report.evaluated == 5 and report.unchanged == 2
    flips = {(g.before, g.after, g.rule_id): g for g in report.flips}
    up = flips[("allow", "require_approval", "big_transfer")]
    assert up.count == 2 and up.value_at_risk == 1500 and up.was_rules == {"(default)": 2}
    down = flips[("block", "require_approval", "no_deletes")]
    assert down.count == 1 and not down.stricter
    assert report.transitions()[("allow", "require_approval")] == (2, 1500.0)


def test_rules_replay_cli_text_and_json(
    write_rules: Callable[..., Path], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(db_path)
    candidate = write_rules(CANDIDATE, name="candidate.yaml")
    assert main(["rules", "replay", str(candidate), "--since", "1h", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "allow -> require_approval: 2 call(s), value at risk 1,500" in out
    assert "big_transfer" in out and "no_deletes" in out
    assert "audit_log" in out  # says what replay can see
    assert (
        main(["rules", "replay", str(candidate), "--since", "all", "--db", str(db_path), "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] == 4  # the old allowed call (700) flips too without --since
    assert {
        "before": "allow",
        "after": "require_approval",
        "count": 3,
        "value_at_risk": 2200.0,
    } in data["transitions"]


def test_rules_replay_errors_are_one_line(
    write_rules: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = write_rules(CANDIDATE, name="candidate.yaml")
    assert main(["rules", "replay", str(candidate), "--db", str(tmp_path / "none.db")]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["rules", "replay", str(candidate), "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err


# --- shadow through @protect ---------------------------------------------------------------------

SHADOW = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    conditions: [{param: user, operator: eq, value: root}]
    action: block
  - id: try_blocking_reads
    function_pattern: "*"
    conditions: [{param: path, operator: startswith, value: /etc}]
    action: block
    mode: shadow
    message: "would block a read of {path}"
"""


def test_shadow_matches_are_recorded_on_allowed_and_blocked_events(
    write_rules: Callable[..., Path], db_path: Path
) -> None:
    config = SentinelConfig(rules_path=write_rules(SHADOW), db_path=db_path, audit_sync=True)

    @protect(config)
    def read_file(path: str) -> str:
        return "contents"

    @protect(config)
    def delete_user(user: str, path: str = "/etc/passwd") -> str:
        return "deleted"

    assert read_file("/etc/shadow") == "contents"  # shadow: never changes the call
    assert read_file("/tmp/x") == "contents"  # no shadow match, no audit_log: nothing recorded
    with pytest.raises(SentinelBlockedError):
        delete_user("root")
    with Store(db_path) as store:
        allowed = store.history(HistoryFilter(kinds=("allowed",)))
        blocked = store.history(HistoryFilter(kinds=("blocked",)))
    assert len(allowed) == 1
    assert allowed[0].data["shadow"] == [
        {
            "rule_id": "try_blocking_reads",
            "action": "block",
            "message": "would block a read of /etc/shadow",
        }
    ]
    assert blocked[0].rule_id == "no_deletes"
    assert blocked[0].data["shadow"][0]["rule_id"] == "try_blocking_reads"


# --- the lazy verdict ------------------------------------------------------------------------------


def test_lazy_verdict_fields_match_an_eager_reading() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            value_params: [amount]
            rules:
              - {id: a, function_pattern: "t*", action: allow, message: "a {amount}"}
              - {id: b, function_pattern: "t*", action: require_approval, message: "b {amount}"}
              - {id: c, function_pattern: "t*", action: block, priority: 50, message: "c {amount}"}
              - {id: d, function_pattern: "t*", action: require_approval, message: "d {amount}"}
              - {id: s, function_pattern: "t*", action: block, mode: shadow, message: "s {amount}"}
            """
        )
    )
    params = {"amount": "12.5"}
    v = policy.evaluate("transfer", params)
    assert v.action is Action.BLOCK and v.rule_id == "c" and v.reason == "c 12.5"
    assert [m.rule_id for m in v.matches] == ["c", "a", "b", "d"]  # decider first, then order
    assert [m.message for m in v.matches] == ["c 12.5", "a 12.5", "b 12.5", "d 12.5"]
    assert [m.rule_id for m in v.shadow] == ["s"] and v.shadow[0].shadow
    assert v.value_at_risk == 12.5
    assert v == policy.evaluate("transfer", dict(params))
    nothing = policy.evaluate("other", {"amount": 3})
    assert nothing.rule_id is None and nothing.matches == () and nothing.value_at_risk == 3.0
    with pytest.raises(AttributeError):
        v.action = Action.ALLOW  # type: ignore[misc]


def test_agent_patterns_still_select_rules_per_agent() -> None:
    policy = parse_policy(
        'rules: [{id: a, function_pattern: "*", agent_pattern: "intern-*", action: block}]'
    )
    assert policy.evaluate("x", {}, "intern-1").action is Action.BLOCK
    assert policy.evaluate("x", {}, "admin").action is Action.ALLOW
    assert policy.evaluate("x", {}, "intern-2").action is Action.BLOCK


def test_explain_says_why_for_every_rule() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            rules:
              - {id: big, function_pattern: "t*", action: require_approval,
                 conditions: [{param: amount, operator: gt, value: 10}]}
              - {id: open, function_pattern: "*", action: allow}
              - {id: trial, function_pattern: "*", action: block, mode: shadow}
              - {id: off, function_pattern: "*", action: block, enabled: false}
              - {id: dels, function_pattern: "delete*", action: block}
              - {id: cap, function_pattern: "t*", action: block, limit: {count: 1, window: 1h}}
            """
        )
    )
    notes = {t.rule_id: t.note for t in policy.explain("transfer", {"amount": 50})}
    assert (
        notes["open"]
        == "no conditions: matches every call it targets; rule big decided (strictest wins)"
    )
    assert "shadow: recorded, not enforced" in notes["trial"]
    assert notes["off"] == "disabled"
    assert notes["dels"] == "function name does not match"
    assert notes["cap"].startswith("limit rule (at most 1 call(s) per 1h by agent)")
    small = {t.rule_id: t.note for t in policy.explain("transfer", {"amount": 5})}
    assert small["big"] == "a condition does not hold"
