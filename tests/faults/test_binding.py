"""Weak binding (issue 20.4): an approval bound to ``repr(value)[:500]`` let an object with a
long repr, or a numpy array (whose repr elides the middle), change while the request waited and
still run on the approval.

What must hold: the request's digest covers the complete value (arrays by dtype, shape and every
byte; Python objects by all their attributes; bytes fully), so a change anywhere while the call
waits — approved by an operator through the store API from another thread, real SQLite file — is
refused after approval (digest mismatch) and the function does not run. A value whose state
cannot be read (an object of a C type) is refused before any request is written, naming the
parameter. An unchanged value still runs.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, Field, PrivateAttr

from sentinel import SentinelConfig, protect
from sentinel.errors import SentinelBlockedError
from sentinel.identity import current_operator
from sentinel.normalize import UnbindableArgument, binding_digest, digest, to_jsonable
from sentinel.store import Store
from tests.faults.support import all_events, first_pending
from tests.helpers import signed_decide

RULES = """\
default_action: allow
rules:
  - id: pay
    function_pattern: "pay*"
    action: require_approval
"""


class Ledger:
    """A plain Python object whose repr is far longer than 500 characters."""

    def __init__(self, n: int) -> None:
        self.entries = [f"entry-{i:05d}" for i in range(n)]
        self.owner = "alice"

    def __repr__(self) -> str:
        return f"Ledger({self.entries!r})"


class Slotted:
    __slots__ = ("amount", "to")

    def __init__(self, amount: int, to: str) -> None:
        self.amount, self.to = amount, to


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db, timeout_seconds=30,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(payload: Any) -> str:
        ran.append(payload)
        return "paid"

    return pay, ran, db


def _start(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out



def _approve_after(env: Any, value: Any, mutate: Any) -> tuple[dict[str, Any], Any]:
    pay, ran, db = env
    t, out = _start(pay, value)
    store = Store(db)
    rec = first_pending(store)
    if mutate is not None:
        mutate(value)  # TOCTOU: the caller's object changes while it waits
    signed_decide(store, rec.id, True, current_operator("test"))
    t.join(20)
    assert not t.is_alive()
    return out, rec


def _refused(out: dict[str, Any], ran: list[Any]) -> None:
    assert isinstance(out.get("error"), SentinelBlockedError), out
    assert "digest mismatch" in out["error"].reason
    assert ran == []


def test_long_repr_object_changed_past_500_characters_is_refused(env: Any) -> None:
    ledger = Ledger(200)
    assert len(repr(ledger)) > 2000

    def tamper(obj: Ledger) -> None:
        obj.entries[150] = "entry-MALLORY"

    out, rec = _approve_after(env, ledger, tamper)
    _refused(out, env[1])
    shown = rec.arguments["payload"]
    assert shown["$object"].endswith("Ledger") and len(shown["state"]["entries"]) == 200


def test_numpy_array_changed_in_the_elided_middle_is_refused(env: Any) -> None:
    array = np.arange(10_000, dtype=np.float64)
    assert "..." in repr(array)

    def tamper(a: np.ndarray) -> None:  # type: ignore[type-arg]
        a[5_000] = -1.0

    out, rec = _approve_after(env, array, tamper)
    _refused(out, env[1])
    described = rec.arguments["payload"]["$ndarray"]
    assert described["shape"] == [10_000] and described["dtype"] == "<f8"
    assert described["nbytes"] == 80_000 and len(described["sha256"]) == 64


def test_slotted_object_changed_is_refused(env: Any) -> None:
    def tamper(p: dict[str, Any]) -> None:
        p["who"].to = "mallory"  # same default repr (<Slotted object at 0x…>) before and after

    payload = {"who": Slotted(10, "alice"), "blob": bytearray(1000)}
    out, _ = _approve_after(env, payload, tamper)
    _refused(out, env[1])


def test_unchanged_values_still_run_on_approval(env: Any) -> None:
    value = {"ledger": Ledger(200), "array": np.arange(1000), "n": np.int64(7)}
    out, rec = _approve_after(env, value, None)
    assert out.get("result") == "paid", out
    assert rec.digest == binding_digest({"payload": value})


def test_object_with_unreadable_state_is_refused_before_any_request(env: Any) -> None:
    pay, ran, db = env
    with socket.socket() as sock, pytest.raises(SentinelBlockedError) as info:
        pay({"conn": sock})
    assert "payload.conn" in info.value.reason and "socket" in info.value.reason
    assert ran == []
    assert Store(db).list_pending() == []


def test_binding_digest_is_the_audit_digest_and_covers_everything() -> None:
    plain = {"a": [1, "x", None, 2.5], "b": {"c": True}}
    assert binding_digest(plain) == digest(plain) == digest(to_jsonable(plain))
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    changed: Any = 2
    for _ in range(300):
        changed = [changed]
    assert binding_digest({"x": deep}) != binding_digest({"x": changed})
    assert binding_digest({"x": b"a" * 1000}) != binding_digest({"x": b"a" * 999 + b"b"})
    assert binding_digest({"x": bytearray(1000)}) != binding_digest({"x": bytearray(999) + b"1"})
    with pytest.raises(UnbindableArgument, match="lock"):
        binding_digest({"x": [threading.Lock()]})


@pytest.mark.parametrize("mode", ["secure", "safe"])
def test_value_that_gains_unreadable_state_while_waiting_is_refused(
    tmp_path: Path, mode: str
) -> None:
    """Checked after approval, an argument that became unbindable is a mismatch: not a
    governance error, which ``fail_mode="safe"`` would let run with the changed value."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db, timeout_seconds=30, fail_mode=mode,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def pay(payload: Any) -> str:
        ran.append(payload)
        return "paid"

    ledger = Ledger(3)
    t, out = _start(pay, ledger)
    store = Store(db)
    rec = first_pending(store)
    ledger.owner = threading.Lock()  # type: ignore[assignment]
    signed_decide(store, rec.id, True, current_operator("test"))
    t.join(20)
    _refused(out, ran)


