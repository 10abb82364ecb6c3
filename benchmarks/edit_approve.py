"""What approving with an edit costs over a plain approval (``sentinel approve ID`` vs
``sentinel approve ID --set amount=400``), and what the waiting call spends applying it.

Decider side, on a real SQLite file with signing on (a real Ed25519 operator key): the time of
``Decider.decide`` for a plain approval and for one with edits (values typed by the recorded
schema, the edited call evaluated against the rules, the vote signed over the edit digest, the
edit stored in the same compare-and-set). Waiting-call side: a real ``@protect``'ed call whose
approval arrives from another thread, plain vs edited (the edit is checked, the function's types
validate the values, the edited call is decided again and its digest taken) — end to end, so
the figure includes the wake-up; the difference is the edit's share.

    python benchmarks/edit_approve.py [--n 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: huge
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 10000}
    action: block
  - id: big
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
"""


def transfer(amount: int, destination: str, memo: str = "") -> str:
    return f"{amount} {destination}"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def decider_side(tmp: Path, n: int) -> dict[str, list[float]]:
    from sentinel.edits import argument_schema
    from sentinel.policy.loader import load_policy
    from sentinel.store import NewRequest, Store
    from sentinel.trust.decide import Decider

    schema = argument_schema(transfer)
    policy = load_policy(tmp / "rules.yaml")
    decider = Decider.local("cli")
    assert decider.signs, "benchmark setup: the decider must sign"
    out: dict[str, list[float]] = {"plain": [], "edited": []}
    with Store(tmp / "decide.db") as store:
        for i in range(2 * n):
            rec = store.submit(
                NewRequest(
                    id=uuid.uuid4().hex, function="transfer",
                    arguments={"amount": 5000, "destination": "ACC-1", "memo": "x"},
                    digest="ab" * 32, timeout_seconds=600, arg_schema=schema, rule_id="big",
                )
            )  # fmt: skip
            edited = i % 2 == 1
            start = time.perf_counter()
            if edited:
                decider.decide(store, rec.id, True, edits={"amount": "400"}, policy=policy)
            else:
                decider.decide(store, rec.id, True)
            out["edited" if edited else "plain"].append(time.perf_counter() - start)
    return out


def waiting_side(tmp: Path, n: int) -> dict[str, list[float]]:
    from sentinel import SentinelConfig, protect
    from sentinel.store import Store
    from sentinel.trust.decide import Decider

    cfg = SentinelConfig(
        rules_path=tmp / "rules.yaml", db=tmp / "wait.db", timeout_seconds=60,
        show_waiting_hint=False,
    )  # fmt: skip
    guarded = protect(cfg)(transfer)
    decider = Decider.local("cli")
    out: dict[str, list[float]] = {"plain": [], "edited": []}
    for i in range(2 * n):
        edited = i % 2 == 1
        decided = threading.Event()

        def operator(edited: bool = edited, decided: threading.Event = decided) -> None:
            with Store(tmp / "wait.db") as store:
                while True:
                    pending = store.list_pending()
                    if pending:
                        edits = {"amount": "400"} if edited else None
                        decider.decide(store, pending[0].id, True, edits=edits)
                        decided.set()
                        return
                    time.sleep(0.0005)

        t = threading.Thread(target=operator)
        t.start()
        start = time.perf_counter()
        result = guarded(5000, "ACC-1")
        elapsed = time.perf_counter() - start
        t.join()
        assert result == ("400 ACC-1" if edited else "5000 ACC-1"), result
        out["edited" if edited else "plain"].append(elapsed)
    return out


def report(title: str, data: dict[str, list[float]]) -> None:
    print(title)
    for kind in ("plain", "edited"):
        v = data[kind]
        print(
            f"  {kind:7s} p50 {statistics.median(v) * 1e3:7.2f} ms   p95 {pct(v, 0.95) * 1e3:7.2f} ms"
            f"   ({len(v)} approvals)"
        )
    extra = statistics.median(data["edited"]) - statistics.median(data["plain"])
    print(f"  edit adds {extra * 1e3:+.2f} ms at the median "
          f"({statistics.median(data['edited']) / statistics.median(data['plain']):.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="approvals of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sentinel-edit-bench-") as name:
        tmp = Path(name)
        (tmp / "rules.yaml").write_text(RULES)
        from sentinel.trust import add_operator, generate_key

        (tmp / "etc").mkdir(mode=0o755)
        key = generate_key(tmp / "key" / "operator-key.pem")
        add_operator(tmp / "etc" / "operators.json", os.environ.get("USER") or "root",
                     key.public_key, ["finance"])  # fmt: skip
        os.environ["SENTINEL_OPERATORS_FILE"] = str(tmp / "etc" / "operators.json")
        os.environ["SENTINEL_OPERATOR_KEY"] = str(key.path)
        os.environ["SENTINEL_HOME"] = str(tmp / "home")
        report("Decider.decide on SQLite, signed (decider side):", decider_side(tmp, args.n))
        report(
            "@protect call, approval from another thread, end to end (waiting side):",
            waiting_side(tmp, max(20, args.n // 5)),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
