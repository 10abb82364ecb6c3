"""How matching rules combine into a verdict; messages, shadow/disabled rules, explain()."""

from __future__ import annotations

import textwrap

from sentinel.policy import Action, parse_policy


def P(text: str):
    return parse_policy(textwrap.dedent(text))


LAYERED = """
    rules:
      - id: allow_small
        function_pattern: "transfer_*"
        action: allow
        priority: 500
        conditions: [{param: amount, operator: lt, value: 1000}]
      - id: approve_external
        function_pattern: "transfer_*"
        action: require_approval
        priority: 200
        conditions: [{param: destination, operator: not_in, value: [acme]}]
      - id: block_sanctioned
        function_pattern: "transfer_*"
        action: block
        priority: 10
        conditions: [{param: destination, operator: eq, value: evil}]
"""


def test_strictest_action_wins_regardless_of_priority() -> None:
    policy = P(LAYERED)
    verdict = policy.evaluate("transfer_funds", {"amount": 5, "destination": "evil"})
    assert verdict.action is Action.BLOCK
    assert verdict.rule_id == "block_sanctioned"
    # deciding rule first, then the other matches in evaluation order
    assert [m.rule_id for m in verdict.matches] == [
        "block_sanctioned",
        "allow_small",
        "approve_external",
    ]
    v2 = policy.evaluate("transfer_funds", {"amount": 5, "destination": "bob"})
    assert v2.action is Action.REQUIRE_APPROVAL and v2.rule_id == "approve_external"


def test_first_match_ordering_uses_priority() -> None:
    policy = P("    ordering: first_match\n" + LAYERED)
    verdict = policy.evaluate("transfer_funds", {"amount": 5, "destination": "evil"})
    assert verdict.action is Action.ALLOW
    assert verdict.rule_id == "allow_small"
    assert [m.rule_id for m in verdict.matches] == ["allow_small"]
    assert policy.evaluate("transfer_funds", {"amount": 5000, "destination": "evil"}).rule_id == (
        "approve_external"
    )


def test_ties_broken_by_priority_then_file_order() -> None:
    policy = P(
        """
        rules:
          - {id: a, function_pattern: "*", action: block, priority: 100}
          - {id: b, function_pattern: "*", action: block, priority: 300}
          - {id: c, function_pattern: "*", action: block, priority: 300}
        """
    )
    assert [r.id for r in policy.rules] == ["b", "c", "a"]
    assert policy.evaluate("x", {}).rule_id == "b"


def test_default_action_when_nothing_matches() -> None:
    policy = P(
        "default_action: require_approval\nrules: [{id: a, function_pattern: read_*, action: allow}]"
    )
    verdict = policy.evaluate("write_file", {})
    assert verdict.action is Action.REQUIRE_APPROVAL
    assert verdict.rule_id is None
    assert verdict.matches == ()
    assert "default" in verdict.reason


def test_function_names_match_case_insensitively_after_nfkc() -> None:
    policy = P('rules: [{id: nodel, function_pattern: "delete_*", action: block}]')
    for name in (
        "delete_user",
        "Delete_User",
        "DELETE_USER",
        "ｄｅｌｅｔｅ_user",
        "ＤＥＬＥＴＥ＿USER",
    ):
        assert policy.evaluate(name, {}).action is Action.BLOCK, name
    assert policy.evaluate("undelete_user", {}).action is Action.ALLOW


def test_pattern_lists_and_glob_classes() -> None:
    policy = P('rules: [{id: r, function_pattern: ["drop_*", "rm_[!a]?"], action: block}]')
    assert policy.evaluate("DROP_table", {}).action is Action.BLOCK
    assert policy.evaluate("rm_xy", {}).action is Action.BLOCK
    assert policy.evaluate("rm_ay", {}).action is Action.ALLOW


def test_agent_pattern() -> None:
    policy = P('rules: [{id: r, function_pattern: "*", agent_pattern: "intern-*", action: block}]')
    assert policy.evaluate("x", {}, agent_id="Intern-7").action is Action.BLOCK
    assert policy.evaluate("x", {}, agent_id="admin").action is Action.ALLOW
    assert policy.evaluate("x", {}).action is Action.ALLOW  # no agent id: matched as ""


def test_shadow_rules_are_recorded_not_enforced() -> None:
    policy = P(
        """
        rules:
          - {id: trial, function_pattern: "send_*", action: block, mode: shadow, message: "would block {to}"}
          - {id: ok, function_pattern: "send_*", action: allow}
        """
    )
    verdict = policy.evaluate("send_mail", {"to": "x@y"})
    assert verdict.action is Action.ALLOW
    assert verdict.rule_id == "ok"
    assert [m.rule_id for m in verdict.shadow] == ["trial"]
    assert verdict.shadow[0].shadow and verdict.shadow[0].message == "would block x@y"
    assert all(m.rule_id != "trial" for m in verdict.matches)


