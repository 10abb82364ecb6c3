"""Bounds a grant suggests from a request's arguments (sentinel.grant_bounds)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from sentinel.grant_bounds import Bound, format_value, parse_bound, suggest_bounds
from sentinel.grant_terms import parse_where
from sentinel.redact import Redactor
from sentinel.store.bounds import GrantBound


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
        Bound("amount", "lte", 5).as_prefix()


def test_every_suggested_bound_reads_back_as_itself() -> None:
    s = suggest_bounds({"amount": 4200.0, "to": "ACC-1", "memo": "a, b {c}", "tags": ["x y", 3],
                        "ok": False, "rate": 1.25})
    assert [parse_bound(t) for t in s.texts] == list(s.bounds)


@pytest.mark.parametrize(("text", "bound"), [
    ("amount<=500", Bound("amount", "lte", 500)),
    ("  payment.fee  <  2.5 ", Bound("payment.fee", "lt", 2.5)),
    ("to = ACC-1", Bound("to", "eq", "ACC-1")),
    ("to prefix ACC-", Bound("to", "startswith", "ACC-")),
    ('env IN {prod, "a b"}', Bound("env", "in", ("prod", "a b"))),
])
def test_parse_accepts_the_usual_spellings(text: str, bound: Bound) -> None:
    assert parse_bound(text) == bound


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty bound"),
    ("amount", "'amount' is not a bound: write PARAM OP VALUE"),
    ("amount ~ 5", "is not a bound"),
    ("amount <=", "amount <=: the value is missing"),
    ("amount <= lots", "amount <= needs a number, not 'lots'"),
    ("memo == rent for May", "memo: quote the text 'rent for May'"),
    ('memo == "open', 'memo: "open is not a closed'),
    ("env in prod", "env in: write the values in braces"),
    ("env in {}", "env in {}: name at least one value"),
    ("env in {a,,b}", "env in: an empty value between commas"),
    ("to startswith 5", "to startswith needs text"),
    ("ok <= true", "needs a number"),
    ("x == null", "x: null cannot be a bound"),
])
def test_bad_bound_text_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_bound(text)


@pytest.mark.parametrize("stored", [
    GrantBound("amount", "lte", 500),
    GrantBound("payment.fee", "lt", 2.5),
    GrantBound("destination", "in", ["ACC-1", "ACC-2"]),
    GrantBound("memo", "startswith", "inv-"),
    GrantBound("memo", "eq", "invoice 4471"),
    GrantBound("to", "eq", "press@news.example.org"),
    GrantBound("note", "eq", 'say "hi"'),
    GrantBound("flag", "eq", True),
    GrantBound("ids", "in", [1, 2]),
])  # fmt: skip
def test_a_stored_bound_prints_as_the_where_text_that_makes_it(stored: GrantBound) -> None:
    """``sentinel grant show`` / ``list`` and the audit print bounds so they can be pasted back
    into ``--where`` (they once printed ``memo = invoice 4471``, which --where refuses)."""
    assert parse_where(stored.text()) == stored
