"""The rules-file schema (pydantic v2, strict) and the :class:`Action` enum.

Everything is ``extra="forbid"`` and ``strict=True``: an unknown key, a mistyped operator or
``priority: "high"`` is a load error, never silently ignored or coerced. The loader turns
pydantic's errors into messages with file, line and a hint.
"""

from __future__ import annotations

import difflib
import math
import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sentinel.policy.regex import RegexError, compile_regex
from sentinel.policy.values import NotANumber, to_decimal


class Action(str, Enum):  # noqa: UP042 - the documented contract
    """What happens to a call. Ordered by :attr:`strictness`."""

    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    BLOCK = "block"

    @property
    def strictness(self) -> int:
        """allow 0 < require_approval 1 < block 2."""
        return _STRICTNESS[self]

    def __str__(self) -> str:
        return self.value


_STRICTNESS = {Action.ALLOW: 0, Action.REQUIRE_APPROVAL: 1, Action.BLOCK: 2}

ActionName = Literal["allow", "block", "require_approval"]

#: Every operator, in the order the docs list them.
OPERATORS: tuple[str, ...] = (
    "eq", "ne", "gt", "gte", "lt", "lte", "contains", "not_contains", "matches",
    "in", "not_in", "startswith", "endswith", "regex", "exists",
)  # fmt: skip
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})

#: Symbol spellings accepted for operators (the original silently ignored ``">"``).
OPERATOR_ALIASES: dict[str, str] = {
    ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "==": "eq", "!=": "ne",
}  # fmt: skip

