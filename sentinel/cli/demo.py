"""``sentinel demo``: simulated agents and the command center on a temporary database."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from sentinel.demo import register_arguments

    parser = sub.add_parser("demo", help="run simulated agents and open the command center on them")
    register_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sentinel.demo import run_demo

    return run_demo(args)
