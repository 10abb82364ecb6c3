"""Conditions compiled into small slotted objects (no pydantic on the hot path).

Every node's ``check(call, strict)`` returns ``True``, ``False`` or an error string (the
condition *cannot be evaluated*, with the reason). Groups combine with three-valued (Kleene)
logic: ``all`` is False if any member is False, else an error if any member errored;
``any`` is True if any member is True, else an error if any errored; ``not`` keeps an error an
error, so negation can never turn doubt into a definite answer.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sentinel.policy.models import AllGroup, AnyGroup, Condition, NotGroup
from sentinel.policy.regex import compile_regex, fold
from sentinel.policy.values import (
    MISSING,
    Call,
    NotANumber,
    Uneval,
    equal,
    kind_of,
    lookup,
    prepare_expected,
    resolve,
    to_decimal,
)
from sentinel.policy.verdict import ConditionTrace
from sentinel.redact import redact_string, safe_text

Result = bool | str  # True / False / error text
Test = Callable[[Any], bool]  # raises Uneval when the value cannot be judged


def _kleene_any(items: Any, test: Callable[[Any], bool]) -> bool:
    error: Uneval | None = None
    for item in items:
        try:
            if test(item):
                return True
        except Uneval as exc:
            error = error or exc
    if error is not None:
        raise error
    return False


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    raise Uneval(f"expected a string, got a {kind_of(value)}")


def _numeric(op: str, threshold: Decimal) -> Test:
    as_int = int(threshold) if threshold == threshold.to_integral_value() else None
    compare: Callable[[Any, Any], bool] = {
        "gt": operator.gt,
        "gte": operator.ge,
        "lt": operator.lt,
        "lte": operator.le,
    }[op]

    def test(value: Any) -> bool:
        kind = type(value)
        if kind is str and len(value) < 19 and value.isascii() and value.isdigit():  # "5000"
            value, kind = int(value), int
        if kind is int and as_int is not None:  # fast path: plain ints
            return compare(value, as_int)
        try:
            return compare(to_decimal(value), threshold)
        except NotANumber as exc:
            raise Uneval(str(exc)) from None

    return test


def _build_test(op: str, raw: Any) -> Test:
    if op in ("gt", "gte", "lt", "lte"):
        return _numeric(op, to_decimal(raw))
    if op in ("eq", "ne"):
        expected = prepare_expected(raw)
        if isinstance(expected, str):  # fast path: string against string

            def eq(v: Any) -> bool:
                return v == expected if type(v) is str else equal(v, expected)

        else:

            def eq(v: Any) -> bool:
                return equal(v, expected)

        return eq if op == "eq" else (lambda v: not eq(v))
    if op in ("in", "not_in"):
        options = [prepare_expected(x) for x in raw]
        strings = frozenset(options) if all(type(x) is str for x in options) else None

        def is_in(value: Any) -> bool:
            if strings is not None and type(value) is str:  # fast path: string allow/deny lists
                return value in strings
            if isinstance(value, (list, tuple, Mapping)):
                raise Uneval(f"expected a single value, got a {kind_of(value)}")
            return _kleene_any(options, lambda opt: equal(value, opt))

        return is_in if op == "in" else (lambda v: not is_in(v))
    if op in ("contains", "not_contains"):
        needle = raw
        expected = prepare_expected(raw)

        def contains(value: Any) -> bool:
            if isinstance(value, str):
                if isinstance(needle, str):
                    return needle in value
                raise Uneval(f"cannot look for a {kind_of(needle)} in a string")
            if isinstance(value, Mapping):
                return needle in value
            if isinstance(value, (list, tuple)):
                return _kleene_any(value, lambda item: equal(item, expected))
            raise Uneval(f"cannot look inside a {kind_of(value)}")

        return contains if op == "contains" else (lambda v: not contains(v))
    if op in ("startswith", "endswith"):
        affixes = (raw,) if isinstance(raw, str) else tuple(raw)

        def affix(value: Any) -> bool:
            if not isinstance(value, str):
                raise Uneval(f"expected a string, got a {kind_of(value)}")
            return value.startswith(affixes) if op == "startswith" else value.endswith(affixes)

        return affix
    if op in ("matches", "regex"):
        rx = compile_regex(raw)
        if op == "matches":  # original semantics: anchored at the start only
            return lambda v: rx.match(_as_text(v)) is not None
        return lambda v: rx.search(_as_text(v)) is not None
    raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - validated by the model


class Leaf:
    """``param operator value``, compiled."""

    __slots__ = ("param", "path", "folded", "simple", "op", "raw", "test", "text")

    def __init__(self, cond: Condition) -> None:
        self.param = cond.param
        self.path = tuple(cond.param.split("."))
        self.folded = tuple(fold(seg) for seg in self.path)
        self.simple = len(self.path) == 1
        self.op = cond.operator
        self.raw = cond.value
        self.test: Test | None = None if self.op == "exists" else _build_test(self.op, cond.value)
        self.text = f"{cond.param} {cond.operator} {_show(cond.value)}"

    def _value(self, call: Call, strict: bool) -> Any:
        if self.simple:
            return lookup(call, self.param, self.folded[0], strict)
        return resolve(call, self.path, self.folded, strict, self.param)

    def check(self, call: Call, strict: bool) -> Result:
        try:
            if self.simple:
                if not strict:
                    value = call.params.get(self.param, MISSING)
                elif call._plain or (call._plain is None and call.plain()):
                    # every name is its own fold: exact lookup of the folded name (hot path)
                    value = call.params.get(self.folded[0], MISSING)
                else:
                    value = lookup(call, self.param, self.folded[0], strict)
            else:
                value = resolve(call, self.path, self.folded, strict, self.param)
            if self.test is None:  # exists
                return (value is not MISSING and value is not None) is self.raw
            if value is MISSING:
                return f"parameter '{self.param}' is missing"
            return self.test(value)
        except Uneval as exc:
            return f"{self.param}: {exc}"
        except Exception as exc:  # a hostile or broken value must not crash governance
            return f"{self.param}: cannot be evaluated ({type(exc).__name__})"

    def trace(self, call: Call, strict: bool) -> ConditionTrace:
        result = self.check(call, strict)
        try:
            value = self._value(call, strict)
            actual = "<missing>" if value is MISSING else safe_text(repr(value), 80)
        except Exception:
            actual = "<ambiguous>"
        if isinstance(result, str):
            return ConditionTrace(self.text, None, result, actual)
        return ConditionTrace(self.text, result, None, actual)


class _GroupNode:
    """Members combined with three-valued logic: ``decisive`` is the member result that settles
    the group at once (False for ``all``, True for ``any``); otherwise the first error wins over
    the group's default (the opposite of ``decisive``)."""

    __slots__ = ("children",)
    decisive: bool
    label: str

    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children

    def check(self, call: Call, strict: bool) -> Result:
        decisive = self.decisive
        error: str | None = None
        for child in self.children:
            r = child.check(call, strict)
            if r is decisive:
                return decisive
            if error is None and isinstance(r, str):  # an error message, not True/False
                error = r
        return error if error is not None else not decisive

    def trace(self, call: Call, strict: bool) -> ConditionTrace:
        kids = tuple(c.trace(call, strict) for c in self.children)
        return _group_trace(self.label, self.check(call, strict), kids)


