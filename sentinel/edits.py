"""Edit, then approve: the arguments' schema, an operator's typed edit, and its digest.

A request records the JSON Schema of its arguments when it is submitted
(:func:`argument_schema` from a function's signature, :func:`model_schema` from a tool's pydantic
model or JSON Schema). An operator who changes a value before approving gives new values by
parameter name; :func:`check_edit` types and checks them against that schema (naming the
parameter and what it expects when one does not fit) and returns the
:class:`~sentinel.store.models.ArgumentEdit` the approval records. The approval is bound to
:func:`edit_digest` — the request's digest and the new values — which is what a signed approval
of an edited call signs; the waiting call computes it again itself, so an edit written into the
row afterwards never verifies.

The checks here use only the stored schema (the command center, the CLI and the API have no
access to the function); the waiting call validates the values again with the function's own
types before it runs (:func:`coerce_arguments`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sentinel.errors import EditRefused
from sentinel.normalize import canonical_text
from sentinel.redact import MASK
from sentinel.store.models import ArgumentEdit, FieldChange, RequestRecord

__all__ = [
    "EDIT_DOMAIN",
    "argument_schema",
    "check_edit",
    "coerce_arguments",
    "edit_digest",
    "expected",
    "model_schema",
    "parse_assignment",
    "schema_error",
]

#: Domain tag of the edit digest: never equal to any other digest Sentinel computes.
EDIT_DOMAIN = "sentinel-edit-v1"

_VAR = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


# --- the digest an edited approval is bound to --------------------------------------------------


def edit_digest(request_digest: str, values: Mapping[str, Any]) -> str:
    """SHA-256 of the request's (binding) digest and the new values: the edited call, exactly.

    The request's digest binds every real argument (redacted ones included) and ``values``
    replace some of them, so the pair names the call that runs and nothing else."""
    text = canonical_text(
        {"domain": EDIT_DOMAIN, "request": request_digest, "values": dict(values)}
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- schemas ------------------------------------------------------------------------------------


def argument_schema(func: Callable[..., Any], *, skip_first: bool = False) -> dict[str, Any] | None:
    """The JSON Schema of ``func``'s parameters (pydantic's, one property per parameter), or
    None when the signature cannot be read. An unannotated parameter takes any JSON value; a
    ``*args`` / ``**kwargs`` parameter is left out (an edit of a name it would take is refused
    unless the call had that name)."""
    from pydantic import TypeAdapter

    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    try:
        hints = _hints(func)
    except Exception:
        hints = {}
    props: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    required: list[str] = []
    for index, (name, param) in enumerate(sig.parameters.items()):
        if param.kind in _VAR or (skip_first and index == 0):
            continue
        annotation = hints.get(name, param.annotation)
        prop: dict[str, Any] = {}
        if annotation is not inspect.Parameter.empty and not isinstance(annotation, str):
            try:
                prop = dict(TypeAdapter(annotation).json_schema(ref_template="#/$defs/{model}"))
            except Exception:
                prop = {}  # a type pydantic cannot describe: any value (checked by the call)
            defs.update(prop.pop("$defs", {}) or {})
        if param.default is inspect.Parameter.empty:
            required.append(name)
        props[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if defs:
        schema["$defs"] = defs
    return schema


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(func, include_extras=True)


def model_schema(model: Any) -> dict[str, Any] | None:
    """The JSON Schema of a tool's arguments: a pydantic model class (v2 or v1), or a JSON
    Schema dict as MCP and OpenAI tools give it. None when there is none to be had."""
    if model is None:
        return None
    if isinstance(model, Mapping):
        return dict(model) if model.get("type") == "object" or "properties" in model else None
    for attr in ("model_json_schema", "schema"):
        fn = getattr(model, attr, None)
        if callable(fn):
            try:
                out = fn()
            except Exception:
                continue
            if isinstance(out, Mapping):
                return dict(out)
    return None


# --- checking values against a schema -----------------------------------------------------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def schema_error(schema: Any, value: Any, root: Mapping[str, Any] | None = None) -> str | None:
    """Why ``value`` does not fit ``schema`` (the subset of JSON Schema pydantic writes: types,
    enum/const, anyOf/oneOf/allOf, $ref, bounds, lengths, pattern, items, properties), or None
    when it fits. ``root`` holds the ``$defs`` references point into."""
    if not isinstance(schema, Mapping) or not schema:
        return None
    root = root if root is not None else schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        if target is None:
            return None  # a reference we cannot follow checks nothing (the call checks it)
        return schema_error(target, value, root)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            if all(schema_error(o, value, root) is not None for o in options):
                return f"expects {expected(schema, root)}"
    for option in schema.get("allOf") or ():
        why = schema_error(option, value, root)
        if why is not None:
            return why
    if "const" in schema and value != schema["const"]:
        return f"expects {json.dumps(schema['const'])}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"expects one of {', '.join(json.dumps(e) for e in enum)}"
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if isinstance(types, list) and types:
        if not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in types):
            return f"expects {expected(schema, root)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok in (
            ("minimum", lambda b: value >= b),
            ("maximum", lambda b: value <= b),
            ("exclusiveMinimum", lambda b: value > b),
            ("exclusiveMaximum", lambda b: value < b),
        ):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not ok(bound):
                return f"expects a number {_BOUND_WORDS[key]} {bound:g}"
    if isinstance(value, str):
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if isinstance(lo, int) and len(value) < lo:
            return f"expects at least {lo} characters"
        if isinstance(hi, int) and len(value) > hi:
            return f"expects at most {hi} characters"
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    return f"expects text matching {pattern}"
            except re.error:
                pass
    if isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            why = schema_error(items, item, root) if isinstance(items, Mapping) else None
            if why is not None:
                return f"item {i} {why}"
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for name in schema.get("required") or ():
                if name not in value:
                    return f"expects an object with {name!r}"
            for name, item in value.items():
                if name in props:
                    why = schema_error(props[name], item, root)
                    if why is not None:
                        return f"field {name!r} {why}"
                elif schema.get("additionalProperties") is False:
                    return f"expects no field {name!r}"
    return None


_BOUND_WORDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "above",
    "exclusiveMaximum": "below",
}


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def expected(schema: Any, root: Mapping[str, Any] | None = None) -> str:
    """What ``schema`` accepts, in words: ``integer``, ``number or null``, ``one of "a", "b"``."""
    if not isinstance(schema, Mapping) or not schema:
        return "any value"
    root = root if root is not None else schema
    if isinstance(schema.get("$ref"), str):
        target = _resolve(schema["$ref"], root)
        return expected(target, root) if target is not None else "any value"
    if isinstance(schema.get("enum"), list):
        return "one of " + ", ".join(json.dumps(e) for e in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        words = list(dict.fromkeys(expected(o, root) for o in options))
        if "number" in words and any(w.startswith("text matching") for w in words):
            words = [w for w in words if not w.startswith("text matching")]  # Decimal
        return " or ".join(words)
    types = schema.get("type")
    if isinstance(types, list):
        return " or ".join(str(t) for t in types)
    if types == "string" and isinstance(schema.get("pattern"), str):
        return f"text matching {schema['pattern']}"
    if isinstance(types, str):
        if types == "array" and isinstance(schema.get("items"), Mapping):
            return f"a list of {expected(schema['items'], root)}"
        return types
    return "any value"


# --- an operator's edit -----------------------------------------------------------------------


def parse_assignment(text: str) -> tuple[str, str]:
    """``name=value`` (``--set``) → ``(name, value text)``; ValueError naming the problem."""
    name, sep, value = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--set {text!r}: write it as NAME=VALUE (e.g. --set amount=400)")
    return name, value


def typed_value(text: str, schema: Any, root: Mapping[str, Any] | None = None) -> Any:
    """The JSON value an operator's text means for a parameter of ``schema``: the text read as
    JSON (``400``, ``true``, ``null``, ``["a"]``) when that fits the schema, else the text itself
    when a string fits; ValueError saying what the parameter expects otherwise."""
    candidates: list[Any] = []
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _NOTHING
    else:
        if isinstance(parsed, float) and not math.isfinite(parsed):
            parsed = _NOTHING
    if parsed is not _NOTHING:
        candidates.append(parsed)
    candidates.append(text)
    reasons = []
    for value in candidates:
        why = schema_error(schema, value, root)
        if why is None:
            return value
        reasons.append(why)
    # The reading as JSON says most (a number below the minimum, not "expects integer").
    raise ValueError(f"{reasons[0]}, got {text!r}")


_NOTHING: Any = object()


def check_edit(
    record: RequestRecord, values: Mapping[str, Any], *, typed: bool = True
) -> dict[str, Any]:
    """The new values of an edit of ``record``, checked against its recorded schema.

    ``values`` maps parameter names to the operator's input: text to be typed by the schema
    (``typed=True``: the CLI's ``--set``, the command center's form) or JSON values as given
    (``typed=False``: the API). Returns only the values that change something. Raises
    :class:`~sentinel.errors.EditRefused` naming the parameter and what it expects (nothing is
    decided then): an unknown parameter, a value its schema refuses, a parameter whose value is
    masked (a secret), or a request whose schema was not recorded."""
    short = record.id[:8]
    schema = record.arg_schema
    if not values:
        raise EditRefused(f"request {short}: no value to change (--set NAME=VALUE)")
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        raise EditRefused(
            f"request {short} ({record.function}) recorded no argument schema, so an edit cannot "
            "be checked: approve it as sent, or deny it with a hint"
        )
    props: Mapping[str, Any] = schema["properties"]
    out: dict[str, Any] = {}
    for name, given in values.items():
        if name not in props:
            known = ", ".join(sorted(props)) or "none"
            raise EditRefused(
                f"request {short}: {record.function} has no parameter {name!r} (parameters: {known})",
                parameter=name,
            )
        if record.arguments.get(name) == MASK:
            raise EditRefused(
                f"request {short}: parameter {name!r} is masked (a secret): it cannot be edited",
                parameter=name,
            )
        prop = props[name]
        try:
            value = typed_value(str(given), prop, schema) if typed else _json_value(given)
        except ValueError as exc:
            raise EditRefused(
                f"request {short}: parameter {name!r} {exc}", parameter=name
            ) from None
        why = schema_error(prop, value, schema)
        if why is not None:
            raise EditRefused(
                f"request {short}: parameter {name!r} {why}, got {json.dumps(value)}",
                parameter=name,
            )
        if name not in record.arguments or record.arguments[name] != value:
            out[name] = value
    if not out:
        raise EditRefused(f"request {short}: the edit changes nothing (the values are as sent)")
    return out


def _json_value(value: Any) -> Any:
    """A JSON-safe copy of ``value`` (ValueError for one that is not JSON)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expects a JSON value ({exc})") from None


