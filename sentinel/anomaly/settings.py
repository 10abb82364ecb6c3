"""Anomaly settings as they apply to one function: the configuration's thresholds, overridden by
the policy's optional ``anomaly:`` section, overridden per function glob.

    anomaly:
      min_samples: 5          # learned calls before a baseline acts
      window: 1000            # recent values kept per (agent, function, parameter)
      half_life: 30d          # optional decay: old behaviour fades
      method: robust          # robust (median/MAD) | zscore (mean/standard deviation)
      scale: auto             # auto: log-magnitudes for positive values | linear
      functions:
        "transfer*": {escalate: 6, block: 8.5}
        "search_*": {enabled: false}
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sentinel.policy.models import AnomalyFunction, AnomalySettings, parse_window
from sentinel.policy.regex import GlobSet, fold
from sentinel.risk import RISK_BLOCK, RISK_ESCALATE, RISK_MAX

#: Half-lives of the call-rate counters: "the last minute or so" against "the last day".
RATE_FAST_HALF_LIFE = 60.0
RATE_SLOW_HALF_LIFE = 86400.0


@dataclass(frozen=True)
class FunctionSettings:
    """Everything the detector needs to score and learn one function's calls."""

    enabled: bool = True
    escalate: float = RISK_ESCALATE
    block: float = RISK_BLOCK
    min_samples: int = 5
    window: int = 1000
    half_life: float | None = None
    method: str = "robust"  # robust | zscore
    scale: str = "auto"  # auto | linear
    direction: str = "both"  # both | high | low
    spread_floor: float = 0.1  # relative: 10 % of the median (linear) or 0.1 in log units
    novelty: bool = True
    novelty_risk: float = 7.5
    max_categories: int = 50
    rate: bool = True
    rate_min_calls: int = 10
    rate_risk: float = 8.0
    learn_approved: bool = False
    ignore: frozenset[str] = frozenset()
    value_params: frozenset[str] = frozenset({"amount", "value", "total"})

    @property
    def low_max_risk(self) -> float:
        """An unusually *small* value asks a person at most; it is never blocked on its own."""
        return min(max(self.escalate, self.block - 0.1), RISK_MAX)


class PolicySettings:
    """The settings of one policy version, resolved per function on first use (cached)."""

    def __init__(self, policy: Any, escalate: float, block: float) -> None:
        section: AnomalySettings | None = getattr(getattr(policy, "model", None), "anomaly", None)
        value_params = frozenset(fold(p) for p in getattr(policy, "value_params", ()) or ())
        base = FunctionSettings(
            escalate=float(escalate),
            block=float(block),
            value_params=value_params or FunctionSettings.value_params,
        )
        self._globs: list[tuple[GlobSet, AnomalyFunction]] = []
        if section is not None:
            base = replace(
                base,
                enabled=section.enabled,
                escalate=section.escalate if section.escalate is not None else base.escalate,
                block=section.block if section.block is not None else base.block,
                min_samples=section.min_samples,
                window=section.window,
                half_life=parse_window(section.half_life) if section.half_life else None,
                method=section.method,
                scale=section.scale,
                direction=section.direction,
                spread_floor=section.spread_floor,
                novelty=section.novelty,
                novelty_risk=section.novelty_risk,
                max_categories=section.max_categories,
                rate=section.rate,
                rate_min_calls=section.rate_min_calls,
                rate_risk=section.rate_risk,
                learn_approved=section.learn_approved,
                ignore=frozenset(fold(p) for p in section.ignore),
            )
            self._globs = [(GlobSet((g,)), f) for g, f in section.functions.items()]
        if base.escalate > base.block:
            base = replace(base, escalate=base.block)
        self.base = base
        self._cache: dict[str, FunctionSettings] = {}

    def for_function(self, function: str) -> FunctionSettings:
        """The settings of ``function``: the first matching glob in ``functions`` (file order)
        overrides the section."""
        hit = self._cache.get(function)
        if hit is not None:
            return hit
        settings = self.base
        name = fold(function)
        for globs, over in self._globs:
            if globs.matches(name):
                escalate = over.escalate if over.escalate is not None else settings.escalate
                block = over.block if over.block is not None else settings.block
                settings = replace(
                    settings,
                    enabled=settings.enabled and over.enabled,
                    escalate=min(escalate, block),
                    block=block,
                    min_samples=over.min_samples or settings.min_samples,
                    method=over.method or settings.method,
                    scale=over.scale or settings.scale,
                    direction=over.direction or settings.direction,
                    ignore=settings.ignore | {fold(p) for p in over.ignore},
                )
                break
        if len(self._cache) < 10_000:
            self._cache[function] = settings
        return settings


__all__ = ["RATE_FAST_HALF_LIFE", "RATE_SLOW_HALF_LIFE", "FunctionSettings", "PolicySettings"]
