"""Command-center performance (prints figures; never run as a test).

1. submit → card: an agent process submits a request; time until the app shows its card
   (p50/p95 over N requests, one at a time; each is denied afterwards so the next one is the card).
   Agent and app share CLOCK_MONOTONIC (system-wide on Linux).
2. startup → first painted queue: ``python -m sentinel_tui`` in a real pseudo-terminal, from
   spawn until the card of a pending request has been written to the terminal.
3. big database: 10,000 pending requests and 1,000,000 history events. Key press → answered
   (cursor move, view switch, history filter), and the app's resident memory.

    python -m benchmarks.tui [--samples 30] [--events 1000000] [--pending 10000] [--repeat 3]
                             [--big-only] [--postgres]

``--postgres``: the big-database figures with the same database copied (``sentinel db copy``) to a
throwaway PostgreSQL 15 server (tests/pg.py, durable settings).

Fair to the app: the benchmark's app runs no sweeper (``sweep_interval=0`` in process, ``--readonly``
observer mode in the pseudo-terminal), so the figures are the key/paint path, not the store sweep of
10,000 pending rows every 2 s. Every figure is reported as median and max over ``--repeat`` fresh
app runs: the machine is shared, so one run says little.

The big database is built once under .bench/ and reused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/queue.py would shadow the standard library's ``queue``: drop this folder.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

AGENT_CODE = r"""
import sys, time, uuid
from sentinel.store import NewRequest, Store
store = Store(sys.argv[1])
for line in sys.stdin:
    rid = uuid.uuid4().hex
    t0 = time.monotonic()
    store.submit(NewRequest(id=rid, function="transfer_funds", arguments={"amount": 2500},
        digest="ab" * 32,
        timeout_seconds=600, agent_id="bench-agent", rule_id="large_transfer",
        reason="bench", value_at_risk=2500.0))
    print(rid, t0, flush=True)
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    e["PYTHONPATH"] = str(ROOT)
    e["TEXTUAL_ANIMATIONS"] = "none"
    return e


# --- 1 ---------------------------------------------------------------------------------------


async def submit_to_card(samples: int) -> list[float]:
    from sentinel.identity import current_operator
    from sentinel.store import Store
    from sentinel_tui.app import SentinelApp
    from sentinel_tui.config import TuiConfig

    tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-tui-"))
    db = tmp / "sentinel.db"
    Store(db).close()
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT_CODE, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=env(),
    )
    decider = Store(db)
    op = current_operator("tui")
    app = SentinelApp(db, None, tick_interval=0, config=TuiConfig(bell=False, toast_new=False),
                      watch_terminal=False)
    out: list[float] = []
    assert agent.stdin is not None and agent.stdout is not None
    async with app.run_test(size=(120, 40)) as pilot:
        while app.snapshot_count == 0:
            await pilot.pause(0.01)
        for _ in range(samples + 2):
            agent.stdin.write("go\n")
            agent.stdin.flush()
            rid, t0 = agent.stdout.readline().split()
            while app.queue.card.request_id != rid:
                await pilot.pause(0.002)
            await pilot.pause()  # let the frame with the card be composed
            out.append(time.monotonic() - float(t0))
            decider.decide(rid, False, op, reason="bench")
            while app.queue.card.request_id is not None:
                await pilot.pause(0.005)
    agent.stdin.close()
    agent.wait(timeout=10)
    return out[2:]  # the first two include warm-up (imports in the agent, first queries)


# --- 2 ---------------------------------------------------------------------------------------


def startup(db: Path | str, needle: bytes, runs: int = 3, readonly: bool = False) -> list[float]:
    import fcntl
    import struct
    import termios

    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:
            e = env()
            e["TERM"] = "xterm-256color"
            argv = [sys.executable, "-m", "sentinel_tui", "--db", str(db)]
            os.execve(sys.executable, argv + (["--readonly"] if readonly else []), e)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        buf = bytearray()
        took = None
        while time.monotonic() - t0 < 30:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    buf.extend(os.read(fd, 65536))
                except OSError:
                    break
            if needle in buf:
                took = time.monotonic() - t0
                break
        os.write(fd, b"q")
        time.sleep(0.5)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
        if took is None:
            raise RuntimeError("the queue never appeared")
        times.append(took)
    return times


