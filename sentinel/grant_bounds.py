"""Bounds a standing grant suggests from one request's arguments (pure: no I/O, no store).

When an operator turns an approval into a standing grant, the grant starts as narrow as the call
they are looking at: every argument becomes a bound the later calls must fit. Numbers become an
upper bound (``amount <= 4200``), strings an equality (``destination == ACC-1001``; the operator
may loosen it to a prefix), lists of plain values a set (``tags in {red, blue}``), nested objects
bounds on their dotted paths (``payment.amount <= 50``). Values a bound cannot pin are left out
and said so: ``None``, empty lists, lists of objects, and text the redactor masked (the stored
copy is not the value the call sends, so a bound on it would never match, or worse, match by
accident).

The text of a bound is the ``--where`` form of ``sentinel grant create`` (``PARAM OP VALUE``);
:func:`parse_bound` reads it back and names what is wrong with text that is not one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sentinel.redact import MASK

#: The operators a bound may use, by their policy names, with the symbol written.
SYMBOLS: dict[str, str] = {
    "lte": "<=", "lt": "<", "gte": ">=", "gt": ">", "eq": "==", "startswith": "startswith",
    "in": "in",
}  # fmt: skip
#: What may be typed for each operator (``=`` and ``prefix`` are read as ``==`` and
#: ``startswith``).
_SPELLINGS: dict[str, str] = {
    **{sym: op for op, sym in SYMBOLS.items()}, "=": "eq", "prefix": "startswith",
}

#: How deep nested objects are followed (``a.b.c``); deeper values are left out.
MAX_DEPTH = 3

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.@:/+-]*\Z")
_NUMBERISH = re.compile(r"[-+]?(\d|\.\d)")
_WORDS = {"true", "false", "null", "in", "startswith"}


@dataclass(frozen=True)
class Bound:
    """One bound on one argument: ``param`` (a dotted path), ``op`` (a key of :data:`SYMBOLS`)
    and ``value`` (a number, a string, a bool, or a tuple of them for ``in``)."""

    param: str
    op: str
    value: Any

    @property
    def text(self) -> str:
        """The bound as typed after ``--where``, e.g. ``amount <= 4200``."""
        return f"{self.param} {SYMBOLS[self.op]} {format_value(self.value)}"

    @property
    def can_be_prefix(self) -> bool:
        """A string equality, which the operator may loosen to ``startswith``."""
        return self.op in ("eq", "startswith") and isinstance(self.value, str)

    def as_prefix(self, prefix: str | None = None) -> Bound:
        """The same bound as ``startswith`` (of ``prefix``, default the whole value)."""
        if not self.can_be_prefix:
            raise ValueError(f"{self.param}: only a text value can be bounded by a prefix")
        return replace(self, op="startswith", value=self.value if prefix is None else prefix)


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest_bounds` found: the bounds, and the parameters it left out (with why)."""

    bounds: tuple[Bound, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def texts(self) -> list[str]:
        return [b.text for b in self.bounds]


def format_value(value: Any) -> str:
    """A value as a bound's text shows it: numbers as written, words bare, other text quoted
    (JSON string syntax), a tuple as ``{a, b}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        return "{" + ", ".join(format_value(v) for v in value) + "}"
    text = str(value)
    if _BARE.match(text) and text.lower() not in _WORDS and not _NUMBERISH.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def suggest_bounds(arguments: Mapping[str, Any]) -> Suggestion:
    """The bounds that pin a grant to ``arguments`` (a request's stored, redacted copy), in the
    arguments' order; see the module docstring for what each kind of value becomes."""
    bounds: list[Bound] = []
    skipped: list[tuple[str, str]] = []
    for path, value in _leaves(arguments, "", 1):
        bound, why = _bound(path, value)
        if bound is not None:
            bounds.append(bound)
        else:
            skipped.append((path, why))
    return Suggestion(tuple(bounds), tuple(skipped))


def _leaves(mapping: Mapping[str, Any], prefix: str, depth: int) -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if depth >= MAX_DEPTH:
                yield path, value
            elif not value:
                yield path, None
            else:
                yield from _leaves(value, f"{path}.", depth + 1)
        else:
            yield path, value


def _masked(value: Any) -> bool:
    return isinstance(value, str) and (MASK in value or "chars not kept]" in value)


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool, Decimal))


