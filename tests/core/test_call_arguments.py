"""CallArguments: one value per call, each form computed once and equal to the general path."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sentinel.arguments import CallArguments
from sentinel.normalize import UnbindableArgument, binding_digest, digest, to_jsonable
from sentinel.redact import MAX_KEPT_CHARS, Redactor

CASES: list[dict[str, Any]] = [
    {},
    {"amount": 5000, "destination": "ACC-1"},
    {"amount": 1.5, "ok": True, "none": None, "neg": -3},
    {"password": "hunter2hunter2", "api_key": "", "token": None},
    {"note": "pw=x", "card": "4111 1111 1111 1111", "email": "a@b.example"},
    {"text": "x" * (MAX_KEPT_CHARS + 10)},
    {"nan": float("nan"), "inf": float("inf")},
    {"big": 10**5000},
    {"nested": {"a": [1, 2, {"secret": "s3cr3t-value"}]}, "tags": ("a", "b")},
    {"bytes": b"\x00\x01", "set": {3, 1, 2}},
]


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_every_form_equals_the_general_path(raw: dict[str, Any]) -> None:
    redactor = Redactor(("custom_field",))
    args = CallArguments(raw)
    assert args.plain == to_jsonable(raw)
    assert args.digest == digest(to_jsonable(raw))
    assert args.redacted(redactor) == redactor.redact(to_jsonable(raw))
    assert args.binding_digest == binding_digest(raw)
    # Asked the other way round (redacted first) gives the same digest.
    again = CallArguments(raw)
    assert again.redacted(redactor) == args.redacted(redactor)
    assert again.digest == args.digest


def test_each_form_is_computed_once_and_shared() -> None:
    args = CallArguments({"amount": 5, "nested": {"a": 1}})
    redactor = Redactor()
    assert args.redacted(redactor) is args.redacted(redactor)
    assert args.plain is args.plain
    # Another redactor (a reload changed redact_keys) gets its own copy.
    other = Redactor(("amount",))
    assert args.redacted(other)["amount"] != 5
    assert args.redacted(redactor)["amount"] == 5


def test_it_is_a_read_only_mapping_of_the_values_as_bound() -> None:
    given = {"amount": 5}
    args = CallArguments(given)
    given["amount"] = 6  # the caller's dict changing later does not change the call's arguments
    assert dict(args) == {"amount": 5} and args["amount"] == 5 and len(args) == 1
    assert CallArguments.of(args) is args
    assert "5" not in repr(CallArguments({"password": "5"}))  # names only, never values


def test_the_binding_digest_is_read_again_after_approval() -> None:
    items = [1, 2]
    args = CallArguments({"items": items})
    approved = args.binding_digest
    assert args.binding_digest_now() == approved
    items.append(3)  # changed while the request waited
    assert args.binding_digest == approved  # the cached form is what was approved
    assert args.binding_digest_now() != approved  # the check reads the values again


def test_an_unbindable_value_raises_every_time() -> None:
    args = CallArguments({"lock": threading.Lock()})
    for _ in range(2):
        with pytest.raises(UnbindableArgument, match="lock"):
            _ = args.binding_digest
    assert args.binding_digest_now().startswith("unbindable")
