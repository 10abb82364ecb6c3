"""Turning a Python call into named, JSON-safe parameters.

* :class:`Binder` maps ``args``/``kwargs`` to parameter names with a signature computed once per
  function (the original recomputed ``inspect.signature`` on every call: most of its overhead).
  ``**kwargs`` keys become parameters of their own, ``*args`` a list under its name, and ``self`` /
  ``cls`` are skipped, so conditions can see every value the function receives.
* :func:`to_jsonable` normalises any value to JSON-safe form without ever dropping it.
* :func:`canonical_json` and :func:`digest` give the bytes and SHA-256 an approval binds to.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import hashlib
import inspect
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

_POS_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POS_OR_KW = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POS = inspect.Parameter.VAR_POSITIONAL
_KW_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KW = inspect.Parameter.VAR_KEYWORD


class Binder:
    """Binds call arguments to parameter names for one function.

    The signature is analysed once. :meth:`bind` raises ``TypeError`` exactly when calling the
    function itself would (missing or unexpected arguments), so the guard can report it before
    anything runs.
    """

    __slots__ = (
        "_defaults",
        "_fast",
        "_names",
        "_pos_names",
        "_signature",
        "_skip_first",
        "_var_kw",
        "_var_pos",
    )

    def __init__(self, func: Callable[..., Any], *, skip_self: bool | None = None) -> None:
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        if skip_self is None:
            skip_self = (
                bool(params)
                and params[0].name in ("self", "cls")
                and params[0].kind
                in (
                    _POS_ONLY,
                    _POS_OR_KW,
                )
            )
        self._signature = sig
        self._skip_first = bool(skip_self)
        self._pos_names = tuple(p.name for p in params if p.kind in (_POS_ONLY, _POS_OR_KW))
        self._names = tuple(p.name for p in params)
        self._defaults = {
            p.name: p.default for p in params if p.default is not inspect.Parameter.empty
        }
        self._var_pos = next((p.name for p in params if p.kind is _VAR_POS), None)
        self._var_kw = next((p.name for p in params if p.kind is _VAR_KW), None)
        # Functions of plain positional-or-keyword parameters (the common case) bind without
        # inspect.BoundArguments, which is several times slower.
        self._fast = all(p.kind is _POS_OR_KW for p in params)

    @property
    def signature(self) -> inspect.Signature:
        return self._signature

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map a call's arguments to ``{name: value}`` (defaults filled, ``self`` left out)."""
        if self._fast:
            names = self._pos_names
            if not kwargs and len(args) == len(names):  # every argument given by position
                out = dict(zip(names, args, strict=True))
                if self._skip_first:
                    del out[names[0]]
                return out
            if len(args) > len(names):
                raise TypeError(
                    f"takes {len(names)} positional arguments but {len(args)} were given"
                )
            out = dict(zip(names, args, strict=False))
            for key, value in kwargs.items():
                if key in out:
                    raise TypeError(f"got multiple values for argument '{key}'")
                if key not in self._defaults and key not in names:
                    raise TypeError(f"got an unexpected keyword argument '{key}'")
                out[key] = value
            if len(out) < len(names):
                for name in names:
                    if name not in out:
                        if name in self._defaults:
                            out[name] = self._defaults[name]
                        else:
                            raise TypeError(f"missing a required argument: '{name}'")
            if self._skip_first and names:
                out.pop(names[0], None)
            return out
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        result: dict[str, Any] = {}
        for index, (name, value) in enumerate(bound.arguments.items()):
            if index == 0 and self._skip_first:
                continue
            if name == self._var_kw:
                for key, inner in value.items():
                    # An explicit parameter always wins over a same-named **kwargs entry.
                    result.setdefault(key, inner)
            elif name == self._var_pos:
                result[name] = list(value)
            else:
                result[name] = value
        return result


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe rendering of ``value`` that never fails and never drops information silently.

    Decimal → exact string form kept numeric where possible (int/float when exact, else str);
    datetimes → ISO 8601; enums → their value; dataclasses and pydantic models → dicts;
    bytes → ``{"$bytes": base64}``; sets → sorted lists; NaN/inf → strings ``"NaN"``/``"Infinity"``;
    anything else → ``{"$repr": repr(value)[:500], "$type": qualified type name}``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if _depth > 50:
        return {"$repr": "<nested too deep>", "$type": type(value).__qualname__}
    d = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, d) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, d) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v, d) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda x: json.dumps(x, sort_keys=True, default=str))
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        if value == value.to_integral_value() and abs(value) < 10**18:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, d)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name, None), d) for f in dataclasses.fields(value)
        }
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return to_jsonable(model_dump(mode="json"), d)
        except Exception:  # a broken model still gets recorded by repr below
            pass
    try:
        text = repr(value)
    except Exception as exc:  # repr itself can raise in hostile objects
        text = f"<unrepresentable: {type(exc).__name__}>"
    return {"$repr": text[:500], "$type": f"{type(value).__module__}.{type(value).__qualname__}"}


def canonical_json(obj: Any) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, no whitespace, non-finite numbers as strings."""
    return json.dumps(
        to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(params: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``params``: what an approval binds to."""
    return hashlib.sha256(canonical_json(params)).hexdigest()
