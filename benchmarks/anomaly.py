"""Anomaly scoring cost per call against history length: Sentinel vs agentic-sentinel 0.1.0.

Ours: a baseline learned from 100 / 10,000 / 1,000,000 past calls (fed through the same
incremental learning code as real calls, in batches so a million calls take seconds), then the
cost of scoring one call — the store read of the precomputed statistics plus the maths — with
``AnomalyHook.score`` and with ``AnomalyHook.assess`` (what the guard calls: score plus the
escalation it returns). Also the cost of learning one call (``learn``, done by the background
learner) and what ``observe`` after a call ran costs the caller (it only queues the learning).

The original: its ``StatisticalDetector.analyze`` re-reads every JSONL audit log on every call,
so it needs ``audit_log=True`` history; we write 120 / 1,000 / 5,000 ``allow`` events with its own
``AuditLogger`` and time ``analyze``. It runs in its own virtual environment under ``.bench/``
(``benchmarks/overhead.py`` creates it; both packages import as ``sentinel``).

    python benchmarks/anomaly.py [--skip-original] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder comes first on sys.path, and its queue.py would shadow the
# standard library's: import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

ORIG_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time, random
    from pathlib import Path
    from sentinel.audit.logger import AuditLogger
    from sentinel.anomaly.statistical import StatisticalDetector
    log_dir, n_events, calls, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    logger = AuditLogger(log_dir=log_dir)
    rng = random.Random(1)
    for i in range(n_events):
        logger.log_allow("transfer", {"amount": round(rng.lognormvariate(4, 0.6), 2), "to": "acme"}, "bot")
    det = StatisticalDetector(log_dir=log_dir)
    params = {"amount": 80.0, "to": "acme"}

    async def go():
        r = await det.analyze("transfer", params, "bot")
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(calls):
                await det.analyze("transfer", params, "bot")
            best = min(best, (time.perf_counter() - t0) / calls)
        return best, r.metadata.get("history_count")

    best, hist = asyncio.run(go())
    print(json.dumps({"us": best * 1e6, "history": hist}))
    """
)