#: Spellings people try that are *not* accepted, mapped to what they meant (for the hint).
_OPERATOR_GUESSES: dict[str, str] = {
    "greater_than": "gt", "greater_than_or_equal": "gte", "greater_or_equal": "gte",
    "less_than": "lt", "less_than_or_equal": "lte", "less_or_equal": "lte",
    "equals": "eq", "equal": "eq", "is": "eq", "not_equal": "ne", "not_equals": "ne",
    "starts_with": "startswith", "ends_with": "endswith", "regexp": "regex", "re": "regex",
    "match": "matches", "has": "contains", "includes": "contains", "not_includes": "not_contains",
    "one_of": "in", "not_one_of": "not_in", "exist": "exists", "present": "exists",
    "=": "eq", "=>": "gte", "=<": "lte", "<>": "ne",
}  # fmt: skip


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The closest choice to ``word`` (difflib), or None."""
    hits = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if hits:
        return hits[0]
    lower = word.lower()
    if len(lower) >= 2:  # abbreviations: `op` → `operator`, `fn` is left alone
        prefixed = [c for c in choices if c.startswith(lower)]
        if len(prefixed) == 1:
            return prefixed[0]
    return None


def _operator_hint(op: str) -> str:
    guess = _OPERATOR_GUESSES.get(op.lower().replace("-", "_").replace(" ", "_"))
    guess = guess or suggest(op, OPERATORS)
    head = f"did you mean '{guess}'? " if guess else ""
    return f"{head}use one of {', '.join(OPERATORS)} (or > >= < <= == !=)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, Decimal):  # policies built in Python (policy_from_data)
        return value.is_finite()
    return isinstance(value, float) and math.isfinite(value)


class Condition(_Strict):
    """``{param, operator, value}``; ``param`` may be a dotted path (``payment.amount``)."""

    param: Annotated[str, Field(min_length=1)]
    operator: str
    value: Any = None

    @field_validator("param")
    @classmethod
    def _check_param(cls, v: str) -> str:
        if any(not seg for seg in v.split(".")):
            raise PydanticCustomError(
                "bad_param",
                "parameter path '{param}' has an empty segment",
                {"param": v, "hint": "write names separated by single dots, e.g. payment.amount"},
            )
        return v

    @field_validator("operator")
    @classmethod
    def _check_operator(cls, v: str) -> str:
        op = OPERATOR_ALIASES.get(v, v)
        if op not in OPERATORS:
            raise PydanticCustomError(
                "unknown_operator", "unknown operator '{op}'", {"op": v, "hint": _operator_hint(v)}
            )
        return op

    @field_validator("value")
    @classmethod
    def _check_value(cls, v: Any, info: ValidationInfo) -> Any:
        op = info.data.get("operator")
        if op is None:  # the operator itself was invalid; that error is reported
            return v
        if op in NUMERIC_OPERATORS:
            if isinstance(v, str):
                try:
                    to_decimal(v)
                    return v
                except NotANumber:
                    pass
            if not _finite_number(v):
                raise PydanticCustomError(
                    "bad_value",
                    "operator '{op}' needs a number, got {got!r}",
                    {"op": op, "got": v, "hint": "write a plain number such as 100 or 99.5"},
                )
        elif op in ("in", "not_in"):
            if not isinstance(v, list):
                raise PydanticCustomError(
                    "bad_value",
                    "operator '{op}' needs a list, got {got!r}",
                    {"op": op, "got": v, "hint": "write a list, e.g. value: [a, b]"},
                )
        elif op == "exists":
            if not isinstance(v, bool):
                raise PydanticCustomError(
                    "bad_value",
                    "operator 'exists' takes true or false, got {got!r}",
                    {"got": v, "hint": "value: true (present) or value: false (absent)"},
                )
        elif op in ("startswith", "endswith"):
            ok = isinstance(v, str) or (
                isinstance(v, list) and v and all(isinstance(x, str) for x in v)
            )
            if not ok:
                raise PydanticCustomError(
                    "bad_value",
                    "operator '{op}' needs a string (or a list of strings), got {got!r}",
                    {"op": op, "got": v, "hint": "quote the value"},
                )
        elif op in ("matches", "regex"):
            if not isinstance(v, str):
                raise PydanticCustomError(
                    "bad_value",
                    "operator '{op}' needs a regular expression string, got {got!r}",
                    {"op": op, "got": v, "hint": "quote the pattern"},
                )
            try:
                compile_regex(v)
            except RegexError as exc:
                raise PydanticCustomError("bad_regex", str(exc), {"hint": exc.hint}) from None
        elif op in ("contains", "not_contains") and isinstance(v, (list, dict)):
            raise PydanticCustomError(
                "bad_value",
                "operator '{op}' needs a single value, got {got!r}",
                {"op": op, "got": v, "hint": "use one condition per value, or `in` with a list"},
            )
        elif isinstance(v, float) and not math.isfinite(v):
            raise PydanticCustomError(
                "bad_value", "{got!r} is not a usable value", {"got": v, "hint": "use a number"}
            )
        return v

    @model_validator(mode="after")
    def _value_given(self) -> Condition:
        if "value" not in self.model_fields_set:
            if self.operator == "exists":
                object.__setattr__(self, "value", True)
            else:
                raise PydanticCustomError(
                    "missing_value",
                    "condition on '{param}' has no value",
                    {"param": self.param, "hint": f"add `value:` for operator '{self.operator}'"},
                )
        return self


class AnyGroup(_Strict):
    """Matches when at least one member matches."""

    any: Annotated[list[ConditionNode], Field(min_length=1)]


class AllGroup(_Strict):
    """Matches when every member matches."""

    all: Annotated[list[ConditionNode], Field(min_length=1)]


class NotGroup(_Strict):
    """Matches when its member does not (an unevaluable member stays unevaluable)."""

    not_: ConditionNode = Field(alias="not")


def _condition_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        for key in ("any", "all", "not"):
            if key in v:
                return key
        return "condition"
    if isinstance(v, BaseModel):
        return {AnyGroup: "any", AllGroup: "all", NotGroup: "not"}.get(type(v), "condition")
    return None


ConditionNode = Annotated[
    Annotated[Condition, Tag("condition")]
    | Annotated[AnyGroup, Tag("any")]
    | Annotated[AllGroup, Tag("all")]
    | Annotated[NotGroup, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="bad_condition",
        custom_error_message="a condition must be a mapping",
        custom_error_context={
            "hint": "write {param: NAME, operator: OP, value: V} or a group {any: [...]}, "
            "{all: [...]}, {not: {...}}"
        },
    ),
]

AnyGroup.model_rebuild()
AllGroup.model_rebuild()
NotGroup.model_rebuild()

Patterns = (
    Annotated[str, Field(min_length=1)]
    | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
)


#: Window lengths: a number of seconds, or ``30s``, ``15m``, ``1h``, ``24h``, ``7d``, ``2w``.
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: ``per:`` words that are not parameter names.
LIMIT_SCOPES = ("agent", "function", "global")


def parse_window(value: Any) -> float:
    """Seconds in a window such as ``"24h"`` (or a plain number of seconds); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a window: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _WINDOW.match(str(value))
        if not m:
            raise ValueError(f"not a window: {value!r}")
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a window must be longer than 0 seconds, got {value!r}")
    return seconds


