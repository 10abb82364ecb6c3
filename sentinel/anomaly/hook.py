"""The guard hook: scores each call before it runs, learns from calls that ran.

What enters a baseline: a call that **ran and returned** (``observe(succeeded=True)``) and was not
itself anomalous. Blocked, denied, expired and cancelled calls never run, so they never enter; a
call that raised does not enter either. A call the detector escalated (risk at or above the
escalation threshold) does not enter *even when a person approved it* — repeating an anomaly
must not make it normal — unless the policy says ``anomaly: {learn_approved: true}``. A call
that needed approval because of a *rule* (not the detector) and was approved is learned: the
rule, not the value, was the reason to ask.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel.anomaly.features import Features, extract
from sentinel.anomaly.score import (
    Finding,
    effective_count,
    fmt,
    score_category,
    score_number,
    score_rate,
)
from sentinel.anomaly.settings import (
    RATE_FAST_HALF_LIFE,
    RATE_SLOW_HALF_LIFE,
    FunctionSettings,
    PolicySettings,
)
from sentinel.anomaly.stats import fold_numbers, fold_rate
from sentinel.arguments import CallArguments
from sentinel.policy import Action, Verdict
from sentinel.redact import Redactor
from sentinel.risk import RISK_BLOCK, RISK_ESCALATE, RISK_MAX
from sentinel.runtime import Escalation, GovernedCall, location_of, store_for
from sentinel.store.baselines import BaselineRow, LearnPlan, SeenValue

if TYPE_CHECKING:
    from sentinel.store.location import PgLocation

log = logging.getLogger("sentinel.anomaly")

#: Recent values shown on the approver's card (the sparkline).
SPARK_POINTS = 30
#: Hooks with a background learner, so in-process readers (:func:`flush_learning`) can wait for
#: what is still being learned.
_LEARNING: weakref.WeakSet[AnomalyHook] = weakref.WeakSet()


def flush_learning(db_path: str | Path | PgLocation | None = None) -> None:
    """Finish learning every call that already ran (of hooks on ``db_path``, or all), so what
    this process reads next from the baselines includes them."""
    path = None if db_path is None else location_of(db_path)
    for hook in list(_LEARNING):
        if path is None or hook.db_path == path:
            hook.flush()


@dataclass
class Assessment:
    """The detector's view of one call."""

    risk: float
    action: Action
    findings: list[Finding]
    features: Features
    settings: FunctionSettings

    @property
    def scored(self) -> list[Finding]:
        """Findings that were actually scored (not waiting for more samples)."""
        return [f for f in self.findings if not f.cold]

    @property
    def anomalous(self) -> bool:
        """At or above the escalation threshold."""
        return self.risk >= self.settings.escalate

    @property
    def top(self) -> Finding | None:
        scored = self.scored
        return max(scored, key=lambda f: f.risk) if scored else None

    @property
    def explanation(self) -> str:
        """The riskiest finding first, then every other finding at or above the threshold."""
        top = self.top
        if top is None:
            cold = [f.explanation for f in self.findings if f.cold]
            return "; ".join(cold) if cold else "nothing to score"
        others = [
            f.explanation for f in self.scored if f is not top and f.risk >= self.settings.escalate
        ]
        return "; ".join([top.explanation, *others])


