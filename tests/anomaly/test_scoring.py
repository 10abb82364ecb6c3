"""The statistics and scores themselves (no guard): invariances, floors, risk mapping, rate."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sentinel.anomaly import AnomalyHook
from sentinel.anomaly.features import Features
from sentinel.anomaly.score import score_number, score_rate
from sentinel.anomaly.settings import FunctionSettings
from sentinel.anomaly.stats import (
    fold_rate,
    risk_from_deviation,
    summarize,
    weighted_median,
)
from sentinel.policy import parse_policy
from sentinel.store.baselines import BaselineRow

NOW = 1_000_000.0


def row_of(values: list[float]) -> BaselineRow:
    arr = np.asarray(values, dtype=np.float64)
    return summarize(
        "x", arr, np.full(len(arr), NOW), n=len(arr), first_at=NOW, now=NOW, half_life=None
    )


def z_of(values: list[float], probe: float, s: FunctionSettings) -> float:
    f = score_number("x", probe, row_of(values), s, NOW)
    assert f.z is not None and not f.cold
    return f.z


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
history = st.lists(finite, min_size=5, max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    values=history,
    probe=finite,
    shift=st.floats(min_value=-1e6, max_value=1e6),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    method=st.sampled_from(["robust", "zscore"]),
)
def test_linear_score_is_invariant_to_shifting_and_scaling_history_and_probe_together(
    values: list[float], probe: float, shift: float, scale: float, method: str
) -> None:
    # The spread floor is relative to the median, so it is not shift-invariant: off here.
    s = FunctionSettings(scale="linear", method=method, spread_floor=0.0)
    row = row_of(values)
    spread = row.sigma if method == "robust" else row.std
    assume(spread is not None and spread > 1e-6 * (1 + max(abs(v) for v in values)))
    before = z_of(values, probe, s)
    moved = [v * scale + shift for v in values]
    after = z_of(moved, probe * scale + shift, s)
    assert after == pytest.approx(before, rel=1e-6, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=1e-3, max_value=1e6), min_size=5, max_size=60),
    probe=st.floats(min_value=1e-3, max_value=1e6),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    method=st.sampled_from(["robust", "zscore"]),
)
def test_log_score_is_invariant_to_scaling_only(
    values: list[float], probe: float, scale: float, method: str
) -> None:
    """On log-magnitudes, scaling is a shift of the logs, so the score (floor included, since
    the floor is in log units) does not change. Shifting the values is NOT an invariance of the
    log score: 50..90 vs 5000 is an outlier; 10050..10090 vs 15000 is not."""
    s = FunctionSettings(scale="auto", method=method)
    before = z_of(values, probe, s)
    after = z_of([v * scale for v in values], probe * scale, s)
    assert after == pytest.approx(before, rel=1e-6, abs=1e-6)
    shifted = z_of([v + 10_000 for v in [50, 60, 70, 80, 90]], 5000 + 10_000, s)
    assert abs(shifted) < abs(z_of([50, 60, 70, 80, 90], 5000, s))


def test_weighted_median_with_equal_weights_is_the_median() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 6, 101):
        x = rng.normal(size=n)
        assert weighted_median(x, np.ones(n)) == pytest.approx(float(np.median(x)))
    # A heavy recent value moves the weighted median to it.
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.1, 5.0])) == 3.0


def test_masking_outliers_do_not_hide_a_new_outlier() -> None:
    """The research's masking demo: ~50 ± 5 with three earlier 50,000s; a new 1,000 is 20x
    normal. The mean/std score barely moves; the median/MAD score does."""
    rng = np.random.default_rng(3)
    values = list(rng.normal(50, 5, 100)) + [50_000.0] * 3
    robust = FunctionSettings(scale="linear", method="robust")
    classic = FunctionSettings(scale="linear", method="zscore")
    assert abs(z_of(values, 1000, classic)) < 1
    assert z_of(values, 1000, robust) > 100


def test_constant_history_uses_the_floor_and_zero_history_reports_a_new_value() -> None:
    s = FunctionSettings()
    assert score_number("x", 101, row_of([100] * 5), s, NOW).risk < 1
    assert score_number("x", 5000, row_of([100] * 5), s, NOW).risk == 10.0
    f = score_number("x", 3, row_of([0] * 5), s, NOW)  # median 0: no floor to lean on
    assert f.risk == s.novelty_risk and math.isinf(f.z or 0)
    assert score_number("x", 0, row_of([0] * 5), s, NOW).risk == 0.0


def test_small_values_ask_at_most_and_direction_can_ignore_a_side() -> None:
    s = FunctionSettings()
    low = score_number("amount", 1, row_of([50, 60, 70, 80, 90]), s, NOW)
    assert s.escalate <= low.risk < s.block  # unusually small: a person decides, no auto-block
    high_only = replace(s, direction="high")
    assert score_number("amount", 1, row_of([50, 60, 70, 80, 90]), high_only, NOW).risk == 0


def test_risk_mapping_anchors() -> None:
    assert risk_from_deviation(0) == 0
    assert risk_from_deviation(3.5) == 7.0  # Iglewicz & Hoaglin's outlier cut-off escalates
    assert risk_from_deviation(-7) == 9.0
    assert risk_from_deviation(14) == 10.0 and risk_from_deviation(math.inf) == 10.0
    xs = np.linspace(0, 20, 400)
    rs = [risk_from_deviation(x) for x in xs]
    assert rs == sorted(rs)


def test_rate_burst_against_the_agents_own_rate() -> None:
    s = FunctionSettings()
    row = None
    t = NOW
    for _ in range(60):  # one call a minute for an hour
        row = fold_rate(row, 1, t, fast_half_life=60.0, slow_half_life=86400.0)
        t += 60
    assert score_rate(row, s, t) is None  # the usual pace
    for _ in range(15):  # then fifteen calls in fifteen seconds
        row = fold_rate(row, 1, t, fast_half_life=60.0, slow_half_life=86400.0)
        t += 1
    f = score_rate(row, s, t)
    assert f is not None and s.escalate <= f.risk <= s.rate_risk
    assert "calls in the last" in f.explanation


def test_scoring_reads_no_history(tmp_path: Path) -> None:
    """A baseline learned from 100,000 calls keeps a bounded window and one stats row."""

    class Source:
        current = parse_policy("anomaly: {window: 200}\nrules: []\n")

    hook = AnomalyHook(Source(), tmp_path / "s.db", clock=lambda: NOW)
    s = hook.settings_for("f")
    rng = np.random.default_rng(1)
    for _ in range(10):
        batch = list(rng.lognormal(4, 0.6, 10_000))
        hook.learn("f", Features(), "a", s, batch={"amount": batch}, times=[NOW] * len(batch))
    rows = hook.store.baseline_for_call("a", "f")
    assert [(r.param, r.n, r.size) for r in rows] == [("amount", 100_000, 200)]
    vals, _times = hook.store.baseline_window("a", "f", "amount")
    assert len(vals) == 200 * 8
    assert hook.score("f", {"amount": 55.0}, "a").risk < 7
    assert hook.score("f", {"amount": 55.0 * 200}, "a").risk >= 9


def test_nan_or_infinity_where_a_number_was_learned_scores_the_maximum(tmp_path: Path) -> None:
    class Source:
        current = parse_policy("rules: []\n")

    hook = AnomalyHook(Source(), tmp_path / "s.db", clock=lambda: NOW)
    s = hook.settings_for("transfer")
    hook.learn(
        "transfer", Features(), "a", s, batch={"amount": [50, 60, 70, 80, 90]}, times=[NOW] * 5
    )
    for bad in (math.nan, math.inf, -math.inf, "NaN", "Infinity"):
        a = hook.score("transfer", {"amount": bad}, "a")
        assert a.risk == 10.0, bad
        assert "is not a finite number" in a.explanation
    assert hook.score("transfer", {"other": math.nan}, "a").risk == 0.0  # no baseline: no opinion