def test_disabled_rules_are_skipped() -> None:
    policy = P('rules: [{id: off, function_pattern: "*", action: block, enabled: false}]')
    assert policy.evaluate("anything", {}).action is Action.ALLOW
    trace = policy.explain("anything", {})[0]
    assert not trace.enabled and not trace.matched and trace.note == "disabled"


def test_message_templates() -> None:
    policy = P(
        """
        redact_keys: [pin]
        rules:
          - id: t
            function_pattern: pay
            action: require_approval
            message: "Pay {amount} to {payment.to} ({missing}) {{literal}} {amount.__class__} {amount:>9} {token} {pin}"
        """
    )
    verdict = policy.evaluate(
        "pay", {"amount": 5000, "payment": {"to": "bob"}, "token": "abc", "pin": 1234}
    )
    assert verdict.reason == (
        "Pay 5000 to bob ({missing}) {literal} {amount.__class__} {amount:>9} [REDACTED] [REDACTED]"
    )


def test_message_values_are_terminal_safe_and_short() -> None:
    policy = P('rules: [{id: t, function_pattern: f, action: block, message: "to {to}"}]')
    reason = policy.evaluate("f", {"to": "\x1b[2Jevil" + "x" * 1000}).reason
    assert "\x1b" not in reason
    assert len(reason) < 300


def test_default_reason_names_the_rule() -> None:
    policy = P(
        'rules: [{id: nodel, name: No deletes, function_pattern: "delete_*", action: block}]'
    )
    reason = policy.evaluate("delete_x", {}).reason
    assert "nodel" in reason and "No deletes" in reason


def test_value_at_risk_and_timeout() -> None:
    policy = P(
        """
        value_params: [total, amount]
        rules:
          - {id: r, function_pattern: pay, action: require_approval, timeout_seconds: 42}
        """
    )
    verdict = policy.evaluate("pay", {"amount": "10", "total": "1234.5"})
    assert verdict.value_at_risk == 1234.5
    assert verdict.timeout_seconds == 42
    assert policy.evaluate("pay", {"amount": 7}).value_at_risk == 7.0
    assert policy.evaluate("pay", {"amount": "lots"}).value_at_risk is None
    assert policy.evaluate("pay", {"total": float("nan"), "amount": 3}).value_at_risk == 3.0
    assert policy.evaluate("other", {"amount": 9}).value_at_risk == 9.0
    assert policy.evaluate("pay", {"Amount": "12"}).value_at_risk == 12.0


def test_explain_reports_every_rule_and_condition() -> None:
    policy = P(LAYERED)
    traces = policy.explain("transfer_funds", {"amount": 5000, "destination": "bob"})
    by_id = {t.rule_id: t for t in traces}
    assert [t.rule_id for t in traces] == ["allow_small", "approve_external", "block_sanctioned"]
    assert by_id["approve_external"].decided and by_id["approve_external"].matched
    assert by_id["allow_small"].conditions[0].result is False
    assert by_id["allow_small"].conditions[0].actual == "5000"
    assert by_id["block_sanctioned"].matched is False
    other = policy.explain("read_file", {})
    assert all(not t.pattern_matched and "does not match" in t.note for t in other)


def test_candidate_cache_is_bounded() -> None:
    from sentinel.policy import evaluate

    policy = P('rules: [{id: r, function_pattern: "x*", action: block}]')
    for i in range(evaluate.CANDIDATE_CACHE_SIZE + 10):
        policy.evaluate(f"f{i}", {})
    assert len(policy._cache) <= evaluate.CANDIDATE_CACHE_SIZE
    assert policy.evaluate("xyz", {}).action is Action.BLOCK


def test_verdict_carries_policy_version() -> None:
    policy = P('rules: [{id: r, function_pattern: "x", action: block}]')
    assert policy.evaluate("x", {}).policy_version == policy.version
    assert len(policy.version) == 64


def test_explain_first_match_marks_rules_not_consulted() -> None:
    policy = P("    ordering: first_match\n" + LAYERED)
    traces = policy.explain("transfer_funds", {"amount": 5, "destination": "evil"})
    assert traces[0].rule_id == "allow_small" and traces[0].decided
    assert "not consulted (first_match)" in traces[2].note


def test_policy_from_data_and_deep_values() -> None:
    from sentinel.policy import policy_from_data

    policy = policy_from_data(
        {"rules": [{"id": "r", "function_pattern": "f", "action": "block", "message": "{x}"}]}
    )
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    verdict = policy.evaluate("f", {"x": deep})
    assert verdict.action is Action.BLOCK
    assert verdict.reason == "{x}"  # rendering gave up safely instead of crashing