def _bound(path: str, value: Any) -> tuple[Bound | None, str]:
    if value is None:
        return None, "no value"
    if isinstance(value, Mapping):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    if _masked(value):
        return None, "masked as a secret (the call's real value is not stored)"
    if isinstance(value, bool):
        return Bound(path, "eq", value), ""
    if isinstance(value, (int, float, Decimal)):
        if isinstance(value, float) and not math.isfinite(value):
            return None, "not a finite number"
        return Bound(path, "lte", value), ""
    if isinstance(value, str):
        return Bound(path, "eq", value), ""
    if isinstance(value, (list, tuple)):
        if not value:
            return None, "an empty list"
        if not all(_plain(v) and not isinstance(v, bool) for v in value):
            return None, "a list of objects"
        if any(_masked(v) for v in value):
            return None, "masked as a secret (the call's real value is not stored)"
        return Bound(path, "in", tuple(dict.fromkeys(value))), ""
    return None, f"a {type(value).__name__} cannot be bounded"


_HEAD = re.compile(
    r"\s*(?P<param>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*"
    r"(?P<op><=|>=|==|<|>|=|(?:startswith|prefix|in)(?=[\s{\"]))\s*(?P<rest>.*?)\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\Z")


def parse_bound(text: str) -> Bound:
    """Read a bound typed as ``PARAM OP VALUE`` (``amount <= 500``, ``to == "a b"``,
    ``destination startswith ACC-``, ``env in {prod, staging}``). Raises ValueError saying what
    is wrong and where."""
    if not text.strip():
        raise ValueError("empty bound: write PARAM OP VALUE, e.g. amount <= 500")
    m = _HEAD.match(text)
    if m is None:
        raise ValueError(
            f"{text.strip()!r} is not a bound: write PARAM OP VALUE with OP one of "
            "<= < >= > == startswith in (e.g. amount <= 500, destination in {ACC-1, ACC-2})"
        )
    param, op, rest = m["param"], _SPELLINGS[m["op"].lower()], m["rest"]
    if not rest:
        raise ValueError(f"{param} {m['op']}: the value is missing")
    if op == "in":
        if not (rest.startswith("{") and rest.endswith("}")):
            raise ValueError(f"{param} in: write the values in braces, e.g. {{ACC-1, ACC-2}}")
        items = tuple(_value(v, param) for v in _split(rest[1:-1], param))
        if not items:
            raise ValueError(f"{param} in {{}}: name at least one value")
        return Bound(param, op, tuple(dict.fromkeys(items)))
    value = _value(rest, param)
    numeric = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if op in ("lte", "lt", "gte", "gt") and not numeric:
        raise ValueError(f"{param} {m['op']} needs a number, not {rest!r}")
    if isinstance(value, bool) and op != "eq":
        raise ValueError(f"{param} {m['op']}: a true/false value can only be compared with ==")
    if op == "startswith" and not isinstance(value, str):
        raise ValueError(f"{param} startswith needs text, not {rest!r}")
    return Bound(param, op, value)


def _split(body: str, param: str) -> list[str]:
    parts: list[str] = []
    current, quoted, escaped = "", False, False
    for ch in body:
        if quoted:
            current += ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current += ch
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    if quoted:
        raise ValueError(f"{param} in: a quote is not closed")
    parts.append(current)
    parts = [p.strip() for p in parts]
    if len(parts) == 1 and not parts[0]:
        return []
    if any(not p for p in parts):
        raise ValueError(f"{param} in: an empty value between commas")
    return parts


def _value(text: str, param: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"{param}: {text} is not a closed \"quoted\" text") from None
        if not isinstance(value, str):
            raise ValueError(f"{param}: {text} is not one quoted text")
        return value
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if _NUMBER.match(text):
        number = Decimal(text)
        return int(number) if number == number.to_integral_value() and "." not in text \
            and "e" not in lower else float(text)
    if lower == "null":
        raise ValueError(f"{param}: null cannot be a bound")
    if not _BARE.match(text):
        raise ValueError(f"{param}: quote the text {text!r} (\"like this\")")
    return text
