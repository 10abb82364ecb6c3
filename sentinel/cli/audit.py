"""``sentinel audit``: verify, export, value, prune, anchor, mirror and keygen.

Every command takes ``--db PATH`` (default: ``$SENTINEL_DB``, ``$SENTINEL_HOME/sentinel.db`` or
``./.sentinel/sentinel.db``). Exit status 0 on success (``verify``: the trail is intact), 1 on a
problem; errors are one line on stderr. Printed text from events goes through ``safe_text``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sentinel.cli.options import add_db_option
from sentinel.errors import StoreError
from sentinel.redact import safe_text


def _err(message: str) -> int:
    print(f"sentinel: error: {safe_text(message, 2000)}", file=sys.stderr)
    return 1


def _add_db(p: argparse.ArgumentParser) -> None:
    add_db_option(p)


def _add_anchors(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--anchors",
        metavar="DIR",
        help="anchor folder (default: $SENTINEL_ANCHOR_DIR or ~/.local/state/sentinel/anchors)",
    )


def _anchor_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.anchors) if getattr(args, "anchors", None) else None


def _run(args: argparse.Namespace, body: Any) -> int:
    from sentinel.audit.keys import AuditKeyError
    from sentinel.store.location import open_store

    try:
        store = open_store(args.db, create=False, source="--db")
    except StoreError as exc:
        return _err(str(exc))
    try:
        return int(body(store, args))
    except (StoreError, ValueError, AuditKeyError, OSError) as exc:
        return _err(str(exc))
    finally:
        store.close()


def _time(text: str | None) -> float | None:
    if text is None:
        return None
    from sentinel.store.query import parse_time

    return parse_time(text)


# --- commands ------------------------------------------------------------------------------


def _verify(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.verify import verify

    report = verify(
        store,
        jsonl_dir=args.jsonl,
        anchor_dir=_anchor_dir(args),
        require_anchor=args.require_anchor,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=True))
        return 0 if report.ok else 1
    span = "no events" if report.last_seq is None else f"seq {report.first_seq}..{report.last_seq}"
    print(f"table: {report.table_events:,} events checked ({span})")
    if args.jsonl:
        print(f"jsonl: {report.jsonl_events:,} lines checked in {safe_text(args.jsonl, 200)}")
    print(f"anchors: {report.anchors_checked} signed record(s) checked")
    if report.anchor_folder is not None:
        print(
            f"anchor folder: {safe_text(report.anchor_folder, 200)} "
            f"({report.other_anchor_files} file(s) of other databases checked)"
        )
    for note in report.notes:
        print(f"note: {safe_text(note, 500)}")
    for warning in report.warnings:
        print(f"warning: {safe_text(warning, 500)}")
    for problem in report.problems:
        print(f"TAMPERED: {safe_text(str(problem), 500)}")
    print("OK: the audit trail is intact" if report.ok else "FAILED: the audit trail was altered")
    return 0 if report.ok else 1


def _filter(args: argparse.Namespace) -> Any:
    from sentinel.store.models import HistoryFilter

    kinds = tuple(k.strip() for k in (args.status or "").split(",") if k.strip())
    return HistoryFilter(
        kinds=kinds,
        function=args.function,
        agent=args.agent,
        since=_time(args.since),
        until=_time(args.until),
    )


def _export(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.export import export

    flt = _filter(args)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            n = export(store, out, args.format, flt)
        print(f"exported {n:,} events to {safe_text(args.output, 200)}", file=sys.stderr)
    else:
        export(store, sys.stdout, args.format, flt)
    return 0


def _value(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.export import value_protected

    result = value_protected(store, _time(args.since), _time(args.until))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"value protected: {result['value_protected']:,.2f}")
    for kind, v in result["by_kind"].items():
        print(f"  {kind:<8} {v['count']:>8,} events  {v['value']:>14,.2f}")
    return 0


def _prune(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.keys import load_signer
    from sentinel.audit.prune import prune

    result = prune(
        store, args.before, load_signer(), jsonl_dir=args.jsonl, anchor_dir=_anchor_dir(args)
    )
    if result.up_to_seq is None:
        print(f"nothing to prune before {safe_text(args.before, 40)}")
        return 0
    print(
        f"pruned {result.deleted:,} events up to seq {result.up_to_seq} "
        f"(signed checkpoint {result.head_hash and result.head_hash[:16]}…)"
    )
    for name in result.files_removed:
        print(f"removed {name}")
    return 0


def _anchor(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.anchors import anchor_path, write_anchor
    from sentinel.audit.keys import load_signer

    signer = load_signer()
    if signer is None:
        return _err("no signing key: set SENTINEL_AUDIT_KEY or SENTINEL_AUDIT_SIGNING_KEY")
    record = write_anchor(store, signer, _anchor_dir(args))
    if record is None:
        print("no events yet: nothing to anchor")
        return 0
    path = anchor_path(store.path, record["db_id"], _anchor_dir(args))
    print(f"anchored seq {record['seq']} ({record['hash'][:16]}…, {record['alg']}) in {path}")
    return 0


def _mirror(store: Any, args: argparse.Namespace) -> int:
    from sentinel.audit.mirror import JsonlMirror

    n = JsonlMirror(args.jsonl).catch_up(store)
    print(f"mirrored {n:,} new events to {safe_text(args.jsonl, 200)}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from sentinel.audit.keys import AuditKeyError, generate_ed25519

    try:
        key_id = generate_ed25519(Path(args.private), Path(args.public))
    except FileExistsError:
        return _err(f"{args.private} exists; refusing to overwrite a key")
    except (AuditKeyError, OSError) as exc:
        return _err(str(exc))
    print(f"wrote {args.private} (private, 0600) and {args.public} (public); key id {key_id}")
    print(
        "operator: export SENTINEL_AUDIT_SIGNING_KEY="
        f"{os.path.abspath(args.private)}; agents/auditors: export SENTINEL_AUDIT_PUBLIC_KEY="
        f"{os.path.abspath(args.public)}"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``sentinel audit verify|export|value|prune|anchor|mirror|keygen``."""
    audit = subparsers.add_parser("audit", help="verify, export and prune the audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND")
    audit.set_defaults(func=lambda _args: (audit.print_help(), 2)[1])

    p = sub.add_parser(
        "verify", help="check the hash chain, anchors and JSONL files (exit 1 if altered)"
    )
    _add_db(p)
    p.add_argument("--jsonl", metavar="DIR", help="also check the JSONL mirror in DIR")
    _add_anchors(p)
    p.add_argument(
        "--require-anchor", action="store_true", help="fail when no signed anchor exists"
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=lambda a: _run(a, _verify))

    p = sub.add_parser("export", help="export events as JSONL (SIEM) or CSV (spreadsheets)")
    _add_db(p)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--since", help="epoch seconds, ISO date/time (UTC) or 15m/2h/7d ago")
    p.add_argument("--until", help="same forms as --since (exclusive)")
    p.add_argument("--status", help="event kinds, comma-separated (blocked,denied,…)")
    p.add_argument("--function", help="function name or glob (transfer*)")
    p.add_argument("--agent", help="agent id or glob")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=lambda a: _run(a, _export))

    p = sub.add_parser("value", help="value protected (blocked + denied + expired) over a period")
    _add_db(p)
    p.add_argument("--since", help="epoch seconds, ISO date/time (UTC) or 15m/2h/7d ago")
    p.add_argument("--until", help="same forms as --since (exclusive)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: _run(a, _value))

    p = sub.add_parser("prune", help="remove events before a date, recording a signed checkpoint")
    _add_db(p)
    p.add_argument(
        "--before", required=True, metavar="YYYY-MM-DD", help="UTC date; older events go"
    )
    p.add_argument("--jsonl", metavar="DIR", help="also remove whole mirror files before the date")
    _add_anchors(p)
    p.set_defaults(func=lambda a: _run(a, _prune))

    p = sub.add_parser("anchor", help="sign the chain head now (needs a signing key)")
    _add_db(p)
    _add_anchors(p)
    p.set_defaults(func=lambda a: _run(a, _anchor))

    p = sub.add_parser("mirror", help="bring the JSONL mirror up to date with the table")
    _add_db(p)
    p.add_argument("--jsonl", required=True, metavar="DIR")
    p.set_defaults(func=lambda a: _run(a, _mirror))

    p = sub.add_parser("keygen", help="create an Ed25519 key pair for anchors")
    p.add_argument("--private", required=True, metavar="PATH")
    p.add_argument("--public", required=True, metavar="PATH")
    p.set_defaults(func=_keygen)
