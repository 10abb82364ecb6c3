"""find_widenings: each kind of widening is reported with its rule id; tightening and neutral
edits are not."""

from __future__ import annotations

import pytest

from sentinel.policy import parse_policy
from sentinel.policy.widening import find_widenings, summarize

BASE = """
default_action: block
rules:
  - id: small_pay
    function_pattern: "pay*"
    action: allow
    conditions: [{param: amount, operator: lte, value: 1000}]
  - id: big_pay
    function_pattern: "pay*"
    action: require_approval
    conditions: [{param: amount, operator: gt, value: 5000}]
  - id: no_delete
    function_pattern: ["delete_*", "drop_*"]
    action: block
  - id: rate
    function_pattern: "send_*"
    action: require_approval
    limit: {count: 10, window: 1h}
  - id: reads
    function_pattern: "read_*"
    action: allow
anomaly: {escalate: 6}
"""


def _w(old: str, new: str) -> list[tuple[str | None, str]]:
    return [(w.rule_id, w.kind) for w in find_widenings(parse_policy(old), parse_policy(new))]


WIDENING = [
    (
        "new allow rule",
        BASE + "",
        "  - id: reads\n",
        '  - id: writes\n    function_pattern: "write_*"\n    action: allow\n  - id: reads\n',
        [("writes", "added")],
    ),
    (
        "allow condition removed",
        BASE,
        "    conditions: [{param: amount, operator: lte, value: 1000}]\n",
        "",
        [("small_pay", "condition")],
    ),
    (
        "allow limit raised",
        BASE,
        "lte, value: 1000",
        "lte, value: 2000",
        [("small_pay", "condition")],
    ),
    (
        "allow lte -> lt same bound is narrower; gte on an upper bound is unknown",
        BASE,
        "operator: lte, value: 1000",
        "operator: gte, value: 1000",
        [("small_pay", "condition")],
    ),
    (
        "approval threshold raised",
        BASE,
        "gt, value: 5000",
        "gt, value: 9000",
        [("big_pay", "condition")],
    ),
    (
        "approval condition added",
        BASE,
        "conditions: [{param: amount, operator: gt, value: 5000}]",
        "conditions: [{param: amount, operator: gt, value: 5000}, {param: to, operator: eq, value: x}]",
        [("big_pay", "condition")],
    ),
    (
        "action lowered",
        BASE,
        "    action: block\n",
        "    action: require_approval\n",
        [("no_delete", "action")],
    ),
    (
        "block rule removed",
        BASE,
        '  - id: no_delete\n    function_pattern: ["delete_*", "drop_*"]\n    action: block\n',
        "",
        [("no_delete", "removed")],
    ),
    (
        "block rule disabled",
        BASE,
        "    action: block\n",
        "    action: block\n    enabled: false\n",
        [("no_delete", "disabled")],
    ),
    (
        "block rule in shadow",
        BASE,
        "    action: block\n",
        "    action: block\n    mode: shadow\n",
        [("no_delete", "disabled")],
    ),
    (
        "block pattern narrowed",
        BASE,
        '["delete_*", "drop_*"]',
        '["delete_*"]',
        [("no_delete", "pattern")],
    ),
    ("allow pattern broadened", BASE, '"read_*"', '["read_*", "list_*"]', [("reads", "pattern")]),
    ("count limit raised", BASE, "count: 10", "count: 50", [("rate", "limit")]),
    ("limit window shortened", BASE, "window: 1h", "window: 5m", [("rate", "limit")]),
    ("limit removed", BASE, "    limit: {count: 10, window: 1h}\n", "", [("rate", "limit")]),
    (
        "limit rule removed",
        BASE,
        '  - id: rate\n    function_pattern: "send_*"\n    action: require_approval\n    limit: {count: 10, window: 1h}\n',
        "",
        [("rate", "removed")],
    ),
    (
        "default loosened",
        BASE,
        "default_action: block",
        "default_action: require_approval",
        [(None, "default_action")],
    ),
    (
        "ordering to first_match",
        BASE,
        "default_action: block",
        "default_action: block\nordering: first_match",
        [(None, "ordering")],
    ),
    (
        "anomaly off",
        BASE,
        "anomaly: {escalate: 6}",
        "anomaly: {enabled: false}",
        [(None, "anomaly")],
    ),
    (
        "anomaly threshold raised",
        BASE,
        "anomaly: {escalate: 6}",
        "anomaly: {escalate: 9}",
        [(None, "anomaly")],
    ),
]


@pytest.mark.parametrize("name,base,old,new,expected", WIDENING, ids=[c[0] for c in WIDENING])
def test_each_kind_of_widening_is_reported_with_its_rule(name, base, old, new, expected):
    assert old in base, name
    edited = base.replace(old, new)
    assert _w(base, edited) == expected
    found = find_widenings(parse_policy(base), parse_policy(edited))
    assert all(w.reason for w in found) and summarize(found)


