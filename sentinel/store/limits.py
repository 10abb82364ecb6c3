"""Limit counters in the store (rate and cumulative limits over time windows); their SQL is in
:mod:`sentinel.store.sql`.

Each counter is kept in ``limit_totals`` as up to :data:`BUCKETS` + 1 rows: the window is cut
into 60 slices and each row holds the calls (``n``) and their sum (``total``; 1 per call for a
rate limit) checked during one slice, under the key ``<counter>\\x1f<slice number>``. A check
reads one short primary-key range and adds to one row, so it costs the same whatever the window
holds. The window slides by slices: a call stops counting between one window and one window plus
a slice (1/60th) after it — never early, so a cap is never exceeded by rounding.

A call is *reserved* when the guard checks it: it counts from then on, so concurrent calls see it
and cannot both slip under a cap. It stays counted for the whole window (a call that ran —
approved ones included — and a call whose process died before reporting an outcome both count:
doubt never lowers protection) unless the guard *releases* it because the call did not run.

Check-and-reserve runs under ``BEGIN IMMEDIATE``: the database's write lock serialises every
process's checks, so exactly as many calls pass as the cap allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sentinel.store import sql
from sentinel.store.ops import Op, Q

#: Slices per window.
BUCKETS = 60
#: Separator between a counter's key and its slice number (JSON-quoted values never contain it).
_SEP = "\x1f"

#: Relative tolerance when comparing a running float total with a cap (a sum of 0.1s drifts).
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One counter to check for a call: ``amount`` is what this call adds (1 for a rate limit)."""

    key: str
    window: float  # seconds
    cap: float
    amount: float


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """A counter as seen by one call: ``used`` before it, ``calls`` counted, whether this call
    exceeds the cap, and its reservation (pass it to :func:`release` if the call does not run)."""

    key: str
    used: float
    calls: int
    cap: float
    amount: float
    exceeded: bool
    reservation: tuple[str, float] | None = None

    @property
    def remaining(self) -> float:
        """What is left under the cap before this call."""
        return max(0.0, self.cap - self.used)


def _slice_key(key: str, number: int) -> str:
    return f"{key}{_SEP}{number:012d}"


def _range(check: LimitCheck, now: float) -> tuple[str, str, str, int]:
    width = check.window / BUCKETS
    current = math.floor(now / width)
    first = current - BUCKETS  # the oldest slice still (partly) inside the window
    return _slice_key(check.key, first), _slice_key(check.key, current), check.key, current


def _exceeds(used: float, amount: float, cap: float) -> bool:
    return used + amount > cap + _EPSILON * max(1.0, abs(cap))


def _usage(check: LimitCheck, low: str, high: str) -> Op:
    row = yield Q(sql.LIMIT_USAGE, (low, high), "one")
    used = max(0.0, float(row[0] or 0.0))
    calls = max(0, int(row[1] or 0))
    usage = LimitUsage(
        check.key, used, calls, check.cap, check.amount, _exceeds(used, check.amount, check.cap)
    )
    return usage, row[2]


def reserve(checks: Sequence[LimitCheck], now: float) -> Op:
    """Check every counter and reserve this call in all of them, in one write transaction.

    Reserves even where the call exceeds a cap: it may still run (an approver can allow it), and
    then it counts; the guard releases the reservation when it does not run."""
    yield Q(sql.BEGIN_WRITE)
    out: list[LimitUsage] = []
    for check in checks:
        low, high, key, current = _range(check, now)
        row = yield Q(sql.LIMIT_USAGE, (low, high), "one")
        if row[2] != high:  # first call in this slice: drop the slices that left the window
            yield Q(sql.LIMIT_PRUNE, (key + _SEP, low))
        yield Q(sql.LIMIT_ADD, (high, check.amount))
        used = max(0.0, float(row[0] or 0.0))
        exceeded = _exceeds(used, check.amount, check.cap)
        calls = max(0, int(row[1] or 0))
        out.append(
            LimitUsage(
                check.key, used, calls, check.cap, check.amount, exceeded, (high, check.amount)
            )
        )
    yield Q(sql.COMMIT)
    return out


def release(reservations: Sequence[tuple[str, float]]) -> Op:
    """Take calls that did not run (blocked, denied, expired, cancelled) out of their slices."""
    yield Q(sql.BEGIN_WRITE)
    for slice_key, amount in reservations:
        yield Q(sql.LIMIT_RELEASE, (float(amount), slice_key))
    yield Q(sql.COMMIT)
    return len(reservations)


def usage(checks: Sequence[LimitCheck], now: float) -> Op:
    """Read the counters without reserving (``sentinel.limits.remaining``)."""
    out: list[LimitUsage] = []
    for check in checks:
        low, high, _key, _current = _range(check, now)
        found, _newest = yield from _usage(check, low, high)
        out.append(found)
    return out


__all__ = ["BUCKETS", "LimitCheck", "LimitUsage", "release", "reserve", "usage"]
