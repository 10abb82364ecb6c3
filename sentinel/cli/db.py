"""``sentinel db info`` (which database, which schema version, how much is in it),
``sentinel db migrate`` (bring a database to this Sentinel's schema, saying what changed) and
``sentinel db copy`` (the whole history into a new database of either backend). Each takes a
SQLite path or a ``postgresql://`` URL."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sentinel.cli.options import DB_HELP
from sentinel.errors import StoreError

_LOCATION_HELP = "a SQLite file (path or sqlite:///path) or a postgresql:// URL"


def _location(source: str) -> Any:
    """An argparse type: a database location (``--db``, ``--from``, ``--to``), checked now."""
    from sentinel.store.copy import parse_location
    from sentinel.store.paths import DatabaseValueError

    def parse(text: str) -> Any:
        try:
            return parse_location(text, source=source)
        except DatabaseValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{source} ")) from None

    return parse


def _open(args: argparse.Namespace, *, create: bool) -> Any:
    from sentinel.store.location import open_store

    # None: the default database ($SENTINEL_DB — a path or a postgresql:// URL — or the home's).
    return open_store(None if args.db is None else args.db.target, create=create, source="--db")


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
    # A PostgreSQL database exists on the server already: migrating it builds the schema.
    from sentinel.store.location import PgLocation, parse_or_default

    if args.db is not None:
        server = args.db.backend == "postgresql"
    else:
        try:
            server = isinstance(parse_or_default(None), PgLocation)
        except StoreError as exc:
            print(f"sentinel: error: {exc}", file=sys.stderr)
            return 1
    try:
        store = _open(args, create=args.create or server)
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


def _batch(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows from 1 to 1000000")
    return n


def _progress() -> Any:
    """Progress lines on stderr: at most two a second per table, and each table's total."""
    last = [0.0]

    def show(table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        share = 100 if total == 0 else min(100, done * 100 // total)
        print(f"  {table:<18} {done:>12,} / {total:,} ({share}%)", file=sys.stderr, flush=True)

    return show


def _copy(args: argparse.Namespace) -> int:
    from sentinel.audit.keys import AuditKeyError, load_verifier
    from sentinel.audit.verify import verify
    from sentinel.store.copy import copy_database

    print(f"copying {args.source.shown} -> {args.destination.shown}", flush=True)
    try:
        result = copy_database(
            args.source, args.destination, batch=args.batch, progress=_progress()
        )
    except StoreError as exc:
        print(f"sentinel: error: {exc}", file=sys.stderr)
        return 1
    rate = result.events / result.seconds if result.seconds > 0 else 0.0
    print(
        f"copied in {result.seconds:.1f}s ({rate:,.0f} events/s), one transaction; "
        f"db_id {result.db_id} kept, so the source's anchors name the copy"
    )
    for table, n in result.rows.items():
        print(f"  {table:<18} {n:,}")
    try:
        args.db = args.destination
        store = _open(args, create=False)
        try:
            report = verify(
                store, anchor_dir=Path(args.anchors) if args.anchors else None,
                verifier=load_verifier(),
            )  # fmt: skip
        finally:
            store.close()
    except (StoreError, AuditKeyError, ValueError, OSError) as exc:
        print(f"sentinel: error: the copy was written but could not be verified: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    span = "no events" if report.last_seq is None else f"seq {report.first_seq}..{report.last_seq}"
    print(f"verify: {report.table_events:,} events checked ({span}), "
          f"{report.anchors_checked} signed anchor(s)")  # fmt: skip
    for warning in report.warnings:
        print(f"warning: {warning}")
    for problem in report.problems:
        print(f"TAMPERED: {problem}")
    if not report.ok:
        print("FAILED: the copy's audit trail does not verify (nor does the source's: the copy "
              "is exact; run `sentinel audit verify --db` on the source)")  # fmt: skip
        return 1
    print("OK: the copy's audit trail verifies")
    return 0


def _grants(args: argparse.Namespace) -> int:
    from sentinel.store.pggrants import apply_grants, grant_script

    try:
        if not args.apply:
            print(grant_script(args.agent_role, args.operator_role))
            return 0
        if args.db is None or args.db.backend != "postgresql":
            print("sentinel: error: --apply needs --db postgresql://… (the owner's connection); "
                  "roles and grants are PostgreSQL's", file=sys.stderr)  # fmt: skip
            return 1
        statements = apply_grants(args.db.target, args.agent_role, args.operator_role)
    except StoreError as exc:
        print(f"sentinel: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.db.shown}: {len(statements)} statements applied; {args.agent_role} may submit, "
        f"append events, cancel, reserve limits and learn baselines, not decide; "
        f"{args.operator_role} may decide"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``db info``, ``db migrate`` and ``db copy`` to the ``sentinel`` parser."""
    group = subparsers.add_parser("db", help="the database: where it is, its schema, migrations")
    sub = group.add_subparsers(dest="db_command", metavar="COMMAND")
    group.set_defaults(func=lambda a: (group.print_help(), 2)[1])

    db_help = f"{DB_HELP}; or a postgresql:// URL"
    p = sub.add_parser("info", help="backend, file, schema version, counts and size")
    p.add_argument("--db", metavar="DB", type=_location("--db"), default=None, help=db_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = sub.add_parser("migrate", help="bring the database to this Sentinel's schema")
    p.add_argument("--db", metavar="DB", type=_location("--db"), default=None, help=db_help)
    p.add_argument(
        "--create",
        action="store_true",
        help="create the database when it does not exist (PostgreSQL: the schema in an "
        "existing database)",
    )
    p.set_defaults(func=_migrate)

    p = sub.add_parser(
        "copy",
        help="copy the whole history into a new, empty database (SQLite <-> PostgreSQL)",
        description="Copy every table (requests, votes, events with their hashes, audit id, "
        "limits, baselines) from --from into the empty --to in one transaction, then verify "
        "the copy's audit chain.",
    )
    p.add_argument("--from", dest="source", metavar="SRC", required=True,
                   type=_location("--from"), help=_LOCATION_HELP)  # fmt: skip
    p.add_argument("--to", dest="destination", metavar="DST", required=True,
                   type=_location("--to"), help=f"{_LOCATION_HELP}; must be empty")  # fmt: skip
    p.add_argument("--batch", type=_batch, default=20_000,
                   help="rows per batch (default 20000; memory grows with it)")  # fmt: skip
    p.add_argument(
        "--anchors",
        metavar="DIR",
        help="anchor folder for the verification (default: $SENTINEL_ANCHOR_DIR or "
        "~/.local/state/sentinel/anchors)",
    )
    p.set_defaults(func=_copy)

    p = sub.add_parser(
        "grants",
        help="PostgreSQL roles: print (or --apply) the grants that let agents submit but not decide",
    )
    p.add_argument("--agent-role", required=True, metavar="ROLE",
                   help="role the guarded agents connect as")  # fmt: skip
    p.add_argument("--operator-role", required=True, metavar="ROLE",
                   help="role of deciders, the command center and sentinel serve")  # fmt: skip
    p.add_argument("--apply", action="store_true",
                   help="run them on --db (connect as the tables' owner) instead of printing")  # fmt: skip
    p.add_argument("--db", metavar="DB", type=_location("--db"), default=None,
                   help="the postgresql:// URL to apply them on")  # fmt: skip
    p.set_defaults(func=_grants)


__all__ = ["register"]