class Limit(_Strict):
    """A limit over a time window: ``{count: 10, window: 1h, per: agent}`` (rate) or
    ``{sum: amount, max: 5000, window: 24h, per: agent}`` (cumulative). Counted per ``per``
    scope: ``agent``, ``function``, ``global`` or parameter names (``destination``), or a list."""

    count: Annotated[int, Field(gt=0)] | None = None
    sum: Annotated[str, Field(min_length=1)] | None = None
    max: int | float | None = None
    window: str | int | float
    per: str | list[Annotated[str, Field(min_length=1)]] = "agent"

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: Any) -> Any:
        try:
            parse_window(v)
        except ValueError as exc:
            raise PydanticCustomError(
                "bad_value",
                "{problem}",
                {
                    "problem": str(exc),
                    "hint": "write e.g. 30s, 15m, 1h, 24h, 7d or a number of seconds",
                },
            ) from None
        return v

    @model_validator(mode="after")
    def _check_kind(self) -> Limit:
        if (self.count is None) == (self.sum is None):
            raise PydanticCustomError(
                "bad_limit",
                "a limit needs either `count` or `sum` (with `max`)",
                {"hint": "write {count: 10, window: 1h} or {sum: amount, max: 5000, window: 24h}"},
            )
        if self.sum is not None and (
            self.max is None or not _finite_number(self.max) or self.max < 0
        ):
            raise PydanticCustomError(
                "bad_limit",
                "a `sum` limit needs `max`: a number of at least 0",
                {"hint": "write {sum: amount, max: 5000, window: 24h}"},
            )
        if self.count is not None and self.max is not None:
            raise PydanticCustomError(
                "bad_limit",
                "`max` belongs to `sum` limits; a `count` limit is its own maximum",
                {"hint": "write {count: 10, window: 1h}"},
            )
        if not self.scopes:
            raise PydanticCustomError(
                "bad_limit", "`per` must name at least one scope", {"hint": "per: agent"}
            )
        return self

    @property
    def seconds(self) -> float:
        """The window in seconds."""
        return parse_window(self.window)

    @property
    def scopes(self) -> tuple[str, ...]:
        """``per`` as a tuple (``agent``, ``function``, ``global`` or parameter names)."""
        per = self.per
        return (per,) if isinstance(per, str) else tuple(per)


