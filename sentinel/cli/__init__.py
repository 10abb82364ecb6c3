"""The ``sentinel`` command line.

Each command group lives in its own module under :mod:`sentinel.cli` and exposes
``register(subparsers)``; the handler it sets with ``set_defaults(func=...)`` receives the parsed
arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Command-group modules, in the order their commands appear in ``sentinel --help``.
COMMAND_MODULES = ("rules", "queue", "grant", "audit", "anomaly", "tui", "demo", "serve", "mcp", "operator", "db")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available command group registered."""
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description="Zero-trust governance for AI-agent tool calls.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"sentinel.cli.{name}")
        except ModuleNotFoundError as exc:
            # Only a command group that is not part of this build is skipped; a missing
            # dependency *inside* a group is a real error and surfaces.
            if exc.name == f"sentinel.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sentinel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from sentinel import __version__

        print(f"sentinel {__version__}")
        return 0
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
