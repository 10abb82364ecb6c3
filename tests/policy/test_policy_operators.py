"""Operators, value semantics and the "doubt never lowers protection" rule."""

from __future__ import annotations

import math
import textwrap
from decimal import Decimal
from typing import Any

import pytest

from sentinel.policy import Action, Policy, parse_policy


def one_rule(op: str, value: Any, action: str = "block", param: str = "x") -> Policy:
    """A policy with one rule on function `f`: `param op value` → action (default allow)."""
    data = {
        "default_action": "allow" if action != "allow" else "block",
        "rules": [
            {
                "id": "r",
                "function_pattern": "f",
                "conditions": [{"param": param, "operator": op, "value": value}],
                "action": action,
            }
        ],
    }
    import json

    return parse_policy(json.dumps(data), fmt="json")


def hits(policy: Policy, **params: Any) -> bool:
    """True when rule `r` decided the call."""
    return policy.evaluate("f", params).rule_id == "r"


@pytest.mark.parametrize(
    ("op", "value", "yes", "no"),
    [
        ("eq", "admin", "admin", "Admin"),
        ("eq", 5000, "5000", 4999),
        ("eq", True, True, False),
        ("ne", "acme", "evil", "acme"),
        ("gt", 100, 101, 100),
        ("gte", 100, 100, 99.99),
        ("lt", 0, -1, 0),
        ("lte", 10, 10, 11),
        ("contains", "rm -rf", "sudo rm -rf /", "ls"),
        ("contains", "bob", ["alice", "bob"], ["alice"]),
        ("not_contains", "@corp.com", "x@evil.com", "y@corp.com"),
        ("matches", r"\d{3}", "123abc", "abc123"),  # anchored at the start
        ("regex", r"\d{3}", "abc123", "abc12"),  # anywhere
        ("in", ["US", "EU"], "EU", "CN"),
        ("not_in", ["acme", "bob"], "mallory", "bob"),
        ("startswith", "/etc/", "/etc/passwd", "/home/etc/"),
        ("startswith", ["/etc/", "/root/"], "/root/.ssh", "/tmp"),
        ("endswith", ".exe", "setup.exe", "setup.exe.txt"),
    ],
)
def test_each_operator(op: str, value: Any, yes: Any, no: Any) -> None:
    policy = one_rule(op, value)
    assert hits(policy, x=yes), f"{yes!r} should match {op} {value!r}"
    assert not hits(policy, x=no), f"{no!r} should not match {op} {value!r}"


def test_exists_true_and_false() -> None:
    present = one_rule("exists", True)
    assert hits(present, x=1)
    assert not hits(present, y=1)
    assert not hits(present, x=None)  # None counts as absent
    absent = one_rule("exists", False)
    assert hits(absent, y=1)
    assert not hits(absent, x=0)


def test_exists_defaults_to_true_without_value() -> None:
    policy = parse_policy(
        "rules: [{id: r, function_pattern: f, action: block, conditions: [{param: force, operator: exists}]}]"
    )
    assert policy.evaluate("f", {"force": True}).action is Action.BLOCK
    assert policy.evaluate("f", {}).action is Action.ALLOW


@pytest.mark.parametrize(
    ("symbol", "name"),
    [(">", "gt"), (">=", "gte"), ("<", "lt"), ("<=", "lte"), ("==", "eq"), ("!=", "ne")],
)
def test_symbol_aliases(symbol: str, name: str) -> None:
    policy = one_rule(symbol, 100)
    assert policy.rules[0].conditions[0].operator == name  # type: ignore[union-attr]
    expected = {"gt": 150, "gte": 100, "lt": 50, "lte": 100, "eq": 100, "ne": 7}[name]
    assert hits(policy, x=expected)


@pytest.mark.parametrize(
    "value",
    [5000, 5000.0, "5000", " 5e3 ", "5000.00", Decimal("5000"), "+5000", 10**40, "1" + "0" * 60],
)
def test_numeric_forms_compare_as_numbers(value: Any) -> None:
    assert hits(one_rule("gt", 100, param="amount"), amount=value)
    assert not hits(one_rule("lt", 100, param="amount"), amount=value)


