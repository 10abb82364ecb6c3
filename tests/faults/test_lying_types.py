"""Lying argument types (issue 20.7): a ``float`` subclass overriding ``__gt__``/``__float__``/
``__eq__`` passed a ``gt`` approval rule. Values are evaluated as the exact builtins they hold.

What must hold: a subclass of float/int/str/Decimal/dict/list, an IntEnum or StrEnum is decided
exactly like the plain value it stores, by the policy alone and through a guarded call (the
function does not run unasked); bools are still not numbers; the display/digest form is the
plain value.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig, protect
from sentinel.errors import SentinelError
from sentinel.normalize import exact, to_jsonable
from sentinel.policy import Action, parse_policy

RULES = """\
default_action: allow
rules:
  - id: large
    function_pattern: "pay*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    timeout_seconds: 0.05
  - id: to_evil
    function_pattern: "pay*"
    conditions: [{param: dest, operator: eq, value: "EVIL"}]
    action: block
  - id: nested
    function_pattern: "pay*"
    conditions: [{param: order.total, operator: gt, value: 1000}]
    action: block
"""
POLICY = parse_policy(RULES)


class LyingFloat(float):
    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return False

    def __float__(self) -> float:
        return 0.0

    def __eq__(self, other: object) -> bool:
        return False

    def __repr__(self) -> str:
        return "0.0"

    __hash__ = float.__hash__


class LyingInt(int):
    def __gt__(self, other: object) -> bool:
        return False

    def __int__(self) -> int:
        return 0

    def __index__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "0"

    def __str__(self) -> str:
        return "0"

    __hash__ = int.__hash__


class LyingStr(str):
    def __eq__(self, other: object) -> bool:
        return False

    def __str__(self) -> str:
        return "nice"

    def isdigit(self) -> bool:
        return False

    __hash__ = str.__hash__


class LyingDecimal(Decimal):
    def __gt__(self, other: object) -> bool:
        return False

    def __float__(self) -> float:
        return 0.0


class LyingDict(dict):  # type: ignore[type-arg]
    def get(self, key: Any, default: Any = None) -> Any:
        return 1

    def __getitem__(self, key: Any) -> Any:
        return 1

    def items(self) -> Any:
        return iter([("total", 1)])


class Big(enum.IntEnum):
    AMOUNT = 5000


class Dest(enum.StrEnum):
    EVIL = "EVIL"


#: A call the policy allows; each case changes one part of it.
BASE: dict[str, Any] = {"amount": 1, "dest": "ACC-1", "order": {"total": 1}}

CASES: list[tuple[str, dict[str, Any], Action]] = [
    ("float subclass", {"amount": LyingFloat(1e9)}, Action.REQUIRE_APPROVAL),
    ("int subclass", {"amount": LyingInt(10**9)}, Action.REQUIRE_APPROVAL),
    ("numeric str subclass", {"amount": LyingStr("5000")}, Action.REQUIRE_APPROVAL),
    ("Decimal subclass", {"amount": LyingDecimal("5000")}, Action.REQUIRE_APPROVAL),
    ("IntEnum", {"amount": Big.AMOUNT}, Action.REQUIRE_APPROVAL),
    ("str subclass eq", {"amount": 1, "dest": LyingStr("EVIL")}, Action.BLOCK),
    ("str enum eq", {"amount": 1, "dest": Dest.EVIL}, Action.BLOCK),
    ("dict subclass", {"amount": 1, "order": LyingDict(total=10**6)}, Action.BLOCK),
    ("list of subclasses", {"amount": 1, "order": {"total": LyingInt(5000)}}, Action.BLOCK),
]


@pytest.mark.parametrize(("label", "params", "want"), CASES, ids=[c[0] for c in CASES])
def test_policy_reads_the_value_a_subclass_holds(
    label: str, params: dict[str, Any], want: Action
) -> None:
    params = {**BASE, **params}
    assert POLICY.evaluate("pay", params).action is want, label
    assert POLICY.evaluate("pay", exact(params)).action is want


def test_bool_is_still_not_a_number_and_small_subclasses_still_allowed() -> None:
    assert POLICY.evaluate("pay", BASE).action is Action.ALLOW
    assert POLICY.evaluate("pay", {**BASE, "amount": LyingFloat(5.0)}).action is Action.ALLOW
    assert POLICY.evaluate("pay", {**BASE, "amount": LyingInt(5)}).action is Action.ALLOW
    # True is not 1: an unevaluable condition matches the approval rule
    assert POLICY.evaluate("pay", {**BASE, "amount": True}).action is Action.REQUIRE_APPROVAL
    assert type(exact(True)) is bool


def test_exact_builtins_and_display_form() -> None:
    assert type(exact(LyingFloat(1e9))) is float and exact(LyingFloat(1e9)) == 1e9
    assert type(exact(LyingInt(7))) is int and int.__eq__(exact(LyingInt(7)), 7)
    assert type(exact(LyingStr("x"))) is str
    assert type(exact(Big.AMOUNT)) is int
    assert exact({"a": [LyingInt(3)]}) == {"a": [3]}
    plain = {"a": 1, "b": "x"}
    assert exact(plain) is plain  # no copy on the common path
    assert to_jsonable({"amount": LyingFloat(1e9), "n": Big.AMOUNT}) == {"amount": 1e9, "n": 5000}
    assert to_jsonable(LyingDict(total=10**6)) == {"total": 10**6}


@pytest.mark.parametrize("mode", ["secure", "safe"])
def test_guarded_call_with_a_lying_float_does_not_run_unasked(tmp_path: Path, mode: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=tmp_path / "db.sqlite", fail_mode=mode,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(amount: Any, dest: str = "ACC-1", order: Any = None) -> None:
        ran.append(amount)

    with pytest.raises(SentinelError):
        pay(LyingFloat(1e9), order={"total": 1})
    assert not ran
