"""Render every command-center view at 120x40 to ``screenshots/`` (SVG, and PNG when possible).

Usage: ``python scripts/screenshots.py [--out screenshots] [--size 120x40]`` (``make screenshots``).
Sample data comes from :mod:`sentinel_tui.sample` in a temporary database; times are relative to
now so the hourly trends have data. PNGs need ``rsvg-convert`` (Debian: ``librsvg2-bin``);
without it the SVGs are kept and the script says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel.store import OperatorIdentity  # noqa: E402
from sentinel_tui.app import SentinelApp  # noqa: E402
from sentinel_tui.config import TuiConfig  # noqa: E402
from sentinel_tui.dialogs import DecisionDialog, HelpScreen  # noqa: E402
from sentinel_tui.grant_dialog import GrantDialog  # noqa: E402
from sentinel_tui.sample import (  # noqa: E402
    QUORUM_ID,
    SAMPLE_RULES,
    add_grants,
    add_quorum_request,
    seed,
)

OPERATOR = OperatorIdentity("alice", 1000, 1000, "alice", "ops-1", "10.0.0.5 52114", channel="tui")


async def _until(pilot: Any, cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("screen never became ready")
        await pilot.pause(0.05)


async def _queue(pilot: Any) -> None:
    await pilot.press("down")


async def _history(pilot: Any) -> None:
    await pilot.press("2")
    await _until(pilot, lambda: len(pilot.app.history.events) >= 100)
    await pilot.press(*["down"] * 8)


async def _metrics(pilot: Any) -> None:
    await pilot.press("3")
    await _until(pilot, lambda: pilot.app._metrics is not None)


async def _rules(pilot: Any) -> None:
    await pilot.press("4")
    await _until(pilot, lambda: pilot.app._metrics is not None)


async def _quorum(pilot: Any) -> None:
    """The two-person transfer: who may decide, and bob's approval of the two needed."""
    await pilot.press("down", "down", "down")
    await _until(pilot, lambda: pilot.app.queue.card.request_id == QUORUM_ID)


async def _confirm(pilot: Any) -> None:
    await pilot.press("down", "a")
    await _until(pilot, lambda: isinstance(pilot.app.screen, DecisionDialog))


async def _edit(pilot: Any) -> None:
    """``e`` on the 2,750 transfer: the amount lowered, a destination its schema refuses."""
    from sentinel_tui.edit_form import EditForm
    from sentinel_tui.sample import sample_id

    app = pilot.app
    for _ in range(10):
        if app.queue.card.request_id == sample_id(3):
            break
        await pilot.press("down")
    await pilot.press("e")
    await _until(pilot, lambda: isinstance(app.screen, EditForm))
    form = app.screen
    form.query_one(f"#edit-{form.names.index('amount')}").value = "400"
    form.query_one(f"#edit-{form.names.index('destination')}").value = "acc-1"


async def _help(pilot: Any) -> None:
    await pilot.press("question_mark")
    await _until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))


async def _grant(pilot: Any) -> None:
    """``g`` on the 12,000 transfer: the grant dialog, prefilled from the request."""
    await pilot.press("down", "g")
    await _until(pilot, lambda: isinstance(pilot.app.screen, GrantDialog))
    for field in pilot.app.screen.query("Input"):
        field.cursor_blink = False


async def _grants(pilot: Any) -> None:
    await pilot.press("5")
    await _until(pilot, lambda: len(pilot.app.query_one("GrantsView").grants) >= 5)


async def _rules_changed(pilot: Any) -> None:
    """The rules file edited on disk (the watcher reloads it), then ``R``: diff and replay."""
    app = pilot.app
    await pilot.press("4")
    await _until(pilot, lambda: app._metrics is not None)
    view = app.query_one("RulesView")
    first = view.info.version
    rules = app.data.rules_path
    rules.write_text(
        SAMPLE_RULES.replace("value: 1000}", "value: 100}")
        + "  - id: night_reports\n    function_pattern: read_report\n    action: require_approval\n"
    )
    await _until(pilot, lambda: view.info is not None and view.info.version != first)
    await pilot.press("R")
    await _until(pilot, lambda: view.replay is not None)
    app.clear_notifications()


SHOTS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "queue": _queue,
    "quorum": _quorum,
    "history": _history,
    "metrics": _metrics,
    "rules": _rules,
    "confirm": _confirm,
    "edit": _edit,
    "grant": _grant,
    "grants": _grants,
    "help": _help,
    "rules_changed": _rules_changed,  # last: it edits the shared rules file
}


async def shoot(name: str, home: Path, out: Path, size: tuple[int, int]) -> Path:
    app = SentinelApp(
        home / "sentinel.db",
        home / "rules.yaml",
        operator=OPERATOR,
        tick_interval=0,
        config=TuiConfig(bell=False, toast_new=False),
        watch_terminal=False,
        title="Sentinel",
    )
    async with app.run_test(size=size) as pilot:
        await _until(pilot, lambda: app.queue.table.row_count >= 7 and app.status.state.operator != "")
        await _until(pilot, lambda: app.status.state.signing_as is not None)
        await _until(pilot, lambda: app.query_one("RulesView").info is not None)  # type: ignore[attr-defined]
        await SHOTS[name](pilot)
        await pilot.pause(0.3)
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


def trust(folder: Path) -> None:
    """A trusted operator ``alice`` (finance) with her key, so the shots show signed decisions
    (whatever the operators file and key of the person running the script)."""
    from sentinel.trust import add_operator, generate_key

    folder.mkdir(mode=0o755)
    key = generate_key(folder / "operator-key.pem")
    add_operator(folder / "operators.json", "alice", key.public_key, ["finance"])
    os.environ["SENTINEL_OPERATORS_FILE"] = str(folder / "operators.json")
    os.environ["SENTINEL_OPERATOR_KEY"] = str(key.path)


def to_png(svg: Path) -> Path | None:
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return None
    # rsvg collapses runs of spaces unless told to keep them.
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    fixed = svg.with_suffix(".rsvg.svg")
    fixed.write_text(text, encoding="utf-8")
    png = svg.with_suffix(".png")
    try:
        subprocess.run([tool, str(fixed), "-o", str(png)], check=True)
    finally:
        fixed.unlink(missing_ok=True)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--size", default="120x40")
    args = parser.parse_args(argv)
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    with tempfile.TemporaryDirectory(prefix="sentinel-shots-") as tmp:
        home = Path(tmp)
        seed(home / "sentinel.db", time.time(), events=400, rules_path=home / "rules.yaml", decided=12)
        add_quorum_request(home / "sentinel.db", time.time())
        add_grants(home / "sentinel.db", time.time())
        trust(home / "trust")
        missing_png = False
        for name in SHOTS:
            svg = asyncio.run(shoot(name, home, out, (cols, rows)))
            png = to_png(svg)
            missing_png |= png is None
            print(f"{name}: {png or svg}")
    if missing_png:
        print(
            "rsvg-convert not found: kept SVG only. Install it for PNGs "
            "(Debian/Ubuntu: apt-get install -y librsvg2-bin).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
