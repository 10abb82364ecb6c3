"""Bounds a grant suggests from a request's arguments (sentinel.grant_bounds)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sentinel.grant_bounds import SuggestedBound, format_value, suggest_bounds
from sentinel.redact import Redactor


def test_each_kind_of_value_becomes_its_bound_in_argument_order() -> None:
    s = suggest_bounds({
        "amount": 4200.0, "destination": "ACC-1001", "memo": "rent for May",
        "tags": ["red", "blue", "red"], "urgent": True, "fee": Decimal("2.50"),
    })
    assert s.texts == [
        "amount <= 4200", "destination == ACC-1001", 'memo == "rent for May"',
        "tags in {red, blue}", "urgent == true", "fee <= 2.50",
    ]
    assert s.skipped == ()


def test_nested_objects_are_bounded_by_dotted_path_up_to_three_levels() -> None:
    s = suggest_bounds({"payment": {"amount": 50, "to": {"iban": "DE89", "meta": {"x": 1}}}})
    assert s.texts == ["payment.amount <= 50", "payment.to.iban == DE89"]
    assert s.skipped == (("payment.to.meta", "nested deeper than 3 levels"),)


def test_values_a_bound_cannot_pin_are_left_out_and_named() -> None:
    masked = Redactor().redact({"api_key": "sk-live-abcdefghijklmnopqrstuvwx"})
    s = suggest_bounds({**masked, "note": None, "items": [], "rows": [{"a": 1}],
                        "ratio": float("nan"), "empty": {}})
    assert s.bounds == ()
    why = dict(s.skipped)
    assert "masked" in why["api_key"]
    assert why["note"] == why["empty"] == "no value"
    assert why["items"] == "an empty list"
    assert why["rows"] == "a list of objects"
    assert why["ratio"] == "not a finite number"


@pytest.mark.parametrize(("value", "text"), [
    ("ACC-1", "ACC-1"), ("cfo@partner.io", "cfo@partner.io"), ("two words", '"two words"'),
    ("123", '"123"'), ("true", '"true"'), ("in", '"in"'), ("", '""'), ('a"b', '"a\\"b"'),
    ("a,b", '"a,b"'), (12.5, "12.5"), (3.0, "3"), (-7, "-7"), (False, "false"),
    (("a b", 2), '{"a b", 2}'),
])
def test_text_is_quoted_only_when_a_bare_word_would_read_differently(value: object, text: str) -> None:
    assert format_value(value) == text


def test_a_string_equality_can_be_loosened_to_a_prefix_and_nothing_else_can() -> None:
    eq = suggest_bounds({"destination": "ACC-1001"}).bounds[0]
    assert eq.as_prefix("ACC-").text == "destination startswith ACC-"
    assert eq.as_prefix().text == "destination startswith ACC-1001"
    with pytest.raises(ValueError, match="amount: only a text value"):
        SuggestedBound("amount", "lte", 5).as_prefix()
