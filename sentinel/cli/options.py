"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse

from sentinel.store.location import parse_location
from sentinel.store.paths import DatabaseValueError

DB_HELP = (
    "database: a file path or a postgresql:// URL (default: $SENTINEL_DB, "
    "$SENTINEL_HOME/sentinel.db or ./.sentinel/sentinel.db)"
)


def add_db_option(parser: argparse.ArgumentParser, help: str = DB_HELP) -> None:
    """``--db PATH``, checked at parse time by :func:`db_value` (every command group's)."""
    parser.add_argument("--db", metavar="PATH|URL", type=db_value, default=None, help=help)


def db_value(text: str) -> str:
    """``--db``: refused at parse time when it is neither a path nor a PostgreSQL URL, naming
    the option (the password masked).

    The text itself is kept (commands resolve it later); only the check happens here, so a
    ``mysql://`` value fails as "argument --db: …" before anything is opened or created.
    """
    try:
        parse_location(text, source="--db")
    except DatabaseValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--db ")) from None
    return text
