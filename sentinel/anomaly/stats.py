"""The statistics behind a baseline: a bounded window of recent values summarised once per
learned call (median, MAD, mean, standard deviation, in linear and log space), and decayed call
counters for the call rate.

Everything expensive happens here, when a call that ran is *learned*; scoring then reads the
summary and does a handful of float operations. With a half-life, each value's weight is
``2 ** (-(age / half_life))``; since every weight shrinks by the same factor as time passes, the
weighted median and MAD do not change between updates, and only the effective sample count
(``weight``) needs decaying at scoring time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sentinel.store.baselines import BaselineRow, NumberWindow

#: MAD → standard deviation of a normal distribution (1 / 0.6745).
MAD_TO_SIGMA = 1.482602218505602
#: Mean absolute deviation → standard deviation of a normal distribution (sqrt(pi / 2)).
MEANAD_TO_SIGMA = 1.2533141373155001


def decay_factor(age: float, half_life: float | None) -> float:
    """How much a weight shrinks over ``age`` seconds (1.0 without decay)."""
    if half_life is None or age <= 0:
        return 1.0
    return float(2.0 ** (-age / half_life))


def weighted_median(x: np.ndarray, w: np.ndarray | None) -> float:
    """The median of ``x`` with weights ``w`` (None: equal weights, the same as ``np.median``)."""
    if w is None:
        return float(np.median(x))
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cum = np.cumsum(w[order])
    half = cum[-1] / 2.0
    i = int(np.searchsorted(cum, half, side="left"))
    if i < len(xs) - 1 and math.isclose(cum[i], half, rel_tol=1e-12, abs_tol=0.0):
        return float((xs[i] + xs[i + 1]) / 2.0)  # an exact tie between halves, as np.median
    return float(xs[min(i, len(xs) - 1)])


def _spread(x: np.ndarray, w: np.ndarray | None) -> tuple[float, float, float, float, float]:
    """(median, MAD, robust sigma, mean, std) of one sample."""
    med = weighted_median(x, w)
    dev = np.abs(x - med)
    mad = weighted_median(dev, w)
    if w is None:
        meanad = float(dev.mean())
        mean = float(x.mean())
        var = float(x.var(ddof=1)) if len(x) > 1 else 0.0
    else:
        total = float(w.sum())
        meanad = float((dev * w).sum() / total)
        mean = float((x * w).sum() / total)
        var = float((w * (x - mean) ** 2).sum() / total) if len(x) > 1 else 0.0
    # MAD is 0 when more than half the values are equal; the mean absolute deviation still sees
    # the rest (Iglewicz & Hoaglin's fallback). A floor applied at scoring time covers the
    # case where every value is equal.
    sigma = MAD_TO_SIGMA * mad if mad > 0 else MEANAD_TO_SIGMA * meanad
    return med, mad, sigma, mean, math.sqrt(max(var, 0.0))


def summarize(
    param: str,
    vals: np.ndarray,
    times: np.ndarray,
    *,
    n: int,
    first_at: float,
    now: float,
    half_life: float | None,
) -> BaselineRow:
    """The stored statistics of one numeric window."""
    w = None
    weight = float(len(vals))
    if half_life is not None:
        w = np.exp2(-(np.maximum(now - times, 0.0)) / half_life)
        weight = float(w.sum())
    med, mad, sigma, mean, std = _spread(vals, w)
    lmed = lsigma = lmean = lstd = None
    if bool((vals > 0).all()):
        lmed, _lmad, lsigma, lmean, lstd = _spread(np.log(vals), w)
    return BaselineRow(
        param,
        "number",
        n,
        len(vals),
        weight,
        first_at,
        now,
        median=med,
        mad=mad,
        sigma=sigma,
        mean=mean,
        std=std,
        log_median=lmed,
        log_sigma=lsigma,
        log_mean=lmean,
        log_std=lstd,
        lo=float(vals.min()),
        hi=float(vals.max()),
        last=float(vals[-1]),
    )


def fold_numbers(
    param: str,
    before: NumberWindow,
    values: Sequence[float],
    times: Sequence[float],
    *,
    window: int,
    half_life: float | None,
) -> tuple[BaselineRow, bytes, bytes]:
    """Append values to a window (keeping the last ``window``) and summarise it."""
    old_v = np.frombuffer(before.vals, dtype=np.float64)
    old_t = np.frombuffer(before.times, dtype=np.float64)
    new_v = np.asarray(values, dtype=np.float64)
    new_t = np.asarray(times, dtype=np.float64)
    vals = np.concatenate((old_v, new_v))[-window:]
    ts = np.concatenate((old_t, new_t))[-window:]
    now = float(ts[-1])
    row = before.row
    n = len(values) + (row.n if row is not None else 0)
    first_at = row.first_at if row is not None else float(new_t[0])
    summary = summarize(param, vals, ts, n=n, first_at=first_at, now=now, half_life=half_life)
    return summary, vals.tobytes(), ts.tobytes()


def fold_rate(
    row: BaselineRow | None, calls: int, now: float, *, fast_half_life: float, slow_half_life: float
) -> BaselineRow:
    """Add ``calls`` to the decayed call counters (a short and a long half-life)."""
    if row is None:
        fast = slow = float(calls)
        n, first_at = calls, now
    else:
        age = max(0.0, now - row.updated_at)
        fast = float(row.fast or 0.0) * decay_factor(age, fast_half_life) + calls
        slow = float(row.slow or 0.0) * decay_factor(age, slow_half_life) + calls
        n, first_at = row.n + calls, row.first_at
    return BaselineRow("", "rate", n, n, slow, first_at, now, fast=fast, slow=slow)


def exposure(age: float, half_life: float) -> float:
    """Seconds of "full weight" a decayed counter has seen after ``age`` seconds:
    ∫₀^age 2^(−t/h) dt, so counter / exposure is a rate even while the counter warms up."""
    if age <= 0:
        return 0.0
    return half_life / math.log(2.0) * (1.0 - 2.0 ** (-age / half_life))


def risk_from_deviation(m: float) -> float:
    """Risk 0–10 from a deviation in standard-deviation units (robust or classic z).

    Piecewise linear through (0, 0), (3.5, 7), (7, 9), (14, 10): 3.5 robust deviations, the
    usual outlier cut-off (Iglewicz & Hoaglin), reaches the default escalation threshold 7; 7
    reaches the default block threshold 9; 14 or more is the maximum.
    """
    m = abs(m)
    if not math.isfinite(m):
        return 10.0
    if m < 3.5:
        r = 2.0 * m
    elif m < 7.0:
        r = 7.0 + (m - 3.5) * (2.0 / 3.5)
    elif m < 14.0:
        r = 9.0 + (m - 7.0) / 7.0
    else:
        r = 10.0
    return round(r, 1)


__all__ = [
    "MAD_TO_SIGMA",
    "MEANAD_TO_SIGMA",
    "decay_factor",
    "exposure",
    "fold_numbers",
    "fold_rate",
    "risk_from_deviation",
    "summarize",
    "weighted_median",
]
