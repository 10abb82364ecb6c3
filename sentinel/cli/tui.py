"""``sentinel tui``: open the command center (the Textual app in :mod:`sentinel_tui`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sentinel.cli.options import add_db_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser, "approval database (default: $SENTINEL_DB, $SENTINEL_HOME/sentinel.db or ./.sentinel/sentinel.db)")
    parser.add_argument("--rules", metavar="PATH", help="rules file shown in the Rules view (default: $SENTINEL_RULES_PATH, else ./rules.yaml when present)")
    parser.add_argument("--readonly", action="store_true", help="observer mode: nothing can be approved or denied")
    parser.add_argument("--keymap", metavar="FILE", help="settings and key remapping (TOML; default $SENTINEL_HOME/tui.toml or ~/.config/sentinel/tui.toml)")
    from sentinel.cli.tui_web import add_web_arguments

    add_web_arguments(parser)


def register(subparsers: Any) -> None:
    """Add the ``tui`` command."""
    parser = subparsers.add_parser(
        "tui",
        help="open the command center (live approval queue)",
        description="Live approval queue, history, metrics and rules in the terminal.",
    )
    add_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import os

    from sentinel.errors import SentinelError

    if getattr(args, "web", False):
        from sentinel.cli.tui_web import handle_web

        return handle_web(args)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        print("sentinel tui: needs an interactive terminal (stdin and stdout must be a TTY)", file=sys.stderr)
        return 2
    try:
        from sentinel_tui.app import run_app
    except ImportError as exc:  # pragma: no cover - textual is a core dependency
        print(f"sentinel tui: the command center is not available: {exc}", file=sys.stderr)
        return 2
    rules = args.rules or os.environ.get("SENTINEL_RULES_PATH") or None
    if rules is None and os.path.exists("rules.yaml"):
        rules = "rules.yaml"
    try:
        return run_app(db_path=args.db, rules_path=rules, readonly=args.readonly, keymap_path=args.keymap)
    except SentinelError as exc:
        print(f"sentinel tui: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sentinel_tui``."""
    parser = argparse.ArgumentParser(prog="python -m sentinel_tui", description="Sentinel command center")
    add_arguments(parser)
    return handle(parser.parse_args(argv))