# --- 3 ---------------------------------------------------------------------------------------


def build_big(path: Path, pending: int, events: int) -> None:
    from sentinel.store import NewRequest, Store

    if path.exists():
        return
    tmp = path.with_suffix(".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    t0 = time.monotonic()
    kinds = ["allowed", "allowed", "allowed", "approved", "denied", "blocked", "expired"]
    with Store(tmp) as store:
        batch = 20_000
        for start in range(0, events, batch):
            store.append_events([
                {"kind": kinds[i % len(kinds)], "function": f"tool_{i % 50}",
                 "agent_id": f"agent-{i % 20}", "value_at_risk": float(i % 9000),
                 "request_id": uuid.uuid4().hex, "ts": time.time() - (events - i) * 0.5,
                 "actor": "alice@ops-1" if i % 7 in (3, 4) else None}
                for i in range(start, min(events, start + batch))
            ])
        now = time.time()
        for i in range(pending):
            store.submit(NewRequest(
                id=uuid.uuid4().hex, function=f"tool_{i % 50}", arguments={"amount": i},
                digest="cd" * 32, timeout_seconds=86_400 * 30,
                agent_id=f"agent-{i % 20}", rule_id="bench", reason="bench",
                value_at_risk=float(i), created_at=now - (pending - i),
            ))
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(tmp) + suffix)
        if src.exists():
            src.rename(Path(str(path) + suffix))
    print(f"  built {path} ({pending:,} pending, {events:,} events) in {time.monotonic() - t0:.0f} s")


async def answered(app: Any, key: str, cond: Any, timeout: float = 10.0) -> float:
    """Seconds from a key event reaching the app to ``cond()`` holding on the main thread
    (the frame showing it follows within one refresh interval, 1/60 s)."""
    t = time.monotonic()
    app.simulate_key(key)
    while not cond():
        if time.monotonic() - t > timeout:
            raise RuntimeError(f"key {key!r} was not answered")
        await asyncio.sleep(0.0005)
    return time.monotonic() - t


