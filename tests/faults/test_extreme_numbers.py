"""Extreme numbers from a model (issue 20.2): ``10**400`` made the value-at-risk computation raise
``OverflowError``, and under ``fail_mode="safe"`` that governance error let the call run unasked.

What must hold, in both fail modes: a call the policy sends to approval or block never runs
without an approval, whatever number form the model sends (huge ints of either sign, NaN, ±inf,
``Decimal("1e400")``, numeric strings such as ``"1e400"``, bools); numbers beyond the float range
compare as huge; NaN never satisfies an allow condition; nothing raises inside evaluation.
"""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel import SentinelConfig, protect
from sentinel.errors import SentinelError
from sentinel.policy import Action, parse_policy

RULES = """\
default_action: require_approval
value_params: [amount]
rules:
  - id: small
    function_pattern: "pay*"
    conditions: [{param: amount, operator: lte, value: 1000}]
    action: allow
  - id: large
    function_pattern: "pay*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    timeout_seconds: 0.05
  - id: not_five
    function_pattern: "send*"
    conditions: [{param: amount, operator: ne, value: 5}]
    action: allow
"""

HUGE = [10**400, -(10**400), 10**5000, -(10**5000), 2**1100]
extreme = st.one_of(
    st.sampled_from(HUGE),
    st.integers(min_value=10**308, max_value=10**1000),
    st.integers(min_value=-(10**1000), max_value=-(10**308)),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324]),
    st.sampled_from(
        [
            Decimal("1e400"),
            Decimal("-1e400"),
            Decimal("1e999999999999999"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("1e-999999999999999"),
        ]
    ),  # fmt: skip
    st.sampled_from(["1e400", "-1e400", "1e999999999999", " 1e400 ", "9" * 5000, "NaN", "inf"]),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
)


def definitely_small(value: Any) -> bool:
    """The reference: the allow rule holds only for a real finite number ≤ 1000."""
    if isinstance(value, bool) or value is None:
        return False
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except Exception:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return bool(d.is_finite() and d <= 1000)


POLICY = parse_policy(RULES)


@settings(max_examples=300, deadline=None)
@given(extreme)
def test_evaluation_never_raises_and_never_allows_a_large_or_odd_number(value: Any) -> None:
    verdict = POLICY.evaluate("pay", {"amount": value})
    # every lazily computed part of the verdict is readable without raising
    risk = verdict.value_at_risk
    assert risk is None or math.isfinite(risk)
    assert isinstance(verdict.reason, str)
    _ = verdict.matches
    if definitely_small(value):
        assert verdict.action is Action.ALLOW, value
    else:
        assert verdict.action is Action.REQUIRE_APPROVAL, value
    POLICY.explain("pay", {"amount": value})


@pytest.mark.parametrize("value", [10**400, Decimal("1e400"), "1e400", 2**1100])
def test_numbers_beyond_float_range_are_a_huge_value_at_risk(value: Any) -> None:
    verdict = POLICY.evaluate("pay", {"amount": value})
    assert verdict.action is Action.REQUIRE_APPROVAL
    assert verdict.value_at_risk is not None and verdict.value_at_risk >= 1e308


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([math.nan, Decimal("NaN"), Decimal("sNaN"), "NaN", math.inf]))
def test_nan_never_satisfies_an_allow_condition(value: Any) -> None:
    # `amount ne 5` would hold for NaN under IEEE rules; doubt must not allow the call
    verdict = POLICY.evaluate("send", {"amount": value})
    assert verdict.action is Action.REQUIRE_APPROVAL, value


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base: Path = tmp_path_factory.mktemp("extreme")
    rules = base / "rules.yaml"
    rules.write_text(RULES)
    out: dict[str, Any] = {"ran": []}
    for mode in ("secure", "safe"):
        cfg = SentinelConfig(
            rules_path=rules, db_path=base / f"{mode}.db", fail_mode=mode,
            show_waiting_hint=False, hot_reload=False, timeout_seconds=0.05,
        )  # fmt: skip

        @protect(cfg)
        def pay(amount: Any) -> str:
            out["ran"].append(amount)
            return "ran"

        out[mode] = pay
    return out


@pytest.mark.parametrize("mode", ["secure", "safe"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=extreme)
def test_a_guarded_call_needing_approval_never_runs_unasked(
    guarded: dict[str, Any], mode: str, value: Any
) -> None:
    guarded["ran"].clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = guarded[mode](value)
        except SentinelError as exc:  # blocked, or the approval expired: the call did not run
            result = exc
    if definitely_small(value):
        assert result == "ran"
    else:
        assert not guarded["ran"], f"{mode}: ran unasked with {type(value).__name__}"
        assert isinstance(result, SentinelError)
        assert "fail_mode=safe" not in str(result)


def test_ints_too_long_to_print_are_audited(tmp_path: Path) -> None:
    """Python refuses to print an int of more than 4300 digits: the audit must not fail on one
    (in secure mode that blocked an allowed call; in safe mode it lost the record)."""
    from sentinel.store import Store
    from tests.faults.support import all_events

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "audit.db"
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_sync=True,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(amount: Any) -> int:
        ran.append(amount)
        return amount  # type: ignore[no-any-return]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "could not record …" is a warning
        assert pay(-(10**5000)) == -(10**5000)
    assert len(ran) == 1
    events = [e for e in all_events(Store(db)) if e.function == "pay"]
    assert {e.kind for e in events} >= {"allowed", "executed"}, [e.kind for e in events]
    assert all(e.digest for e in events)


@pytest.mark.parametrize(
    "value",
    [10**400, "1e400", Decimal("1e400"), 10**5000],
    ids=["int", "str", "decimal", "5001-digit"],
)
def test_anomaly_detection_sees_numbers_past_the_float_range_as_huge(
    tmp_path: Path, value: Any
) -> None:
    """An int past the float range read as "not a number" by anomaly detection scored nothing,
    so ``10**400`` after a history of ~50 ran unasked where ``1e300`` was stopped."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("default_action: allow\nvalue_params: [amount]\nrules: []\n")
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=tmp_path / "a.db", fail_mode="safe",
                            anomaly_detection=True, timeout_seconds=0.05,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(amount: Any) -> None:
        ran.append(amount)

    for i in range(40):
        pay(50 + i % 7)
    ran.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SentinelError) as info:
            pay(value)
    assert not ran
    assert len(str(info.value)) < 1000  # the huge number is written short (1.798e+308)
