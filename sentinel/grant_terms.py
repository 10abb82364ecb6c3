"""The terms of a new standing grant from what a person typed: ``--where`` bounds, a duration, a
count and a value cap (shared by ``sentinel grant create``, ``sentinel approve --grant`` and the
HTTP API, so each reads and refuses the same things with the same words).

* ``--where`` is :func:`sentinel.grant_bounds.parse_bound`'s ``PARAM OP VALUE`` (``amount <= 500``,
  ``destination in {ACC-1, ACC-2}``, ``memo startswith "inv-"``); for convenience a set may be
  written without braces (``destination in ACC-1,ACC-2``) and text in single quotes.
* A duration is ``15m``, ``1h``, ``8h``, ``2d``, ``90s`` … or ``forever`` (until revoked).
* Without ``--where``, a grant made from a request is bounded by the request's own values
  (numbers ``<=``, text ``==``: :func:`sentinel.grant_bounds.suggest_bounds`).
* A grant with no bound at all, or whose value parameter (``amount``, ``value``, ``total`` or the
  policy's ``value_params``) is neither bounded nor capped by ``max_total`` when calls carry a
  value, is wide: it needs ``confirm`` (``--yes``), and :class:`WideGrant` says why otherwise.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentinel.grant_bounds import Bound, parse_bound, suggest_bounds
from sentinel.policy.models import parse_window
from sentinel.store.bounds import GrantBound
from sentinel.store.grants import NewGrant

#: The value parameters when no policy says otherwise (the policy's default ``value_params``).
DEFAULT_VALUE_PARAMS = ("amount", "value", "total")
FOREVER = ("forever", "until-revoked", "until_revoked", "never")
_UPPER_OPS = ("lte", "lt", "eq", "in")
_BARE_SET = re.compile(r"\A\s*(?P<head>\S+\s+in)\s+(?P<items>[^{].*?)\s*\Z", re.S | re.I)
_SINGLE = re.compile(r"'((?:[^'\\]|\\.)*)'")


class WideGrant(ValueError):
    """A grant that would let through more than one person should say yes to without a second
    look (no bound at all, or an unbounded value): pass ``confirm`` (``--yes``) to make it."""


@dataclass(frozen=True)
class GrantDraft:
    """What :func:`draft` built: the grant, and notes for the person (values left out…)."""

    grant: NewGrant
    notes: tuple[str, ...] = ()


def parse_where(text: str) -> GrantBound:
    """One ``--where`` text as a bound; raises ValueError naming the text and what is wrong."""
    fixed = text
    m = _BARE_SET.match(fixed)
    if m is not None:
        fixed = f"{m['head']} {{{m['items']}}}"
    fixed = _SINGLE.sub(lambda q: '"' + q.group(1).replace('"', '\\"') + '"', fixed)
    try:
        bound = parse_bound(fixed)
    except ValueError as exc:
        raise ValueError(f"--where {text!r}: {exc}") from None
    try:
        return to_grant_bound(bound)
    except ValueError as exc:
        raise ValueError(f"--where {text!r}: {exc}") from None


def to_grant_bound(bound: Bound) -> GrantBound:
    """A suggested / parsed :class:`~sentinel.grant_bounds.Bound` as the store keeps it."""
    value = bound.value
    if bound.op == "in":
        value = [_plain(v) for v in value]
    else:
        value = _plain(value)
    return GrantBound(bound.param, bound.op, value)


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, (int, float, str)):
        return value
    try:
        f = float(value)  # Decimal
    except (TypeError, ValueError):
        return str(value)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def parse_duration(text: str | None) -> float | None:
    """Seconds a grant lasts (``15m``, ``1h``, ``8h``, ``2d``, ``90s``), or None for ``forever``.
    Raises ValueError naming the text."""
    if text is None or str(text).strip().lower() in FOREVER:
        return None
    try:
        seconds = parse_window(str(text).strip())
    except ValueError:
        raise ValueError(
            f"--for {text!r}: give a duration such as 15m, 1h, 8h or 2d, or 'forever' "
            "(until revoked)"
        ) from None
    return seconds


def not_grantable(policy: Any, rule_id: str | None) -> str | None:
    """Why no standing grant could answer requests of rule ``rule_id`` under ``policy`` (the
    rule is marked ``grantable: false``), or None. Unknown policy or rule: None (the gate still
    decides each call; this only spares the operator a grant that would never apply)."""
    if policy is None or not rule_id:
        return None
    for rule in getattr(policy, "rules", ()):
        if rule.id == rule_id and not rule.grantable:
            return (
                f"its rule {rule_id} is marked grantable: false, so no standing grant would "
                "answer it"
            )
    return None


def draft(
    *,
    agent: str | None,
    function: str,
    wheres: Sequence[str] | None = None,
    duration: str | None = None,
    count: int | None = None,
    max_total: float | None = None,
    arguments: Mapping[str, Any] | None = None,
    value_at_risk: float | None = None,
    rule_id: str | None = None,
    request_id: str | None = None,
    reason: str | None = None,
    value_params: Iterable[str] = DEFAULT_VALUE_PARAMS,
    confirm: bool = False,
    now: float | None = None,
) -> GrantDraft:
    """Build the grant (see the module doc). ``arguments`` / ``value_at_risk``: the request the
    grant is made from (its bounds by default). Raises ValueError (bad text) or
    :class:`WideGrant` (needs ``confirm``)."""
    if not function or not str(function).strip():
        raise ValueError("a grant needs the function it is for (--function)")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"--count must be a whole number of at least 1, not {count!r}")
    if max_total is not None and (not math.isfinite(float(max_total)) or float(max_total) <= 0):
        raise ValueError(f"--max-total must be a number above 0, not {max_total!r}")
    notes: list[str] = []
    if wheres:
        bounds = [parse_where(w) for w in wheres]
    elif arguments is not None:
        suggestion = suggest_bounds(arguments)
        bounds = [to_grant_bound(b) for b in suggestion.bounds]
        for param, why in suggestion.skipped:
            notes.append(f"{param}: not bounded ({why})")
    else:
        bounds = []
    seen: set[tuple[str, str]] = set()
    for b in bounds:
        if (b.param, b.op) in seen:
            raise ValueError(f"--where: {b.param} {b.op} is given twice")
        seen.add((b.param, b.op))
    seconds = parse_duration(duration)
    now = time.time() if now is None else now
    names = {str(n) for n in value_params}
    valued = any(b.param in names for b in bounds if b.op in _UPPER_OPS)
    if not confirm:
        if not bounds:
            raise WideGrant(
                f"a grant for {function} with no bound at all lets every call of "
                f"{agent or 'an agent without an id'} to it run without a person: add --where "
                "bounds (e.g. --where 'amount <= 500'), or pass --yes to make it anyway"
            )
        carries_value = value_at_risk is not None or arguments is None
        if not valued and max_total is None and carries_value and value_params:
            raise WideGrant(
                f"the grant bounds no value parameter ({', '.join(sorted(names))}) and sets no "
                "--max-total: any amount would run without a person; add --where 'amount <= N' "
                "or --max-total N, or pass --yes to make it anyway"
            )
    grant = NewGrant(
        agent=agent or "",
        function=function,
        bounds=tuple(bounds),
        expires_at=None if seconds is None else now + seconds,
        max_count=count,
        max_total=None if max_total is None else float(max_total),
        rule_id=rule_id,
        request_id=request_id,
        reason=reason,
    )
    return GrantDraft(grant, tuple(notes))


def describe_duration(seconds: float | None) -> str:
    """``for 1h`` / ``until revoked``."""
    if seconds is None:
        return "until revoked"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"for {int(seconds // size)}{unit}"
    return f"for {seconds:g}s"


__all__ = [
    "DEFAULT_VALUE_PARAMS",
    "GrantDraft",
    "WideGrant",
    "not_grantable",
    "describe_duration",
    "draft",
    "parse_duration",
    "parse_where",
    "to_grant_bound",
]