class AllNode(_GroupNode):
    """Every member must hold (an empty ``all`` holds)."""

    __slots__ = ()
    decisive = False
    label = "all of"


class AnyNode(_GroupNode):
    """At least one member must hold."""

    __slots__ = ()
    decisive = True
    label = "any of"


class NotNode:
    """Negation; an error stays an error."""

    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def check(self, call: Call, strict: bool) -> Result:
        r = self.child.check(call, strict)
        if r is True:
            return False
        if r is False:
            return True
        return r

    def trace(self, call: Call, strict: bool) -> ConditionTrace:
        return _group_trace("not", self.check(call, strict), (self.child.trace(call, strict),))


Node = Leaf | AllNode | AnyNode | NotNode


def _group_trace(text: str, result: Result, kids: tuple[ConditionTrace, ...]) -> ConditionTrace:
    if isinstance(result, str):
        return ConditionTrace(text, None, result, None, kids)
    return ConditionTrace(text, result, None, None, kids)


def compile_condition(node: Any) -> Node:
    """Compile a validated condition model (leaf or group) into a node."""
    if isinstance(node, Condition):
        return Leaf(node)
    if isinstance(node, AnyGroup):
        return AnyNode(tuple(compile_condition(c) for c in node.any))
    if isinstance(node, AllGroup):
        return AllNode(tuple(compile_condition(c) for c in node.all))
    if isinstance(node, NotGroup):
        return NotNode(compile_condition(node.not_))
    raise TypeError(f"not a condition: {node!r}")  # pragma: no cover


