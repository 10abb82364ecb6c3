"""The approval queue on PostgreSQL beside SQLite, across real processes.

Starts its own throwaway PostgreSQL 15 cluster (tests/pg.py: run as the ``postgres`` OS user, on
a loopback port). Unlike the test cluster it keeps durability ON by default (fsync,
synchronous_commit, full_page_writes), as a real server would; ``--fsync-off`` measures the test
settings instead, ``--async-commit`` a server whose default is ``synchronous_commit = off`` (what
the store uses for everything but decisions, sweeps and prunes, which always commit durably:
the PostgreSQL counterpart of SQLite's ``synchronous=NORMAL``). Each figure is taken for both backends in the same run:

1. **wake-up**: an agent process submits a request, watches it (``Watcher`` / ``PgWatcher``) and
   hands its id to a decider process over a pipe; the decider approves it. Latency = from the
   decider's ``decide()`` returning (COMMIT done) to the agent's ``future.result()`` returning
   (CLOCK_MONOTONIC is system-wide), p50 / p99 / max over ``--wakes`` requests;
2. **submissions**: 8 processes submit ``--submits`` requests each as fast as they can, starting
   together: requests/s over the whole burst, and how many of the submitted ids are missing from
   the database afterwards (lost).

    python -m benchmarks.pg_queue [--wakes 300] [--submits 500] [--fsync-off | --async-commit]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROCS = 8


def _open(backend: str, target: str) -> Any:
    if backend == "sqlite":
        from sentinel.store import Store

        return Store(target)
    from sentinel.store.postgres import PgStore

    return PgStore(target)


def _new() -> Any:
    from sentinel.store import NewRequest

    return NewRequest(
        id=uuid.uuid4().hex,
        function="transfer_funds",
        arguments={"amount": 2500, "to": "acct-42", "memo": "invoice 991"},
        digest="ab" * 32,
        timeout_seconds=600.0,
        agent_id=f"bench-{os.getpid()}",
        rule_id="large-transfer",
        value_at_risk=2500.0,
    )


# --- roles (child processes) ----------------------------------------------------------------


def role_agent(backend: str, target: str, n: int, fd: int, out: str) -> None:
    """Submit, watch, hand the id to the decider, wait for the decision; n times."""
    store = _open(backend, target)
    watcher = store.watcher()
    pipe = os.fdopen(fd, "w", buffering=1)
    woke: dict[str, float] = {}
    for _ in range(n):
        rec = store.submit(_new())
        fut = watcher.watch(rec.id)
        pipe.write(rec.id + "\n")
        got = fut.result(timeout=60)
        woke[rec.id] = time.monotonic()
        assert got.status == "approved", got.status
        time.sleep(0.005)  # a call's own work between approvals; lets the decider go idle
    pipe.write("done\n")
    pipe.close()
    Path(out).write_text(json.dumps(woke))
    os._exit(0)  # the watcher thread is a daemon: leave at once


def role_decider(backend: str, target: str, fd: int, out: str) -> None:
    """Approve each id the agent hands over; record when each decide() returned."""
    from sentinel.store import OperatorIdentity

    store = _open(backend, target)
    op = OperatorIdentity("bench", 0, None, None, "bench", None)
    committed: dict[str, float] = {}
    with os.fdopen(fd) as pipe:
        for line in pipe:
            request_id = line.strip()
            if request_id == "done":
                break
            store.decide(request_id, True, op)
            committed[request_id] = time.monotonic()
    Path(out).write_text(json.dumps(committed))
    store.close()


def role_submit(backend: str, target: str, n: int, start_at: float, out: str) -> None:
    """Submit n requests as fast as possible from monotonic time start_at."""
    store = _open(backend, target)
    news = [_new() for _ in range(n)]
    if backend == "postgresql":
        store.watcher().hold()  # the liveness session is up before the clock starts
    while time.monotonic() < start_at:
        time.sleep(0.0005)
    t0 = time.monotonic()
    for new in news:
        store.submit(new)
    Path(out).write_text(
        json.dumps({"start": t0, "end": time.monotonic(), "ids": [x.id for x in news]})
    )
    os._exit(0)


# --- driver ---------------------------------------------------------------------------------


def _child(*args: object, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.pg_queue", "--role", *map(str, args)],
        env=env,
        pass_fds=pass_fds,
    )


def _pcts(values: list[float]) -> dict[str, float]:
    xs = sorted(values)
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return {"p50": q[49], "p99": q[98], "max": xs[-1]}


def wake(backend: str, target: str, n: int, tmp: Path) -> dict[str, float]:
    r, w = os.pipe()
    agent_out, decider_out = tmp / f"agent-{backend}.json", tmp / f"decider-{backend}.json"
    decider = _child("decider", backend, target, r, decider_out, pass_fds=(r,))
    agent = _child("agent", backend, target, n, w, agent_out, pass_fds=(w,))
    os.close(r)
    os.close(w)
    for p in (agent, decider):
        if p.wait(timeout=600) != 0:
            raise SystemExit(f"{backend} wake-up role failed")
    woke = json.loads(agent_out.read_text())
    committed = json.loads(decider_out.read_text())
    lat = [(woke[i] - committed[i]) * 1000 for i in committed]
    return _pcts(lat)


def submissions(backend: str, target: str, n: int, tmp: Path) -> dict[str, float]:
    start_at = time.monotonic() + 3.0  # every process connected and idle by then
    outs = [tmp / f"submit-{backend}-{k}.json" for k in range(PROCS)]
    procs = [_child("submit", backend, target, n, start_at, out) for out in outs]
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise SystemExit(f"{backend} submit role failed")
    results = [json.loads(o.read_text()) for o in outs]
    begin = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    ids = [i for r in results for i in r["ids"]]
    store = _open(backend, target)
    try:
        stored = {rec.id for rec in store.list_pending(limit=len(ids) + 10)}
    finally:
        store.close()
    lost = sum(1 for i in ids if i not in stored)
    return {"rate": len(ids) / (end - begin), "lost": lost, "total": len(ids)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "agent":
            role_agent(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])
        elif role == "decider":
            role_decider(rest[0], rest[1], int(rest[2]), rest[3])
        elif role == "submit":
            role_submit(rest[0], rest[1], int(rest[2]), float(rest[3]), rest[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wakes", type=int, default=300)
    parser.add_argument("--submits", type=int, default=500, help="per process (8 processes)")
    parser.add_argument("--fsync-off", action="store_true", help="the test cluster's settings")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="the server's default synchronous_commit = off (decisions still commit durably)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import tests.pg as pg

    if not args.fsync_off:
        pg._SETTINGS = {
            **pg._SETTINGS,
            "fsync": "on",
            "synchronous_commit": "off" if args.async_commit else "on",
            "full_page_writes": "on",
        }
    durability = "off" if args.fsync_off else "on"
    if args.async_commit and not args.fsync_off:
        durability += ", synchronous_commit off by default"
    print(f"PostgreSQL cluster: durability {durability}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="pg-queue-") as tmpdir, pg.PgCluster.start() as cluster:
        tmp = Path(tmpdir)
        rows = []
        for backend in ("sqlite", "postgresql"):
            figures: dict[str, Any] = {"backend": backend}
            for phase in ("wake", "submit"):
                if backend == "sqlite":
                    target = str(tmp / f"{phase}.db")
                    _open(backend, target).close()
                else:
                    target = cluster.url(cluster.create_database())
                    _open(backend, target).close()
                if phase == "wake":
                    figures["wake"] = wake(backend, target, args.wakes, tmp)
                else:
                    figures["submit"] = submissions(backend, target, args.submits, tmp)
            rows.append(figures)
        print()
        print(
            f"| backend | wake p50 | wake p99 | wake max | submissions ({PROCS} processes) | lost |"
        )
        print("|---|---|---|---|---|---|")
        for f in rows:
            w, s = f["wake"], f["submit"]
            print(
                f"| {f['backend']} | {w['p50']:.2f} ms | {w['p99']:.2f} ms | {w['max']:.1f} ms "
                f"| {s['rate']:,.0f} requests/s | {s['lost']} of {s['total']} |"
            )


if __name__ == "__main__":
    main()
