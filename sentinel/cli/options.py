"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse

from sentinel.store.paths import DatabaseValueError, parse_db_value

DB_HELP = "database file (default: $SENTINEL_DB, $SENTINEL_HOME/sentinel.db or ./.sentinel/sentinel.db)"


def add_db_option(parser: argparse.ArgumentParser, help: str = DB_HELP) -> None:
    """``--db PATH``, checked at parse time by :func:`db_value` (every command group's)."""
    parser.add_argument("--db", metavar="PATH", type=db_value, default=None, help=help)


def db_value(text: str) -> str:
    """``--db``: refused at parse time when it is not a usable SQLite path, naming the option.

    The text itself is kept (commands resolve it later); only the check happens here, so a
    ``postgresql://`` value fails as "argument --db: …" before anything is opened or created.
    """
    try:
        parse_db_value(text, source="--db")
    except DatabaseValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--db ")) from None
    return text
