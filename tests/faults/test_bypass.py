"""Rule bypass attempts from a model, property-based: hypothesis generates policies and hostile
calls (numeric strings, NaN, ±inf, -0.0, huge ints, bools, None, nested dicts and lists, Unicode
look-alike function and parameter names, extra positional arguments), and the verdict is compared
with a small reference evaluator written here from the documented semantics
(``../shared/DESIGN.md``, README.md, "Rules"):

* a function pattern is a case-insensitive glob over NFKC + case-folded names;
* ``block`` / ``require_approval`` rules find a parameter under any name that folds to the same
  text; ``allow`` rules only under its exact name;
* numbers are ints, finite floats and plain numeric strings; anything else cannot be evaluated;
* a condition that cannot be evaluated matches a strict rule and does not match an allow rule;
* the strictest matching action wins, else the default.

What must hold: the engine's verdict is never weaker than the reference's.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel import SentinelConfig, protect
from sentinel.errors import SentinelBlockedError
from sentinel.policy import parse_policy

STRICTNESS = {"allow": 0, "require_approval": 1, "block": 2}
_NUM = re.compile(r"[ \t]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t]*\Z")


def fold(s: str) -> str:
    return unicodedata.normalize("NFKC", s).casefold()


class Unknown(Exception):
    pass


def number(v: Any) -> Decimal:
    if isinstance(v, bool) or v is None:
        raise Unknown
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise Unknown
        return Decimal(repr(v))
    if isinstance(v, str) and _NUM.match(v):
        return Decimal(v.strip(" \t"))
    raise Unknown


def lookup(params: dict[str, Any], name: str, strict: bool) -> Any:
    if not strict:
        if name not in params:
            raise Unknown
        return params[name]
    hits = [k for k in params if isinstance(k, str) and fold(k) == fold(name)]
    if len(hits) != 1:
        raise Unknown  # missing or ambiguous
    return params[hits[0]]


def holds(cond: dict[str, Any], params: dict[str, Any], strict: bool) -> bool:
    v = number(lookup(params, cond["param"], strict))
    t = Decimal(cond["value"])
    return {"gt": v > t, "gte": v >= t, "lt": v < t, "lte": v <= t, "eq": v == t}[cond["operator"]]


def reference(policy: dict[str, Any], function: str, params: dict[str, Any]) -> str:
    best = policy["default_action"]
    matched: list[str] = []
    for rule in policy["rules"]:
        if not fnmatch.fnmatchcase(fold(function), fold(rule["function_pattern"])):
            continue
        strict = rule["action"] != "allow"
        ok = True
        for cond in rule.get("conditions", []):
            try:
                if not holds(cond, params, strict):
                    ok = False
            except Unknown:
                if not strict:
                    ok = False
        if ok:
            matched.append(rule["action"])
    if matched:
        best = max(matched, key=STRICTNESS.__getitem__)
    return best


# --- strategies -----------------------------------------------------------------------------------

FUNCTIONS = [
    "transfer_funds", "Transfer_Funds", "TRANSFER", "ｔｒａｎｓｆｅｒ_funds", "tra\u043dsfer",
    "delete_user", "ＤＥＬＥＴＥ_user", "de\u200blete_user", "pay", "PAY", "ｐａｙ", "other",
]  # fmt: skip
PATTERNS = ["transfer*", "delete_*", "pay", "*", "TRANSFER_*", "pa?"]
NAMES = ["amount", "Amount", "AMOUNT", "ａｍｏｕｎｔ", "\u0430mount", "amount ", "limit", "Limit"]
VALUES = st.one_of(
    st.integers(-10**30, 10**30),
    st.sampled_from([0, 1, 999, 1000, 1001, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1000.0000001]),
    st.sampled_from(
        ["5000", " 5000 ", "5e3", "1e400", "-1e400", "5,000", "1_000", "０５０００", "NaN", "nan",
         "Infinity", "-inf", "0x10", "", "1000.0", "+1001", ".5", "٥٠٠٠"]
    ),  # fmt: skip
    st.booleans(),
    st.none(),
    st.dictionaries(st.sampled_from(["amount", "value"]), st.integers(0, 10**6), max_size=2),
    st.lists(st.integers(0, 10**6), max_size=3),
    st.text(max_size=8),
)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "function_pattern": draw(st.sampled_from(PATTERNS)),
            "action": draw(st.sampled_from(list(STRICTNESS))),
        }
        conds = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "param": st.sampled_from(["amount", "limit"]),
                        "operator": st.sampled_from(["gt", "gte", "lt", "lte", "eq"]),
                        "value": st.sampled_from([0, 100, 1000, -5]),
                    }
                ),
                max_size=2,
            )
        )
        if conds:
            rule["conditions"] = conds
        rules.append(rule)
    return {"default_action": draw(st.sampled_from(list(STRICTNESS))), "rules": rules}


calls = st.tuples(
    st.sampled_from(FUNCTIONS),
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3),
)


@settings(max_examples=600, deadline=None)
@given(policies(), calls)
def test_no_generated_call_gets_a_weaker_verdict_than_intended(policy, call):
    function, params = call
    engine = parse_policy(yaml.safe_dump(policy, allow_unicode=True))
    got = engine.evaluate(function, params).action.value
    want = reference(policy, function, params)
    assert STRICTNESS[got] >= STRICTNESS[want], f"{function}({params!r}): engine {got}, intended {want}"


@pytest.mark.parametrize(
    ("params", "want"),
    [
        ({"amount": float("nan")}, "require_approval"),
        ({"amount": "5000"}, "require_approval"),
        ({"ａｍｏｕｎｔ": 5000}, "require_approval"),
        ({"amount": {"amount": 5}}, "require_approval"),
        ({"amount": -0.0}, "allow"),
        ({"amount": 5}, "allow"),
        ({}, "require_approval"),
    ],
)
def test_reference_evaluator_itself(params, want):
    policy = {
        "default_action": "allow",
        "rules": [{"id": "r", "function_pattern": "transfer*", "action": "require_approval",
                   "conditions": [{"param": "amount", "operator": "gt", "value": 1000}]}],
    }  # fmt: skip
    assert reference(policy, "Transfer_funds", params) == want
    assert parse_policy(yaml.safe_dump(policy)).evaluate("Transfer_funds", params).action.value == want


THRESHOLD = """\
default_action: allow
rules:
  - id: big
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: block
"""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=VALUES,
    extra=st.lists(VALUES, max_size=3),
    kw=st.dictionaries(st.sampled_from(["Amount", "ａｍｏｕｎｔ", "\u0430mount", "note"]), VALUES, max_size=2),
)
def test_protected_function_never_runs_when_the_reference_blocks(tmp_path, amount, extra, kw):
    rules = tmp_path / "threshold.yaml"
    if not rules.exists():
        rules.write_text(THRESHOLD)
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=tmp_path / "db.sqlite", hot_reload=False))
    def transfer_funds(amount: Any, *rest: Any, **options: Any) -> None:
        ran.append(amount)

    params: dict[str, Any] = {"amount": amount, "rest": list(extra), **kw}
    want = reference(yaml.safe_load(THRESHOLD), "transfer_funds", {"amount": amount, **kw})
    try:
        transfer_funds(amount, *extra, **kw)
    except SentinelBlockedError:
        assert not ran
        return
    assert want == "allow", f"ran with {params!r} although the policy intends {want}"
    assert ran == [amount]


def test_extra_positional_arguments_to_a_fixed_signature_never_run(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text(THRESHOLD)
    ran: list[Any] = []

    @protect(SentinelConfig(rules_path=rules, db_path=tmp_path / "db.sqlite", hot_reload=False))
    def transfer_funds(amount: Any) -> None:
        ran.append(amount)

    with pytest.raises(TypeError):
        transfer_funds(5, 5000)  # type: ignore[call-arg]
    assert not ran
