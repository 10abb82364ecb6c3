"""Audit benchmarks: allowed-call overhead with auditing on, and verifying a million events.

1. **Allowed-call overhead, audit on** — Sentinel with ``audit_log=True`` (batched: events are
   committed by a background thread, hash-chained, and mirrored to JSONL) side by side with
   agentic-sentinel 0.1.0 with ``audit_log=True`` (it appends one JSONL line per call, synchronously,
   unchained). Same 20-rule policy and call as ``benchmarks/overhead.py``; each variant in a fresh
   child process; best of 5 rounds of N calls. Printed per call, minus the undecorated function:

   * ``caller``: wall time the calling code waits (what an agent experiences), best round;
     ``median`` and ``worst``: the same over the five rounds; ``own cpu``: the calling thread's
     CPU time in the best round (the rest of ``caller`` is waiting for the GIL or a core);
   * ``all-in``: wall time until every event of the round is committed and mirrored (final flush
     included), divided by N;
   * ``cpu``: process CPU time of all threads (the background writer included), divided by N.

2. **verify** — ``sentinel audit verify`` over 1,000,000 events (generated with
   ``append_events`` in large batches), table only and with the JSONL mirror.

   With ``--postgres``, a third row: the audited call with the events going to a throwaway
   PostgreSQL 15 server (durable settings) instead of the SQLite file.

    python -m benchmarks.audit [--n 20000] [--events 1000000] [--skip-original] [--skip-verify]
                               [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
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
_spec = importlib.util.spec_from_file_location("_overhead", ROOT / "benchmarks" / "overhead.py")
assert _spec is not None and _spec.loader is not None
overhead = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overhead)

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    rules, db, logs, n, variant = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    from sentinel import protect, SentinelConfig
    kw = {"rules_path": rules, "audit_log": variant != "ours-off", "audit_log_dir": logs}
    if variant.startswith("ours"):
        kw["db_path"] = db
        kw["hot_reload"] = False
    cfg = SentinelConfig(**kw)

    def transfer(amount, destination):
        return amount
    ptransfer = protect(cfg)(transfer)

    flush = lambda: None
    if variant.startswith("ours"):
        from sentinel.protect import get_guard
        guard = get_guard(cfg, None)
        if variant != "ours-off":
            from sentinel.audit import attach
            attach(guard)  # JSONL mirror (until the guard wires it itself)
        flush = guard.flush

    def best(fn, rounds=5):
        out = []
        for _ in range(rounds):
            c0 = time.process_time(); t0 = time.perf_counter(); th0 = time.thread_time()
            fn()
            t1 = time.perf_counter(); th1 = time.thread_time()
            flush()
            t2 = time.perf_counter(); c2 = time.process_time()
            out.append(((t1 - t0) / n * 1e6, (t2 - t0) / n * 1e6, (c2 - c0) / n * 1e6,
                        (th1 - th0) / n * 1e6))
        callers = sorted(o[0] for o in out)
        return (*min(out), callers[len(callers) // 2], callers[-1])

    def loop(f):
        def run():
            for i in range(n):
                f(50, "ACC-1")
        return run

    ptransfer(50, "warm"); flush()
    res = {"plain": best(loop(transfer)), "protected": best(loop(ptransfer))}
    if variant.startswith("ours") and variant != "ours-off":
        from sentinel.store.location import open_store
        with open_store(db) as s:
            res["events"] = s.count_events()
    lines = 0
    for name in os.listdir(logs) if os.path.isdir(logs) else []:
        if name.endswith(".jsonl"):
            with open(os.path.join(logs, name), "rb") as fh:
                lines += sum(1 for _ in fh)
    res["jsonl_lines"] = lines
    print(json.dumps(res))
    """
)


