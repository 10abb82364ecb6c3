"""``sentinel db copy`` of a million events to PostgreSQL and back, and ``audit verify`` of a
million events on PostgreSQL beside SQLite.

Starts its own throwaway PostgreSQL 15 cluster (tests/pg.py: run as the ``postgres`` OS user,
fsync off like the test cluster), builds a SQLite database with ``--events`` events (a valid
chain, benchmarks/audit.py's generator) and a few hundred requests, then:

* **copy SQLite → PostgreSQL** — ``sentinel db copy`` in a child process: the copy's own time
  (one transaction, committed) and the whole command (the verification of the copy included),
  events/s, and the child's peak RSS; the same for ``--small`` events, to show memory stays flat;
* **copy PostgreSQL → SQLite** — the reverse, same figures;
* **verify** — :func:`sentinel.audit.verify.verify` over the table on each backend, in-process.

    python -m benchmarks.pg_copy [--events 1000000] [--small 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.audit import fill

ROOT = Path(__file__).resolve().parent.parent


def build(path: Path, events: int, requests: int = 300) -> None:
    from sentinel.store import NewRequest, OperatorIdentity, Store

    op = OperatorIdentity("alice", 1000, 1000, "alice", "ops1", None)
    with Store(path) as store:
        for i in range(requests):
            rec = store.submit(
                NewRequest(id=f"{i:032x}", function="transfer", arguments={"amount": i},
                           digest="ab" * 32, timeout_seconds=3600, agent_id="bot-1")
            )  # fmt: skip
            if i % 3 == 0:
                store.decide(rec.id, i % 2 == 0, op, "bench")
        fill(store, events - store.count_events())


def copy_cli(src: str, dst: str) -> tuple[float, float, float, str]:
    """(copy seconds as the command reports them, wall seconds, peak RSS MB, output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PYTHONPATH"] = str(ROOT)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli", "db", "copy", "--from", src, "--to", dst],
            stdout=out, stderr=err, text=True, env=env,
        )  # fmt: skip
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0 or "OK: the copy's audit trail" not in stdout:
        raise SystemExit(f"copy failed:\n{stdout}\n{stderr[-2000:]}")
    peak = usage.ru_maxrss
    m = re.search(r"copied in ([\d.]+)s", stdout)
    assert m is not None, stdout
    return float(m.group(1)), wall, peak / 1024, stdout


def timed_verify(store: object) -> tuple[float, int]:
    from sentinel.audit.keys import Verifier
    from sentinel.audit.verify import verify

    t0 = time.perf_counter()
    report = verify(store, verifier=Verifier({}, {}))
    took = time.perf_counter() - t0
    assert report.ok, report.problems
    return took, report.table_events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="0: skip the memory check")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from sentinel.store import Store
    from sentinel.store.postgres import PgStore
    from tests.pg import PgCluster

    with tempfile.TemporaryDirectory() as tmp, PgCluster.start() as cluster:
        os.environ["SENTINEL_ANCHOR_DIR"] = str(Path(tmp) / "anchors")
        print(f"PostgreSQL cluster: {cluster.bindir} (port {cluster.port}, fsync off)")
        sizes = [n for n in (args.small, args.events) if n > 0]
        results = {}
        for n in sorted(set(sizes)):
            db = Path(tmp) / f"src-{n}" / "sentinel.db"
            t0 = time.perf_counter()
            build(db, n)
            print(f"\nbuilt a SQLite database with {n:,} events in {time.perf_counter() - t0:.1f} s")
            with cluster.database() as url:
                copy_s, wall, rss, _out = copy_cli(str(db), url)
                print(
                    f"copy SQLite -> PostgreSQL: {n:,} events in {copy_s:.1f} s "
                    f"({n / copy_s:,.0f} events/s); whole command with verification {wall:.1f} s; "
                    f"peak RSS {rss:.0f} MB"
                )
                back = Path(tmp) / f"back-{n}" / "sentinel.db"
                copy_b, wall_b, rss_b, _ = copy_cli(url, str(back))
                print(
                    f"copy PostgreSQL -> SQLite: {n:,} events in {copy_b:.1f} s "
                    f"({n / copy_b:,.0f} events/s); whole command {wall_b:.1f} s; "
                    f"peak RSS {rss_b:.0f} MB"
                )
                results[n] = (copy_s, rss)
                if n == args.events:
                    with PgStore(url) as pg:
                        pg_s, pg_n = timed_verify(pg)
                    with Store(db) as lite:
                        lite_s, lite_n = timed_verify(lite)
                    print(
                        f"audit verify, {pg_n:,} events: PostgreSQL {pg_s:.2f} s "
                        f"({pg_n / pg_s:,.0f} events/s), SQLite {lite_s:.2f} s "
                        f"({lite_n / lite_s:,.0f} events/s)"
                    )


if __name__ == "__main__":
    main()
