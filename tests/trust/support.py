"""Real keys, a real operators file, a real database and real processes for the trust tests.

:class:`Lab` holds one test's world: three operators (alice and bob in finance, carol in ops,
each with a real Ed25519 key), the operators file in a folder of mode 0755, the database, and
the child processes it starts — the waiting agent (``agents/waiter.py``), forgers
(``agents/forger.py``) and deciders (``agents/decider.py``). Each child gets SENTINEL_HOME,
SENTINEL_OPERATORS_FILE and (where it signs) SENTINEL_OPERATOR_KEY explicitly; nothing is
inherited from the test process's environment.
"""

from __future__ import annotations

import json
import queue
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from sentinel.store import EventRecord, RequestRecord, Store
from sentinel.trust import OperatorKey, add_operator, generate_key, load_operators
from sentinel.trust.check import UNTRUSTED
from sentinel.trust.decide import Decider
from tests.helpers import PYTHON, python_env

AGENTS = Path(__file__).with_name("agents")


class Proc:
    """A child Python process whose stdout JSON lines are read by a thread."""

    def __init__(self, script: str, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(AGENTS / script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=python_env(**env), text=True,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err.extend(self.proc.stderr)

    def next(self, event: str | tuple[str, ...], timeout: float = 30.0) -> dict[str, Any]:
        """The next line whose ``event`` is ``event`` (or one of them); other lines are skipped."""
        wanted = (event,) if isinstance(event, str) else event
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                exited = self.proc.poll() is not None
                if exited:
                    time.sleep(0.05)  # the reader thread may still hold the last line
                if exited and self.lines.empty() or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.proc.args[1]} printed no {event!r} line (exit "
                        f"{self.proc.poll()}); stderr: {''.join(self.err)[-3000:]}"
                    ) from None
                continue
            if line.get("event") in wanted:
                return line

    def has_line(self) -> bool:
        return not self.lines.empty()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class Lab:
    """One test's operators, keys, database and child processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        folder = tmp_path / "etc-sentinel"
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)  # whatever the umask: agents may read it, not write it
        self.ops_file = folder / "operators.json"
        self.db = self.home / "sentinel.db"
        self.marker = tmp_path / "ran.txt"
        self.rules_path = tmp_path / "rules.yaml"
        self.keys: dict[str, OperatorKey] = {}
        self.procs: list[Proc] = []
        for name, group in (("alice", "finance"), ("bob", "finance"), ("carol", "ops")):
            self.add(name, group)
        self.store = Store(self.db)  # the schema exists before any child opens the file

    # -- world ---------------------------------------------------------------------------------

    def key(self, name: str) -> OperatorKey:
        """A real key at keys/NAME/operator-key.pem (mode 0600), not (yet) trusted."""
        if name not in self.keys:
            self.keys[name] = generate_key(self.tmp / "keys" / name / "operator-key.pem")
        return self.keys[name]

    def add(self, name: str, *groups: str) -> OperatorKey:
        key = self.key(name)
        add_operator(self.ops_file, name, key.public_key, groups)
        return key

    def rules(self, timeout: float = 5.0, **terms: Any) -> Path:
        """One require_approval rule, ``pay``, for transfer_funds with these decision terms.

        The default timeout is never waited for (each test ends on a decision); it only has to
        outlast a loaded machine starting the forger or decider. Expiry tests pass their own."""
        lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in terms.items())
        self.rules_path.write_text(
            textwrap.dedent(
                f"""\
                version: "1.0"
                default_action: block
                rules:
                  - id: pay
                    function_pattern: "transfer_funds"
                    action: require_approval
                    timeout_seconds: {timeout}
                """
            )
            + lines,
            encoding="utf-8",
        )
        return self.rules_path

    def env(self, key: str | None = None) -> dict[str, str]:
        env = {"SENTINEL_HOME": str(self.home), "SENTINEL_OPERATORS_FILE": str(self.ops_file)}
        if key is not None:
            env["SENTINEL_OPERATOR_KEY"] = str(self.key(key).path)
        return env

    def decider(self, name: str) -> Decider:
        """``name`` deciding from the test process, with their key and this lab's file."""
        return Decider.local(
            "cli", key_path=self.key(name).path, trusted=load_operators(self.ops_file)
        )

    # -- processes -----------------------------------------------------------------------------

    def start(
        self, script: str, args: list[str], key: str | None = None, **extra: str
    ) -> Proc:
        proc = Proc(script, args, {**self.env(key), **extra})
        self.procs.append(proc)
        return proc

    def waiter(self, *calls: str, asynchronous: bool = False) -> Proc:
        """The agent: one process making each ``AMOUNT:TO`` call in turn, waiting on approval
        (``asynchronous``: through an ``async def`` tool)."""
        if not self.rules_path.exists():
            self.rules()
        calls = calls or ("5000:acct-9",)
        args = [str(self.db), str(self.rules_path), str(self.marker), *calls]
        return self.start("waiter.py", args, WAITER_ASYNC="1" if asynchronous else "0")

    def forge(self, request_id: str, key: str | None = None, **spec: Any) -> dict[str, Any]:
        """Run the forger; returns its ``forged`` line (fails if the database refused it)."""
        proc = self.start("forger.py", [str(self.db), request_id, json.dumps(spec)], key)
        return proc.next("forged")

    def race(self, request_id: str, *who: tuple[str, str]) -> list[dict[str, Any]]:
        """Deciders (name, approve|deny) in their own processes, released at the same moment."""
        go = self.tmp / f"go-{request_id[:8]}"
        procs = [
            self.start("decider.py", [str(self.db), request_id, verdict, str(go)], key=name)
            for name, verdict in who
        ]
        for proc in procs:
            proc.next("ready")
        go.touch()
        return [proc.next(("decided", "refused")) for proc in procs]

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        self.store.close()

    # -- reading -------------------------------------------------------------------------------

    def pending(self, exclude: tuple[str, ...] = (), timeout: float = 30.0) -> RequestRecord:
        """The pending request not in ``exclude``, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.store.list_pending():
                if rec.id not in exclude:
                    return rec
            time.sleep(0.005)
        errs = "".join(e for p in self.procs for e in p.err)[-3000:]
        raise AssertionError(f"no pending request appeared; children's stderr: {errs}")

    def events(self, request_id: str) -> list[EventRecord]:
        out: list[EventRecord] = []
        after = 0
        while batch := self.store.events_after(after, 1000):
            out.extend(e for e in batch if e.request_id == request_id)
            after = batch[-1].seq
        return out

    def ran(self) -> list[str]:
        """The calls that really ran (the marker file's lines)."""
        if not self.marker.exists():
            return []
        return self.marker.read_text(encoding="utf-8").splitlines()

    def assert_refused(
        self, result: dict[str, Any], request_id: str, *why: str, ran: tuple[str, ...] = ()
    ) -> None:
        """The waiting call was blocked as untrusted, audited so, and the function never ran
        (the marker holds only the earlier calls ``ran``, or does not exist)."""
        assert result["outcome"] == "blocked", result
        assert result["error"] == "SentinelBlockedError", result
        assert result["request_id"] == request_id
        assert UNTRUSTED in result["message"], result["message"]
        for part in why:
            assert part in result["message"], (part, result["message"])
        assert self.ran() == list(ran), "the protected function ran"
        if not ran:
            assert not self.marker.exists()
        blocked = [e for e in self.events(request_id) if e.kind == "blocked"]
        assert len(blocked) == 1, [e.kind for e in self.events(request_id)]
        assert blocked[0].data is not None and blocked[0].data["refused"] == "untrusted_decision"
        assert blocked[0].data["signed_mode"] is True

