"""Approval-queue performance across real processes, with the original's approval path beside it.

Measured (each role is a separate OS process; CLOCK_MONOTONIC is system-wide on Linux, so times
taken in different processes compare directly):

1. wake-up latency: the time from a decider's COMMIT returning to the waiting call's
   ``future.result()`` returning, p50/p99/max (1 agent and 4 agents waiting);
2. submission throughput: 8 agent processes submitting as fast as they can (requests/s);
3. closed loop: 8 agents × sequential submit → wait, one decider approving at once (cycles/s),
   with the lost / double-decided counts;
4. CPU of an idle waiting process (1 and 1,000 waits, nothing changing), % of one core;
5. history paging on a large event table (newest page, deep keyset page, filtered page);
6. the original agentic-sentinel 0.1.0 approval path: its ``ApprovalStateManager`` (the JSON state
   file the dashboard API and Streamlit share) with the agent polling the status every 2 s, as its
   WebhookApprovalInterface does. The original code runs from its own virtualenv under ``.bench/``
   (created by benchmarks/overhead.py); the HTTP hop of its FastAPI status endpoint is left out
   (FastAPI is not installed there), which only flatters the original.

    python benchmarks/queue.py [--quick] [--skip-original] [--history-rows 300000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named queue.py: drop its folder from the import path so the standard library's
# ``queue`` (imported later by concurrent.futures and aiosqlite) is not shadowed by it.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
ORIG_PY = ROOT / ".bench" / "agentic-sentinel-0.1.0" / "bin" / "python"
sys.path.insert(0, str(ROOT))


# --- roles (run in child processes) --------------------------------------------------------


def _new(timeout: float = 600.0):  # type: ignore[no-untyped-def]
    from sentinel.store import NewRequest

    return NewRequest(
        id=uuid.uuid4().hex,
        function="transfer_funds",
        arguments={"amount": 2500, "to": "acct-42", "memo": "invoice 991"},
        digest="ab" * 32,
        timeout_seconds=timeout,
        agent_id=f"bench-{os.getpid()}",
        rule_id="large-transfer",
        value_at_risk=2500.0,
    )


def role_agent(db: str, n: int, out: str) -> None:
    """Submit n requests one after another, waiting for each decision (like a protected call)."""
    from sentinel.store import Store, Watcher

    store, watcher = Store(db), Watcher.for_path(db)
    rows = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.monotonic()
    for _ in range(n):
        rec = store.submit(_new())
        fut = watcher.watch(rec.id)
        got = fut.result(timeout=120)
        rows.append({"id": rec.id, "woke": time.monotonic(), "status": got.status})
    t_end = time.monotonic()
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r.ru_utime + r.ru_stime) - (r0.ru_utime + r0.ru_stime)  # the loop only, not start-up
    Path(out).write_text(json.dumps({"rows": rows, "start": t_start, "end": t_end, "cpu": cpu}))
    store.close()


def role_decider(db: str, total: int, think_ms: float, out: str) -> None:
    """Discover pending requests by polling data_version (1 ms) and approve each after think time."""
    from sentinel.errors import DecisionConflict
    from sentinel.store import OperatorIdentity, Store

    store = Store(db)
    op = OperatorIdentity("bench", 0, None, None, "bench", None)
    done: dict[str, float] = {}
    decide_ms: list[float] = []
    cpu0: float | None = None
    conflicts = 0
    rng = random.Random(1)
    last = None
    deadline = time.monotonic() + 300
    while len(done) < total and time.monotonic() < deadline:
        v = store.data_version()
        if v == last:
            time.sleep(0.001)
            continue
        last = v
        for rec in store.list_pending():
            if rec.id in done:
                continue
            if cpu0 is None:
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                cpu0 = r0.ru_utime + r0.ru_stime
            if think_ms:
                time.sleep(rng.uniform(0, think_ms) / 1000)
            try:
                t_call = time.monotonic()
                store.decide(rec.id, True, op)
                done[rec.id] = time.monotonic()  # COMMIT has returned: the decision is durable
                decide_ms.append((done[rec.id] - t_call) * 1000)
            except DecisionConflict:
                conflicts += 1
    r = resource.getrusage(resource.RUSAGE_SELF)
    Path(out).write_text(
        json.dumps(
            {
                "committed": done,
                "conflicts": conflicts,
                "decide_ms": decide_ms,
                "cpu": r.ru_utime + r.ru_stime - (cpu0 or 0.0),
            }
        )
    )
    store.close()


def role_submit(db: str, n: int, start_at: float, out: str) -> None:
    """Submit n requests as fast as possible starting at monotonic time start_at."""
    from sentinel.store import Store

    store = Store(db)
    news = [_new() for _ in range(n)]
    while time.monotonic() < start_at:
        time.sleep(0.0005)
    for new in news:
        store.submit(new)
    Path(out).write_text(json.dumps({"end": time.monotonic()}))
    store.close()


def role_idle(db: str, waits: int, seconds: float, out: str) -> None:
    """Watch `waits` pending requests that nobody decides; report this process's CPU use."""
    from sentinel.store import Store, Watcher

    store = Store(db)
    ids = [store.submit(_new()).id for _ in range(waits)]
    watcher = Watcher.for_path(db)
    futures = [watcher.watch(i) for i in ids]
    time.sleep(1.0)  # settle (first checks)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(seconds)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    assert not any(f.done() for f in futures)
    Path(out).write_text(json.dumps({"cpu_pct": 100 * cpu / (t1 - t0), "checks": watcher.checks}))
    os._exit(0)  # daemon watcher thread: leave at once