#: An approver: a group from the operators file, an operator's name or an API token role.
_APPROVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class Rule(_Strict):
    """One rule. ``id`` is required and unique; everything else has a sensible default.

    A rule with ``limit`` is a *limit rule*: it does not decide by matching; the calls it matches
    are counted over the window, and a call that would exceed the limit escalates to ``action``.
    """

    id: Annotated[str, Field(min_length=1, max_length=200)]
    name: str | None = None
    description: str | None = None
    function_pattern: Patterns
    agent_pattern: Patterns | None = None
    conditions: list[ConditionNode] = Field(default_factory=list)
    action: ActionName
    priority: int = 100
    message: str | None = None
    enabled: bool = True
    mode: Literal["enforce", "shadow"] = "enforce"
    timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    limit: Limit | None = None
    # Who decides (require_approval rules): groups / operators / token roles, how many must
    # approve, whether the agent's own identity may, and who else may after a while.
    approvers: list[Annotated[str, Field(pattern=_APPROVER_NAME)]] | None = None
    quorum: Annotated[int, Field(ge=1, le=20)] = 1
    deny_quorum: Annotated[int, Field(ge=1, le=20)] = 1
    self_approval: bool | None = None
    escalate_after: str | Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    escalate_to: list[Annotated[str, Field(pattern=_APPROVER_NAME)]] = Field(default_factory=list)
    # What the model reads when a call this rule stops is blocked or denied: how to do it in a
    # way that can pass ("split transfers above 10,000 into approved batches").
    deny_hint: Annotated[str, Field(min_length=1, max_length=500)] | None = None

    @model_validator(mode="after")
    def _hint_needs_a_refusal(self) -> Rule:
        if self.deny_hint is not None and self.action == "allow":
            raise PydanticCustomError(
                "bad_hint",
                "`deny_hint` is what the model reads when this rule stops a call; an allow "
                "rule stops nothing",
                {"hint": "use it on an action: block or action: require_approval rule"},
            )
        if self.deny_hint is not None and not self.deny_hint.strip():
            raise PydanticCustomError(
                "bad_hint", "`deny_hint` is blank", {"hint": 'deny_hint: "split it into batches"'}
            )
        return self
    # May a standing grant (`sentinel grant create`, `g` on a card) answer this rule's approvals?
    # False: every call it sends for approval waits for a person, whatever grants exist.
    grantable: bool = True

    @model_validator(mode="after")
    def _decision_terms(self) -> Rule:
        named = [
            f for f in ("approvers", "escalate_after", "self_approval")
            if getattr(self, f) is not None
        ] + [f for f in ("quorum", "deny_quorum") if getattr(self, f) != 1]
        if self.escalate_to:
            named.append("escalate_to")
        if "grantable" in self.model_fields_set:
            named.append("grantable")
        if named and self.action != "require_approval":
            raise PydanticCustomError(
                "bad_terms",
                "`{field}` says who approves; this rule's action is {action}, which asks nobody",
                {"field": named[0], "action": self.action,
                 "hint": "use it on an action: require_approval rule"},
            )
        if (self.escalate_after is None) != (not self.escalate_to):
            raise PydanticCustomError(
                "bad_terms",
                "`escalate_after` and `escalate_to` go together: after how long, to whom",
                {"hint": "escalate_after: 10m\nescalate_to: [security]"},
            )
        if self.escalate_after is not None:
            try:
                parse_window(self.escalate_after)
            except ValueError as exc:
                raise PydanticCustomError(
                    "bad_terms", "`escalate_after`: {error}", {"error": str(exc),
                                                               "hint": "e.g. 10m, 1h, 90s"},
                ) from None
        if self.approvers is not None and not self.approvers:
            raise PydanticCustomError(
                "bad_terms",
                "`approvers` is empty: nobody could approve (leave it out to let any operator)",
                {"hint": "approvers: [finance]"},
            )
        return self

    @property
    def escalate_seconds(self) -> float | None:
        """``escalate_after`` in seconds (None: no escalation)."""
        return None if self.escalate_after is None else parse_window(self.escalate_after)

    @property
    def allows_self_approval(self) -> bool:
        """``self_approval`` as given; by default False for rules naming ``approvers``."""
        if self.self_approval is not None:
            return self.self_approval
        return not self.approvers

    @model_validator(mode="after")
    def _limit_action(self) -> Rule:
        if self.limit is not None and self.action == "allow":
            raise PydanticCustomError(
                "bad_limit",
                "a limit rule's action is what happens over the limit; 'allow' would do nothing",
                {"hint": "use action: require_approval or action: block"},
            )
        return self

    @property
    def shadow(self) -> bool:
        """True for ``mode: shadow`` (matches are recorded, never enforced)."""
        return self.mode == "shadow"

    @property
    def patterns(self) -> tuple[str, ...]:
        """``function_pattern`` as a tuple of globs."""
        fp = self.function_pattern
        return (fp,) if isinstance(fp, str) else tuple(fp)

    @property
    def agent_patterns(self) -> tuple[str, ...] | None:
        """``agent_pattern`` as a tuple of globs (None = any agent)."""
        ap = self.agent_pattern
        if ap is None:
            return None
        return (ap,) if isinstance(ap, str) else tuple(ap)


