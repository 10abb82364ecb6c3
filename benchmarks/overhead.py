"""Per-call overhead of an allowed call: Sentinel vs agentic-sentinel 0.1.0, side by side.

Both packages use the import name ``sentinel``, so the original runs in its own throw-away
virtual environment under ``.bench/`` (created on first run from the package registry). Each
variant runs in a fresh child process: a 20-rule policy, a call that matches none of the rules'
conditions, best of 5 rounds of N calls. Printed: µs per call for the undecorated function and
the protected one, the overhead and the ratio, plus CPU time per call (ours records every allowed
call in the background, so its CPU cost is shown too).

    python benchmarks/overhead.py [--n 100000] [--skip-original]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
ORIG_VENV = BENCH / "agentic-sentinel-0.1.0"


def policy_json(n_rules: int = 20) -> dict:
    rules = []
    for i in range(n_rules):
        rules.append(
            {
                "id": f"rule_{i}",
                "name": f"Rule {i}",
                "function_pattern": f"tool_{i}_*" if i % 2 else "transfer*",
                "conditions": [{"param": "amount", "operator": "gt", "value": 10_000 + i}],
                "action": "require_approval" if i % 3 else "block",
                "priority": 100 - i,
                "message": f"rule {i}",
            }
        )
    return {"version": "1.0", "default_action": "allow", "rules": rules}


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time, os
    rules, db, n, variant = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    from sentinel import protect, SentinelConfig
    kw = {"rules_path": rules}
    if variant == "ours":
        kw["db_path"] = db
    cfg = SentinelConfig(**kw)

    def transfer(amount, destination):
        return amount
    async def atransfer(amount, destination):
        return amount
    ptransfer = protect(cfg)(transfer)
    patransfer = protect(cfg)(atransfer)

    def best(fn, rounds=5):
        out = []
        for _ in range(rounds):
            c0 = time.process_time(); t0 = time.perf_counter()
            fn()
            out.append(((time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6))
        return min(out)

    def sync_loop(f):
        def run():
            for i in range(n):
                f(50, "ACC-1")
        return run

    def async_loop(f):
        def run():
            async def go():
                for i in range(n):
                    await f(50, "ACC-1")
            asyncio.run(go())
        return run

    ptransfer(50, "warm"); asyncio.run(patransfer(50, "warm"))
    res = {
        "sync_plain": best(sync_loop(transfer)),
        "sync_protected": best(sync_loop(ptransfer)),
        "async_plain": best(async_loop(atransfer)),
        "async_protected": best(async_loop(patransfer)),
    }
    if variant == "ours":
        from sentinel import runtime as guard
        c0 = time.process_time()
        for s in guard._sinks.values():
            s.flush()
        res["flush_cpu_us_total"] = (time.process_time() - c0) * 1e6
    print(json.dumps(res))
    """
)


def ensure_original() -> Path | None:
    python = ORIG_VENV / "bin" / "python"
    if python.exists():
        return python
    BENCH.mkdir(exist_ok=True)
    print("setting up agentic-sentinel 0.1.0 in", ORIG_VENV, file=sys.stderr)
    venv.create(ORIG_VENV, with_pip=True)
    res = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "agentic-sentinel==0.1.0"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        print(
            "could not install agentic-sentinel 0.1.0:", res.stderr.strip()[-400:], file=sys.stderr
        )
        return None
    return python


def run_child(python: str, rules: Path, db: Path, n: int, variant: str, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    if variant == "ours":
        env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [python, "-c", CHILD, str(rules), str(db), str(n), variant],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} benchmark failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--skip-original", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        rules = tmpdir / "rules.json"
        rules.write_text(json.dumps(policy_json(20)))
        ours = run_child(sys.executable, rules, tmpdir / "ours.db", args.n, "ours", tmpdir)
        orig = None
        if not args.skip_original:
            python = ensure_original()
            if python is not None:
                orig = run_child(
                    str(python), rules, tmpdir / "unused.db", args.n, "original", tmpdir
                )

    print(f"Allowed-call overhead, 20-rule policy, best of 5 x {args.n:,} calls (µs per call)")
    header = f"{'variant':<34}{'wall':>9}{'cpu':>9}{'overhead':>10}{'x plain':>9}"
    print(header)
    print("-" * len(header))
    for label, data in (("sentinel (this)", ours), ("agentic-sentinel 0.1.0", orig)):
        if data is None:
            print(f"{label:<34}  (not measured)")
            continue
        for kind in ("sync", "async"):
            plain_wall, _ = data[f"{kind}_plain"]
            wall, cpu = data[f"{kind}_protected"]
            print(
                f"{label + ' ' + kind:<34}{wall:>9.2f}{cpu:>9.2f}{wall - plain_wall:>10.2f}{wall / plain_wall:>9.0f}"
            )
    if orig is not None:
        for kind in ("sync", "async"):
            o = orig[f"{kind}_protected"][0] - orig[f"{kind}_plain"][0]
            s = ours[f"{kind}_protected"][0] - ours[f"{kind}_plain"][0]
            print(
                f"{kind}: overhead {s:.2f} µs vs {o:.2f} µs -> {o / s:.1f}x less than the original"
            )
    if "flush_cpu_us_total" in ours:
        print(
            f"(ours: events of all allowed calls were committed by the background writer; final flush {ours['flush_cpu_us_total'] / 1000:.1f} ms CPU)"
        )


if __name__ == "__main__":
    main()