def test_float_threshold_read_as_written() -> None:
    policy = one_rule("gte", 0.1)
    assert hits(policy, x="0.1")  # Decimal("0.1") >= 0.1 as a person reads it
    assert hits(policy, x=0.1)
    assert hits(policy, x=Decimal("0.1"))
    assert not hits(policy, x="0.0999999")


def test_negative_zero_equals_zero() -> None:
    assert hits(one_rule("eq", 0), x=-0.0)
    assert not hits(one_rule("lt", 0), x=-0.0)


UNEVALUABLE = [
    float("nan"),
    float("inf"),
    float("-inf"),
    Decimal("NaN"),
    Decimal("Infinity"),
    None,
    True,  # a boolean is not the number 1
    "5,000",  # refused rather than guessed
    "1_000",
    "inf",
    "NaN",
    "0x10",
    "５０００",  # full-width digits
    "",
    [5000],
    {"v": 5000},
]


@pytest.mark.parametrize("value", UNEVALUABLE, ids=repr)
@pytest.mark.parametrize("action", ["block", "require_approval"])
def test_unevaluable_value_matches_protective_rule(value: Any, action: str) -> None:
    verdict = one_rule("gt", 100, action, param="amount").evaluate("f", {"amount": value})
    assert verdict.action is Action(action)
    assert verdict.matches[0].error, "the reason for matching must be recorded"
    assert "could not be evaluated" in verdict.reason


@pytest.mark.parametrize("value", UNEVALUABLE, ids=repr)
def test_unevaluable_value_does_not_match_allow_rule(value: Any) -> None:
    verdict = one_rule("lt", 100, "allow", param="amount").evaluate("f", {"amount": value})
    assert verdict.action is Action.BLOCK  # the default of an allow-rule policy here
    assert verdict.rule_id is None


@pytest.mark.parametrize(
    "op",
    ["eq", "ne", "gt", "lt", "contains", "not_contains", "in", "not_in", "startswith", "regex"],
)
def test_missing_parameter_matches_block_not_allow(op: str) -> None:
    value: Any = {"in": ["a"], "not_in": ["a"]}.get(op, "a" if op not in ("gt", "lt") else 1)
    block = one_rule(op, value, "block")
    assert block.evaluate("f", {}).action is Action.BLOCK
    assert "missing" in (block.evaluate("f", {}).matches[0].error or "")
    allow = one_rule(op, value, "allow")
    assert allow.evaluate("f", {}).rule_id is None


@pytest.mark.parametrize(
    ("op", "value", "param"),
    [
        ("eq", True, "true"),  # "true" is not true
        ("eq", "ceo@x", ["ceo@x"]),  # a list is not its element
        ("eq", 5000, "abc"),
        ("startswith", "/etc", 5),
        ("contains", "x", 5),
        ("in", ["a", "b"], ["a"]),
        ("matches", "a", {"a": 1}),
    ],
)
def test_type_mismatch_is_unevaluable(op: str, value: Any, param: Any) -> None:
    assert one_rule(op, value, "block").evaluate("f", {"x": param}).action is Action.BLOCK
    assert one_rule(op, value, "allow").evaluate("f", {"x": param}).rule_id is None


def test_not_over_an_error_stays_an_error() -> None:
    text = """
    default_action: block
    rules:
      - id: ok_small
        function_pattern: pay
        action: allow
        conditions:
          - not: {param: amount, operator: gt, value: 100}
    """
    policy = parse_policy(textwrap.dedent(text))
    assert policy.evaluate("pay", {"amount": 50}).action is Action.ALLOW
    assert policy.evaluate("pay", {"amount": 500}).action is Action.BLOCK
    # NaN > 100 cannot be evaluated; `not` must not flip that into "allowed"
    assert policy.evaluate("pay", {"amount": math.nan}).action is Action.BLOCK
    traces = policy.explain("pay", {"amount": math.nan})
    assert traces[0].conditions[0].result is None


