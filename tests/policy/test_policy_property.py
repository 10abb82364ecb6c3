"""Property: a `gt` block rule is never weaker than a reference evaluator, whatever the number's form."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.policy import Action, parse_policy

finite = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12), max_value=10**12
    ),
)


def reference_value(value: Any) -> Decimal:
    """The number as a person reads it (floats by their shortest repr)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@st.composite
def presented(draw: st.DrawFn) -> tuple[Any, Decimal]:
    """A number in one of four forms: int/float/Decimal as is, or as a string."""
    base = draw(finite)
    form = draw(st.sampled_from(["native", "str", "decimal", "padded"]))
    ref = reference_value(base)
    if form == "native":
        return base, ref
    if form == "decimal":
        return ref, ref
    text = repr(base) if isinstance(base, float) else str(base)
    return (f" {text} " if form == "padded" else text), ref


@settings(max_examples=300, deadline=None)
@given(presented(), st.one_of(st.integers(-(10**15), 10**15), st.floats(-1e15, 1e15)))
def test_gt_block_rule_never_weaker_than_reference(
    pair: tuple[Any, Decimal], threshold: Any
) -> None:
    value, ref = pair
    policy = parse_policy(
        json.dumps(
            {
                "rules": [
                    {
                        "id": "r",
                        "function_pattern": "f",
                        "action": "block",
                        "conditions": [{"param": "amount", "operator": "gt", "value": threshold}],
                    }
                ]
            }
        ),
        fmt="json",
    )
    expected = Action.BLOCK if ref > reference_value(threshold) else Action.ALLOW
    got = policy.evaluate("f", {"amount": value}).action
    assert got.strictness >= expected.strictness, (value, threshold)
    assert got is expected  # and for well-formed numbers, exactly the reference


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.just(math.nan),
        st.just(math.inf),
        st.just(-math.inf),
        st.none(),
        st.booleans(),
        st.text(max_size=8),
    )
)
def test_junk_never_weakens_a_block_rule(value: Any) -> None:
    policy = parse_policy(
        "rules: [{id: r, function_pattern: f, action: block, conditions: [{param: amount, operator: gt, value: 100}]}]"
    )
    verdict = policy.evaluate("f", {"amount": value})
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else None
        definitely_small = number is not None and number.is_finite() and number <= 100
    except Exception:
        definitely_small = False
    if not definitely_small:
        assert verdict.action is Action.BLOCK, value