class AnomalyHook:
    """Statistical anomaly detection as a :class:`sentinel.guard.GuardHook`.

    ``policy_source``: anything with ``.current`` (the policy in force; its ``anomaly:`` section
    and ``value_params`` / ``redact_keys`` apply). ``clock``: seconds since the epoch (tests).
    """

    def __init__(
        self,
        policy_source: Any,
        db_path: str | Path | PgLocation,
        *,
        escalate: float = RISK_ESCALATE,
        block: float = RISK_BLOCK,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        record_events: bool = True,
    ) -> None:
        self.policy_source = policy_source
        self.db_path = location_of(db_path)
        self.escalate = float(escalate)
        self.block = float(block)
        self.enabled = enabled
        self.clock = clock
        self.record_events = record_events
        # A call's assessment is kept on its token (``call.notes[self]``) until its outcome.
        self._resolved: tuple[str, PolicySettings, Redactor] | None = None
        self._store: Any = None
        # Learning runs on a background thread (one per hook), in the order calls finished.
        # ``_learning`` counts the queued jobs per (agent, function): scoring a call of a pair
        # that still has some finishes them first, so scores are the same as if every call had
        # been learned on the caller's thread before it returned.
        self._jobs: collections.deque[tuple[Any, ...]] = collections.deque()
        self._learning: dict[tuple[str, str], int] = {}
        self._jobs_cond = threading.Condition()
        self._run_lock = threading.Lock()  # one job at a time: keeps their order
        self._worker: threading.Thread | None = None
        self._flush_at_exit = False

    @classmethod
    def from_config(cls, config: Any) -> AnomalyHook:
        """The hook for a :class:`~sentinel.config.SentinelConfig` (``anomaly_detection`` on)."""
        if getattr(config, "anomaly_llm", False):
            log.warning(
                "anomaly_llm is not supported: only the statistical detector runs "
                "(no call arguments are ever sent to a language model)"
            )
        return cls(
            config.policy_source(),
            config.db_path,
            escalate=float(config.anomaly_escalation_threshold),
            block=float(config.anomaly_block_threshold),
            enabled=bool(getattr(config, "anomaly_statistical", True)),
        )

    @property
    def store(self) -> Any:
        store = self._store
        if store is None or store.closed:
            # The guard's store: one write connection per process, so learning a call never
            # waits on this process's own event writer (two connections would contend for the
            # database's write lock, and SQLite's busy handler sleeps in milliseconds).
            store = self._store = store_for(self.db_path)
        return store

    # -- settings ----------------------------------------------------------------------------

    def _policy(self) -> tuple[PolicySettings, Redactor]:
        policy = self.policy_source.current
        resolved = self._resolved
        if resolved is None or resolved[0] != policy.version:
            settings = PolicySettings(policy, self.escalate, self.block)
            redactor = Redactor(getattr(policy, "redact_keys", ()) or ())
            resolved = self._resolved = (policy.version, settings, redactor)
        return resolved[1], resolved[2]

    def settings_for(self, function: str) -> FunctionSettings:
        """The settings that apply to ``function`` under the policy in force."""
        return self._policy()[0].for_function(function)

    # -- scoring -----------------------------------------------------------------------------

    def score(
        self, function: str, params: Mapping[str, Any], agent_id: str | None = None
    ) -> Assessment:
        """Score a call against the baselines without remembering or learning anything."""
        policy_settings, redactor = self._policy()
        settings = policy_settings.for_function(function)
        if not settings.enabled:
            return Assessment(0.0, Action.ALLOW, [], Features(), settings)
        features = extract(params, settings, redactor)
        agent = agent_id or ""
        if self._learning and (agent, function) in self._learning:
            self._finish(agent, function)
        now = self.clock()
        store = self.store
        known: set[str] = set()
        if features.categories:
            # One query: the statistics and whether each string value was seen before.
            found, known = store.baseline_for_call_seen(
                agent, function, {c.param: c.vkey for c in features.categories}
            )
        else:
            found = store.baseline_for_call(agent, function)
        rows: dict[tuple[str, str], BaselineRow] = {(r.param, r.kind): r for r in found}
        findings: list[Finding] = []
        for param, x in features.numbers.items():
            findings.append(score_number(param, x, rows.get((param, "number")), settings, now))
        for param, shown in features.nonfinite.items():
            row = rows.get((param, "number"))
            if row is not None and effective_count(row, settings, now) >= settings.min_samples:
                # NaN or infinity where this parameter has always been a number: no baseline
                # can call that normal, and comparisons against it are meaningless.
                findings.append(
                    Finding(
                        "number",
                        param,
                        RISK_MAX,
                        f"{param} {shown} is not a finite number (the last {row.size:,} calls "
                        f"had numbers, median {fmt(float(row.median or 0.0))})",
                        shown,
                        details={"median": row.median, "n": row.size},
                    )
                )
        for c in features.categories:
            row = rows.get((c.param, "category"))
            if row is not None and not row.capped and row.n >= settings.min_samples:
                f = score_category(c.param, c.shown, c.param in known, row, settings)
                if f is not None:
                    findings.append(f)
        if settings.rate:
            f = score_rate(rows.get(("", "rate")), settings, now)
            if f is not None:
                findings.append(f)
        risk = max((f.risk for f in findings if not f.cold), default=0.0)
        if risk >= settings.block:
            action = Action.BLOCK
        elif risk >= settings.escalate:
            action = Action.REQUIRE_APPROVAL
        else:
            action = Action.ALLOW
        return Assessment(risk, action, findings, features, settings)

    def assess(self, call: GovernedCall, verdict: Verdict) -> Any:
        """Score the call; remember it until its outcome; escalate when it is anomalous."""

        if not self.enabled:
            return None
        function, params, agent_id = call.function, call.params, call.agent_id
        a = self.score(function, params, agent_id)
        if a.features:
            call.notes[self] = a
        if not a.scored:
            return None
        if a.action is Action.ALLOW and verdict.action is Action.ALLOW:
            # Nobody sees a card for this call: the event records the score, and the sentences
            # and baseline are not worth building on the allowed-call path.
            return Escalation(Action.ALLOW, f"anomaly risk {a.risk:.1f}", "anomaly", a.risk)
        data = self._card(a, function, agent_id or "", verdict)
        explanation = a.explanation
        if a.action is Action.BLOCK:
            reason = f"anomaly risk {a.risk:.1f} (blocks at {a.settings.block:g}): {explanation}"
        elif a.action is Action.REQUIRE_APPROVAL:
            reason = (
                f"anomaly risk {a.risk:.1f} (asks for approval at {a.settings.escalate:g}): "
                f"{explanation}"
            )
        else:
            reason = f"anomaly risk {a.risk:.1f}: {explanation}"
        if a.action.strictness > verdict.action.strictness and self.record_events:
            self._record(function, params, agent_id, verdict, a, reason, data)
        return Escalation(a.action, reason, "anomaly", a.risk, explanation, data)

    def _card(self, a: Assessment, function: str, agent: str, verdict: Verdict) -> dict[str, Any]:
        """``Escalation.data``: what the approver's card shows, as
        ``request.context["sentinel"]["anomaly"]`` (and ``data["anomaly"]`` of the
        ``anomaly_escalated`` event)::

            {"score": 10.0, "action": "block" | "require_approval" | "allow",
             "escalate_at": 7.0, "block_at": 9.0,
             "explanation": "amount 5,000 is 493 MADs above the median 70 of the last 5 calls …",
             "param": "amount", "value": 5000, "median": 70, "n": 5,   # riskiest number, if any
             "baseline": [50, 60, 70, 80, 90],   # its last ≤ 30 learned values, oldest first
             "findings": [{"kind": "number" | "category" | "rate", "param", "risk",
                           "explanation", "value", "z", …}]}

        ``param`` / ``value`` / ``median`` / ``n`` / ``baseline`` are absent when no numeric
        parameter was scored (a first-seen value or a burst alone)."""
        data: dict[str, Any] = {
            "score": a.risk,
            "action": a.action.value,
            "escalate_at": a.settings.escalate,
            "block_at": a.settings.block,
            "explanation": a.explanation,
            "findings": [f.to_dict() for f in a.findings if not f.cold],
        }
        numbers = [f for f in a.scored if f.kind == "number"]
        if numbers:
            top = max(numbers, key=lambda f: f.risk)
            data.update(
                param=top.param,
                value=top.to_dict().get("value"),
                median=top.details.get("median"),
                n=top.details.get("n"),
            )
            # The recent values behind the score, only when a person or the record will see
            # them (the allowed-call path never reads the window).
            if a.action is not Action.ALLOW or verdict.action is Action.REQUIRE_APPROVAL:
                window = self.store.baseline_window(agent, function, top.param)
                if window is not None:
                    recent = np.frombuffer(window[0], dtype=np.float64)[-SPARK_POINTS:]
                    data["baseline"] = [int(v) if v.is_integer() else float(v) for v in recent]
        return data

    def _record(
        self,
        function: str,
        params: Mapping[str, Any],
        agent_id: str | None,
        verdict: Verdict,
        a: Assessment,
        reason: str,
        data: dict[str, Any],
    ) -> None:
        """An ``anomaly_escalated`` event: the detector made this call's outcome stricter."""
        event = {
            "kind": "anomaly_escalated",
            "ts": self.clock(),
            "function": function,
            "agent_id": agent_id,
            "digest": CallArguments.of(params).digest,  # the call's own, when the guard made one
            "policy_version": verdict.policy_version,
            "rule_id": verdict.rule_id,
            "value_at_risk": verdict.value_at_risk,
            "reason": reason,
            "data": {"anomaly": data, "rule_action": verdict.action.value},
        }
        self.store.append_events([event])

    # -- learning ----------------------------------------------------------------------------

    def observe(self, call: GovernedCall, succeeded: bool) -> None:
        """The call ran: learn it if it returned and was not itself anomalous."""
        a = call.notes.pop(self, None)
        if a is None or not succeeded:
            return
        if a.anomalous and not a.settings.learn_approved:
            return  # an escalated call never becomes part of "normal" (see module docstring)
        # Off the caller's thread; the time is taken now, so the result does not depend on when
        # the worker gets to it.
        self._submit((call.function, a.features, call.agent_id or "", a.settings, self.clock()))

    # -- the background learner ----------------------------------------------------------------

    def _submit(self, job: tuple[Any, ...]) -> None:
        key = (job[2], job[0])
        with self._jobs_cond:
            self._jobs.append(job)
            self._learning[key] = self._learning.get(key, 0) + 1
            worker = self._worker
            if worker is None or not worker.is_alive():
                if not self._flush_at_exit:
                    self._flush_at_exit = True
                    _LEARNING.add(self)
                    atexit.register(self.flush)
                worker = self._worker = threading.Thread(
                    target=self._work, name="sentinel-anomaly-learner", daemon=True
                )
                worker.start()
            self._jobs_cond.notify()

    def _work(self) -> None:
        while True:
            with self._jobs_cond:
                while not self._jobs:
                    if not self._jobs_cond.wait(60.0) and not self._jobs:
                        self._worker = None  # idle: the next call starts a new one
                        return
            self._run_next()

    def _run_next(self) -> bool:
        """Learn the oldest queued call (on whichever thread asks). False when none is left."""
        with self._run_lock:
            with self._jobs_cond:
                if not self._jobs:
                    return False
                function, features, agent, settings, now = self._jobs.popleft()
            try:
                self.learn(function, features, agent, settings, now=now)
            except Exception as exc:  # the call ran; its learning is what failed
                log.warning("anomaly learning failed for %s: %s", function, exc)
            finally:
                with self._jobs_cond:
                    key = (agent, function)
                    left = self._learning.get(key, 1) - 1
                    if left > 0:
                        self._learning[key] = left
                    else:
                        self._learning.pop(key, None)
                    self._jobs_cond.notify_all()
        return True

    def _finish(self, agent: str, function: str) -> None:
        """Until no call of (agent, function) is left to learn, help learning queued calls."""
        key = (agent, function)
        while key in self._learning:
            if not self._run_next():
                with self._jobs_cond:  # the worker is in the middle of the last one
                    if key in self._learning:
                        self._jobs_cond.wait(0.05)

    def flush(self) -> None:
        """Learn every queued call now (also runs at interpreter exit)."""
        while self._run_next():
            pass
        with self._jobs_cond:
            while self._learning:
                self._jobs_cond.wait(0.05)

    def abandon(self, call: GovernedCall) -> None:
        """The call did not run (blocked, denied, expired, cancelled, error): forget it."""
        call.notes.pop(self, None)

    def learn(
        self,
        function: str,
        features: Features,
        agent: str,
        settings: FunctionSettings,
        *,
        batch: Mapping[str, list[float]] | None = None,
        times: list[float] | None = None,
        now: float | None = None,
    ) -> None:
        """Add one call's features (or a ``batch`` of values per parameter with their
        ``times``: seeding and benchmarks) to the baselines, now (on this thread). ``now``:
        when the call finished (default: the hook's clock)."""
        if now is None:
            now = self.clock()
        plan = LearnPlan(
            numbers={p: [x] for p, x in features.numbers.items()}
            if batch is None
            else {p: list(v) for p, v in batch.items()},
            times=[now] if times is None else list(times),
            fold_number=functools.partial(
                fold_numbers, window=settings.window, half_life=settings.half_life
            ),
            categories=[SeenValue(c.param, c.vkey, c.shown) for c in features.categories],
            max_categories=settings.max_categories,
            # A seeded batch is not a burst: only single calls feed the rate counters.
            rate_calls=1 if (settings.rate and batch is None) else 0,
            fold_rate=functools.partial(
                fold_rate,
                fast_half_life=RATE_FAST_HALF_LIFE,
                slow_half_life=RATE_SLOW_HALF_LIFE,
            ),
        )
        self.store.baseline_learn(agent, function, plan, now)


__all__ = ["AnomalyHook", "Assessment", "flush_learning", "store_for"]
