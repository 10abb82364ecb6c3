"""The ``--web`` / ``--port`` options of ``sentinel tui`` (the command center in a browser).

Wiring in :mod:`sentinel.cli.tui`::

    add_web_arguments(parser)                 # in add_arguments()
    if args.web: return handle_web(args)      # in handle(), before the TTY check

Serving goes through :func:`sentinel_tui.web.serve_web` (textual-serve, loopback only).
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PORT = 8566


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--web`` and ``--port`` to a ``sentinel tui`` parser."""
    parser.add_argument(
        "--web",
        action="store_true",
        help="serve the command center to a browser on 127.0.0.1 (reach it with ssh -L; "
        "needs the [web] extra)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port for --web (default {DEFAULT_PORT})",
    )


def handle_web(args: argparse.Namespace) -> int:
    """Run ``sentinel tui --web`` with the options ``sentinel tui`` parsed."""
    try:
        from sentinel_tui.web import serve_web
    except ImportError as exc:  # pragma: no cover - depends on the installation
        print(f"sentinel tui --web: not available: {exc}", file=sys.stderr)
        return 2
    return serve_web(
        getattr(args, "db", None),
        port=int(getattr(args, "port", DEFAULT_PORT)),
        rules_path=getattr(args, "rules", None),
        readonly=bool(getattr(args, "readonly", False)),
        keymap_path=getattr(args, "keymap", None),
    )


__all__ = ["DEFAULT_PORT", "add_web_arguments", "handle_web"]
