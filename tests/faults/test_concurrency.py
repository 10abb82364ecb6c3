"""Concurrency torture: 8 agent processes race 3 deciders (2 CLI processes + a command center).

What must hold, checked against the database and the audit chain:

* every request is decided exactly once (one final event per request id; the row is final);
* every caller saw its own decision: a call ran only if its row says approved, a denial or an
  expiry reached the caller as that exception;
* the chain recomputes from genesis; event counts by kind equal the callers' tallies.

Runs on both backends. On PostgreSQL each agent process claims a host of its own
(``SENTINEL_HOST``), as agents on many machines sharing one server would.

Scale with ``SENTINEL_FAULT_AGENTS`` / ``SENTINEL_FAULT_CALLS`` (default: the issue's 8 × 500).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from sentinel.store import Store
from sentinel.store.location import open_store
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.messages import Decided
from tests.faults.support import (
    RULES,
    Proc,
    assert_decided_once,
    integrity_ok,
    request_rows,
    verify_chain,
)

AGENTS = int(os.environ.get("SENTINEL_FAULT_AGENTS", "8"))
CALLS = int(os.environ.get("SENTINEL_FAULT_CALLS", "500"))
SHARE = 0.2  # share of calls that need a person


class _ClaimingApp(SentinelApp):
    """Keeps every id this command center won (the app itself forgets them once gone)."""

    won: set[str]

    def on_decided(self, msg: Decided) -> None:
        # Textual calls the handler of every class in the MRO, so SentinelApp's runs too.
        self.won.update(o.request_id for o in msg.outcomes if o.ok)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_agents_race_cli_deciders_and_command_center(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db: Path | str = (
        tmp_path / "home" / "sentinel.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    )
    open_store(db).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stop = tmp_path / "stop"
    started = time.monotonic()
    hosts = [{"SENTINEL_HOST": f"worker-{s}"} if backend == "postgresql" else {} for s in range(AGENTS)]
    agents = [
        Proc(["mixed", str(db), str(rules), str(CALLS), str(s), str(SHARE)], **hosts[s]) for s in range(AGENTS)
    ]
    deciders = [Proc(["cli-decider", str(db), str(stop), str(100 + k)]) for k in range(2)]
    app = _ClaimingApp(
        db, None, tick_interval=0, config=TuiConfig(debounce=0.05, bell=False, toast_new=False),
        watch_terminal=False,
    )  # fmt: skip
    app.won = set()
    rng = random.Random(7)
    tui_presses = 0
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while any(a.proc.poll() is None for a in agents):
                assert time.monotonic() - started < 240, "agents did not finish in time"
                if app.queue.card.request_id is not None:
                    await pilot.press("a" if rng.random() < 0.5 else "d")
                    tui_presses += 1
                await pilot.pause(0.03)
            tui_decided = set(app.won)
    finally:
        stop.write_text("stop")
        for d in deciders:
            d.proc.wait(timeout=60)
        for a in agents:
            a.kill()
    elapsed = time.monotonic() - started

    calls = [line for a in agents for line in a.json_lines()]
    for a in agents:
        assert a.proc.returncode == 0, "".join(a.err)[-3000:]
    assert len(calls) == AGENTS * CALLS
    summaries = [d.json_lines()[-1] for d in deciders]

    store = open_store(db)
    n_events = verify_chain(store)
    if backend == "sqlite":
        integrity_ok(db)
    status = assert_decided_once(store, db)
    rows = request_rows(db)

    # Map each approval call to its row through the unique nonce in its arguments.
    by_nonce = {json.loads(args)["nonce"]: rid for rid, (_s, args) in rows.items()}
    tally: Counter[str] = Counter()
    for call in calls:
        expect, outcome = call["expect"], call["outcome"]
        if expect == "allow":
            assert outcome == "ran", call
            tally["allowed"] += 1
        elif expect == "block":
            assert outcome == "blocked", call
            tally["blocked"] += 1
        else:
            rid = by_nonce[call["nonce"]]
            assert call["rid"] in (None, rid), call
            want = {"approved": "ran", "denied": "denied", "expired": "expired"}.get(status[rid], "ended")
            assert outcome == want, f"{call}: row says {status[rid]}"
            tally["approval_requested"] += 1
            tally[status[rid]] += 1
    assert len(rows) == tally["approval_requested"]
    if backend == "postgresql":  # each request names the host its agent claimed
        hosts_seen = {store.get(rid).host for rid in rows}
        assert hosts_seen <= {h["SENTINEL_HOST"] for h in hosts} and len(hosts_seen) > 1, hosts_seen

    kinds = Counter(ev.kind for ev in _events(store))
    assert kinds["allowed"] == tally["allowed"]
    assert kinds["blocked"] == tally["blocked"]
    assert kinds["approval_requested"] == tally["approval_requested"]
    for k in ("approved", "denied", "expired", "cancelled"):
        assert kinds[k] == tally[k], k
    assert kinds["executed"] == tally["allowed"] + tally["approved"]
    assert kinds["governance_error"] == 0 and kinds["failed"] == 0

    # Who won: the three deciders together decided every approved/denied request exactly once.
    cli_ids = [i for s in summaries for i in s["ids"]]
    assert len(cli_ids) == len(set(cli_ids))
    decided = {rid for rid, s in status.items() if s in ("approved", "denied")}
    assert set(cli_ids) | tui_decided >= decided, "a decision no decider claims"
    assert not set(cli_ids) & tui_decided, "a request claimed by two deciders"
    print(
        f"\n{AGENTS}x{CALLS} calls in {elapsed:.1f}s: {dict(tally)}; events {n_events}; "
        f"CLI wins {[s['won'] for s in summaries]} losses {[s['lost'] for s in summaries]}; "
        f"command center presses {tui_presses}, wins {len(tui_decided)}"
    )
    store.close()


def _events(store: Store) -> list:
    from tests.faults.support import all_events

    return all_events(store)