def build_edit(
    record: RequestRecord, values: Mapping[str, Any], operator: str | None, label: str | None
) -> ArgumentEdit:
    """The :class:`ArgumentEdit` recording ``values`` (already checked) on ``record``."""
    changes = tuple(FieldChange(k, record.arguments.get(k), v) for k, v in values.items())
    return ArgumentEdit(dict(values), changes, edit_digest(record.digest, values), operator, label)


# --- the waiting call: run with the function's own types ----------------------------------------


def coerce_arguments(func: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (JSON) as ``func``'s annotations want them (``Decimal``, ``datetime``, enums,
    models…), validated by pydantic in JSON mode; an unannotated parameter takes the JSON value.
    Raises :class:`~sentinel.errors.EditRefused` naming the parameter whose value does not fit."""
    from pydantic import TypeAdapter, ValidationError

    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return dict(values)
    try:
        hints = _hints(func)
    except Exception:
        hints = {}
    out: dict[str, Any] = {}
    for name, value in values.items():
        param = sig.parameters.get(name)
        annotation = hints.get(name, param.annotation if param is not None else None)
        if (
            param is None
            or annotation in (None, inspect.Parameter.empty)
            or isinstance(annotation, str)
        ):
            out[name] = value
            continue
        try:
            out[name] = TypeAdapter(annotation).validate_json(json.dumps(value))
        except ValidationError as exc:
            first = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise EditRefused(
                f"the edited value of {name!r} does not fit {func.__name__}: {first}",
                parameter=name,
            ) from None
        except Exception as exc:
            raise EditRefused(
                f"the edited value of {name!r} could not be checked: {exc}", parameter=name
            ) from None
    return out


def decimal_text(value: Any) -> str:
    """How a form shows a value for editing: JSON for everything but plain strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        try:
            return str(value)
        except InvalidOperation:  # pragma: no cover
            return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)