def describe(node: Any) -> str:
    """A one-line summary of a condition model, e.g. ``amount gt 100 and any(…)``."""
    if isinstance(node, Condition):
        return f"{node.param} {node.operator} {_show(node.value)}"
    if isinstance(node, AnyGroup):
        return "any(" + ", ".join(describe(c) for c in node.any) + ")"
    if isinstance(node, AllGroup):
        return "all(" + ", ".join(describe(c) for c in node.all) + ")"
    if isinstance(node, NotGroup):
        return f"not({describe(node.not_)})"
    return repr(node)  # pragma: no cover


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- message templates ---------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^\W\d]\w*(?:\.\w+)*)\}")


class _Slot:
    __slots__ = ("name", "path", "folded", "simple", "secret")

    def __init__(self, name: str, is_secret: Callable[[str], bool]) -> None:
        self.name = name
        self.path = tuple(name.split("."))
        self.folded = tuple(fold(p) for p in self.path)
        self.simple = len(self.path) == 1
        self.secret = any(is_secret(seg) for seg in self.path)


class Template:
    """A rule message with ``{param}`` / ``{payment.amount}`` placeholders.

    Only dotted lookups into the call's parameters (dicts and list indexes) are done: never
    attribute access or format specs, so ``{x.__class__}`` or ``{x:>99999}`` stay literal text.
    A placeholder for a parameter that is absent stays literal too. Values are shortened,
    made terminal-safe and masked when their name is a secret (``password``, ``token``, …).
    """

    __slots__ = ("parts", "static")

    def __init__(self, text: str, is_secret: Callable[[str], bool] = lambda _: False) -> None:
        parts: list[str | _Slot] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            parts.append(text[pos : m.start()])
            token = m.group(0)
            parts.append(token[0] if token in ("{{", "}}") else _Slot(m.group(1), is_secret))
            pos = m.end()
        parts.append(text[pos:])
        self.parts = tuple(p for p in parts if p != "")
        self.static: str | None = (
            "".join(p for p in self.parts if isinstance(p, str))
            if all(isinstance(p, str) for p in self.parts)
            else None
        )

    def render(self, call: Call) -> str:
        """The message with this call's parameter values filled in."""
        if self.static is not None:
            return self.static
        out: list[str] = []
        for part in self.parts:
            if type(part) is str:
                out.append(part)
                continue
            assert isinstance(part, _Slot)
            try:
                if part.simple:
                    value = lookup(call, part.name, part.folded[0], True)
                else:
                    value = resolve(call, part.path, part.folded, True, part.name)
            except Uneval:
                value = MISSING
            if value is MISSING:
                out.append("{" + part.name + "}")
            elif part.secret:
                out.append("[REDACTED]")
            else:
                try:
                    out.append(_render_value(value))
                except Exception:  # e.g. a pathologically deep value: keep the placeholder
                    out.append("{" + part.name + "}")
        return "".join(out)


def _render_value(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is float:
        return (
            str(value)
            if kind is float or -(10**30) < value < 10**30
            else safe_text(str(value), 200)
        )
    text = (
        value
        if isinstance(value, str)
        else _show(value)
        if not isinstance(value, (list, dict))
        else repr(value)
    )
    return safe_text(redact_string(text), 200)
