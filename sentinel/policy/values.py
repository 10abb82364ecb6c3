"""Value semantics shared by conditions: numbers, equality, parameter paths.

Decisions (documented in README.md, "Rules"):

* **Numbers.** ``int``, ``float``, ``Decimal`` and numeric strings compare by their decimal value:
  ``"5000" > 100``, ``" 5e3 "`` is 5000, ``Decimal("0.1") == 0.1``. A float is read as the
  shortest decimal that prints it (``0.1`` is 0.1, not 0.1000000000000000055…), so comparisons
  agree with what a person wrote. ``-0`` equals ``0``. Huge integers are exact.
* **Not numbers** (the condition *cannot be evaluated*): ``bool`` (True is not 1), ``None``,
  NaN, ±infinity, strings such as ``"5,000"``, ``"1_000"``, ``"inf"``, ``"0x10"``, full-width
  digits, and lists/dicts. The thousands separator is refused rather than guessed because
  ``5,000`` means five in much of Europe; refusing is safe because an unevaluable condition
  *matches* for block / approval rules.
* **Parameter names.** ``allow`` rules see a parameter only under its exact name. ``block`` and
  ``require_approval`` rules also find it under any name that is equal after NFKC + case-fold
  (``Amount``, ``ＡＭＯＵＮＴ``), so an agent cannot dodge a rule by changing case. Two parameters
  that fold to the same name make the lookup ambiguous: the condition cannot be evaluated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sentinel.policy.regex import fold

#: Marks "the parameter is not there" (distinct from a parameter whose value is None).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()

_NUMERIC_STRING = re.compile(
    r"[ \t]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t]*\Z"
)


class NotANumber(ValueError):
    """The value cannot be compared as a number; the message says why."""


def to_decimal(value: Any) -> Decimal:
    """The exact decimal value of a number or numeric string, or raise :class:`NotANumber`."""
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is float:
        if not math.isfinite(value):
            raise NotANumber(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if kind is str:
        if _NUMERIC_STRING.match(value) is None:
            raise NotANumber(f"{_short(value)} is not a number")
        try:
            return Decimal(value.strip(" \t"))
        except (InvalidOperation, ValueError):  # pragma: no cover - regex already vetted it
            raise NotANumber(f"{_short(value)} is not a number") from None
    if isinstance(value, bool):
        raise NotANumber(f"boolean {value} is not a number")
    if value is None:
        raise NotANumber("value is null")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotANumber(f"{value} is not a finite number")
        return value
    if isinstance(value, int):  # int subclasses (IntEnum …), bool excluded above
        return Decimal(int(value))
    if isinstance(value, float):
        return to_decimal(float(value))
    raise NotANumber(f"a {type(value).__name__} is not a number")


def is_number_like(value: Any) -> bool:
    """True for int/float/Decimal that are not bool (strings excluded)."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def kind_of(value: Any) -> str:
    """A short name for the kind of a value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number_like(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


class Uneval(Exception):
    """A comparison that cannot be evaluated; the message is recorded in the match."""


def equal(param: Any, expected: Any) -> bool:
    """``eq`` semantics: the kind of the rule's value decides how to compare.

    Raises :class:`Uneval` when the parameter is of another kind (or is NaN/None), so that a
    block rule is not dodged by sending ``"true"`` for ``true`` or ``[x]`` for ``x``.
    """
    if expected is None:
        return param is None
    if param is None:
        raise Uneval("value is null")
    if isinstance(expected, bool):
        if isinstance(param, bool):
            return param is expected
        raise Uneval(f"expected a boolean, got a {kind_of(param)}")
    if isinstance(expected, Decimal):  # rule value was a number
        try:
            return to_decimal(param) == expected
        except NotANumber as exc:
            raise Uneval(str(exc)) from None
    if isinstance(expected, str):
        if isinstance(param, str):
            return param == expected
        if is_number_like(param) and _NUMERIC_STRING.match(expected):
            try:
                return to_decimal(param) == to_decimal(expected)
            except NotANumber as exc:
                raise Uneval(str(exc)) from None
        raise Uneval(f"expected a string, got a {kind_of(param)}")
    if isinstance(expected, (list, tuple, Mapping)):
        if kind_of(param) != kind_of(expected):
            raise Uneval(f"expected a {kind_of(expected)}, got a {kind_of(param)}")
        return bool(param == expected)
    return bool(param == expected)  # pragma: no cover - rule values are JSON data


def prepare_expected(value: Any) -> Any:
    """Turn a rule's literal into the form :func:`equal` expects (numbers become Decimal)."""
    if is_number_like(value):
        return to_decimal(value)
    if isinstance(value, list):
        return [prepare_expected(v) if not isinstance(v, (list, dict)) else v for v in value]
    return value


