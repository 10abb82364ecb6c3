"""The demo: simulated agents calling protected tools against ``rules.yaml``.

``sentinel demo`` makes a temporary Sentinel home, starts three agent processes (payments, email,
ops) that call protected tools on a fixed random seed, and opens the command center on the same
database. Approving or denying a card visibly unblocks the agent that waits on it; the outcome
appears in History. ``sentinel demo --agents-only`` runs just the agents (for a second terminal),
and ``sentinel demo --terminal`` runs one scripted agent that asks at the terminal prompt instead.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sentinel.config import SentinelConfig
from sentinel.errors import SentinelBlockedError, SentinelError
from sentinel.identity import current_operator
from sentinel.protect import protect

AGENTS = ("payments", "email", "ops")
_ACCOUNTS = ("ACC-1001", "ACC-2002", "ACC-3003", "ACC-9999")
_PEOPLE = ("bob@example.com", "carol@example.com", "ceo@competitor.com", "press@news.example.org")
_SERVICES = ("api", "billing", "search")


def default_rules() -> Path:
    """The example policy: ./rules.yaml when present, else the copy shipped with the package."""
    here = Path("rules.yaml")
    if here.exists():
        return here
    return Path(__file__).with_name("example_rules.yaml")


def build_tools(config: SentinelConfig) -> dict[str, Any]:
    """The demo's tool functions, protected by ``config``."""

    def balances() -> dict[str, Any]:
        return {"balance": 25_000, "daily_limit_remaining": 8_000}

    @protect(config, context_fn=balances)
    def transfer_funds(amount: float, destination: str, memo: str = "") -> str:
        time.sleep(0.05)
        return f"transferred {amount:,.2f} to {destination}"

    @protect(config)
    def send_email(to: str, subject: str, body: str = "") -> str:
        return f"sent '{subject}' to {to}"

    @protect(config)
    def deploy_service(service: str, environment: str, version: str) -> str:
        time.sleep(0.1)
        return f"deployed {service} {version} to {environment}"

    @protect(config)
    def delete_user(user_id: int) -> str:
        return f"deleted user {user_id}"

    @protect(config)
    def read_report(name: str) -> str:
        return f"report {name}: ok"

    return {
        "transfer_funds": transfer_funds,
        "send_email": send_email,
        "deploy_service": deploy_service,
        "delete_user": delete_user,
        "read_report": read_report,
    }