def test_any_all_not_groups_nest() -> None:
    text = """
    rules:
      - id: risky
        function_pattern: send
        action: block
        conditions:
          - any:
              - {param: to, operator: endswith, value: "@evil.com"}
              - all:
                  - {param: amount, operator: gt, value: 1000}
                  - not: {param: to, operator: in, value: [a@corp.com]}
    """
    policy = parse_policy(textwrap.dedent(text))
    assert policy.evaluate("send", {"to": "x@evil.com", "amount": 1}).action is Action.BLOCK
    assert policy.evaluate("send", {"to": "b@corp.com", "amount": 5000}).action is Action.BLOCK
    assert policy.evaluate("send", {"to": "a@corp.com", "amount": 5000}).action is Action.ALLOW
    assert policy.evaluate("send", {"to": "b@corp.com", "amount": 5}).action is Action.ALLOW


def test_kleene_all_false_beats_error() -> None:
    # amount cannot be evaluated, but currency is definitely not USD: the rule cannot apply.
    text = """
    rules:
      - id: usd_big
        function_pattern: pay
        action: block
        conditions:
          - {param: amount, operator: gt, value: 100}
          - {param: currency, operator: eq, value: USD}
    """
    policy = parse_policy(textwrap.dedent(text))
    assert policy.evaluate("pay", {"amount": "lots", "currency": "EUR"}).action is Action.ALLOW
    assert policy.evaluate("pay", {"amount": "lots", "currency": "USD"}).action is Action.BLOCK


def test_dotted_paths_into_dicts_and_lists() -> None:
    text = """
    rules:
      - id: big
        function_pattern: order
        action: require_approval
        conditions:
          - {param: payment.amount, operator: gt, value: 100}
      - id: sku
        function_pattern: order
        action: block
        conditions:
          - {param: items.0.sku, operator: eq, value: BANNED}
    """
    policy = parse_policy(textwrap.dedent(text))
    assert (
        policy.evaluate("order", {"payment": {"amount": 500}, "items": [{"sku": "OK"}]}).rule_id
        == "big"
    )
    # an empty list has no items.0.sku: doubt, so the block rule applies
    assert policy.evaluate("order", {"payment": {"amount": 5}, "items": []}).rule_id == "sku"
    assert (
        policy.evaluate("order", {"payment": {"amount": 5}, "items": [{"sku": "BANNED"}]}).rule_id
        == "sku"
    )
    assert (
        policy.evaluate("order", {"payment": {"amount": 5}, "items": [{"sku": "OK"}]}).rule_id
        is None
    )
    # missing path → doubt → protective rules match
    assert policy.evaluate("order", {"payment": "cash", "items": [{"sku": "OK"}]}).rule_id == "big"


def test_parameter_names_fold_for_protective_rules_only() -> None:
    block = one_rule("gt", 100, "block", param="amount")
    for name in ("Amount", "AMOUNT", "ａｍｏｕｎｔ"):
        assert block.evaluate("f", {name: 5000}).action is Action.BLOCK, name
    assert block.evaluate("f", {"Amount": 5}).action is Action.ALLOW
    allow = one_rule("lt", 100, "allow", param="amount")
    assert allow.evaluate("f", {"amount": 5}).action is Action.ALLOW
    assert allow.evaluate("f", {"Amount": 5}).action is Action.BLOCK  # exact names only


def test_ambiguous_folded_names_are_unevaluable() -> None:
    block = one_rule("gt", 100, "block", param="amount")
    verdict = block.evaluate("f", {"amount": 1, "AMOUNT": 1})
    assert verdict.action is Action.BLOCK
    assert "ambiguous" in (verdict.matches[0].error or "")


def test_hostile_value_does_not_crash() -> None:
    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    verdict = one_rule("contains", "a", "block").evaluate("f", {"x": [Weird()]})
    assert verdict.action is Action.BLOCK


def test_huge_numeric_strings_are_exact_not_errors() -> None:
    policy = one_rule("gt", 100, "block", param="amount")
    verdict = policy.evaluate("f", {"amount": "9" * 5000})  # beyond int()'s digit limit
    assert verdict.action is Action.BLOCK and verdict.matches[0].error is None
    assert policy.evaluate("f", {"amount": "1e-99999999"}).action is Action.ALLOW
