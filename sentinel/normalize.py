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
import sys
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


_EXACT = frozenset((str, int, float, bool, type(None)))

#: Python refuses to print an int of more than 4300 digits (``sys.int_info``); beyond this size an
#: int is written as ``{"$int": "<all its digits>"}`` (through Decimal, which has no such limit).
_HUGE_INT = 10**4000


def exact(value: Any, _depth: int = 0) -> Any:
    """``value`` with subclasses of builtin types replaced by the exact builtin they hold.

    Policies are evaluated on what a value *is*, not on what its methods claim: a ``float``
    subclass overriding ``__gt__``/``__float__``/``__eq__``, an ``int`` or ``str`` subclass, an
    ``IntEnum``, a ``dict``/``list`` subclass with a lying ``get``/``__iter__`` are all read through
    the builtin type's own methods (``float.__float__``, ``dict.items`` …), never the subclass's.
    Enums become their value; a ``Decimal`` subclass an exact ``Decimal``; bools stay bools (True
    is not 1). Exact containers of exact values are returned unchanged (no copy); other objects are
    returned as they are (conditions treat them as not numbers, not strings).
    """
    kind = type(value)
    if kind in _EXACT:
        return value
    if _depth > 50:
        return value
    d = _depth + 1
    if kind is dict or kind is list or kind is tuple:
        if kind is dict:
            out_d = {_exact_key(k): exact(v, d) for k, v in value.items()}
            same = len(out_d) == len(value) and all(
                out_d.get(k, _MISSING) is v for k, v in value.items()
            )
            return value if same else out_d
        items = [exact(v, d) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if kind is list else tuple(items)
    if isinstance(value, enum.Enum):
        try:
            inner = object.__getattribute__(value, "_value_")
        except AttributeError:
            inner = repr(value)
        return exact(inner, d)
    if isinstance(value, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Decimal):
        return Decimal(value) if kind is not Decimal else value
    if isinstance(value, dict):
        return {_exact_key(k): exact(v, d) for k, v in dict.items(value)}
    if isinstance(value, list):
        return [exact(v, d) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return tuple(exact(v, d) for v in tuple.__iter__(value))
    if isinstance(value, Mapping):
        return {_exact_key(k): exact(v, d) for k, v in value.items()}
    np = sys.modules.get("numpy")  # numpy scalars (np.int64 …) by their Python value
    if np is not None and isinstance(value, np.generic):
        return exact(value.item(), d)
    return value


_MISSING = object()


def _exact_key(key: Any) -> Any:
    kind = type(key)
    if kind is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    return key


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is exact builtin data all the way down (nothing for :func:`exact` to
    change), checked without building anything."""
    kind = type(value)
    if kind in _EXACT:
        return True
    if depth > 50:
        return False
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _EXACT and not _plain(v, depth + 1)):
                return False
        return True
    if kind is list or kind is tuple:
        for v in value:
            if type(v) not in _EXACT and not _plain(v, depth + 1):
                return False
        return True
    return False


def exact_params(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """:func:`exact` over a call's parameters; the same mapping when every value is already
    exact builtin data (the common case: checked without copying)."""
    if type(params) is dict:
        exact_types = _EXACT
        for key, value in params.items():
            if type(key) is not str or (type(value) not in exact_types and not _plain(value, 1)):
                break
        else:
            return params
    out: Mapping[str, Any] = exact(params)
    return out


def to_jsonable(
    value: Any, _depth: int = 0, _unbound: list[str] | None = None, _path: str = ""
) -> Any:
    """A JSON-safe rendering of ``value`` that never fails and never drops information silently.

    Decimal → exact string form kept numeric where possible (int/float when exact, else str);
    datetimes → ISO 8601; enums → their value; dataclasses and pydantic models → dicts of every
    attribute they hold (see :func:`_shown_state`);
    bytes → ``{"$bytes": base64}``; sets → sorted lists; NaN/inf → strings ``"NaN"``/``"Infinity"``;
    ints too long to print → ``{"$int": digits}``; subclasses of builtins → the exact builtin value
    (see :func:`exact`); numpy arrays → ``{"$ndarray": {dtype, shape, nbytes, sha256 of the bytes,
    values when small}}``; numpy scalars → their Python value; instances of classes written in
    Python → ``{"$object": type, "state": {attribute: value}}`` (their whole ``__dict__`` and
    ``__slots__``); anything else (objects whose state lives in C: sockets, locks, files …) →
    ``{"$repr": repr(value)[:500], "$type": qualified type name}``, which :func:`binding_digest`
    refuses to bind because it does not capture the value.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_HUGE_INT < value < _HUGE_INT:
            return value
        return {"$int": str(Decimal(value))}
    if kind is float:
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if _unbound is not None and kind.__flags__ & _HEAPTYPE and not isinstance(value, enum.Enum):
        bound = _bind_object(value, _depth, _unbound, _path)
        if bound is not None:
            return bound
    if isinstance(value, (int, float, str)) and not isinstance(value, enum.Enum):
        return to_jsonable(exact(value), _depth, _unbound, _path)
    if _depth > 50:
        if _unbound is not None:  # bound by a hash of all of it (JSON data), or refused
            whole = _deep_hash(value)
            if whole is not None:
                return {"$deep": whole}
            _unbound.append(f"{_path or 'the arguments'}: objects nested more than 50 deep")
        return {"$repr": "<nested too deep>", "$type": type(value).__qualname__}
    d = _depth + 1
    if isinstance(value, Mapping):
        pairs = dict.items(value) if isinstance(value, dict) else value.items()
        if _unbound is None:
            return {str(_exact_key(k)): to_jsonable(v, d) for k, v in pairs}
        out: dict[str, Any] = {}
        for k, v in pairs:
            key = str(_exact_key(k))
            out[key] = to_jsonable(v, d, _unbound, f"{_path}.{key}" if _path else key)
        return out
    if isinstance(value, (list, tuple)):
        it = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        if _unbound is None:
            return [to_jsonable(v, d) for v in it]
        return [to_jsonable(v, d, _unbound, f"{_path}[{i}]") for i, v in enumerate(it)]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v, d, _unbound, f"{_path}{{}}") for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda x: json.dumps(x, sort_keys=True, default=str))
    if isinstance(value, Decimal):
        if type(value) is not Decimal:
            value = Decimal(value)
        if not value.is_finite():
            return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        # copy_abs and comparisons never round, so an exponent past the context cannot raise
        if value.copy_abs() < 10**18 and value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(exact(value), d, _unbound, _path)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    array = _ndarray(value, d, _unbound, _path)
    if array is not None:
        return array
    shown = _shown_state(value)
    if shown is not None:
        return {k: to_jsonable(v, d, _unbound, f"{_path}.{k}") for k, v in shown.items()}
    state = _python_state(value)
    if state is not None:
        return {
            "$object": _type_name(value),
            "state": {k: to_jsonable(v, d, _unbound, f"{_path}.{k}") for k, v in state.items()},
        }
    try:
        text = repr(value)
    except Exception as exc:  # repr itself can raise in hostile objects
        text = f"<unrepresentable: {type(exc).__name__}>"
    if _unbound is not None:
        _unbound.append(
            f"{_path or 'the arguments'} (a {_type_name(value)}) has state Sentinel cannot read"
        )
    return {"$repr": text[:500], "$type": _type_name(value)}