def role_baseline(db: str, seconds: float, out: str) -> None:
    """A bare thread probing data_version every POLL_INTERVAL (the cost floor of any poller)."""
    import sqlite3
    import threading

    from sentinel.store.watcher import POLL_INTERVAL

    conn = sqlite3.connect(db, check_same_thread=False)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            conn.execute("PRAGMA data_version").fetchone()
            time.sleep(POLL_INTERVAL)

    threading.Thread(target=loop, daemon=True).start()
    time.sleep(1.0)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(seconds)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    Path(out).write_text(
        json.dumps({"cpu_pct": 100 * cpu / (t1 - t0), "interval_ms": POLL_INTERVAL * 1000})
    )
    os._exit(0)


ROLES = {
    "baseline": role_baseline,
    "agent": role_agent,
    "decider": role_decider,
    "submit": role_submit,
    "idle": role_idle,
}


# --- original agentic-sentinel path ---------------------------------------------------------

ORIG_AGENT = textwrap.dedent(
    """
    import json, sys, time, uuid
    from datetime import datetime, timedelta, timezone
    from sentinel.dashboard.state import ApprovalStateManager, PendingApproval
    state, n, out, poll = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    api = ApprovalStateManager(state)          # the dashboard API process's manager
    rows = []
    for i in range(n):
        aid = str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        api.add_pending(PendingApproval(aid, "transfer_funds", {"amount": 2500}, "big", "r1", now,
                                        now + timedelta(seconds=300)))
        # WebhookApprovalInterface: GET /approval/{id}/status every poll_interval_seconds (2 s);
        # the API reloads the JSON file on every call.
        while True:
            time.sleep(poll)
            st = api.get_status(aid)
            if st and st["status"] != "pending":
                rows.append({"id": aid, "woke": time.monotonic(), "status": st["status"]})
                break
    json.dump({"rows": rows}, open(out, "w"))
    """
)

ORIG_DECIDER = textwrap.dedent(
    """
    import json, sys, time
    from sentinel.dashboard.state import ApprovalStateManager
    state, total, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ui = ApprovalStateManager(state)           # Streamlit's own manager on the same file
    done = {}
    deadline = time.monotonic() + 300
    while len(done) < total and time.monotonic() < deadline:
        for p in ui.get_all_pending():
            if p.action_id not in done:
                ui.approve(p.action_id)
                done[p.action_id] = time.monotonic()
        time.sleep(0.005)
    json.dump({"committed": done}, open(out, "w"))
    """
)


# --- driver -------------------------------------------------------------------------------


def _spawn(*args: str, hints: bool = True) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SENTINEL_WAKE_HINTS="1" if hints else "0")
    return subprocess.Popen([sys.executable, __file__, "--role", *args], env=env)