TIGHTENING = [
    (
        "allow condition added",
        "conditions: [{param: amount, operator: lte, value: 1000}]",
        "conditions: [{param: amount, operator: lte, value: 1000}, {param: to, operator: eq, value: x}]",
    ),
    ("allow limit lowered", "lte, value: 1000", "lte, value: 500"),
    ("allow lte -> lt", "operator: lte, value: 1000", "operator: lt, value: 1000"),
    ("approval threshold lowered", "gt, value: 5000", "gt, value: 100"),
    ("approval gt -> gte", "operator: gt, value: 5000", "operator: gte, value: 5000"),
    (
        "approval condition removed",
        "    conditions: [{param: amount, operator: gt, value: 5000}]\n",
        "",
    ),
    (
        "action raised",
        "    action: require_approval\n    conditions: [{param: amount, operator: gt",
        "    action: block\n    conditions: [{param: amount, operator: gt",
    ),
    ("block pattern broadened", '["delete_*", "drop_*"]', '["delete_*", "drop_*", "rm_*"]'),
    ("block pattern to everything", '["delete_*", "drop_*"]', '"*"'),
    ("allow pattern narrowed", '"read_*"', '"read_file"'),
    (
        "allow rule removed",
        '  - id: reads\n    function_pattern: "read_*"\n    action: allow\n',
        "",
    ),
    (
        "allow rule disabled",
        '  - id: reads\n    function_pattern: "read_*"\n    action: allow\n',
        '  - id: reads\n    function_pattern: "read_*"\n    action: allow\n    enabled: false\n',
    ),
    (
        "new block rule",
        "  - id: reads\n",
        '  - id: no_exec\n    function_pattern: "exec*"\n    action: block\n  - id: reads\n',
    ),
    (
        "new limit rule",
        "  - id: reads\n",
        '  - id: cap\n    function_pattern: "pay*"\n    action: block\n    limit: {sum: amount, max: 100, window: 1d}\n  - id: reads\n',
    ),
    ("count limit lowered", "count: 10", "count: 3"),
    ("limit window longer", "window: 1h", "window: 1d"),
    ("anomaly threshold lowered", "anomaly: {escalate: 6}", "anomaly: {escalate: 3}"),
    (
        "message and priority only",
        "    action: block\n",
        "    action: block\n    message: no\n    priority: 5\n",
    ),
    ("comment only", "rules:\n", "# a comment\nrules:\n"),
    ("rules reordered (strictest)", "  - id: small_pay\n", "  - id: small_pay\n    priority: 1\n"),
]


@pytest.mark.parametrize("name,old,new", TIGHTENING, ids=[c[0] for c in TIGHTENING])
def test_tightening_and_neutral_edits_are_not_flagged(name, old, new):
    assert old in BASE, name
    assert _w(BASE, BASE.replace(old, new)) == []


def test_new_require_approval_rule_under_default_block_widens_but_not_under_default_allow():
    rule = '  - id: ask_exec\n    function_pattern: "exec*"\n    action: require_approval\n'

    def add(text: str) -> str:
        return text.replace("anomaly:", rule + "anomaly:")

    assert _w(BASE, add(BASE)) == [("ask_exec", "added")]
    allow_base = BASE.replace("default_action: block", "default_action: allow")
    assert _w(allow_base, add(allow_base)) == []


def test_default_tightened_is_not_flagged():
    assert _w(BASE.replace("default_action: block", "default_action: allow"), BASE) == []


FIRST = """
default_action: allow
ordering: first_match
rules:
  - id: no_big
    function_pattern: "pay*"
    action: block
    conditions: [{param: amount, operator: gt, value: 100}]
  - id: pay_ok
    function_pattern: "pay*"
    action: allow
"""
FIRST_SWAPPED = """
default_action: allow
ordering: first_match
rules:
  - id: pay_ok
    function_pattern: "pay*"
    action: allow
  - id: no_big
    function_pattern: "pay*"
    action: block
    conditions: [{param: amount, operator: gt, value: 100}]
"""


def test_first_match_looser_rule_moved_before_a_stricter_one_widens_and_back_does_not():
    assert _w(FIRST, FIRST_SWAPPED) == [("pay_ok", "order")]
    assert _w(FIRST_SWAPPED, FIRST) == []


def test_first_match_new_looser_rule_before_a_stricter_one_widens():
    new = FIRST.replace(
        "rules:\n",
        'rules:\n  - id: ask\n    function_pattern: "pay*"\n    action: require_approval\n',
    )
    assert _w(
        FIRST.replace("default_action: allow", "default_action: block"),
        new.replace("default_action: allow", "default_action: block"),
    ) == [("ask", "added")]
    last = FIRST + '  - id: ask\n    function_pattern: "pay*"\n    action: require_approval\n'
    assert _w(FIRST, last) == []