def run_child(python: str, tmp: Path, n: int, variant: str, db: str | None = None) -> dict:
    """One benchmark child; ``db`` (ours only): a database value instead of a fresh SQLite file."""
    rules = tmp / "rules.json"
    rules.write_text(json.dumps(overhead.policy_json(20)))
    work = tmp / variant
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["SENTINEL_ANCHOR_DIR"] = str(tmp / "anchors")
    if variant.startswith("ours"):
        env["PYTHONPATH"] = str(ROOT)
    else:  # 0.1.0 in its own venv: never this checkout's sentinel
        env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [python, "-c", CHILD, str(rules), db or str(work / "s.db"), str(work / "logs"), str(n), variant],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead_table(n: int, skip_original: bool, postgres: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmpdir = Path(tmp)
        rows = [
            ("sentinel, audit off", run_child(sys.executable, tmpdir, n, "ours-off")),
            ("sentinel, audit_log=True (batched)", run_child(sys.executable, tmpdir, n, "ours")),
        ]
        if postgres:
            from tests.pg import PgCluster

            cluster = stack.enter_context(PgCluster.start(durable=True))
            url = stack.enter_context(cluster.database())
            rows.append(
                ("  the same on PostgreSQL (durable server)", run_child(sys.executable, tmpdir, n, "ours-pg", url))
            )
        if not skip_original:
            python = overhead.ensure_original()
            if python is not None:
                rows.append(
                    (
                        "agentic-sentinel 0.1.0, audit_log=True",
                        run_child(str(python), tmpdir, n, "original"),
                    )
                )
    print(f"Allowed-call overhead with auditing, 20-rule policy, best of 5 x {n:,} calls")
    print("(µs per call minus the undecorated function)")
    header = (
        f"{'variant':<42}{'caller':>9}{'median':>9}{'worst':>9}{'own cpu':>9}{'all-in':>9}"
        f"{'cpu':>9}   recorded"
    )
    print(header)
    print("-" * (len(header) + 12))
    for label, data in rows:
        p_wall, _p_all, p_cpu, p_own, _pm, _pw = data["plain"]
        wall, all_in, cpu, own, median, worst = data["protected"]
        recorded = (
            f"{data.get('events', 0):,} events, {data['jsonl_lines']:,} JSONL lines"
            if "events" in data
            else f"{data['jsonl_lines']:,} JSONL lines"
        )
        print(
            f"{label:<42}{wall - p_wall:>9.2f}{median - p_wall:>9.2f}{worst - p_wall:>9.2f}"
            f"{own - p_own:>9.2f}{all_in - p_wall:>9.2f}{cpu - p_cpu:>9.2f}   {recorded}"
        )


def fill(store: Any, events: int, batch: int = 20_000) -> None:
    """Append ``events`` allowed/executed events (a valid chain) in large batches."""
    ts = time.time() - 86400
    for start in range(0, events, batch):
        store.append_events(
            [
                {
                    "kind": "allowed" if i % 2 == 0 else "executed",
                    "ts": ts + i * 0.05,
                    "function": "transfer",
                    "agent_id": "bot-1",
                    "policy_version": "v1",
                    "digest": "ab" * 32,
                    "value_at_risk": 50.0,
                    "data": {"args": {"amount": 50, "destination": "ACC-1"}}
                    if i % 2 == 0
                    else {"duration_ms": 0.004, "result": "50"},
                }
                for i in range(start, min(events, start + batch))
            ],
            records=False,
        )


def verify_bench(events: int) -> None:
    # This folder holds queue.py, which would shadow the standard library's queue module.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, str(ROOT))
    from sentinel.audit.mirror import JsonlMirror
    from sentinel.audit.verify import verify
    from sentinel.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SENTINEL_ANCHOR_DIR"] = str(Path(tmp) / "anchors")
        db = Path(tmp) / "db" / "s.db"
        store = Store(db)
        t0 = time.perf_counter()
        fill(store, events)
        gen = time.perf_counter() - t0
        print(
            f"\ngenerated {events:,} events in {gen:.1f} s ({gen / events * 1e6:.1f} µs per event)"
        )
        t0 = time.perf_counter()
        report = verify(store)
        took = time.perf_counter() - t0
        assert report.ok and report.table_events == events, report.problems
        print(f"verify (table): {events:,} events in {took:.2f} s ({events / took:,.0f} events/s)")
        logs = Path(tmp) / "logs"
        t0 = time.perf_counter()
        JsonlMirror(logs).catch_up(store)
        mirror = time.perf_counter() - t0
        print(f"mirror to JSONL: {mirror:.2f} s ({mirror / events * 1e6:.1f} µs per event)")
        t0 = time.perf_counter()
        report = verify(store, jsonl_dir=logs)
        took = time.perf_counter() - t0
        assert report.ok and report.jsonl_events == events, report.problems
        print(f"verify (table + JSONL): {events:,} events in {took:.2f} s")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="also the audited call on a throwaway PostgreSQL server (tests/pg.py)")
    args = parser.parse_args()
    overhead_table(args.n, args.skip_original, args.postgres)
    if not args.skip_verify:
        verify_bench(args.events)


if __name__ == "__main__":
    main()