def _pcts(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {}

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]

    return {
        "p50": q(0.5),
        "p99": q(0.99),
        "max": values[-1],
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def _fresh_db(tmp: Path, name: str) -> str:
    from sentinel.store import Store

    db = tmp / name / "sentinel.db"
    Store(db).close()
    return str(db)


def bench_latency(
    tmp: Path, agents: int, per_agent: int, think_ms: float, hints: bool = True
) -> dict[str, object]:
    tag = f"{agents}{'h' if hints else 'p'}"
    db = _fresh_db(tmp, f"lat{tag}")
    total = agents * per_agent
    dec_out = tmp / f"dec-lat{tag}.json"
    dec = _spawn("decider", db, str(total), str(think_ms), str(dec_out), hints=hints)
    outs = [tmp / f"agent-lat{tag}-{i}.json" for i in range(agents)]
    procs = [_spawn("agent", db, str(per_agent), str(o), hints=hints) for o in outs]
    for p in procs:
        p.wait()
    dec.wait()
    committed = json.loads(dec_out.read_text())["committed"]
    lat = []
    for o in outs:
        for row in json.loads(o.read_text())["rows"]:
            lat.append((row["woke"] - committed[row["id"]]) * 1000)
    return {"agents": agents, "requests": total, "think_ms": think_ms, "hints": hints, **_pcts(lat)}


def bench_submit(tmp: Path, procs_n: int, per_proc: int) -> dict[str, object]:
    db = _fresh_db(tmp, "submit")
    start_at = time.monotonic() + 1.5  # all children imported and ready
    outs = [tmp / f"submit-{i}.json" for i in range(procs_n)]
    procs = [_spawn("submit", db, str(per_proc), str(start_at), str(o)) for o in outs]
    for p in procs:
        p.wait()
    end = max(json.loads(o.read_text())["end"] for o in outs)
    total = procs_n * per_proc
    from sentinel.store import Store

    with Store(db) as s:
        stored = len(s.list_pending(limit=total + 10))
        events = s.count_events()
    return {
        "processes": procs_n,
        "requests": total,
        "per_s": total / (end - start_at),
        "stored": stored,
        "events": events,
    }


def bench_closed_loop(tmp: Path, agents: int, per_agent: int) -> dict[str, object]:
    db = _fresh_db(tmp, "loop")
    total = agents * per_agent
    dec_out = tmp / "dec-loop.json"
    t0 = time.monotonic()
    dec = _spawn("decider", db, str(total), "0", str(dec_out))
    outs = [tmp / f"agent-loop-{i}.json" for i in range(agents)]
    procs = [_spawn("agent", db, str(per_agent), str(o)) for o in outs]
    for p in procs:
        p.wait()
    dec.wait()
    results = [json.loads(o.read_text()) for o in outs]
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    woke = [row for r in results for row in r["rows"]]
    from sentinel.store import HistoryFilter, Store

    with Store(db) as s:
        decided = s.history(HistoryFilter(kinds=("approved", "denied")), limit=10 * total)
        pending = len(s.list_pending())
    per_id: dict[str, int] = {}
    for e in decided:
        per_id[e.request_id or ""] = per_id.get(e.request_id or "", 0) + 1
    del t0
    dec_res = json.loads(dec_out.read_text())
    cpu = sum(r["cpu"] for r in results) + dec_res["cpu"]
    dms = _pcts(dec_res["decide_ms"])
    return {
        "agents": agents,
        # The single decider commits each decision with synchronous=FULL (an fsync) one after
        # another, like an operator: its decide() wall time bounds the loop.
        "decide_ms_p50": dms.get("p50"),
        "decide_ms_p99": dms.get("p99"),
        "cpu_ms_per_cycle_all_processes": 1000 * cpu / total,
        "cycles": total,
        "cycles_per_s": total / (end - start),
        "woken": len(woke),
        "lost": total - len(per_id) + pending,
        "double_decided": sum(1 for n in per_id.values() if n > 1),
    }


def bench_idle(tmp: Path, waits: int, seconds: float) -> dict[str, object]:
    db = _fresh_db(tmp, f"idle{waits}")
    out = tmp / f"idle-{waits}.json"
    _spawn("idle", db, str(waits), str(seconds), str(out)).wait()
    return {"waits": waits, "seconds": seconds, **json.loads(out.read_text())}


def bench_idle_floor(tmp: Path, seconds: float) -> dict[str, object]:
    """reliability.md's dvthread baseline, now, on this machine: the floor set by timer wake-ups."""
    db = _fresh_db(tmp, "floor")
    out = tmp / "floor.json"
    _spawn("baseline", db, str(seconds), str(out)).wait()
    return {"seconds": seconds, **json.loads(out.read_text())}


def bench_history(tmp: Path, rows: int) -> dict[str, object]:
    from sentinel.store import HistoryFilter, Store

    db = _fresh_db(tmp, "history")
    kinds = ["allowed"] * 8 + ["blocked", "executed", "approved", "denied"]
    fns = ["read_file", "transfer_funds", "send_email", "delete_user", "query_db"]
    rng = random.Random(3)
    t_fill = time.monotonic()
    with Store(db) as s:
        now = time.time() - rows
        batch = 5000
        for start in range(0, rows, batch):
            s.append_events(
                [
                    {
                        "kind": rng.choice(kinds),
                        "ts": now + i,
                        "function": rng.choice(fns),
                        "agent_id": f"agent-{rng.randrange(20)}",
                        "value_at_risk": rng.choice([None, rng.uniform(1, 20000)]),
                        "rule_id": rng.choice([None, "r1", "r2", "r3"]),
                        "data": {"n": i},
                    }
                    for i in range(start, min(rows, start + batch))
                ]
            )
        fill_s = time.monotonic() - t_fill

        def timed(fn):  # type: ignore[no-untyped-def]
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t)
            return round(best * 1000, 2)

        mid = rows // 2
        return {
            "rows": rows,
            "fill_events_per_s": round(rows / fill_s),
            "newest_page_ms": timed(lambda: s.history(limit=100)),
            "deep_keyset_page_ms": timed(lambda: s.history(before_seq=mid, limit=100)),
            "status_denied_ms": timed(
                lambda: s.history(HistoryFilter.parse("status:denied"), limit=100)
            ),
            "fn_glob_value_ms": timed(
                lambda: s.history(HistoryFilter.parse("fn:transfer* value:>15000"), limit=100)
            ),
            "free_text_ms": timed(lambda: s.history(HistoryFilter.parse("agent-7"), limit=100)),
            "rare_glob_full_scan_ms": timed(
                lambda: s.history(HistoryFilter.parse("fn:nothing*"), limit=100)
            ),
            "rare_function_ms": timed(
                lambda: s.history(HistoryFilter.parse("fn:nothing_calls_this"), limit=100)
            ),
            "metrics_ms": timed(lambda: s.metrics()),
            "metrics_today_ms": timed(lambda: s.metrics(since=time.time() - 86400)),
            "count_ms": timed(lambda: s.count_events()),
        }


