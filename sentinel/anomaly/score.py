"""Scores one call against its baselines: each finding has a risk 0–10 and a sentence.

* **Magnitudes** (numeric parameters): the robust z-score ``(x − median) / σ`` with
  ``σ = 1.4826·MAD`` — the modified z of Iglewicz & Hoaglin, ``0.6745·(x − median)/MAD`` — on
  log-magnitudes when every learned value and the probe are positive (``scale: auto``; money,
  byte counts), else on the values themselves. ``method: zscore`` uses the mean and standard
  deviation instead. σ never drops below ``spread_floor`` (10 % of the median, or 0.1 in log
  units) so a constant history does not turn every small change into an anomaly.
* **First-seen values** of string parameters: a value never learned before scores up to
  ``novelty_risk`` (7.5: asks a person, never blocks by default), less when new values are
  common for that parameter (Good–Turing: the share of values seen only once).
* **Call-rate bursts**: the calls of the last minute or so against the agent's own long-run
  rate for the function, capped at ``rate_risk`` (8: asks, never blocks by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sentinel.anomaly.settings import RATE_FAST_HALF_LIFE, RATE_SLOW_HALF_LIFE, FunctionSettings
from sentinel.anomaly.stats import decay_factor, exposure, risk_from_deviation
from sentinel.store.baselines import BaselineRow


class Finding:
    """One thing the detector noticed about a call. ``explanation`` is a sentence, built only
    when someone reads it (the allowed-call path usually does not)."""

    __slots__ = ("kind", "param", "risk", "value", "z", "cold", "details", "_text")

    def __init__(
        self,
        kind: str,  # "number" | "category" | "rate"
        param: str,
        risk: float,
        explanation: str | Callable[[], str],
        value: Any = None,
        z: float | None = None,
        *,
        cold: bool = False,  # not enough learned calls to score yet
        details: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.param = param
        self.risk = risk
        self.value = value
        self.z = z
        self.cold = cold
        self.details = details if details is not None else {}
        self._text = explanation

    @property
    def explanation(self) -> str:
        text = self._text
        if not isinstance(text, str):
            text = self._text = text()
        return text

    def __repr__(self) -> str:
        return f"Finding({self.kind}, {self.param!r}, risk={self.risk}, {self.explanation!r})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "param": self.param, "risk": self.risk}
        if self.value is not None:
            out["value"] = _plain(self.value)
        if self.z is not None:
            out["z"] = _round(self.z)
        out["explanation"] = self.explanation
        out.update(self.details)
        if self.cold:
            out["cold_start"] = True
        return out


def fmt(x: float) -> str:
    """A number for a sentence: ``5,000``, ``70``, ``0.125``, ``1.2e-07``."""
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1e15:  # up to 1.8e308 (a number past the float range): not 309 digits
        return f"{x:.4g}"
    if abs(x) >= 1000:
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return f"{x:.4g}"


def _round(x: float) -> float | None:
    if not math.isfinite(x):
        return None
    return round(x, 2 if abs(x) < 1000 else 0)


def _plain(x: Any) -> Any:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return int(x)
    return x


def effective_count(row: BaselineRow, settings: FunctionSettings, now: float) -> float:
    """How many learned calls the baseline stands for now (decayed with a half-life)."""
    if settings.half_life is None:
        return float(row.size)
    return row.weight * decay_factor(now - row.updated_at, settings.half_life)


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{n:,} calls"


def score_number(
    param: str, x: float, row: BaselineRow | None, settings: FunctionSettings, now: float
) -> Finding:
    """The finding for one numeric parameter."""
    if row is None or effective_count(row, settings, now) < settings.min_samples:
        have = 0 if row is None else row.size
        return Finding(
            "number",
            param,
            0.0,
            lambda: (
                f"{param}: no baseline yet ({_calls(have)} learned, {settings.min_samples} needed)"
            ),
            x,
            cold=True,
        )
    robust = settings.method == "robust"
    use_log = settings.scale == "auto" and x > 0 and row.log_median is not None
    if use_log:
        center = row.log_median if robust else row.log_mean
        sigma = row.log_sigma if robust else row.log_std
        probe = math.log(x)
        floor = settings.spread_floor
    else:
        center = row.median if robust else row.mean
        sigma = row.sigma if robust else row.std
        probe = x
        floor = settings.spread_floor * abs(center or 0.0)
    assert center is not None
    sigma = max(sigma or 0.0, floor)
    median = float(row.median or 0.0)
    details: dict[str, Any] = {
        "median": _plain(median),
        "mad": _plain(float(row.mad or 0.0)),
        "n": row.size,
        "lo": _plain(row.lo),
        "hi": _plain(row.hi),
        "scale": "log" if use_log else "linear",
        "method": settings.method,
    }
    if not robust:
        details["mean"] = _round(float(row.mean or 0.0))
        details["std"] = _round(float(row.std or 0.0))
    diff = probe - center
    if sigma <= 0.0:
        # Every learned value was exactly 0 and so is the floor: any other value is simply new.
        if diff == 0:
            return Finding(
                "number",
                param,
                0.0,
                f"{param} {fmt(x)} is the usual value",
                x,
                0.0,
                details=details,
            )
        z = math.copysign(math.inf, diff)
        risk = settings.novelty_risk
    else:
        z = diff / sigma
        risk = risk_from_deviation(z)
    if (settings.direction == "high" and z < 0) or (settings.direction == "low" and z > 0):
        risk = 0.0
    elif z < 0:
        risk = min(risk, settings.low_max_risk)
    return Finding(
        "number",
        param,
        risk,
        lambda: _explain(param, x, z, row, settings, use_log),
        x,
        z,
        details=details,
    )


def _explain(
    param: str, x: float, z: float, row: BaselineRow, settings: FunctionSettings, use_log: bool
) -> str:
    side = "above" if z > 0 else "below"
    n = _calls(row.size)
    if settings.method == "zscore":
        mean = float(row.mean or 0.0)
        text = f"{param} {fmt(x)} is {fmt(abs(_round(z) or 0.0))} standard deviations {side} the mean {fmt(mean)} of the last {n}"
        return text + (" (log scale)" if use_log else "")
    median = float(row.median or 0.0)
    mad = float(row.mad or 0.0)
    if z == 0:
        return f"{param} {fmt(x)} is the median of the last {n}"
    if mad > 0:
        mads = abs(x - median) / mad
        text = f"{param} {fmt(x)} is {fmt(round(mads, 1) if mads < 100 else round(mads))} MADs {side} the median {fmt(median)} of the last {n}"
    else:
        text = f"{param} {fmt(x)} is {side} the median {fmt(median)} of the last {n}, most of them exactly {fmt(median)}"
    if use_log and median > 0:
        ratio = x / median
        times = f"{ratio:.1f}×" if ratio >= 1 else f"1/{1 / ratio:.1f}"
        text += f" ({times} the median; robust z {fmt(round(z, 1))} on a log scale)"
    elif math.isfinite(z):
        text += f" (robust z {fmt(round(z, 1))})"
    return text


def score_category(
    param: str, shown: str, seen: bool, row: BaselineRow | None, settings: FunctionSettings
) -> Finding | None:
    """The finding for a first-seen string value, or None (seen before, or not scored)."""
    if seen or row is None or row.capped:
        return None
    if row.n < settings.min_samples:
        return None  # too early to call anything "new"
    p_new = min(1.0, max(0, int(row.singles or 0)) / max(1, row.n))
    risk = round(settings.novelty_risk * (1.0 - p_new), 1)
    values = "1 value" if row.size == 1 else f"{row.size:,} different values"
    text = f"{param} '{shown}' is new: the {_calls(row.n)} learned so far used {values}"
    if p_new >= 0.2:
        text += f" (new values are common here: {p_new:.0%} of calls brought one)"
    return Finding(
        "category",
        param,
        risk,
        text,
        shown,
        details={"known_values": row.size, "n": row.n, "new_share": round(p_new, 3)},
    )


def score_rate(row: BaselineRow | None, settings: FunctionSettings, now: float) -> Finding | None:
    """The finding for a burst of calls against the agent's own rate, or None."""
    if row is None or row.n < max(settings.min_samples, 2):
        return None
    age = now - row.first_at
    if age < 10 * RATE_FAST_HALF_LIFE:
        return None  # ten minutes of history before "usual" means anything
    since = max(0.0, now - row.updated_at)
    k = float(row.fast or 0.0) * decay_factor(since, RATE_FAST_HALF_LIFE) + 1.0  # with this call
    slow = float(row.slow or 0.0) * decay_factor(since, RATE_SLOW_HALF_LIFE) + 1.0
    per_second = slow / max(exposure(age, RATE_SLOW_HALF_LIFE), 1e-9)
    expected = per_second * exposure(age, RATE_FAST_HALF_LIFE)
    if k < settings.rate_min_calls or k <= expected:
        return None
    m = (k - expected) / math.sqrt(max(expected, 1.0))
    risk = min(risk_from_deviation(m), settings.rate_risk)
    window = RATE_FAST_HALF_LIFE / math.log(2.0) / 60.0
    text = (
        f"call rate: about {k:.0f} calls in the last {window:.1f} minutes, against this "
        f"agent's usual {expected:.1f} ({per_second * 60:.2g} a minute)"
    )
    return Finding(
        "rate",
        "",
        risk,
        text,
        round(k, 1),
        m,
        details={"usual": round(expected, 2), "per_minute": round(per_second * 60, 4)},
    )


__all__ = ["Finding", "effective_count", "fmt", "score_category", "score_number", "score_rate"]
