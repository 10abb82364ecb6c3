"""Approval API figures, measured against a real ``sentinel serve`` process on 127.0.0.1.

1. ``GET /approvals/pending`` with 10,000 pending requests in the store (target ≤ 50 ms): the
   wall time of the whole HTTP exchange as a client sees it (keep-alive connection): the very
   first request after the server started (it loads every pending row once), then the default
   page (the 100 oldest) and all 10,000 rows, each right after a new request was submitted by
   another connection (the server replays the change from the audit log), and with nothing
   changed.
2. Decision round trip (target p50 ≤ 100 ms): a real ``@protect``'ed call waits in another
   process; the time from the moment the operator's ``POST /approval/{id}/approve`` is sent until
   the protected call has returned in the agent process (same machine, same clock).

    python benchmarks/api.py [--pending 10000] [--samples 30] [--decisions 30]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

TOKEN = "snt_benchmark-operator-token-000000000"
POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} needs approval"
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
        f"min {ordered[0] * 1000:7.1f} ms"
    )


def seed(db: Path, n: int) -> None:
    from sentinel.store import NewRequest, Store

    store = Store(db)
    for i in range(n):
        args = {"amount": 1000 + i, "to": f"acct-{i % 97}", "memo": "invoice " + str(i)}
        store.submit(
            NewRequest(
                id=uuid.uuid4().hex,
                function="transfer_funds",
                arguments=args,
                digest=uuid.uuid4().hex * 2,
                timeout_seconds=7200,
                agent_id=f"agent-{i % 10}",
                rule_id="big_transfer",
                rule_ids=("big_transfer",),
                reason=f"Transfer of {1000 + i} needs approval",
                value_at_risk=float(1000 + i),
            )
        )
    store.close()


def agent_main(rules: str, db: str, calls: int) -> None:
    """The waiting side: ``calls`` protected calls in a row, printing when each returned."""
    from sentinel import SentinelConfig, protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="bench-agent", show_waiting_hint=False
    )

    @protect(config)
    def transfer_funds(amount: int, to: str) -> str:
        return "ok"

    for i in range(calls):
        transfer_funds(5000 + i, to="acct-7")
        print(json.dumps({"returned": time.time()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--decisions", type=int, default=30)
    parser.add_argument(
        "--agent", nargs=3, metavar=("RULES", "DB", "CALLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.agent:
        agent_main(args.agent[0], args.agent[1], int(args.agent[2]))
        return

    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="sentinel-api-bench-"))
    db = tmp / "sentinel.db"
    rules = tmp / "rules.yaml"
    rules.write_text(POLICY)
    t = time.perf_counter()
    seed(db, args.pending)
    print(f"seeded {args.pending} pending requests in {time.perf_counter() - t:.1f} s")

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentinel.cli",
            "serve",
            "--port",
            str(port),
            "--db",
            str(db),
            "--no-notify",
        ],
        env=_env(SENTINEL_API_TOKENS=f"bench:{TOKEN}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    agent = None
    try:
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False, timeout=30
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.05)

        # 1. the pending list
        from sentinel.store import Store

        store = Store(db)

        def touch() -> None:
            """Another process submits a request (and the store's data version moves)."""
            args_ = {"amount": 2000, "to": "acct-1"}
            store.submit(
                NewRequest(
                    id=uuid.uuid4().hex,
                    function="transfer_funds",
                    arguments=args_,
                    digest="f" * 64,
                    timeout_seconds=7200,
                    agent_id="other-agent",
                )
            )

        from sentinel.store import NewRequest

        start = time.perf_counter()
        first = client.get("/approvals/pending", params={"limit": 100})
        print(
            f"GET /approvals/pending (first request after start, loads all {args.pending} rows): "
            f"{(time.perf_counter() - start) * 1000:.1f} ms ({len(first.json())} rows)"
        )
        cases = (
            ("default page, after a change", {}, True),
            (f"limit={args.pending}, after a change", {"limit": args.pending}, True),
            (f"limit={args.pending}, unchanged", {"limit": args.pending}, False),
        )
        for label, params, cold in cases:
            client.get("/approvals/pending", params=params)  # connection and code warm-up
            times = []
            size = rows = 0
            for _ in range(args.samples):
                if cold:
                    touch()
                start = time.perf_counter()
                r = client.get("/approvals/pending", params=params)
                body = r.content
                times.append(time.perf_counter() - start)
                size, rows = len(body), len(r.json())
            print(
                f"GET /approvals/pending ({label:>19}): {_ms(times)}   ({rows} rows, {size / 1e6:.2f} MB)"
            )

        # 2. decision round trip to a waiting call in another process
        agent = subprocess.Popen(
            [sys.executable, __file__, "--agent", str(rules), str(db), str(args.decisions)],
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        seen: set[str] = set()
        trips = []
        for _ in range(args.decisions):
            rid = None
            deadline = time.monotonic() + 30
            while rid is None and time.monotonic() < deadline:
                # Find the agent's new request (newest pending rows are last; not timed).
                for rec in reversed(store.list_pending(args.pending + 100)):
                    if rec.agent_id == "bench-agent" and rec.id not in seen:
                        rid = rec.id
                        break
                else:
                    time.sleep(0.005)
            if rid is None:
                raise SystemExit("the agent's request never appeared")
            seen.add(rid)
            sent = time.time()
            r = client.post(f"/approval/{rid}/approve", json={"reason": "benchmark"})
            assert r.status_code == 200, r.text
            assert agent.stdout is not None
            line = agent.stdout.readline()
            trips.append(json.loads(line)["returned"] - sent)
        print(
            f"decision round trip (API approve → call returned, {args.decisions} calls): {_ms(trips)}"
        )
        store.close()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        server.terminate()
        server.wait(timeout=10)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