def bench_original(tmp: Path, n: int, poll: float) -> dict[str, object]:
    if not ORIG_PY.exists():
        return {"skipped": f"original not installed at {ORIG_PY} (run benchmarks/overhead.py once)"}
    state = tmp / "orig" / "sentinel_state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    a_out, d_out = tmp / "orig-agent.json", tmp / "orig-dec.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dec = subprocess.Popen(
        [str(ORIG_PY), "-c", ORIG_DECIDER, str(state), str(n), str(d_out)],
        env=env,
        cwd=tmp,
        stderr=subprocess.PIPE,
        text=True,
    )
    agent = subprocess.Popen(
        [str(ORIG_PY), "-c", ORIG_AGENT, str(state), str(n), str(a_out), str(poll)],
        env=env,
        cwd=tmp,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, a_err = agent.communicate(timeout=n * (poll + 5) + 30)
    _, d_err = dec.communicate(timeout=60)
    # The original rewrites its JSON file in place: a reader can catch it half-written and then
    # treats the whole state as empty ("Error loading state file").
    torn = (a_err + d_err).count("Error loading state file")
    committed = json.loads(d_out.read_text())["committed"]
    rows = json.loads(a_out.read_text())["rows"]
    lat = [(r["woke"] - committed[r["id"]]) * 1000 for r in rows if r["id"] in committed]
    return {
        "requests": n,
        "poll_s": poll,
        "lost_or_unmatched": n - len(lat),
        "torn_state_reads": torn,
        **_pcts(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--role", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    ap.add_argument("--skip-original", action="store_true")
    ap.add_argument("--history-rows", type=int, default=300_000)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated prefixes of the runs to do")
    args = ap.parse_args()
    if args.role:
        name, *rest = args.role
        fn = ROLES[name]
        conv = [
            float(x)
            if x.replace(".", "", 1).isdigit() and "." in x
            else (int(x) if x.isdigit() else x)
            for x in rest
        ]
        fn(*conv)
        return
    q = args.quick
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sentinel-qbench-") as d:
        tmp = Path(d)

        only = [x.strip() for x in (args.only or "").split(",") if x.strip()]

        def show(name: str, thunk: Callable[[], object]) -> None:
            if only and not any(name.startswith(o) for o in only):
                return
            value = thunk()
            results[name] = value
            print(f"{name:28s} {json.dumps(value, default=lambda x: round(x, 2))}", flush=True)

        show("wake_latency_1_agent_ms", lambda: bench_latency(tmp, 1, 40 if q else 100, 30))
        show("wake_latency_4_agents_ms", lambda: bench_latency(tmp, 4, 20 if q else 50, 20))
        show(
            "wake_latency_no_hints_ms",
            lambda: bench_latency(tmp, 4, 20 if q else 50, 20, hints=False),
        )
        show("submit_8_processes", lambda: bench_submit(tmp, 8, 250 if q else 1000))
        show("closed_loop_8_agents", lambda: bench_closed_loop(tmp, 8, 25 if q else 100))
        show("idle_cpu_1_wait", lambda: bench_idle(tmp, 1, 3 if q else 10))
        show("idle_cpu_1000_waits", lambda: bench_idle(tmp, 1000, 3 if q else 10))
        show("idle_cpu_bare_probe_floor", lambda: bench_idle_floor(tmp, 3 if q else 10))
        show("history", lambda: bench_history(tmp, 50_000 if q else args.history_rows))
        if not args.skip_original:
            show("original_state_file_poll_2s", lambda: bench_original(tmp, 5 if q else 10, 2.0))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
