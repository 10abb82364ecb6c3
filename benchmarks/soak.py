"""Soak: mixed traffic from several processes for N minutes, with random decisions.

Roles (each a separate OS process, all this script in another mode):

* agents: ``@protect``-ed calls in a loop (reads allowed, deletes blocked, large transfers waiting
  for a person), paced at ``--rate`` calls/s each;
* deciders: approve (60 %) or deny pending requests after a random think time (0-200 ms), through
  the store API, recording ``time.monotonic()`` when their COMMIT returned;
* a headless command center (``SentinelApp`` under Textual's headless driver) following the queue
  and pressing ``a``/``d`` about once a second.

Measured and printed at the end:

* memory: RSS of every agent and of the command center, sampled through the run; the growth from
  the first sample after warm-up (10 % of the run, at least 30 s) to the last;
* wake-up latency: decider COMMIT → the waiting call resuming (CLOCK_MONOTONIC is system-wide on
  Linux, so times from different processes compare), p50 / p99 / max against the queue targets
  (p50 ≤ 5 ms, p99 ≤ 20 ms);
* correctness: every request final with exactly one final event, callers' outcomes equal their
  rows, and the audit chain recomputed from genesis.

    python benchmarks/soak.py [--minutes 60] [--agents 4] [--deciders 2] [--rate 20] [--trace-tui]

``--trace-tui``: the command center runs ``tracemalloc`` (25 frames) and writes snapshots and
object counts by type to the working folder at warm-up end, every ``--trace-every`` minutes and at
the end; the report adds the top 15 growth sites and the object types that grew (reported only;
tracemalloc itself costs memory, so compare RSS slopes between traced and untraced runs).

Exit status 1 when a correctness check fails (latency and memory are reported, not enforced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/queue.py would shadow the standard library's queue: drop this folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RULES = """\
version: "1.0"
default_action: block
rules:
  - id: reads
    function_pattern: "read_*"
    action: allow
  - id: deletes
    function_pattern: "delete_*"
    action: block
  - id: large_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