def test_re_enabled_allow_rule_and_nothing_before():
    disabled = BASE.replace(
        '"read_*"\n    action: allow\n', '"read_*"\n    action: allow\n    enabled: false\n'
    )
    found = find_widenings(parse_policy(disabled), parse_policy(BASE))
    assert [(w.rule_id, w.kind) for w in found] == [("reads", "added")]
    assert "re-enabled" in found[0].reason
    assert find_widenings(None, parse_policy(BASE)) == []


TERMS = """
default_action: block
rules:
  - id: big_pay
    function_pattern: "pay*"
    action: require_approval
    approvers: [finance]
    quorum: 2
    deny_quorum: 1
    escalate_after: 10m
    escalate_to: [security]
"""

TERMS_WIDENING = [
    ("quorum lowered", "quorum: 2", "quorum: 1", "quorum lowered from 2 to 1"),
    ("approver group added", "[finance]", "[finance, ops]", "approvers extended with ops"),
    (
        "approvers removed",
        "    approvers: [finance]\n",
        "",
        "approvers removed (was finance): any operator may approve",
    ),
    (
        "self_approval turned on",
        "    quorum: 2\n",
        "    quorum: 2\n    self_approval: true\n",
        "self_approval turned on",
    ),
    ("deny_quorum raised", "deny_quorum: 1", "deny_quorum: 2", "deny_quorum raised from 1 to 2"),
    ("escalate_after shortened", "10m", "2m", "escalate_after shortened from 10m to 2m"),
    ("escalate_to extended", "[security]", "[security, ops]", "escalate_to extended with ops"),
]


@pytest.mark.parametrize("name,old,new,reason", TERMS_WIDENING, ids=[c[0] for c in TERMS_WIDENING])
def test_loosened_decision_terms_are_widenings(name, old, new, reason):
    assert old in TERMS, name
    found = find_widenings(parse_policy(TERMS), parse_policy(TERMS.replace(old, new)))
    kinds = [(w.rule_id, w.kind) for w in found]
    assert ("big_pay", "terms") in kinds and set(kinds) == {("big_pay", "terms")}
    assert any(reason in w.reason for w in found), [w.reason for w in found]


def test_removing_approvers_also_reports_self_approval_on_by_default():
    found = find_widenings(
        parse_policy(TERMS), parse_policy(TERMS.replace("    approvers: [finance]\n", ""))
    )
    reasons = " | ".join(w.reason for w in found)
    assert "any operator may approve" in reasons and "self_approval on by default" in reasons


def test_escalation_added_to_a_rule_without_one_widens():
    without = TERMS.replace("    escalate_after: 10m\n    escalate_to: [security]\n", "")
    found = find_widenings(parse_policy(without), parse_policy(TERMS))
    assert [(w.rule_id, w.kind) for w in found] == [("big_pay", "terms")]
    assert "escalation added: security may decide after 10m" in found[0].reason
    # Escalating to people who could approve anyway adds nobody.
    to_finance = TERMS.replace("[security]", "[finance]")
    assert _w(without, to_finance) == []


TERMS_TIGHTENING = [
    ("quorum raised", "quorum: 2", "quorum: 3"),
    ("approver group removed", "[finance]", "[finance, ops]"),  # applied in reverse below
    ("deny_quorum lowered", "deny_quorum: 1", "deny_quorum: 1\n    self_approval: false"),
    ("escalate_after longer", "10m", "1h"),
    ("escalation removed", "    escalate_after: 10m\n    escalate_to: [security]\n", ""),
    ("escalate_to narrowed", "[security]", "[finance]"),
    ("message only", "    quorum: 2\n", "    quorum: 2\n    message: ask two\n"),
]


@pytest.mark.parametrize("name,old,new", TERMS_TIGHTENING, ids=[c[0] for c in TERMS_TIGHTENING])
def test_tightened_or_unchanged_decision_terms_are_not_flagged(name, old, new):
    assert old in TERMS, name
    edited = TERMS.replace(old, new)
    if name == "approver group removed":
        assert _w(edited, TERMS) == []
    else:
        assert _w(TERMS, edited) == []


def test_terms_added_to_an_approval_rule_tighten_and_any_operator_is_not_widened_further():
    plain = TERMS.replace(
        "    approvers: [finance]\n    quorum: 2\n    deny_quorum: 1\n"
        "    escalate_after: 10m\n    escalate_to: [security]\n",
        "",
    )
    assert _w(plain, TERMS) == []
    # No approvers before: anyone could decide at once, so no escalation can widen that.
    assert (
        _w(
            plain,
            plain + "    escalate_after: 1m\n    escalate_to: [security]\n"
            "    approvers: [finance]\n",
        )
        == []
    )
