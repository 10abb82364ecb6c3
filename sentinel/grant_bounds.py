"""Bounds a standing grant suggests from one request's arguments (pure: no I/O, no store).

When an operator turns an approval into a standing grant, the grant starts as narrow as the call
they are looking at: every argument becomes a bound the later calls must fit. Numbers become an
upper bound (``amount <= 4200``), strings an equality (``destination == ACC-1001``; the operator
may loosen it to a prefix), lists of plain values a set (``tags in {red, blue}``), nested objects
bounds on their dotted paths (``payment.amount <= 50``). Values a bound cannot pin are left out
and said so: ``None``, empty lists, lists of objects, and text the redactor masked (the stored
copy is not the value the call sends, so a bound on it would never match, or worse, match by
accident).

The text of a bound is the ``--where`` form of ``sentinel grant create`` (``PARAM OP VALUE``).
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

#: The operators a suggested bound uses, by their policy names, with the symbol written.
SYMBOLS: dict[str, str] = {"lte": "<=", "eq": "==", "startswith": "startswith", "in": "in"}

#: How deep nested objects are followed (``a.b.c``); deeper values are left out.
MAX_DEPTH = 3

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.@:/+-]*\Z")
_NUMBERISH = re.compile(r"[-+]?(\d|\.\d)")
_WORDS = {"true", "false", "null", "in", "startswith"}


@dataclass(frozen=True)
class SuggestedBound:
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

    def as_prefix(self, prefix: str | None = None) -> SuggestedBound:
        """The same bound as ``startswith`` (of ``prefix``, default the whole value)."""
        if not self.can_be_prefix:
            raise ValueError(f"{self.param}: only a text value can be bounded by a prefix")
        return replace(self, op="startswith", value=self.value if prefix is None else prefix)


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest_bounds` found: the bounds, and the parameters it left out (with why)."""

    bounds: tuple[SuggestedBound, ...]
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
    bounds: list[SuggestedBound] = []
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


def _bound(path: str, value: Any) -> tuple[SuggestedBound | None, str]:
    if value is None:
        return None, "no value"
    if isinstance(value, Mapping):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    if _masked(value):
        return None, "masked as a secret (the call's real value is not stored)"
    if isinstance(value, bool):
        return SuggestedBound(path, "eq", value), ""
    if isinstance(value, (int, float, Decimal)):
        if isinstance(value, float) and not math.isfinite(value):
            return None, "not a finite number"
        return SuggestedBound(path, "lte", value), ""
    if isinstance(value, str):
        return SuggestedBound(path, "eq", value), ""
    if isinstance(value, (list, tuple)):
        if not value:
            return None, "an empty list"
        if not all(_plain(v) and not isinstance(v, bool) for v in value):
            return None, "a list of objects"
        if any(_masked(v) for v in value):
            return None, "masked as a secret (the call's real value is not stored)"
        return SuggestedBound(path, "in", tuple(dict.fromkeys(value))), ""
    return None, f"a {type(value).__name__} cannot be bounded"