class CaseCall(_Strict):
    """The call a policy test case makes."""

    function: Annotated[str, Field(min_length=1)]
    args: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None


class CaseExpect(_Strict):
    """What a policy test case expects; ``rule: null`` means "the default action decided"."""

    action: ActionName
    rule: str | None = None


class PolicyCase(_Strict):
    """A policy test case, run when the file loads. A failing case makes the file invalid."""

    name: str | None = None
    call: CaseCall
    expect: CaseExpect


Risk = Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]


class AnomalyFunction(_Strict):
    """Anomaly settings for the functions matching one glob (``anomaly.functions``); anything
    not given falls back to the section's (and then the configuration's) value."""

    enabled: bool = True
    escalate: Risk | None = None
    block: Risk | None = None
    min_samples: Annotated[int, Field(ge=1)] | None = None
    method: Literal["robust", "zscore"] | None = None
    scale: Literal["auto", "linear"] | None = None
    direction: Literal["both", "high", "low"] | None = None
    ignore: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> AnomalyFunction:
        _check_thresholds(self.escalate, self.block)
        return self


class AnomalySettings(_Strict):
    """The optional top-level ``anomaly:`` section (see ``sentinel.anomaly``). Thresholds given
    here override ``anomaly_escalation_threshold`` / ``anomaly_block_threshold``."""

    enabled: bool = True
    escalate: Risk | None = None
    block: Risk | None = None
    min_samples: Annotated[int, Field(ge=1)] = 5
    window: Annotated[int, Field(ge=5, le=100_000)] = 1000
    half_life: str | int | float | None = None
    method: Literal["robust", "zscore"] = "robust"
    scale: Literal["auto", "linear"] = "auto"
    direction: Literal["both", "high", "low"] = "both"
    spread_floor: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.1
    novelty: bool = True
    novelty_risk: Risk = 7.5
    max_categories: Annotated[int, Field(ge=1, le=10_000)] = 50
    rate: bool = True
    rate_min_calls: Annotated[int, Field(ge=2)] = 10
    rate_risk: Risk = 8.0
    learn_approved: bool = False
    ignore: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    functions: dict[Annotated[str, Field(min_length=1)], AnomalyFunction] = Field(
        default_factory=dict
    )

    @field_validator("half_life")
    @classmethod
    def _check_half_life(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            parse_window(v)
        except ValueError as exc:
            raise PydanticCustomError(
                "bad_value",
                "{problem}",
                {"problem": str(exc), "hint": "write e.g. 12h, 7d, 30d or a number of seconds"},
            ) from None
        return v

    @model_validator(mode="after")
    def _ordered(self) -> AnomalySettings:
        _check_thresholds(self.escalate, self.block)
        return self


def _check_thresholds(escalate: float | None, block: float | None) -> None:
    if escalate is not None and block is not None and escalate > block:
        raise PydanticCustomError(
            "bad_value",
            "anomaly escalate ({escalate}) is above block ({block})",
            {"escalate": escalate, "block": block, "hint": "escalate must be at most block"},
        )


class PolicyFile(_Strict):
    """The whole rules file. The original JSON format (version, default_action, rules) is valid."""

    schema_: str | None = Field(default=None, alias="$schema")
    version: str | int | float | None = None
    description: str | None = None
    default_action: ActionName = "allow"
    ordering: Literal["strictest", "first_match"] = "strictest"
    value_params: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["amount", "value", "total"]
    )
    redact_keys: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    tests: list[PolicyCase] = Field(default_factory=list)
    anomaly: AnomalySettings | None = None


#: Allowed keys per model (by their spelling in the file), for "did you mean" hints.
def allowed_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a rules-file object of this model may contain."""
    return tuple((f.alias or name) for name, f in model.model_fields.items())