async def big_keys(db: Path | str) -> dict[str, Any]:
    import psutil

    from sentinel_tui.app import SentinelApp
    from sentinel_tui.config import TuiConfig

    proc = psutil.Process()
    # No sweeper: the benchmark measures the key/paint path, not a store sweep of every pending row.
    app = SentinelApp(db, None, tick_interval=0, config=TuiConfig(bell=False, toast_new=False),
                      watch_terminal=False, sweep_interval=0)
    res: dict[str, Any] = {}
    t0 = time.monotonic()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.queue.table.row_count == 0:
            await pilot.pause(0.01)
        await pilot.pause()
        res["first_queue_s"] = time.monotonic() - t0
        res["rows"] = app.queue.table.row_count
        moves = []
        for _ in range(30):
            before = app.queue.card.request_id
            moves.append(await answered(app, "down", lambda b=before: app.queue.card.request_id != b))
            await pilot.pause(0.02)
        res["move_ms"] = [m * 1000 for m in moves]
        t = time.monotonic()
        app.simulate_key("2")
        while len(app.history.events) < app.config.history_page:
            await asyncio.sleep(0.001)
        res["history_first_page_ms"] = [(time.monotonic() - t) * 1000]
        await pilot.press("1")
        await pilot.pause(0.3)
        switches = []
        for key, view in (("2", "history"), ("3", "metrics"), ("1", "queue"), ("4", "rules"), ("1", "queue")):
            switches.append(await answered(app, key, lambda v=view: app.status.state.view == v))
            await pilot.pause(0.3)
        res["switch_ms"] = [s * 1000 for s in switches]
        await pilot.press("2")
        await pilot.pause(0.3)
        filters = []
        for text in ("status:denied", "fn:tool_7", "value:>8000", "agent:agent-3 status:approved"):
            await pilot.press("slash")
            t = time.monotonic()
            app.history.filter_input.value = text
            while app.history.query_text != text or app.history.page_loading:
                await pilot.pause(0.002)
            filters.append(time.monotonic() - t)
            await pilot.press("enter")
            await pilot.pause(0.3)
        res["filter_ms"] = [f * 1000 for f in filters]
        await pilot.press("slash", "escape")  # clear the filter
        while app.history.query_text or app.history.page_loading:
            await pilot.pause(0.005)
        pages = []
        for n in range(1, 6):  # five further pages, each keyset-paged from the last one
            t = time.monotonic()
            app.simulate_key("ctrl+end")
            while app.history.page_loading or len(app.history.events) <= n * app.config.history_page:
                await asyncio.sleep(0.0005)
            await pilot.pause()  # the frame that shows the page
            pages.append((time.monotonic() - t) * 1000)
        res["next_page_ms"] = pages
        res["rss_mb"] = [proc.memory_info().rss / 2**20]
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description="command-center benchmarks")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh app runs on the big database")
    parser.add_argument("--big-only", action="store_true", help="only the big-database figures")
    parser.add_argument("--postgres", action="store_true",
                        help="the big-database figures on a throwaway PostgreSQL server (implies --big-only)")
    args = parser.parse_args()
    os.environ["TEXTUAL_ANIMATIONS"] = "none"

    if not (args.big_only or args.postgres):
        lat = asyncio.run(submit_to_card(args.samples))
        print(f"submit → card on screen: p50 {pct(lat, .5) * 1000:.0f} ms, p95 {pct(lat, .95) * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms (n={len(lat)}; target p50 ≤ 300 ms)")

        from sentinel_tui.sample import seed

        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "sentinel.db"
            seed(db, time.time())
            st = startup(db, b"deploy_service")
        print(f"startup → first painted queue (pty, incl. Python start): median {statistics.median(st):.2f} s, "
              f"runs {[round(s, 2) for s in st]} (target ≤ 1.5 s)")

    big = ROOT / ".bench" / f"tui-{args.pending}p-{args.events}e.db"
    big.parent.mkdir(exist_ok=True)
    build_big(big, args.pending, args.events)
    if args.postgres:
        with contextlib.ExitStack() as stack:
            from benchmarks.pg_copy import copy_cli
            from tests.pg import PgCluster

            cluster = stack.enter_context(PgCluster.start(durable=True))
            url = stack.enter_context(cluster.database())
            copy_s, _wall, _rss, _out = copy_cli(str(big), url)
            print(f"PostgreSQL (durable server): the big database copied in with `sentinel db copy` in {copy_s:.1f} s")
            big_figures(url, args)
        return 0
    big_figures(big, args)
    return 0


def big_figures(big: Path | str, args: argparse.Namespace) -> None:
    """Startup in a pseudo-terminal and key answers in process, on the big database ``big``."""
    where = "PostgreSQL" if isinstance(big, str) else "SQLite"
    st_big = startup(big, b"tool_", runs=args.repeat, readonly=True)
    print(f"{where}: startup with {args.pending:,} pending / {args.events:,} events (pty, --readonly, to the first "
          f"painted queue): median {statistics.median(st_big):.2f} s, max {max(st_big):.2f} s, "
          f"runs {[round(s, 2) for s in st_big]}")
    runs = [asyncio.run(big_keys(big)) for _ in range(args.repeat)]

    def agg(key: str) -> str:
        vals = [v for r in runs for v in r[key]]
        return f"median {statistics.median(vals):.1f} ms, max {max(vals):.1f} ms (n={len(vals)})"

    first = [r["first_queue_s"] for r in runs]
    print(f"big database, in-process ({args.repeat} runs): first queue median {statistics.median(first):.2f} s, "
          f"max {max(first):.2f} s with {runs[0]['rows']:,} rows")
    print(f"  cursor move → new card: {agg('move_ms')}")
    print(f"  view switch: {agg('switch_ms')}")
    print(f"  history: key 2 → first page shown: {agg('history_first_page_ms')}")
    print(f"  history: ctrl+end → next page shown (keyset): {agg('next_page_ms')}")
    print(f"  history filter → results: {agg('filter_ms')}; "
          f"per run {[[round(f) for f in r['filter_ms']] for r in runs]}")
    print(f"  resident memory: max {max(r['rss_mb'][0] for r in runs):.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    sys.exit(main())
