"""Anomaly baselines in the store (``sentinel.anomaly``): the operations; their SQL is in
:mod:`sentinel.store.sql`.

Three tables (schema step "anomaly baselines"):

* ``anomaly_baselines``: one row of *precomputed* statistics per (agent, function, parameter,
  kind). Scoring a call reads these rows for its (agent, function) with one indexed query and
  never touches the history, so its cost does not depend on how many calls came before.
* ``anomaly_windows``: the bounded window of recent values (and their times) behind a numeric
  row, as two float64 blobs. Read and rewritten only when a call is learned.
* ``anomaly_values``: the values seen per string parameter, counted (first-seen detection).

Learning runs in one ``BEGIN IMMEDIATE`` transaction per call, so any number of processes can
learn into the same baseline without losing updates. The statistics themselves are computed by
callbacks from :mod:`sentinel.anomaly` (this module holds the transactions, not the maths).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sentinel.store import sql
from sentinel.store.codec import BASELINE_STAT_COLUMNS, normalize_event
from sentinel.store.ops import Op, Q, _append

#: Columns of ``anomaly_baselines`` after the key, in :class:`BaselineRow` order.
STAT_COLUMNS = BASELINE_STAT_COLUMNS


class BaselineRow(NamedTuple):
    """One baseline's statistics as stored (see the schema comments for each column). A named
    tuple: built for every scored call, and tuples are the cheapest thing to build."""

    param: str
    kind: str  # "number" | "category" | "rate"
    n: int
    size: int
    weight: float
    first_at: float
    updated_at: float
    median: float | None = None
    mad: float | None = None
    sigma: float | None = None
    mean: float | None = None
    std: float | None = None
    log_median: float | None = None
    log_sigma: float | None = None
    log_mean: float | None = None
    log_std: float | None = None
    lo: float | None = None
    hi: float | None = None
    last: float | None = None
    singles: int | None = None
    capped: int = 0
    fast: float | None = None
    slow: float | None = None
    agent: str = ""
    function: str = ""

    def values(self) -> tuple[Any, ...]:
        """The statistic columns, in :data:`STAT_COLUMNS` order."""
        return tuple(self[2 : 2 + len(STAT_COLUMNS)])


@dataclass(frozen=True, slots=True)
class NumberWindow:
    """What learning a numeric parameter starts from: its row (None when new) and window."""

    row: BaselineRow | None
    vals: bytes
    times: bytes


#: ``(param, window before, new values, their times) -> (new row, vals blob, times blob)``.
NumberFold = Callable[
    [str, NumberWindow, Sequence[float], Sequence[float]], tuple[BaselineRow, bytes, bytes]
]
#: ``(row before or None, number of calls, now) -> new row`` for the call rate.
RateFold = Callable[[BaselineRow | None, int, float], BaselineRow]


@dataclass(frozen=True, slots=True)
class SeenValue:
    """One value of a string parameter to count (``vkey`` digests parameter and value)."""

    param: str
    vkey: str
    shown: str


@dataclass
class LearnPlan:
    """Everything one learned call (or a batch of calls) adds to the baselines of an
    (agent, function)."""

    numbers: dict[str, list[float]] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # one per call in the batch
    fold_number: NumberFold | None = None
    categories: list[SeenValue] = field(default_factory=list)
    max_categories: int = 50
    rate_calls: int = 0
    fold_rate: RateFold | None = None


def _row(r: Sequence[Any], agent: str = "", function: str = "") -> BaselineRow:
    return BaselineRow._make((*r, agent, function))


def rows_for_call(rows: list[Any], agent: str, function: str) -> list[BaselineRow]:
    """Rows of :data:`~sentinel.store.sql.BASELINE_FOR_CALL` as :class:`BaselineRow` (the store's fast path)."""
    make = BaselineRow._make
    return [make((*r, agent, function)) for r in rows]


def for_call(agent: str, function: str) -> Op:
    """Every baseline row of one (agent, function): the only read scoring needs."""
    rows = yield Q(sql.BASELINE_FOR_CALL, (agent, function), "all")
    return [_row(r, agent, function) for r in rows]


def for_call_seen(agent: str, function: str, vkeys: dict[str, str]) -> Op:
    """:func:`for_call` plus, in the same query, whether each string parameter's value
    (``{param: vkey}``) was seen before: returns ``(rows, {params whose value is known})``."""
    rows = yield Q(sql.BASELINE_FOR_CALL_SEEN, (json.dumps(vkeys), agent, function), "all")
    return rows_seen(rows, agent, function)


def rows_seen(rows: list[Any], agent: str, function: str) -> tuple[list[BaselineRow], set[str]]:
    """Rows of :data:`~sentinel.store.sql.BASELINE_FOR_CALL_SEEN`: the baselines and the parameters whose value is
    already known."""
    make = BaselineRow._make
    return [make((*r[:-1], agent, function)) for r in rows], {r[0] for r in rows if r[-1]}


def seen(agent: str, function: str, vkeys: Sequence[str]) -> Op:
    """The subset of ``vkeys`` already seen for this (agent, function)."""
    if not vkeys:
        return set()
    rows = yield Q(sql.BASELINE_SEEN, (agent, function, json.dumps(list(vkeys))), "all")
    return {r[0] for r in rows}


def window(agent: str, function: str, param: str) -> Op:
    """The numeric window (vals, times blobs) behind one parameter, or None."""
    row = yield Q(sql.BASELINE_WINDOW, (agent, function, param), "one")
    return None if row is None else (bytes(row[0]), bytes(row[1]))


def learn(agent: str, function: str, plan: LearnPlan, now: float) -> Op:
    """Add one call (or a batch) to the baselines, in one write transaction."""
    yield Q(sql.BEGIN_WRITE)
    if plan.numbers and plan.fold_number is not None:
        for param, values in plan.numbers.items():
            if not values:
                continue
            r = yield Q(sql.BASELINE_ONE, (agent, function, param, "number"), "one")
            w = yield Q(sql.BASELINE_WINDOW, (agent, function, param), "one")
            before = NumberWindow(
                None if r is None else _row(r, agent, function),
                b"" if w is None else bytes(w[0]),
                b"" if w is None else bytes(w[1]),
            )
            times = plan.times[-len(values) :] if plan.times else [now] * len(values)
            new, vals, ts = plan.fold_number(param, before, values, times)
            yield Q(sql.BASELINE_UPSERT, (agent, function, param, "number", *new.values()))
            yield Q(sql.BASELINE_UPSERT_WINDOW, (agent, function, param, vals, ts))
    for item in plan.categories:
        yield from _learn_category(agent, function, item, plan.max_categories, now)
    if plan.rate_calls and plan.fold_rate is not None:
        r = yield Q(sql.BASELINE_ONE, (agent, function, "", "rate"), "one")
        new = plan.fold_rate(None if r is None else _row(r), plan.rate_calls, now)
        yield Q(sql.BASELINE_UPSERT, (agent, function, "", "rate", *new.values()))
    yield Q(sql.COMMIT)
    return None


def _learn_category(agent: str, function: str, item: SeenValue, cap: int, now: float) -> Op:
    r = yield Q(sql.BASELINE_ONE, (agent, function, item.param, "category"), "one")
    old = None if r is None else _row(r)
    n = 1 if old is None else old.n + 1
    size = 0 if old is None else old.size
    singles = 0 if old is None else int(old.singles or 0)
    capped = 0 if old is None else old.capped
    first_at = now if old is None else old.first_at
    if not capped:
        count = yield Q(sql.BASELINE_VALUE_COUNT, (agent, function, item.param, item.vkey), "one")
        if count is not None:
            yield Q(sql.BASELINE_BUMP_VALUE, (now, agent, function, item.param, item.vkey))
            if int(count[0]) == 1:
                singles -= 1
        elif size >= cap:
            # Too many distinct values for "first seen" to mean anything: stop tracking them.
            capped = 1
            yield Q(sql.BASELINE_DROP_VALUES, (agent, function, item.param))
        else:
            yield Q(
                sql.BASELINE_INSERT_VALUE,
                (agent, function, item.param, item.vkey, item.shown, now, now),
            )
            size += 1
            singles += 1
    new = BaselineRow(
        item.param, "category", n, size, float(n), first_at, now, singles=singles, capped=capped
    )
    yield Q(sql.BASELINE_UPSERT, (agent, function, item.param, "category", *new.values()))
    return None


def list_rows(agent: str | None, function: str | None) -> Op:
    """Every baseline row (optionally of one agent and/or function), for ``sentinel anomaly``."""
    rows = yield Q(sql.BASELINE_ALL, (), "all")
    out = []
    for r in rows:
        if agent is not None and r[0] != agent:
            continue
        if function is not None and r[1] != function:
            continue
        out.append(_row(r[2:], r[0], r[1]))
    return out


def top_values(agent: str, function: str, param: str, limit: int) -> Op:
    """The most frequent values seen for a string parameter: ``[(shown, count)]``."""
    rows = yield Q(sql.BASELINE_TOP_VALUES, (agent, function, param, int(limit)), "all")
    return [(str(a), int(b)) for a, b in rows]


def reset(agent: str | None, function: str | None, event: dict[str, Any], now: float) -> Op:
    """Delete the matching baselines (None = any) and append the audit event, in one
    transaction. Returns how many baseline rows were removed."""
    args = (agent, agent, function, function)
    yield Q(sql.BEGIN_WRITE)
    row = yield Q(sql.BASELINE_COUNT_MATCHING, args, "one")
    yield Q(sql.BASELINE_DELETE, args)
    yield Q(sql.BASELINE_DELETE_WINDOWS, args)
    yield Q(sql.BASELINE_DELETE_VALUES, args)
    data = dict(event.get("data") or {})
    data["baselines_removed"] = int(row[0])
    yield from _append([normalize_event({**event, "data": data}, now)])
    yield Q(sql.COMMIT)
    return int(row[0])


__all__ = [
    "STAT_COLUMNS",
    "BaselineRow",
    "LearnPlan",
    "NumberFold",
    "NumberWindow",
    "RateFold",
    "SeenValue",
    "for_call",
    "for_call_seen",
    "learn",
    "list_rows",
    "reset",
    "seen",
    "top_values",
    "window",
]