def _next_call(kind: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    if kind == "payments":
        amount = rng.choice([45, 120, 480, 950, 1_500, 2_750, 5_000, 12_000])
        return "transfer_funds", {
            "amount": amount,
            "destination": rng.choice(_ACCOUNTS),
            "memo": rng.choice(["invoice 4471", "refund", "vendor payment", "payroll"]),
        }
    if kind == "email":
        return "send_email", {
            "to": rng.choice(_PEOPLE),
            "subject": rng.choice(["Quarterly numbers", "Meeting notes", "Launch plan"]),
            "body": "Hello,\nplease see the attached summary.\n",
        }
    choice = rng.random()
    if choice < 0.15:
        return "delete_user", {"user_id": rng.randint(100, 999)}
    if choice < 0.45:
        return "read_report", {"name": rng.choice(["uptime", "costs", "errors"])}
    return "deploy_service", {
        "service": rng.choice(_SERVICES),
        "environment": rng.choice(["staging", "prod"]),
        "version": f"v1.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
    }


def run_agent(
    kind: str, rules: Path, db: Path, *, seed: int, calls: int, pause: float, workers: int
) -> None:
    """One simulated agent: ``workers`` threads making ``calls`` calls each."""
    config = SentinelConfig(
        rules_path=rules,
        db_path=db,
        agent_id=f"{kind}-agent",
        timeout_seconds=600,
        show_waiting_hint=False,
        # Record allowed calls too, so History and Metrics show everything the agents did.
        audit_log=True,
        audit_log_dir=db.parent / "audit",
        # Baselines per agent: after a few ordinary calls, an outlier gets a risk score on its
        # card (or is blocked outright).
        anomaly_detection=True,
    )
    tools = build_tools(config)
    out_lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        for _ in range(calls):
            name, args = _next_call(kind, rng)
            try:
                result = tools[name](**args)
                line = f"[{kind}] {name}: {result}"
            except SentinelBlockedError as exc:
                line = f"[{kind}] {name}: NOT EXECUTED — {exc.reason}"
            with out_lock:
                print(line, flush=True)
            time.sleep(pause * (0.5 + rng.random()))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _spawn_agents(rules: Path, db: Path, seed: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i, kind in enumerate(AGENTS):
        log = open(log_dir / f"{kind}.log", "wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sentinel.demo",
                    "agent",
                    kind,
                    "--rules",
                    str(rules),
                    "--db",
                    str(db),
                    "--seed",
                    str(seed + i),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return procs


def run_demo(args: argparse.Namespace) -> int:
    """``sentinel demo``: agents plus the command center on a temporary home."""
    rules_src = Path(args.rules) if args.rules else default_rules()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="sentinel-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    rules = home / "rules.yaml"
    if not rules.exists():
        shutil.copyfile(rules_src, rules)
    db = home / "sentinel.db"
    if args.terminal:
        return _terminal_demo(rules, db)
    if args.agents_only:
        print(f"agents writing to {db}; open the command center with: sentinel tui --db {db}")
        procs = _spawn_agents(rules, db, args.seed, home)
        try:
            for p in procs:
                p.wait()
        except KeyboardInterrupt:
            pass
        finally:
            _stop(procs)
        return 0
    signer = _demo_signing(home)
    procs = _spawn_agents(rules, db, args.seed, home)
    try:
        try:
            from sentinel_tui.app import run_app
        except ImportError as exc:
            print(
                f"the command center is not available ({exc}); running the terminal demo",
                file=sys.stderr,
            )
            _stop(procs)
            return _terminal_demo(rules, db)
        run_app(db_path=db, rules_path=rules, title="Sentinel demo")
    finally:
        _stop(procs)
    print(f"demo data kept in {home} (agent logs: {home}/*.log)")
    if signer:
        print(f"decisions were signed as {signer} (trusted in {os.environ['SENTINEL_OPERATORS_FILE']})")
    return 0


def _demo_signing(home: Path) -> str | None:
    """Make the demo sign its decisions as a real install does: unless an operators file is
    configured already, trust a new demo key for this OS account (groups ops, finance) in the
    demo's home, for the agents and the command center alike. Returns the operator's name."""
    from sentinel.trust import add_operator, generate_key, load_key, load_operators
    from sentinel.trust.keys import KEY_ENV
    from sentinel.trust.operators import OPERATORS_ENV

    if os.environ.get(OPERATORS_ENV):
        return None  # the person running the demo set up signing themselves
    # Not in the demo's home: that folder is shared with the agents (group-writable), and an
    # operators file below a folder others can write is refused, as it must be.
    folder = Path(tempfile.mkdtemp(prefix="sentinel-demo-operator-"))
    folder.chmod(0o755)
    key_path = folder / "operator-key.pem"
    path = folder / "trusted" / "operators.json"
    name = current_operator("tui").account
    try:
        key = load_key(key_path) if key_path.exists() else generate_key(key_path)
        path.parent.mkdir(mode=0o755, exist_ok=True)
        if key.key_id not in load_operators(path, missing_ok=True).by_key:
            add_operator(path, name, key.public_key, ["ops", "finance"])
    except SentinelError as exc:  # e.g. the signing extra (cryptography) is not installed
        print(f"the demo runs unsigned: {exc}", file=sys.stderr)
        return None
    os.environ[OPERATORS_ENV] = str(path)
    os.environ[KEY_ENV] = str(key_path)
    return name


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


def _terminal_demo(rules: Path, db: Path) -> int:
    """Three calls answered at the terminal prompt: allowed, blocked, needs approval."""
    config = SentinelConfig(
        rules_path=rules, db_path=db, approval_interface="terminal", agent_id="demo-agent"
    )
    tools = build_tools(config)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("transfer_funds", {"amount": 50, "destination": "ACC-1001"}),
        ("delete_user", {"user_id": 42}),
        ("transfer_funds", {"amount": 5_000, "destination": "ACC-9999", "memo": "vendor payment"}),
    ]
    for name, call in steps:
        shown = ", ".join(f"{k}={v!r}" for k, v in call.items())
        print(f"\n>>> agent calls {name}({shown})", flush=True)
        try:
            print(f"    result: {tools[name](**call)}", flush=True)
        except SentinelBlockedError as exc:
            print(f"    NOT EXECUTED: {exc}", flush=True)
    return 0


def register_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sentinel demo``."""
    parser.add_argument(
        "--rules", help="policy to use (default: ./rules.yaml or the bundled example)"
    )
    parser.add_argument(
        "--home", help="folder for the demo database (default: a new temporary folder)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the simulated agents")
    parser.add_argument(
        "--agents-only", action="store_true", help="run only the agents (no command center)"
    )
    parser.add_argument(
        "--terminal", action="store_true", help="one scripted agent answered at the terminal prompt"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m sentinel.demo agent KIND …`` runs one simulated agent (used by the demo)."""
    parser = argparse.ArgumentParser(prog="python -m sentinel.demo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    agent = sub.add_parser("agent")
    agent.add_argument("kind", choices=AGENTS)
    agent.add_argument("--rules", required=True)
    agent.add_argument("--db", required=True)
    agent.add_argument("--seed", type=int, default=7)
    agent.add_argument("--calls", type=int, default=1_000_000)
    agent.add_argument("--pause", type=float, default=2.5)
    agent.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_agent(
        args.kind,
        Path(args.rules),
        Path(args.db),
        seed=args.seed,
        calls=args.calls,
        pause=args.pause,
        workers=args.workers,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
