"""SQL for limit counters (rate and cumulative limits over time windows).

One row per counted call: ``amount`` is 1 for a rate limit and the summed parameter for a
cumulative one. A call's row is *reserved* when the guard checks it (so concurrent calls see it
and cannot both slip under a cap), *confirmed* when the call ran, and deleted when it did not. A
reservation whose process died stops counting at ``hold_until``.

Check-and-reserve runs under ``BEGIN IMMEDIATE``: the database's write lock serialises every
process's checks, so exactly as many calls pass as the cap allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sentinel.store import sql
from sentinel.store.ops import Op, Q

# The table (schema.MIGRATIONS step "limit counters"):
#   limit_usage(id, key, ts, amount, hold_until), index (key, ts).

USAGE = (
    "SELECT count(*), coalesce(sum(amount), 0) FROM limit_usage "
    "WHERE key = ? AND ts > ? AND (hold_until IS NULL OR hold_until > ?)"
)
RESERVE = "INSERT INTO limit_usage (key, ts, amount, hold_until) VALUES (?, ?, ?, ?) RETURNING id"
#: Rows that can never count again: out of the window, or reservations whose holder is gone.
PRUNE = "DELETE FROM limit_usage WHERE key = ? AND (ts <= ? OR (hold_until IS NOT NULL AND hold_until <= ?))"
CONFIRM = "UPDATE limit_usage SET hold_until = NULL WHERE id IN (SELECT value FROM json_each(?))"
RELEASE = "DELETE FROM limit_usage WHERE id IN (SELECT value FROM json_each(?))"


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One counter to check for a call: ``amount`` is what this call adds (1 for a rate limit)."""

    key: str
    window: float  # seconds
    cap: float
    amount: float


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """A counter as seen by one call: ``used`` before it (confirmed calls plus live
    reservations), ``calls`` counted, whether this call exceeds the cap, and its reservation."""

    key: str
    used: float
    calls: int
    cap: float
    amount: float
    exceeded: bool
    reservation: int | None = None

    @property
    def remaining(self) -> float:
        """What is left under the cap before this call."""
        return max(0.0, self.cap - self.used)


def _usage(check: LimitCheck, now: float) -> Op:
    row = yield Q(USAGE, (check.key, now - check.window, now), "one")
    calls, used = int(row[0]), float(row[1])
    return LimitUsage(
        check.key, used, calls, check.cap, check.amount, used + check.amount > check.cap
    )


def reserve(checks: Sequence[LimitCheck], now: float, hold_until: float) -> Op:
    """Check every counter and reserve this call in all of them, in one write transaction.

    Reserves even where the call exceeds a cap: it may still run (an approver can allow it), and
    then it counts; the guard releases the reservation when it does not run."""
    yield Q(sql.BEGIN_WRITE)
    out: list[LimitUsage] = []
    for check in checks:
        yield Q(PRUNE, (check.key, now - check.window, now))
        usage = yield from _usage(check, now)
        row = yield Q(RESERVE, (check.key, now, check.amount, hold_until), "one")
        out.append(
            LimitUsage(
                usage.key,
                usage.used,
                usage.calls,
                usage.cap,
                usage.amount,
                usage.exceeded,
                int(row[0]),
            )
        )
    yield Q(sql.COMMIT)
    return out


def settle(reservations: Sequence[int], confirm: bool) -> Op:
    """Confirm (the calls ran: they count until they leave the window) or release reservations."""
    import json

    yield Q(sql.BEGIN_WRITE)
    yield Q(CONFIRM if confirm else RELEASE, (json.dumps([int(r) for r in reservations]),))
    yield Q(sql.COMMIT)
    return None


def usage(checks: Sequence[LimitCheck], now: float) -> Op:
    """Read the counters without reserving (``sentinel.limits.remaining``)."""
    out: list[LimitUsage] = []
    for check in checks:
        out.append((yield from _usage(check, now)))
    return out


__all__ = ["LimitCheck", "LimitUsage", "reserve", "settle", "usage"]
