"""How fast a saved rules edit reaches running agent processes, and what an idle watcher costs.

Starts N agent processes (default 4) that call a protected function in a loop; the parent saves
edits the way editors do (write a temporary file, rename it over the rules file), then in place
(open, write, close: the file must then stay the same for the settle window before it is
trusted complete), and each agent reports when its next call first runs under the new policy
version. Prints the latency from the complete save (the rename, or the close) to that call, per
edit: the slowest process and the median. Then measures the CPU an idle process with a watcher
uses over a few seconds (it should be ~0).

    python benchmarks/reload.py [--agents 4] [--edits 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchmarks/queue.py would shadow the standard library's queue module for imports from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

RULES = """
rules:
  - id: edit_{n}
    function_pattern: "delete_*"
    conditions: [{{param: user, operator: eq, value: "user-{n}"}}]
    action: block
"""

AGENT = textwrap.dedent(
    """
    import sys, time
    from sentinel import SentinelConfig, SentinelBlockedError, protect
    cfg = SentinelConfig(rules_path=sys.argv[1], db_path=sys.argv[2], agent_id=sys.argv[3])
    @protect(cfg)
    def delete_user(user):
        return "ran"
    source = cfg.policy_source()
    seen = source.current.version
    print("ready", flush=True)
    while True:
        delete_user("bob")
        version = cfg.policy.version  # what the next call uses
        if version != seen:
            print(f"{time.time():.6f} {version}", flush=True)
            seen = version
        time.sleep(0.0005)
    """
)

IDLE = textwrap.dedent(
    """
    import sys, time, resource
    from sentinel import SentinelConfig
    cfg = SentinelConfig(rules_path=sys.argv[1], hot_reload=sys.argv[2] == "1")
    cfg.policy_source()
    time.sleep(0.5)
    c0 = time.process_time()
    time.sleep(float(sys.argv[3]))
    print(f"{(time.process_time() - c0) * 1000:.2f}")
    """
)


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    out["PYTHONPATH"] = str(ROOT)
    return out


def save(path: Path, text: str) -> float:
    """An atomic save (editors): returns when the new file was renamed into place."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(textwrap.dedent(text).lstrip())
    t = time.time()
    os.replace(tmp, path)
    return t


def save_in_place(path: Path, text: str) -> float:
    """An in-place save (``cat >``, some editors): returns when the file was closed."""
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(text).lstrip())
    return time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rules = folder / "rules.yaml"
        db = folder / "sentinel.db"
        save(rules, RULES.format(n=0))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", AGENT, str(rules), str(db), f"agent-{i}"],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # widening warnings (each edit replaces the rule)
                text=True,
                bufsize=1,
                cwd=ROOT,  # `python -c` imports from the current folder first
            )
            for i in range(args.agents)
        ]
        try:
            for p in procs:
                assert p.stdout is not None
                if p.stdout.readline().strip() != "ready":
                    raise SystemExit("an agent failed to start")
            print(f"{args.agents} agent processes calling a protected function in a loop")
            for label, saver in (("atomic save (rename)", save), ("in-place save", save_in_place)):
                worst: list[float] = []
                print(f"{label}:")
                for n in range(1, args.edits + 1):
                    time.sleep(0.3)
                    t0 = saver(rules, RULES.format(n=f"{label[:2]}{n}"))
                    lat = []
                    for p in procs:
                        assert p.stdout is not None
                        ts, _version = p.stdout.readline().split()
                        lat.append((float(ts) - t0) * 1000)
                    worst.append(max(lat))
                    print(
                        f"  edit {n}: slowest process {max(lat):6.1f} ms, median "
                        f"{statistics.median(lat):6.1f} ms  ({', '.join(f'{x:.0f}' for x in lat)})"
                    )
                print(
                    f"{label} -> next call under the new policy in every process: worst "
                    f"{max(worst):.1f} ms, median {statistics.median(worst):.1f} ms over "
                    f"{args.edits} edits"
                )
        finally:
            for p in procs:
                p.kill()
                p.wait()
        for on in ("1", "0"):
            out = subprocess.run(
                [sys.executable, "-c", IDLE, str(rules), on, str(args.idle_seconds)],
                env=env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            label = "with the watcher" if on == "1" else "without a watcher"
            print(f"idle process {label}: {out} ms CPU over {args.idle_seconds:g} s")


if __name__ == "__main__":
    main()
