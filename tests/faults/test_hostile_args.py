"""Hostile arguments: escape sequences (OSC 0/8/52, CSI), control characters, bidi overrides,
zero-width characters, Textual markup and a 10 MB string, sent by a real ``@protect``-ed call.

What must hold: the CLI (pending, show, history) and the command center show them neutralised
(no raw control byte reaches the terminal, markup is literal, no action spans) and shortened;
the audit binds the request to the digest of the full arguments; nothing crashes; the operator
can still decide and the agent gets the answer."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from rich.text import Text

from sentinel.normalize import digest, to_jsonable
from sentinel.store import Store
from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from tests.faults.support import RULES, Proc, all_events, cli, verify_chain

#: Raw characters that must never reach a terminal from agent text.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@pytest.fixture
def hostile(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = tmp_path / "home" / "sentinel.db"
    Store(db).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    agent = Proc(["hostile", str(db), str(rules)])
    agent.expect("CALLING")
    store = Store(db)
    deadline = time.monotonic() + 60
    while not store.list_pending():
        assert time.monotonic() < deadline, "".join(agent.err)[-2000:]
        time.sleep(0.05)
    (rec,) = store.list_pending()
    yield db, store, rec, agent
    agent.kill()


def _clean(out: str, what: str) -> None:
    bad = RAW.findall(out)
    assert not bad, f"{what}: raw control characters reached the terminal: {sorted(set(bad))!r}"


def test_cli_shows_hostile_text_neutralised_and_short(hostile):
    db, store, rec, agent = hostile
    _clean("".join(agent.err), "the agent's waiting hint")
    pending = cli("pending", db=db)
    assert pending.returncode == 0, pending.stderr
    _clean(pending.stdout, "pending")
    assert len(pending.stdout) < 4_000
    assert "\\x1b" in pending.stdout  # shown as a visible escape
    show = cli("show", rec.id, db=db)
    assert show.returncode == 0, show.stderr
    _clean(show.stdout, "show")
    assert len(show.stdout) < 200_000, len(show.stdout)  # 10 MB argument folded
    assert "more" in show.stdout or "chars" in show.stdout  # and it says so
    assert "transfer_\\x1b[2J\\u202efunds" in show.stdout  # visible escapes, in place
    for args in (("pending", "--json"), ("show", rec.id, "--json"), ("history",), ("history", "--json")):
        out = cli(*args, db=db)
        assert out.returncode == 0, (args, out.stderr)
        _clean(out.stdout, " ".join(args))
    hist = cli("history", db=db)
    assert len(hist.stdout) < 10_000


def test_audit_binds_the_full_arguments_by_digest(hostile):
    db, store, rec, agent = hostile
    events = [e for e in all_events(store) if e.request_id == rec.id]
    assert [e.kind for e in events] == ["approval_requested"]
    from tests.faults.agents.fault_agent import EVIL

    sent = {"amount": 5000, "to": EVIL, "memo": {"nested": EVIL, EVIL: [EVIL]}, "blob": "A" * 10_000_000}
    # The stored copy keeps a bounded prefix of the 10 MB value; the digest binds all of it.
    kept = store.get(rec.id).arguments["blob"]
    assert len(kept) < 70_000 and kept.endswith("chars not kept]")
    assert events[0].digest == rec.digest == digest(to_jsonable(sent))
    verify_chain(store)


def test_cli_show_names_every_argument_even_after_a_huge_one(hostile):
    db, store, rec, agent = hostile
    show = cli("show", rec.id, db=db)
    for name in ('"amount"', '"blob"', '"memo"', '"to"'):
        assert name in show.stdout, name


async def test_command_center_neutralises_and_still_decides(hostile):
    db, store, rec, agent = hostile
    app = SentinelApp(
        db, None, tick_interval=0, watch_terminal=False,
        config=TuiConfig(bell=False, debounce=0.0),
    )  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while app.queue.card.request_id != rec.id:
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        card: Text = app.queue.card.text
        _clean(card.plain, "card")
        assert len(card.plain) < 20_000
        assert "[b]APPROVED by admin[/b]" in card.plain
        assert not [s for s in card.spans if "@click" in str(s.style)]
        svg = app.export_screenshot()
        _clean(svg, "screenshot")
        assert "PWNED" not in app.title and "PWNED" not in (app.sub_title or "")
        # The full view of the 10 MB argument opens and closes without freezing the app.
        started = time.monotonic()
        await pilot.press("v")
        await pilot.pause(0.2)
        body = app.screen._body.plain  # the full view: every argument, each value capped
        assert "\nto:\n" in body and "\nmemo:\n" in body and "\nblob:\n" in body
        assert "+9,934,464 chars not kept" in body  # the 10 MB value is cut, and says by how much
        assert len(body) < 1_000_000
        _clean(body, "full view")
        await pilot.press("escape")
        await pilot.pause(0.1)
        opened_for = time.monotonic() - started
        await pilot.press("d")
        line = agent.expect("ENDED", timeout=60)
    assert line == "ENDED SentinelDeniedError"
    assert "RAN" not in agent.seen
    assert Store(db).get(rec.id).status == "denied"
    print(f"\nfull view of a 10 MB argument: {opened_for:.2f}s")