@dataclasses.dataclass
class Transfer:
    amount: int


class Payment(BaseModel):
    amount: int
    _route: str = PrivateAttr(default="alice")


class Dumped:
    """Claims a constant state through ``model_dump``; its real state is ``to``."""

    def __init__(self) -> None:
        self.to = "alice"

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"to": "alice"}


class Tagged(dict):  # type: ignore[type-arg]
    pass


def _with_route(cls: Any) -> Any:
    value = cls()
    value.to = "alice"
    return value


@pytest.mark.parametrize(
    ("make", "tamper"),
    [
        (lambda: _with_route(lambda: Transfer(10)), lambda v: setattr(v, "to", "mallory")),
        (lambda: Payment(amount=10), lambda v: setattr(v, "_route", "mallory")),
        (Dumped, lambda v: setattr(v, "to", "mallory")),
        (lambda: _with_route(lambda: Tagged(amount=10)), lambda v: setattr(v, "to", "mallory")),
    ],
    ids=["dataclass-extra-attribute", "pydantic-private", "lying-model_dump", "dict-subclass-attr"],
)
def test_state_the_display_form_leaves_out_is_bound_too(env: Any, make: Any, tamper: Any) -> None:
    """A dataclass is shown by its fields, a pydantic model by model_dump, a dict subclass by its
    items: whatever else the object carries (and the function can read) is bound as well."""
    out, _ = _approve_after(env, make(), tamper)
    _refused(out, env[1])


def test_unchanged_objects_with_extra_state_still_run(env: Any) -> None:
    out, _ = _approve_after(env, [_with_route(lambda: Transfer(10)), Payment(amount=3)], None)
    assert out.get("result") == "paid", out


@pytest.mark.parametrize("mode", ["secure", "safe"])
@pytest.mark.parametrize("kind", ["socket", "cycle", "callback"])
def test_an_unbindable_argument_is_a_block_even_in_safe_mode(
    tmp_path: Path, mode: str, kind: str
) -> None:
    """Refusing a value no approval can bind to is a block, not a governance error: under
    ``fail_mode="safe"`` a governance error runs the call, here one that needs approval, unasked."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db, timeout_seconds=30, fail_mode=mode,
                            show_waiting_hint=False, hot_reload=False, audit_sync=True))  # fmt: skip
    def pay(payload: Any) -> str:
        ran.append(payload)
        return "paid"

    cycle: list[Any] = []
    cycle.append(cycle)
    with socket.socket() as sock:
        value = {"socket": sock, "cycle": cycle, "callback": lambda: None}[kind]
        with pytest.raises(SentinelBlockedError) as info:
            pay(value)
    assert "cannot bind an approval" in info.value.reason
    assert "fail_mode=safe" not in info.value.reason
    assert ran == []
    with Store(db) as store:
        assert store.list_pending() == []
        [blocked] = [e for e in all_events(store) if e.kind == "blocked"]
        assert blocked.data["refused"] == "unbindable_arguments"


class Hidden(BaseModel):
    amount: int
    to: str = Field(default="alice", exclude=True)  # left out of model_dump

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"amount": self.amount}


@pytest.mark.parametrize(
    "make",
    [
        lambda: Hidden(amount=10, to="mallory"),
        lambda: _with_route(lambda: Transfer(10)),
        Dumped,
    ],
    ids=["pydantic-excluded-field", "dataclass-extra-attribute", "lying-model_dump"],
)
def test_the_approver_sees_what_the_function_reads(env: Any, make: Any) -> None:
    """An approval binds the value as it is when asked, so what the approver is shown must be all
    of it: a value hidden from the display (a field excluded from model_dump, a class's own
    model_dump, an attribute beyond a dataclass's fields) would run, unchanged, unseen."""
    value = make()
    value.to = "mallory"
    out, rec = _approve_after(env, value, None)
    assert out.get("result") == "paid", out
    assert "mallory" in json.dumps(rec.arguments["payload"]), rec.arguments
