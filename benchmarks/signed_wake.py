"""Decision → the protected function running, with and without signed decisions, in one run.

Two real processes per mode: an agent calling a ``@protect``-ed function that needs approval,
one call after another, and an operator process that approves each request as soon as it sees
it (polling ``data_version`` every millisecond). Measured: from the moment the operator starts
deciding (``Decider.decide``: the row read, the refusal checks, the Ed25519 signature, the
durable commit) to the moment the function body starts in the agent (after the waiting call has
re-read the operators file and verified the signature). CLOCK_MONOTONIC is system-wide on
Linux, so times taken in the two processes compare directly.

Modes: ``unsigned`` (require_signed_decisions=False, the operator has no key), ``signed``
(an operators file trusting the operator's key; the default once operators exist).

    python -m benchmarks.signed_wake [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RULES = """\
default_action: allow
rules:
  - id: pay
    function_pattern: pay
    action: require_approval
"""


def role_agent(rules: str, db: str, calls: int, signed: str, out: str) -> None:
    from sentinel import SentinelConfig, protect

    config = SentinelConfig(
        rules_path=rules,
        db_path=db,
        show_waiting_hint=False,
        hot_reload=False,
        timeout_seconds=60,
        require_signed_decisions=signed == "1",
    )
    started: list[float] = []

    @protect(config)
    def pay(n: int) -> int:
        started.append(time.monotonic())
        return n

    for i in range(calls):
        pay(i)
    Path(out).write_text(json.dumps(started))


def role_operator(db: str, calls: int, out: str) -> None:
    from sentinel.store import Store
    from sentinel.trust.decide import Decider

    store = Store(db)
    decider = Decider.local("cli")
    began: list[float] = []
    last = None
    deadline = time.monotonic() + 300
    while len(began) < calls and time.monotonic() < deadline:
        version = store.data_version()
        if version == last:
            time.sleep(0.001)
            continue
        last = version
        for rec in store.list_pending():
            began.append(time.monotonic())
            decider.decide(store, rec.id, True)
    Path(out).write_text(json.dumps({"began": began, "signed": decider.signs}))
    store.close()


def _pcts(values: list[float]) -> dict[str, float]:
    values = sorted(values)

    def q(p: float) -> float:
        return values[min(len(values) - 1, round(p * (len(values) - 1)))]

    return {"p50": q(0.5), "p99": q(0.99), "max": values[-1], "n": len(values)}


def run_mode(tmp: Path, signed: bool, calls: int) -> dict[str, object]:
    from sentinel.trust import add_operator, generate_key

    name = "signed" if signed else "unsigned"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
    rules = home / "rules.yaml"
    rules.write_text(RULES)
    db = home / "sentinel.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PYTHONPATH"] = str(ROOT)
    env["SENTINEL_HOME"] = str(home)
    if signed:
        key = generate_key(home / "operator-key.pem")
        trusted = home / "trusted"
        trusted.mkdir(mode=0o755)
        add_operator(trusted / "operators.json", "bench", key.public_key)
        env["SENTINEL_OPERATORS_FILE"] = str(trusted / "operators.json")
        env["SENTINEL_OPERATOR_KEY"] = str(key.path)
    else:
        env["SENTINEL_OPERATORS_FILE"] = str(home / "none" / "operators.json")
    me = [sys.executable, "-m", "benchmarks.signed_wake", "--role"]
    op_out, agent_out = home / "operator.json", home / "agent.json"
    operator = subprocess.Popen(
        [*me, "operator", str(db), str(calls), str(op_out)], env=env, cwd=ROOT
    )
    agent = subprocess.Popen(
        [*me, "agent", str(rules), str(db), str(calls), "1" if signed else "0", str(agent_out)],
        env=env,
        cwd=ROOT,
    )
    agent.wait()
    operator.wait()
    began = json.loads(op_out.read_text())
    started = json.loads(agent_out.read_text())
    lat = [(s - b) * 1000 for b, s in zip(began["began"], started, strict=False)]
    return {"mode": name, "signed": began["signed"], **_pcts(lat)}


def component_costs(tmp: Path, n: int = 2000) -> dict[str, float]:
    """In one process, the work signing adds (µs, median of n): the decider's signature and the
    waiting call's re-read of the operators file plus the verification of one vote."""
    import statistics

    from sentinel.store.models import DecisionTerms, RequestRecord, Vote
    from sentinel.trust import add_operator, generate_key, load_operators
    from sentinel.trust.check import OwnRequest, check_approval
    from sentinel.trust.decision import sign_decision

    folder = Path(tempfile.mkdtemp(dir=tmp))
    folder.chmod(0o755)
    key = generate_key(folder / "k" / "operator-key.pem")
    path = folder / "operators.json"
    add_operator(path, "bench", key.public_key)
    now = time.time()
    fields = {"request_id": "r" * 32, "digest": "ab" * 32, "verdict": "approve",
              "operator": "bench", "decided_at": now, "expires_at": now + 60}  # fmt: skip
    sign, check = [], []
    for _ in range(n):
        t = time.perf_counter()
        sig = sign_decision(key, **fields)  # type: ignore[arg-type]
        sign.append(time.perf_counter() - t)
    rec = RequestRecord(
        "r" * 32, "approved", "pay", {}, "ab" * 32, None, 1, "h", None, None, (), "", None,
        None, None, None, "queue", now - 1, now + 60,
        votes=(Vote("bench", "approve", now, sig),),
    )  # fmt: skip
    own = OwnRequest("r" * 32, "ab" * 32, now - 1, now + 60, DecisionTerms())
    for _ in range(n):
        t = time.perf_counter()
        check_approval(rec, own, load_operators(path), time.time())
        check.append(time.perf_counter() - t)
    return {
        "sign_us": statistics.median(sign) * 1e6,
        "reload_and_verify_us": statistics.median(check) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating unsigned/signed runs (load drifts)"
    )
    ap.add_argument("--role", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        name, *rest = args.role
        if name == "agent":
            role_agent(rest[0], rest[1], int(rest[2]), rest[3], rest[4])
        else:
            role_operator(rest[0], int(rest[1]), rest[2])
        return
    with tempfile.TemporaryDirectory(prefix="sentinel-signbench-") as d:
        costs = component_costs(Path(d))
        print(
            f"work signing adds per decision (one process, median): sign "
            f"{costs['sign_us']:.0f} µs + the waiting call's operators-file re-read and "
            f"verification {costs['reload_and_verify_us']:.0f} µs = "
            f"{(costs['sign_us'] + costs['reload_and_verify_us']) / 1000:.2f} ms",
            flush=True,
        )
        for round_no in range(args.rounds):
            results = [run_mode(Path(d), signed, args.calls) for signed in (False, True)]
            for r in results:
                print(
                    f"round {round_no + 1} {r['mode']:9s} decision → function runs: "
                    f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms "
                    f"(n={r['n']}, signed={r['signed']})"
                )
            plain, signed = results
            print(
                f"round {round_no + 1} signing adds p50 "
                f"{signed['p50'] - plain['p50']:+.2f} ms, "  # type: ignore[operator]
                f"p99 {signed['p99'] - plain['p99']:+.2f} ms",  # type: ignore[operator]
                flush=True,
            )


if __name__ == "__main__":
    main()
