"""``sentinel db info`` (which database, which schema version, how much is in it) and
``sentinel db migrate`` (bring a database to this Sentinel's schema, saying what changed)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.errors import StoreError


def _open(args: argparse.Namespace, *, create: bool) -> Any:
    from sentinel.store import Store

    return Store(args.db, create=create)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _info(args: argparse.Namespace) -> int:
    try:
        store = _open(args, create=False)
    except StoreError as exc:
        print(f"sentinel: error: {exc}", file=sys.stderr)
        return 1
    try:
        info = store.info()
    finally:
        store.close()
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    state = "latest" if info.schema_version == info.latest_version else "behind"
    print(f"backend   {info.backend}")
    print(f"database  {info.location}")
    print(f"schema    version {info.schema_version} of {info.latest_version} ({state})")
    if info.migrated_from != info.schema_version:
        print(f"          migrated from version {info.migrated_from} when opened now")
    print(f"requests  {info.requests} ({info.pending} pending)")
    print(f"events    {info.events}")
    print(f"size      {_size(info.size_bytes)}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    try:
        store = _open(args, create=args.create)
    except StoreError as exc:
        print(f"sentinel: error: {exc}", file=sys.stderr)
        return 1
    try:
        info = store.info()
    finally:
        store.close()
    if info.migrated_from == info.latest_version:
        print(f"{info.location}: schema version {info.latest_version}, already the latest")
    else:
        steps = info.latest_version - info.migrated_from
        print(
            f"{info.location}: migrated from schema version {info.migrated_from} to "
            f"{info.latest_version} ({steps} step{'s' if steps != 1 else ''})"
        )
    return 0


def register(subparsers: Any) -> None:
    """Add ``db info`` and ``db migrate`` to the ``sentinel`` parser."""
    group = subparsers.add_parser("db", help="the database: where it is, its schema, migrations")
    sub = group.add_subparsers(dest="db_command", metavar="COMMAND")
    group.set_defaults(func=lambda a: (group.print_help(), 2)[1])

    p = sub.add_parser("info", help="backend, file, schema version, counts and size")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = sub.add_parser("migrate", help="bring the database to this Sentinel's schema")
    add_db_option(p)
    p.add_argument(
        "--create", action="store_true", help="create the database when it does not exist"
    )
    p.set_defaults(func=_migrate)


__all__ = ["register"]