def original(n_events: int, rounds: int) -> dict[str, float] | None:
    from benchmarks.overhead import ensure_original

    python = ensure_original()
    if python is None:
        return None
    calls = max(5, min(200, 20_000 // max(n_events, 1)))
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
        out = subprocess.run(
            [str(python), "-c", ORIG_CHILD, tmp, str(n_events), str(calls), str(rounds)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            check=False,
        )
    if out.returncode != 0:
        print(f"original failed: {out.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    data: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


class Ours:
    """One database whose baseline learned ``past`` calls, and the operations to time on it."""

    def __init__(self, past: int, tmp: Path) -> None:
        import numpy as np

        from sentinel.anomaly import AnomalyHook
        from sentinel.anomaly.features import Features, extract
        from sentinel.policy import parse_policy
        from sentinel.redact import Redactor

        class Source:
            current = parse_policy("rules: []\n")

        hook = self.hook = AnomalyHook(Source(), tmp / f"bench-{past}.db", record_events=False)
        settings = self.settings = hook.settings_for("transfer")
        rng = np.random.default_rng(1)
        t0 = time.time() - 86400.0
        done = 0
        start = time.perf_counter()
        while done < past:
            k = min(10_000, past - done)
            batch = [float(x) for x in np.round(rng.lognormal(4, 0.6, k), 2)]
            times = list(np.linspace(t0, t0 + 3600, k))
            hook.learn(
                "transfer", Features(), "bot", settings, batch={"amount": batch}, times=times
            )
            done += k
        self.seed_s = time.perf_counter() - start
        # The string parameter's baseline too, so the first-seen check runs.
        cat = extract({"to": "acme"}, settings, Redactor())
        for _ in range(settings.min_samples):
            hook.learn("transfer", cat, "bot", settings, batch={}, times=[])
        self.params = {"amount": 80.0}
        self.params_str = {"amount": 80.0, "to": "acme"}
        self.verdict = Source.current.evaluate("transfer", self.params, "bot")
        rows = {r.param: r for r in hook.store.baseline_for_call("bot", "transfer")}
        self.n = rows["amount"].n
        self.window = rows["amount"].size
        assert hook.score("transfer", self.params, "bot").scored, "the baseline must be active"
        self.learned = hook.score("transfer", {"amount": 75.0}, "bot").features

    def ops(self) -> dict[str, Any]:
        from sentinel.runtime import GovernedCall

        hook, store = self.hook, self.hook.store

        def assess() -> None:
            call = GovernedCall("transfer", self.params, "bot")
            hook.assess(call, self.verdict)
            hook.abandon(call)

        def observe() -> float:
            # What the caller waits for after its call ran (learning is queued for the
            # background learner); the learning itself is finished outside the timing.
            call = GovernedCall("transfer", {"amount": 75.0}, "bot")
            hook.assess(call, self.verdict)
            start = time.perf_counter()
            hook.observe(call, True)
            took = time.perf_counter() - start
            hook.flush()
            return took

        return {
            "score": lambda: hook.score("transfer", self.params, "bot"),
            "score_str": lambda: hook.score("transfer", self.params_str, "bot"),
            "assess": assess,
            "read": lambda: store.baseline_for_call("bot", "transfer"),
            "learn": lambda: hook.learn("transfer", self.learned, "bot", self.settings),
            "observe": observe,
        }


def measure(benches: list[Ours], rounds: int, calls: int) -> list[dict[str, float]]:
    """Best time per call of each operation on each database; the databases take turns within
    every round, so a burst of load on the (shared) machine hits all of them alike."""
    best: list[dict[str, float]] = [{} for _ in benches]
    for _ in range(rounds):
        for i, bench in enumerate(benches):
            for name, fn in bench.ops().items():
                n = max(20, calls // 20) if name in ("learn", "observe") else calls
                start = time.perf_counter()
                timed = 0.0
                for _ in range(n):
                    took = fn()
                    if name == "observe":  # the operation timed its own part
                        timed += took
                elapsed = timed if name == "observe" else time.perf_counter() - start
                us = elapsed / n * 1e6
                best[i][name] = min(best[i].get(name, float("inf")), us)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    print("Anomaly scoring cost per call (best of rounds; µs)")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print()
    print(
        f"{'sentinel (this)':<18}{'past calls':>12}{'window':>8}{'score':>9}{'+text':>9}"
        f"{'assess':>9}{'read':>8}{'learn':>9}{'caller':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        benches = [Ours(past, Path(tmp)) for past in (100, 10_000, 1_000_000)]
        results = measure(benches, args.rounds, args.calls)
        for bench, r in zip(benches, results, strict=True):
            print(
                f"{'':<18}{bench.n:>12,}{bench.window:>8,}{r['score']:>9.1f}"
                f"{r['score_str']:>9.1f}{r['assess']:>9.1f}{r['read']:>8.1f}{r['learn']:>9.1f}"
                f"{r['observe']:>9.1f}"
                f"   (seeded in {bench.seed_s:.1f} s)"
            )
    print("  score: one numeric parameter; +text: and a string parameter (first-seen check);")
    print("  assess: what the guard calls; read: the store read alone; learn: one call learned")
    print("  caller: what learning a call that ran costs the caller (queued for the learner)")
    if args.skip_original:
        return
    print()
    print(f"{'agentic-sentinel 0.1.0':<24}{'log events':>10}{'analyze':>12}")
    for n_events in (120, 1_000, 5_000):
        o = original(n_events, max(3, args.rounds // 2))
        if o is None:
            print(f"{'':<24}{n_events:>10,}{'(not measured)':>12}")
            continue
        print(f"{'':<24}{n_events:>10,}{o['us']:>12.0f}   (history rows read: {o['history']})")


if __name__ == "__main__":
    main()