def _short(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(text)


# --- parameter paths ---------------------------------------------------------------------------

_FOLD_CACHE: dict[str, str] = {}


def fold_key(key: Any) -> Any:
    """Cached :func:`fold` of a parameter name (non-strings are returned unchanged)."""
    if type(key) is not str:
        return key
    hit = _FOLD_CACHE.get(key)
    if hit is None:
        hit = fold(key)
        if len(_FOLD_CACHE) < 50_000:  # bounded: names come from code and agents
            _FOLD_CACHE[key] = hit
    return hit


#: Names already in folded form (``amount``, ``user_id``): the common case, checked cheaply.
PLAIN_NAMES: set[str] = set()


def remember_plain(key: str) -> None:
    """Record that ``key`` is its own fold (bounded)."""
    if len(PLAIN_NAMES) < 50_000:
        PLAIN_NAMES.add(key)


class Call:
    """One call's parameters plus a lazily built case-folded index of the top-level names."""

    __slots__ = ("params", "_index", "_plain")

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self._index: dict[Any, list[Any]] | None = None
        self._plain: bool | None = None

    def plain(self) -> bool:
        """True when every name is already folded, so exact lookup equals folded lookup.

        Distinct names that are their own fold cannot collide, so no ambiguity is possible.
        """
        plain = self._plain
        if plain is None:
            plain = True
            for key in self.params:
                if key not in PLAIN_NAMES:
                    if type(key) is str and fold_key(key) == key:
                        remember_plain(key)
                    else:
                        plain = False
                        break
            self._plain = plain
        return plain

    def folded_index(self) -> dict[Any, list[Any]]:
        index = self._index
        if index is None:
            index = {}
            for key in self.params:
                index.setdefault(fold_key(key), []).append(key)
            self._index = index
        return index


def lookup(call: Call, name: str, folded: str, strict: bool) -> Any:
    """A top-level parameter by exact name, or (``strict``) by folded name. Fast path of resolve."""
    params = call.params
    if not strict:
        return params.get(name, MISSING)
    if call._plain or (call._plain is None and call.plain()):
        return params.get(folded, MISSING)
    index = call._index
    if index is None:
        index = call.folded_index()
    keys = index.get(folded)
    if keys is None:
        return MISSING
    if len(keys) == 1:
        return params[keys[0]]
    names = ", ".join(repr(k) for k in keys)
    raise Uneval(f"parameter '{name}' is ambiguous: {names} all match it")


def _get_folded(mapping: Mapping[Any, Any], seg: str, folded: str, index: Any) -> Any:
    keys = index.get(folded) if index is not None else [k for k in mapping if fold_key(k) == folded]
    if not keys:
        return MISSING
    if len(keys) > 1:
        names = ", ".join(repr(k) for k in keys)
        raise Uneval(f"parameter '{seg}' is ambiguous: {names} all match it")
    return mapping[keys[0]]


def resolve(
    call: Call, path: tuple[str, ...], folded: tuple[str, ...], strict: bool, whole: str
) -> Any:
    """The value at a dotted ``path`` in the call's parameters, or :data:`MISSING`.

    ``strict`` (block / approval rules) also finds names that differ only in case or Unicode
    form; ambiguity raises :class:`Uneval`.
    """
    params = call.params
    if len(path) > 1 and whole in params:  # a parameter literally named "a.b" wins
        path, folded = (whole,), (fold(whole),)
    current: Any = params
    for depth, seg in enumerate(path):
        if isinstance(current, Mapping):
            if strict:
                index = call.folded_index() if depth == 0 else None
                current = _get_folded(current, seg, folded[depth], index)
            else:
                current = current.get(seg, MISSING)
        elif isinstance(current, (list, tuple)) and seg.isdigit() and seg.isascii():
            i = int(seg)
            current = current[i] if i < len(current) else MISSING
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current
