"""What a signed decision costs: Ed25519 sign and verify per decision, and loading the trusted
operators file (the figure of issue 16: signing + verification adds <= 1 ms to decision -> wake-up).

Run: .venv/bin/python -m benchmarks.signing [--n N] [--operators K ...]
Prints medians (and p99) over N single operations, in microseconds. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sentinel.trust import (
    TrustedOperators,
    generate_key,
    load_key,
    load_operators,
    sign_decision,
    verify_decision,
    write_operators,
)
from sentinel.trust.operators import _load as _full_load
from sentinel.trust.operators import make_operator


def _per_op(fn, n: int) -> tuple[float, float]:
    """Median and p99 of ``n`` timed calls of ``fn``, in µs (each call timed on its own)."""
    times = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="operations timed per figure")
    ap.add_argument("--operators", type=int, nargs="*", default=[1, 10, 100, 1000])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = generate_key(folder / "keys" / "alice.pem")
        (folder / "etc").mkdir(mode=0o755)
        ops_file = folder / "etc" / "operators.json"
        write_operators(ops_file, [make_operator("alice", key.public_key, ["finance"])])
        trusted = load_operators(ops_file)
        now = time.time()

        def fields(i: int) -> dict:
            return dict(
                request_id=f"req-{i:08d}",
                digest=f"{i:064x}",
                verdict="approve" if i % 2 else "deny",
                operator="alice",
                decided_at=now,
                expires_at=now + 300,
                role="operator",
                groups=("finance",),
            )

        prepared = [fields(i) for i in range(args.n)]
        sigs: list[str] = [""] * args.n

        def sign(i: int) -> None:
            sigs[i] = sign_decision(key, **prepared[i])

        def verify(i: int) -> None:
            verify_decision(trusted, sigs[i], **prepared[i])

        s_med, s_p99 = _per_op(sign, args.n)
        v_med, v_p99 = _per_op(verify, args.n)
        print(f"Ed25519 decisions, {args.n} each (µs per decision: median / p99)")
        print(f"  sign_decision     {s_med:8.1f} / {s_p99:8.1f}")
        print(f"  verify_decision   {v_med:8.1f} / {v_p99:8.1f}")
        print(
            f"  sign + verify     {s_med + v_med:8.1f} µs median "
            f"({(s_med + v_med) / 10:.1f} % of the 1 ms budget)"
        )
        k_med, _ = _per_op(lambda i: load_key(key.path), max(50, args.n // 20))
        print(f"  load_key (PEM, mode checks)  {k_med:8.1f} µs median")

        print("Loading the trusted operators file (folder + file checks, JSON, key parsing)")
        for count in args.operators:
            extra = [
                make_operator(f"op{j}", generate_key(folder / "keys" / f"{j}.pem").public_key)
                for j in range(count - 1)
            ]
            path = folder / "etc" / f"operators-{count}.json"
            write_operators(path, TrustedOperators.of([trusted.operators[0], *extra]))
            size = path.stat().st_size
            # The full load (a file unchanged for 2 s is remembered by its fingerprint instead).
            med, p99 = _per_op(
                lambda i, p=path: _full_load(p.absolute(), False), max(20, args.n // (10 * count) + 20)
            )
            print(f"  {count:5d} operators ({size:7d} bytes)  {med:9.1f} / {p99:9.1f} µs")
            for j in range(count - 1):
                (folder / "keys" / f"{j}.pem").unlink()


if __name__ == "__main__":
    main()
