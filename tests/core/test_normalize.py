"""Binding and normalisation: nothing is dropped, nothing crashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
from decimal import Decimal

import pytest

from sentinel.normalize import Binder, canonical_json, digest, to_jsonable


def test_named_defaults_and_kwargs_are_flattened() -> None:
    def f(a, b=2, *rest, c, **kw):
        return None

    assert Binder(f).bind((1, 5, 6, 7), {"c": 3, "amount": "5000"}) == {
        "a": 1,
        "b": 5,
        "rest": [6, 7],
        "c": 3,
        "amount": "5000",
    }


def test_fast_path_matches_python_semantics() -> None:
    def g(amount, to="x"):
        return None

    b = Binder(g)
    assert b.bind((10,), {}) == {"amount": 10, "to": "x"}
    assert b.bind((), {"amount": 1, "to": "y"}) == {"amount": 1, "to": "y"}
    with pytest.raises(TypeError, match="missing"):
        b.bind((), {})
    with pytest.raises(TypeError, match="unexpected"):
        b.bind((1,), {"nope": 2})
    with pytest.raises(TypeError, match="multiple"):
        b.bind((1,), {"amount": 2})
    with pytest.raises(TypeError, match="positional"):
        b.bind((1, 2, 3), {})


def test_self_is_skipped_for_methods() -> None:
    class Bank:
        def transfer(self, amount, to):
            return None

    assert Binder(Bank.transfer).bind((Bank(), 5, "a"), {}) == {"amount": 5, "to": "a"}


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Payment:
    amount: Decimal
    when: dt.date


def test_every_kind_of_value_normalises() -> None:
    # Plain Python objects are captured by their whole state; objects with state in C (here a
    # builtin base class) can only be described by their repr.
    class Plain:
        def __init__(self) -> None:
            self.owner = "alice"
            self.items = [1, 2]

        def __repr__(self) -> str:
            return "<Plain>"

    class Opaque(BaseException):
        def __repr__(self) -> str:
            return "<Opaque>"

    class Hostile(BaseException):
        def __repr__(self) -> str:
            raise RuntimeError("no")

    value = {
        "dec": Decimal("5000.25"),
        "int_dec": Decimal("10"),
        "precise": Decimal("0.1000000000000000000001"),
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "raw": b"\x00\xff",
        "tags": {"b", "a"},
        "color": Color.RED,
        "payment": Payment(Decimal("1.5"), dt.date(2026, 1, 1)),
        "nan": math.nan,
        "inf": -math.inf,
        "plain": Plain(),
        "obj": Opaque(),
        "hostile": Hostile(),
        "tuple": (1, 2),
    }
    out = to_jsonable(value)
    json.dumps(out, allow_nan=False)  # really JSON-safe
    assert out["dec"] == 5000.25
    assert out["int_dec"] == 10
    assert out["precise"] == "0.1000000000000000000001"
    assert out["when"] == "2026-01-02T03:04:05+00:00"
    assert out["raw"] == {"$bytes": "AP8="}
    assert out["tags"] == ["a", "b"]
    assert out["color"] == "red"
    assert out["payment"] == {"amount": 1.5, "when": "2026-01-01"}
    assert out["nan"] == "NaN" and out["inf"] == "-Infinity"
    assert out["plain"] == {
        "$object": f"{__name__}.test_every_kind_of_value_normalises.<locals>.Plain",
        "state": {"owner": "alice", "items": [1, 2]},
    }
    assert out["obj"]["$repr"] == "<Opaque>"
    assert "unrepresentable" in out["hostile"]["$repr"]
    assert out["tuple"] == [1, 2]


def test_pydantic_models_normalise() -> None:
    from pydantic import BaseModel

    class M(BaseModel):
        amount: int
        note: str

    assert to_jsonable({"m": M(amount=3, note="x")}) == {"m": {"amount": 3, "note": "x"}}


def test_canonical_json_and_digest_are_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == b'{"a":[1,{"x":1,"y":2}],"b":1}'
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    assert len(digest({})) == 64


def test_exact_reads_numpy_scalars_and_enums_as_python_values() -> None:
    import enum

    import numpy as np

    from sentinel.normalize import exact

    class Level(enum.IntEnum):
        HIGH = 9

    out = exact({"n": np.int64(5000), "b": np.bool_(True), "f": np.float32(0.5), "e": Level.HIGH})
    assert out == {"n": 5000, "b": True, "f": 0.5, "e": 9}
    assert [type(out[k]) for k in ("n", "b", "f", "e")] == [int, bool, float, int]
    from sentinel.policy import Action, parse_policy

    policy = parse_policy(
        "rules: [{id: ok, function_pattern: f, action: allow, "
        "conditions: [{param: n, operator: lte, value: 100}]}]\ndefault_action: block"
    )
    assert policy.evaluate("f", {"n": np.int64(50)}).action is Action.ALLOW
    assert policy.evaluate("f", {"n": np.int64(500)}).action is Action.BLOCK