"""


# --- roles -----------------------------------------------------------------------------------------


def agent(db: str, rules: str, out: str, stop: str, seed: int, rate: float) -> None:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError, SentinelDeniedError, SentinelTimeoutError
    from sentinel.protect import protect

    cfg = SentinelConfig(
        rules_path=rules, db_path=db, agent_id=f"soak-{seed}", timeout_seconds=30,
        audit_log=True, show_waiting_hint=False, hot_reload=False,
    )  # fmt: skip
    woke: dict[str, float] = {}

    @protect(cfg)
    def read_data(key: str, nonce: str) -> str:
        return key

    @protect(cfg)
    def delete_data(key: str, nonce: str) -> str:
        return key

    @protect(cfg)
    def transfer_funds(amount: int, nonce: str) -> int:
        woke[nonce] = time.monotonic()
        return amount

    rng = random.Random(seed)
    gap = 1.0 / rate
    with open(out, "w") as fh:
        i = 0
        while not os.path.exists(stop):
            i += 1
            nonce = f"{seed}-{i}"
            r = rng.random()
            rec: dict[str, Any] = {"nonce": nonce}
            try:
                if r < 0.25:
                    rec["expect"] = "approval"
                    transfer_funds(rng.randint(1001, 9000), nonce)
                    rec["wake"] = woke.pop(nonce)
                elif r < 0.4:
                    rec["expect"] = "block"
                    delete_data(f"k{i}", nonce)
                else:
                    rec["expect"] = "allow"
                    read_data(f"k{i}", nonce)
                rec["outcome"] = "ran"
            except SentinelDeniedError:
                rec.update(outcome="denied", wake=time.monotonic())
            except SentinelTimeoutError:
                rec["outcome"] = "expired"
            except SentinelBlockedError as exc:
                rec["outcome"] = "blocked" if exc.request_id is None else "ended"
            fh.write(json.dumps(rec) + "\n")
            if i % 50 == 0:
                fh.flush()
            time.sleep(gap * rng.uniform(0.5, 1.5))
        read_data.__sentinel_guard__.flush()  # type: ignore[attr-defined]


def decider(db: str, out: str, stop: str, seed: int) -> None:
    from sentinel.errors import DecisionConflict
    from sentinel.store import OperatorIdentity, Store

    store = Store(db)
    op = OperatorIdentity(f"soak-op-{seed}", os.getuid(), None, None, "soak", None)
    rng = random.Random(seed)
    due: dict[str, float] = {}
    with open(out, "w") as fh:
        while not os.path.exists(stop):
            now = time.monotonic()
            for rec in store.list_pending():
                due.setdefault(rec.id, now + rng.uniform(0.0, 0.2))
            for rid, at in list(due.items()):
                if at > now:
                    continue
                del due[rid]
                try:
                    store.decide(rid, rng.random() < 0.6, op)
                    fh.write(f"{rid} {time.monotonic()!r}\n")
                except DecisionConflict:
                    pass
            time.sleep(0.005)


def tui(db: str, stop: str, trace: str = "", warm_up: float = 0.0, every: float = 0.0) -> None:
    """The headless command center; with ``trace`` (a folder), tracemalloc snapshots and Python
    object counts by type are written there at the end of warm-up, every ``every`` seconds after
    it, and at the end (``tui-warm.*``, ``tui-NNNs.*``, ``tui-end.*``)."""
    if trace:
        import tracemalloc

        tracemalloc.start(25)
    from sentinel_tui.app import SentinelApp
    from sentinel_tui.config import TuiConfig

    def dump(tag: str) -> None:
        import gc
        import tracemalloc

        gc.collect()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        Path(trace, f"tui-{tag}.types.json").write_text(json.dumps(types))
        # The traced Python heap next to RSS: a flat heap under a rising RSS points at C memory
        # (SQLite page caches, malloc arenas) or at tracemalloc's own snapshots.
        heap, peak = tracemalloc.get_traced_memory()
        mem = {"traced": heap, "traced_peak": peak, "rss_mb": rss_mb(os.getpid())}
        Path(trace, f"tui-{tag}.mem.json").write_text(json.dumps(mem))
        tracemalloc.take_snapshot().dump(str(Path(trace, f"tui-{tag}.snap")))

    async def run() -> None:
        app = SentinelApp(
            db, None, tick_interval=1.0, watch_terminal=False,
            config=TuiConfig(bell=False, toast_new=False),
        )  # fmt: skip
        rng = random.Random(1)
        started = time.monotonic()
        next_dump = warm_up if trace else float("inf")
        async with app.run_test(size=(120, 40)) as pilot:
            while not os.path.exists(stop):
                if app.queue.card.request_id is not None:
                    await pilot.press("a" if rng.random() < 0.6 else "d")
                await pilot.pause(1.0)
                if (t := time.monotonic() - started) >= next_dump:
                    dump("warm" if next_dump == warm_up else f"{int(t):05d}s")
                    next_dump = t + every if every > 0 else float("inf")
            if trace:
                dump("end")

    asyncio.run(run())


def trace_report(work: Path) -> None:
    """Top growth sites and object-type growth in the command center, warm-up end -> end."""
    import tracemalloc

    a, b = work / "tui-warm.snap", work / "tui-end.snap"
    if not (a.exists() and b.exists()):
        print("trace: no warm-up/end snapshots (the run was shorter than the warm-up?)")
        return
    # Drop tracemalloc's own bookkeeping and the import machinery (one-off, not growth).
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    first = tracemalloc.Snapshot.load(str(a)).filter_traces(keep)
    last = tracemalloc.Snapshot.load(str(b)).filter_traces(keep)
    total = sum(s.size for s in last.statistics("filename")) - sum(s.size for s in first.statistics("filename"))
    print(f"trace (command center, tracemalloc 25 frames), warm-up -> end: traced {total / 1e6:+.2f} MB")
    mems = sorted(work.glob("tui-*.mem.json"), key=lambda f: (f.stem != "tui-warm.mem", f.stem == "tui-end.mem", f.stem))
    print("  traced heap / RSS at each snapshot: " + ", ".join(
        f"{f.name[4:-9]} {(m := json.loads(f.read_text()))['traced'] / 1e6:.2f}/{m['rss_mb'] or 0:.1f} MB" for f in mems
    ))
    print("  top 15 growth sites (by line):")
    for st in last.compare_to(first, "lineno")[:15]:
        fr = st.traceback[0]
        print(f"    {st.size_diff / 1024:+9.1f} KiB {st.count_diff:+7d} blocks  {fr.filename}:{fr.lineno}")
    print("  top 5 growth tracebacks (innermost project/library frames):")
    for st in last.compare_to(first, "traceback")[:5]:
        frames = [f for f in st.traceback if "/sentinel" in f.filename or "textual" in f.filename or "rich" in f.filename]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(reversed(frames))[:6]) or str(st.traceback[0])
        print(f"    {st.size_diff / 1024:+9.1f} KiB {st.count_diff:+7d} blocks  {where}")
    ta = Counter(json.loads((work / "tui-warm.types.json").read_text()))
    tb = Counter(json.loads((work / "tui-end.types.json").read_text()))
    grown = sorted(((tb[k] - ta[k], k) for k in tb.keys() | ta.keys()), reverse=True)[:15]
    print(f"  Python objects {sum(ta.values())} -> {sum(tb.values())}; growth by type: "
          + ", ".join(f"{k} {d:+d}" for d, k in grown if d > 0))


# --- the driver ------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def warm_up_of(seconds: float) -> float:
    """Warm-up (imports, caches, first pages of SQLite): 10 % of the run, at least 30 s."""
    return max(seconds * 0.1, 30.0) if seconds > 60 else seconds * 0.5


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def verify_chain(store: Any) -> int:
    from sentinel.store import GENESIS_HASH, event_hash

    prev, n, after = GENESIS_HASH, 0, 0
    while True:
        page = store.events_after(after, 5000)
        if not page:
            return n
        for ev in page:
            fields = {k: getattr(ev, k) for k in (
                "seq", "ts", "kind", "request_id", "agent_id", "function", "digest",
                "policy_version", "rule_id", "value_at_risk", "actor", "reason", "data", "prev_hash",
            )}  # fmt: skip
            if ev.prev_hash != prev or event_hash(prev, fields) != ev.hash:
                raise SystemExit(f"audit chain broken at event {ev.seq}")
            prev = ev.hash
            n += 1
        after = page[-1].seq


def drive(args: argparse.Namespace) -> int:
    from sentinel.store import Store

    work = Path(args.dir or tempfile.mkdtemp(prefix="sentinel-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    db, rules = work / "sentinel.db", work / "rules.yaml"
    stop, stop_deciders = work / "stop", work / "stop-deciders"
    rules.write_text(RULES)
    stop.unlink(missing_ok=True)
    stop_deciders.unlink(missing_ok=True)
    Store(db).close()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    me = [sys.executable, str(Path(__file__).resolve())]

    def spawn(*role: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*me, *role], env=env, stdin=subprocess.DEVNULL)

    agents = [
        spawn("agent", str(db), str(rules), str(work / f"agent-{i}.jsonl"), str(stop), str(i), str(args.rate))
        for i in range(args.agents)
    ]
    deciders = [
        spawn("decider", str(db), str(work / f"decider-{k}.txt"), str(stop_deciders), str(100 + k))
        for k in range(args.deciders)
    ]
    seconds = args.minutes * 60.0
    trace = ("--trace", str(work), str(warm_up_of(seconds)), str(args.trace_every * 60.0)) if args.trace_tui else ()
    center = spawn("tui", str(db), str(stop_deciders), *trace)
    step = min(10.0, max(1.0, seconds / 30))
    samples: list[tuple[float, dict[str, float | None]]] = []
    started = time.monotonic()
    print(f"soak: {args.minutes:g} min, {args.agents} agents at {args.rate:g} calls/s, "
          f"{args.deciders} deciders, 1 headless command center; files in {work}", flush=True)
    csv = open(work / "rss.csv", "w")  # written as it goes: a long run can be read while it runs
    csv.write("seconds," + ",".join([*(f"agent-{i}" for i in range(len(agents))), "command-center"]) + "\n")
    while (elapsed := time.monotonic() - started) < seconds:
        row = {f"agent-{i}": rss_mb(p.pid) for i, p in enumerate(agents)}
        row["command-center"] = rss_mb(center.pid)
        samples.append((elapsed, row))
        csv.write(f"{elapsed:.1f}," + ",".join("" if v is None else f"{v:.1f}" for v in row.values()) + "\n")
        csv.flush()
        dead = [p.args for p in [*agents, *deciders, center] if p.poll() is not None]
        if dead:
            print(f"a role exited early: {dead}", file=sys.stderr)
            break
        time.sleep(step)
    total = time.monotonic() - started
    csv.close()
    stop.write_text("stop")  # agents finish their call in flight; deciders keep deciding until then
    for p in agents:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    stop_deciders.write_text("stop")
    for p in [*deciders, center]:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    return report(args, work, db, samples, total)


def report(args: argparse.Namespace, work: Path, db: Path, samples: list[Any], total: float) -> int:
    import sqlite3

    from sentinel.store import Store

    calls = [json.loads(line) for f in sorted(work.glob("agent-*.jsonl")) for line in f.read_text().splitlines() if line]
    commits: dict[str, float] = {}
    for f in work.glob("decider-*.txt"):
        for line in f.read_text().splitlines():
            rid, t = line.split()
            commits[rid] = float(t)
    conn = sqlite3.connect(str(db))
    rows = {r[0]: (r[1], json.loads(r[2])["nonce"]) for r in conn.execute("SELECT id, status, arguments FROM requests")}
    conn.close()
    by_nonce = {nonce: (rid, status) for rid, (status, nonce) in rows.items()}
    store = Store(db)
    problems: list[str] = []
    finals: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    after = 0
    while page := store.events_after(after, 5000):
        for ev in page:
            kinds[ev.kind] += 1
            if ev.kind in ("approved", "denied", "expired", "cancelled") and ev.request_id:
                finals[ev.request_id] += 1
        after = page[-1].seq
    for rid, (status, _n) in rows.items():
        if status == "pending" or finals[rid] != 1:
            problems.append(f"request {rid}: status {status}, {finals[rid]} final events")
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    for c in calls:
        outcomes[f"{c['expect']}:{c['outcome']}"] += 1
        if c["expect"] != "approval":
            continue
        hit = by_nonce.get(c["nonce"])
        if hit is None:
            problems.append(f"call {c['nonce']}: no request row")
            continue
        rid, status = hit
        want = {"approved": "ran", "denied": "denied", "expired": "expired"}.get(status, "ended")
        if c["outcome"] != want:
            problems.append(f"call {c['nonce']}: saw {c['outcome']}, row {status}")
        if "wake" in c and rid in commits:
            latencies.append((c["wake"] - commits[rid]) * 1000.0)
    n_events = verify_chain(store)
    store.close()

    print(f"\nran {total / 60:.1f} min: {len(calls)} calls ({len(calls) / total:.0f}/s), "
          f"{len(rows)} approval requests, {n_events} events (chain verified)")
    print("outcomes:", dict(sorted(outcomes.items())))
    print("events by kind:", dict(sorted(kinds.items())))
    if latencies:
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        print(f"wake-up latency (decider COMMIT -> call resumes), n={len(latencies)}: "
              f"p50 {p50:.2f} ms ({'ok' if p50 <= 5 else 'MISS'} <= 5), "
              f"p99 {p99:.2f} ms ({'ok' if p99 <= 20 else 'MISS'} <= 20), max {max(latencies):.1f} ms, "
              f"mean {statistics.fmean(latencies):.2f} ms")
    warm_up = warm_up_of(total)
    warm = [s for s in samples if s[0] >= warm_up] or samples
    if warm:
        first, last = warm[0][1], warm[-1][1]
        print(f"RSS (MB) from {warm[0][0] / 60:.1f} min to {warm[-1][0] / 60:.1f} min:")
        for name in first:
            a, b = first[name], last.get(name)
            if a is None or b is None:
                continue
            peak = max(s[1].get(name) or 0 for s in warm)
            # The path in between (quarters of the measured span) tells a plateau from a leak.
            path = [warm[min(len(warm) - 1, k * (len(warm) - 1) // 4)][1].get(name) for k in range(5)]
            steps = " ".join(f"{x:.1f}" for x in path if x is not None)
            # Least-squares slope over the measured span: a leak is a steady climb, not a step.
            pts = [(t / 60.0, v) for t, r in warm if (v := r.get(name)) is not None]
            slope = statistics.linear_regression([p[0] for p in pts], [p[1] for p in pts]).slope if len(pts) > 2 else 0.0
            print(
                f"  {name:15} {a:7.1f} -> {b:7.1f}  ({b - a:+.1f} MB, {100 * (b - a) / a:+.1f} %), "
                f"peak {peak:.1f}, slope {slope:+.3f} MB/min ({60 * slope:+.1f} MB/h); by quarter: {steps}"
            )
    if args.trace_tui:
        trace_report(work)
    print(f"correctness: {'OK' if not problems else f'{len(problems)} PROBLEMS'}")
    for p in problems[:20]:
        print("  ", p)
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("agent", "decider", "tui"):
        role, rest = argv[0], argv[1:]
        if role == "agent":
            agent(rest[0], rest[1], rest[2], rest[3], int(rest[4]), float(rest[5]))
        elif role == "decider":
            decider(rest[0], rest[1], rest[2], int(rest[3]))
        elif rest[2:3] == ["--trace"]:
            tui(rest[0], rest[1], rest[3], float(rest[4]), float(rest[5]))
        else:
            tui(rest[0], rest[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    p.add_argument("--agents", type=int, default=4, help="agent processes (default 4)")
    p.add_argument("--deciders", type=int, default=2, help="decider processes (default 2)")
    p.add_argument("--rate", type=float, default=20.0, help="calls per second per agent (default 20)")
    p.add_argument("--trace-tui", action="store_true",
                   help="run tracemalloc in the command center; print top growth sites and object-type growth")
    p.add_argument("--trace-every", type=float, default=10.0,
                   help="with --trace-tui, also snapshot every N minutes after warm-up (default 10)")
    p.add_argument("--dir", help="working folder (default: a new temporary folder)")
    return drive(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
