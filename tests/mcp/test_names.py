"""Look-alike tool names and "blocked for every argument" (no processes)."""

from __future__ import annotations

import pytest

from sentinel.mcp.names import imitated, skeleton
from sentinel.policy import policy_from_data


@pytest.mark.parametrize(
    ("name", "looks_like"),
    [
        ("r\u0435ad_file", "read_file"),  # Cyrillic е
        ("\u0440ay", "pay"),  # Cyrillic р
        ("d\u200belete_file", "delete_file"),  # a zero-width space
        ("tr\u03b1nsfer", "transfer"),  # Greek α
    ],
)
def test_lookalikes_name_the_ascii_name_they_imitate(name, looks_like):
    assert imitated(name) == looks_like


@pytest.mark.parametrize("name", ["read_file", "ｒｅａｄ_file", "удалить", "読む"])
def test_plain_or_foreign_names_imitate_nothing(name):
    # ASCII and full-width names fold to themselves (the policy already matches them); a
    # name wholly in another script does not look like an ASCII one.
    assert imitated(name) is None


def test_skeleton_folds_case_and_width():
    assert skeleton("ＲＥＡＤ_File") == "read_file"


def _policy(rules, default="allow", ordering="strictest"):
    return policy_from_data(
        {"version": "1.0", "default_action": default, "ordering": ordering, "rules": rules}
    )


def test_blocks_always():
    policy = _policy(
        [
            {"id": "b", "function_pattern": "delete_*", "action": "block"},
            {
                "id": "c",
                "function_pattern": "send_*",
                "action": "block",
                "conditions": [{"param": "to", "operator": "eq", "value": "x"}],
            },
        ]
    )
    assert policy.blocks_always("delete_file")
    assert not policy.blocks_always("send_mail")  # blocked only for some arguments
    assert not policy.blocks_always("echo")
    assert _policy([], default="block").blocks_always("echo")


def test_blocks_always_first_match_order():
    rules = [
        {
            "id": "ok",
            "function_pattern": "delete_*",
            "action": "allow",
            "conditions": [{"param": "path", "operator": "startswith", "value": "/tmp"}],
        },
        {"id": "b", "function_pattern": "delete_*", "action": "block"},
    ]
    assert not _policy(rules, ordering="first_match").blocks_always("delete_file")
    assert _policy(rules).blocks_always("delete_file")  # strictest: the block always wins
