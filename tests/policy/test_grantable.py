"""``grantable`` on a rule: validated strictly at load time, and turning it back on is a widening."""

from __future__ import annotations

import pytest

from sentinel.errors import PolicyError
from sentinel.policy.loader import parse_policy
from sentinel.policy.widening import find_widenings

RULE = """
default_action: allow
rules:
  - id: wire
    function_pattern: wire
    action: {action}
    grantable: {value}
"""


def test_grantable_false_loads_on_an_approval_rule() -> None:
    policy = parse_policy(RULE.format(action="require_approval", value="false"))
    assert policy.rules[0].grantable is False
    assert parse_policy(RULE.replace("    grantable: {value}\n", "").format(
        action="require_approval")).rules[0].grantable is True  # fmt: skip


@pytest.mark.parametrize(
    ("action", "value", "text"),
    [
        ("block", "false", "grantable"),  # a block asks nobody: nothing to grant
        ("require_approval", '"no"', "grantable"),  # strict: a bool, not text
    ],
)
def test_bad_grantable_is_a_load_error(action: str, value: str, text: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(RULE.format(action=action, value=value))
    assert text in str(err.value)


def test_turning_grantable_on_is_a_widening() -> None:
    old = parse_policy(RULE.format(action="require_approval", value="false"))
    new = parse_policy(RULE.format(action="require_approval", value="true"))
    found = find_widenings(old, new)
    assert [(w.rule_id, w.kind) for w in found] == [("wire", "terms")]
    assert "grantable turned on" in found[0].reason
    assert find_widenings(new, old) == []