#: Builtin data types a class can derive from while keeping its value in the builtin part.
_BUILTIN_DATA = (dict, list, tuple, set, frozenset, str, int, float, bytes, bytearray, Decimal)


def _builtin_value(value: Any) -> Any:
    """The exact builtin value held by an instance of a subclass of :data:`_BUILTIN_DATA`, read
    through the builtin's own methods (never the subclass's)."""
    if isinstance(value, dict):
        return dict(dict.items(value))
    if isinstance(value, list):
        return list(list.__iter__(value))
    if isinstance(value, tuple):
        return tuple(tuple.__iter__(value))
    if isinstance(value, frozenset):
        return frozenset(frozenset.__iter__(value))
    if isinstance(value, set):
        return set(set.__iter__(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Decimal):
        return Decimal(value)
    return exact(value)


def _bind_object(value: Any, depth: int, unbound: list[str], path: str) -> Any:
    """The binding form of an instance of a class written in Python, or None to take the usual
    path. What the display form leaves out must still be bound, or it could change while the
    request waits: a dataclass's attributes beyond its fields, a pydantic model's private
    attributes, whatever a ``model_dump`` or a ``Mapping.items`` of the class's own chooses to
    return, attributes set on a ``dict``/``list``/``str`` … subclass. So such values are bound
    by their whole state (``__dict__`` and ``__slots__``, read without the class's hooks)."""
    if depth > 50:
        return None  # the usual path binds or refuses what is nested this deep
    d = depth + 1
    if isinstance(value, _BUILTIN_DATA):
        state = _attributes(type(value).__mro__, value)
        if not state:
            return None  # nothing beyond the builtin value: bound as that value
        return {
            "$object": _type_name(value),
            "value": to_jsonable(_builtin_value(value), depth, unbound, path),
            "state": {k: to_jsonable(v, d, unbound, f"{path}.{k}") for k, v in state.items()},
        }
    if (
        not (dataclasses.is_dataclass(value) and not isinstance(value, type))
        and not callable(getattr(type(value), "model_dump", None))
        and not isinstance(value, Mapping)
    ):
        return None
    full = _python_state(value)
    if full is None:
        return None  # part of its state lives in C: the usual path refuses or binds its items
    return {
        "$object": _type_name(value),
        "state": {k: to_jsonable(v, d, unbound, f"{path}.{k}") for k, v in full.items()},
    }


def _shown_state(value: Any) -> dict[str, Any] | None:
    """What the approver sees of a dataclass or a pydantic model: every attribute it holds, by
    name (its fields, and whatever else was set on it: a pydantic model's extra and private
    attributes), read from the instance itself. Not the class's own ``model_dump``, ``repr`` or
    a field's ``exclude``: those could hide from the approver a value the function reads.
    None for other values."""
    is_model = hasattr(type(value), "__pydantic_fields__") and callable(
        getattr(type(value), "model_dump", None)
    )
    if not is_model and not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return None
    state = _python_state(value)
    if state is None:  # part of it lives in C: its fields, read through the class
        if not dataclasses.is_dataclass(value):
            return None
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    if not is_model:
        return state
    shown = {k: v for k, v in state.items() if not k.startswith("__pydantic_")}
    for extra in ("__pydantic_extra__", "__pydantic_private__"):
        more = state.get(extra)
        if isinstance(more, dict):
            for k, v in dict.items(more):
                shown.setdefault(str(k), v)
    return shown


class _Raw:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _deep_hash(value: Any) -> str | None:
    """SHA-256 of a canonical serialisation of plain JSON data of any depth, without recursion
    (what a JSON parser can produce: exact dict/list/str/int/float/bool/None). None for anything
    else, or a container met twice (a cycle)."""
    h = hashlib.sha256()
    stack: list[Any] = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is _Raw:
            h.update(item.data)
        elif item is None or kind is bool:
            h.update(b"null" if item is None else (b"true" if item else b"false"))
        elif kind is str:
            h.update(json.dumps(item, ensure_ascii=False).encode("utf-8"))
        elif kind is int:
            h.update(str(Decimal(item)).encode("ascii"))
        elif kind is float:
            h.update(json.dumps(to_jsonable(item)).encode("ascii"))
        elif kind is dict or kind is list:
            if id(item) in seen:
                return None
            seen.add(id(item))
            if kind is list:
                stack.append(_Raw(b"]"))
                for i, sub in enumerate(reversed(item)):
                    stack.append(sub)
                    if i < len(item) - 1:
                        stack.append(_Raw(b","))
                stack.append(_Raw(b"["))
            else:
                if any(type(k) is not str for k in item):
                    return None
                keys = sorted(item)
                stack.append(_Raw(b"}"))
                for i, k in enumerate(reversed(keys)):
                    stack.append(item[k])
                    stack.append(_Raw(json.dumps(k, ensure_ascii=False).encode("utf-8") + b":"))
                    if i < len(keys) - 1:
                        stack.append(_Raw(b","))
                stack.append(_Raw(b"{"))
        else:
            return None
    return h.hexdigest()


#: Arrays with at most this many elements also show their values to the approver.
_ARRAY_VALUES = 64

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class created by a class statement


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _ndarray(value: Any, d: int, unbound: list[str] | None, path: str) -> Any:
    """numpy arrays by dtype, shape and a hash of every byte; numpy scalars by their value.
    None for anything else (numpy is only looked at when it is already imported)."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(value, np.generic):
        return to_jsonable(value.item(), d, unbound, path)
    if not isinstance(value, np.ndarray):
        return None
    if type(value) is not np.ndarray:  # masked arrays, matrices: state beyond the buffer
        return None
    dtype = value.dtype
    described: dict[str, Any] = {
        "dtype": str(dtype.descr) if dtype.names else dtype.str,
        "shape": list(value.shape),
    }
    if dtype.hasobject:  # the buffer holds pointers: bind the elements themselves
        described["values"] = to_jsonable(value.tolist(), d, unbound, path)
        return {"$ndarray": described}
    data = np.ascontiguousarray(value).tobytes()
    described["nbytes"] = len(data)
    described["sha256"] = hashlib.sha256(data).hexdigest()
    if value.size <= _ARRAY_VALUES:
        described["values"] = to_jsonable(value.tolist(), d, unbound, path)
    return {"$ndarray": described}


def _python_state(value: Any) -> dict[str, Any] | None:
    """Every attribute of an instance of classes written in Python (``__dict__`` and
    ``__slots__``), read without calling the class's own attribute hooks; None when part of the
    state lives in C (a builtin or extension base class), so it cannot be captured."""
    cls = type(value)
    mro = cls.__mro__[:-1]  # without object
    if not mro:
        return None
    for klass in mro:
        if not klass.__flags__ & _HEAPTYPE:
            return None
        if "__slots__" not in vars(klass) and not klass.__dictoffset__:
            return None  # an extension heap type keeping its state in C
    return _attributes(mro, value)


def _attributes(mro: tuple[type, ...], value: Any) -> dict[str, Any]:
    """The ``__slots__`` of the Python classes in ``mro`` and the instance ``__dict__``."""
    state: dict[str, Any] = {}
    for klass in reversed(mro):
        if not klass.__flags__ & _HEAPTYPE:
            continue
        slots = vars(klass).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            private = name.startswith("__") and not name.endswith("__")  # mangled like Python
            attr = f"_{klass.__name__.lstrip('_')}{name}" if private else name
            descriptor = vars(klass).get(attr)
            if descriptor is None:
                continue
            try:
                state[attr] = descriptor.__get__(value, klass)
            except AttributeError:  # an unset slot
                continue
    try:
        instance_dict = object.__getattribute__(value, "__dict__")
    except AttributeError:
        instance_dict = {}
    if isinstance(instance_dict, dict):
        for key, item in dict.items(instance_dict):
            state[str(key)] = item
    return state


class UnbindableArgument(ValueError):
    """An argument whose complete state cannot be read, so an approval cannot be bound to it."""


#: The one canonical JSON encoder (built once: json.dumps() with options makes a new encoder per
#: call). Sorted keys, no whitespace, UTF-8 text, NaN/inf refused.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_text(obj: Any) -> str:
    """The canonical JSON text of a value that is JSON already (no normalisation): what the
    audit chain hashes (``sentinel.store.canonical_json`` is this) and digests are taken of."""
    return _CANONICAL(obj)


def canonical_json(obj: Any) -> bytes:
    """Canonical UTF-8 JSON of any value: :func:`to_jsonable` first (non-finite numbers become
    strings), then :func:`canonical_text`."""
    return _CANONICAL(to_jsonable(obj)).encode("utf-8")


def digest(params: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``params`` (never fails; see :func:`binding_digest`
    for the digest an approval binds to)."""
    return hashlib.sha256(canonical_json(params)).hexdigest()


def binding_digest(params: Any) -> str:
    """The digest an approval binds to: :func:`digest` of the complete canonical form of
    ``params``, equal to ``digest(to_jsonable(params))`` for every value it accepts.

    Every part of the value is in it — no repr, nothing cut short: numpy arrays by every byte,
    Python objects by all their attributes, JSON data of any depth. A value whose state
    cannot be read completely (an object of a C type such as a socket or a lock, or objects
    nested more than 50 deep) raises :class:`UnbindableArgument` naming where it is, because an
    approval bound to part of a value could run with the rest changed.
    """
    unbound: list[str] = []
    form = to_jsonable(params, 0, unbound, "")
    if unbound:
        raise UnbindableArgument(
            "cannot bind an approval to these arguments: "
            + "; ".join(unbound[:5])
            + " (pass plain data, a dataclass, a pydantic model or a numpy array)"
        )
    # the form is JSON already: encoded directly, because normalising it again would cut its
    # deep parts off at the display depth
    text = json.dumps(
        form, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest_or_refusal(params: Any) -> str:
    """:func:`binding_digest`, or a text that can never equal a digest when ``params`` has become
    unbindable (checked after approval: a value that gained unreadable state while the request
    waited is a mismatch, never a governance error that ``fail_mode="safe"`` would let run)."""
    try:
        return binding_digest(params)
    except UnbindableArgument as exc:
        return f"unbindable: {exc}"
