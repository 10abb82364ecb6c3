"""The bounds of a standing grant: what a call's arguments must satisfy to run under it.

A bound is ``{param, op, value}``: the call's argument ``param`` (or a dotted path into a nested
object, ``payment.amount``) compared with ``value`` by one of
:data:`BOUND_OPS`. A call fits a grant when it fits *every* bound (parameters the grant does not
name are not constrained — that is why a grant with no bound at all needs confirming).

Doubt never widens a grant: a missing parameter, a value that is not a finite number under a
numeric bound, a non-string under ``startswith`` — each means "does not fit". Numbers compare
exactly (as decimals: ``0.1 + 0.2`` is not ``<= 0.3``); numeric strings compare as numbers, as the
policy's own numeric operators do. ``eq`` / ``in`` compare numbers as numbers and everything else
by equality of the JSON value (``"500"`` equals ``500``: the policy treats them alike).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sentinel.grant_bounds import SYMBOLS, format_value  # the one formatter of bounds

#: A number written as text (the policy's numeric operators read the same form).
_NUMERIC_STRING = re.compile(
    r"[ \t]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t]*\Z"
)


class NotANumber(ValueError):
    """A value a numeric bound cannot compare."""


def to_decimal(value: Any) -> Decimal:
    """The exact decimal value of a finite number or numeric string; raises NotANumber."""
    if isinstance(value, bool) or value is None:
        raise NotANumber(f"{value!r} is not a number")
    if isinstance(value, int):
        return Decimal(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotANumber(f"{value!r} is not a finite number")
        return Decimal(repr(float(value)))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotANumber(f"{value} is not a finite number")
        return value
    if isinstance(value, str) and _NUMERIC_STRING.match(value):
        out = Decimal(value.strip(" \t"))
        if out.is_finite():
            return out
    raise NotANumber(f"{str(value)[:40]!r} is not a number")


#: The operators a bound may use.
NUMERIC_OPS = ("lte", "lt", "gte", "gt")
BOUND_OPS = (*NUMERIC_OPS, "eq", "in", "startswith")
#: How each operator is written on the command line (``--where 'amount <= 500'``).
OP_SYMBOLS = {
    "lte": "<=",
    "lt": "<",
    "gte": ">=",
    "gt": ">",
    "eq": "=",
    "in": "in",
    "startswith": "startswith",
}


@dataclass(frozen=True, slots=True)
class GrantBound:
    """One bound: ``param op value`` (``value``: a number, a string, or a list for ``in``)."""

    param: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.param, str) or not self.param.strip():
            raise ValueError(f"bound parameter must be a non-empty name, not {self.param!r}")
        if self.op not in BOUND_OPS:
            raise ValueError(
                f"bound on {self.param!r}: unknown operator {self.op!r} "
                f"(one of {', '.join(BOUND_OPS)})"
            )
        value = self.value
        if self.op in NUMERIC_OPS:
            try:
                to_decimal(value)
            except NotANumber as exc:
                raise ValueError(
                    f"bound {self.param} {OP_SYMBOLS[self.op]} needs a number: {exc}"
                ) from None
        elif self.op == "in":
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
                raise ValueError(
                    f"bound {self.param} in …: give a non-empty list of values, not {value!r}"
                )
            object.__setattr__(self, "value", list(value))
        elif self.op == "startswith":
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"bound {self.param} startswith …: give a non-empty string, not {value!r}"
                )
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"bound {self.param} = {value!r}: not a finite number")

    def to_dict(self) -> dict[str, Any]:
        """The bound as stored (``{"param", "op", "value"}``)."""
        return {"param": self.param, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GrantBound:
        """A bound from its stored form; raises ValueError for anything else."""
        if not isinstance(data, Mapping) or set(data) != {"param", "op", "value"}:
            raise ValueError(f"a bound is {{param, op, value}}, not {data!r}")
        return cls(str(data["param"]), str(data["op"]), data["value"])

    def text(self) -> str:
        """The bound as ``--where`` takes it (what ``sentinel grant show`` prints can be pasted
        back), e.g. ``amount <= 500``, ``destination in {ACC-1, ACC-2}``, ``memo == "invoice 7"``."""
        value = tuple(self.value) if self.op == "in" else self.value
        return f"{self.param} {SYMBOLS[self.op]} {format_value(value)}"

    def fits(self, params: Mapping[str, Any]) -> bool:
        """Whether the call's arguments satisfy this bound (see the module doc)."""
        actual = _lookup(params, self.param)
        if actual is _MISSING:
            return False
        op = self.op
        if op in NUMERIC_OPS:
            left = _number(actual)
            if left is None:
                return False
            right = to_decimal(self.value)
            if op == "lte":
                return left <= right
            if op == "lt":
                return left < right
            if op == "gte":
                return left >= right
            return left > right
        if op == "startswith":
            return isinstance(actual, str) and actual.startswith(self.value)
        if op == "eq":
            return _same(actual, self.value)
        return any(_same(actual, v) for v in self.value)


_MISSING = object()


def _lookup(params: Mapping[str, Any], path: str) -> Any:
    """The argument ``path`` names: a parameter, or a dotted path into nested objects
    (``payment.amount``) when no parameter has that whole name."""
    if path in params:
        return params[path]
    current: Any = params
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _number(value: Any) -> Decimal | None:
    try:
        return to_decimal(value)
    except (NotANumber, TypeError, ValueError, ArithmeticError):
        return None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right
    if isinstance(actual, (int, float, Decimal)) or isinstance(expected, (int, float, Decimal)):
        return False  # a number never equals a non-numeric string
    return bool(actual == expected)


def fits_all(bounds: Sequence[GrantBound], params: Mapping[str, Any]) -> bool:
    """Whether the arguments satisfy every bound."""
    return all(b.fits(params) for b in bounds)


__all__ = ["BOUND_OPS", "NUMERIC_OPS", "OP_SYMBOLS", "GrantBound", "fits_all"]
