"""What the detector believes is normal (``sentinel anomaly baseline``) and clearing it
(``sentinel anomaly reset``, recorded as an ``anomaly_reset`` event)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel.anomaly.settings import RATE_FAST_HALF_LIFE, RATE_SLOW_HALF_LIFE
from sentinel.anomaly.stats import decay_factor, exposure

if TYPE_CHECKING:
    from sentinel.store.location import PgLocation

#: Recent values listed per numeric baseline.
RECENT = 10


@dataclass(frozen=True)
class BaselineView:
    """One baseline as a person reads it."""

    agent: str | None
    function: str
    param: str
    kind: str  # number | category | rate
    n: int  # calls learned, ever
    size: int  # values in the window (number) / distinct values (category)
    updated_at: float
    median: float | None = None
    mad: float | None = None
    lo: float | None = None
    hi: float | None = None
    recent: list[float] = field(default_factory=list)
    known_values: list[tuple[str, int]] = field(default_factory=list)
    capped: bool = False
    per_minute: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agent": self.agent,
            "function": self.function,
            "param": self.param,
            "kind": self.kind,
            "n": self.n,
            "size": self.size,
            "updated_at": self.updated_at,
        }
        if self.kind == "number":
            out.update(median=self.median, mad=self.mad, lo=self.lo, hi=self.hi, recent=self.recent)
        elif self.kind == "category":
            out.update(known_values=[list(v) for v in self.known_values], capped=self.capped)
        else:
            out["per_minute"] = self.per_minute
        return out


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def describe(
    db_path: str | Path | PgLocation, function: str | None = None, agent: str | None = None
) -> list[BaselineView]:
    """Every baseline (optionally of one function and/or agent; ``agent=""`` is calls without an
    agent id), with recent values and known string values."""
    from sentinel.anomaly.hook import flush_learning
    from sentinel.store.location import open_store

    flush_learning(db_path)  # calls this process already ran are part of what it shows
    now = time.time()
    out: list[BaselineView] = []
    with open_store(db_path, create=False) as store:
        for r in store.baseline_list(agent, function):
            view: dict[str, Any] = {}
            if r.kind == "number":
                window = store.baseline_window(r.agent, r.function, r.param)
                recent: list[float] = []
                if window is not None:
                    vals = np.frombuffer(window[0], dtype=np.float64)[-RECENT:]
                    recent = [_num(v) for v in vals]
                view = {
                    "median": r.median,
                    "mad": r.mad,
                    "lo": r.lo,
                    "hi": r.hi,
                    "recent": recent,
                }
            elif r.kind == "category":
                view = {
                    "known_values": []
                    if r.capped
                    else store.baseline_top_values(r.agent, r.function, r.param, 5),
                    "capped": bool(r.capped),
                }
            else:
                age = now - r.first_at
                slow = float(r.slow or 0.0) * decay_factor(now - r.updated_at, RATE_SLOW_HALF_LIFE)
                span = exposure(age, RATE_SLOW_HALF_LIFE) if age > RATE_FAST_HALF_LIFE else 0.0
                view = {"per_minute": round(slow / span * 60, 4) if span > 0 else None}
            out.append(
                BaselineView(
                    r.agent or None, r.function, r.param, r.kind, r.n, r.size, r.updated_at, **view
                )
            )
    return out


def reset(
    db_path: str | Path | PgLocation,
    function: str | None = None,
    agent: str | None = None,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> int:
    """Clear matching baselines (None = any) and record an ``anomaly_reset`` event in the same
    transaction. Returns how many baselines were removed."""
    from sentinel.identity import current_operator
    from sentinel.store.location import open_store

    if actor is None:
        try:
            actor = current_operator(channel="cli").label
        except Exception:  # identity is best effort; the reset itself is what matters
            actor = None
    scope = ", ".join(
        part
        for part in (
            f"function={function}" if function is not None else "",
            f"agent={agent or '(none)'}" if agent is not None else "",
        )
        if part
    )
    event = {
        "kind": "anomaly_reset",
        "function": function,
        "agent_id": agent or None,
        "actor": actor,
        "reason": reason or f"anomaly baselines cleared ({scope or 'all'})",
        "data": {"function": function, "agent": agent},
    }
    with open_store(db_path, create=False) as store:
        n: int = store.baseline_reset(agent, function, event)
    return n


__all__ = ["BaselineView", "describe", "reset"]
