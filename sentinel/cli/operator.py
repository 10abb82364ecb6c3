"""``sentinel operator``: operator keys and the trusted operators file::

sentinel operator init [--name NAME] [--key PATH] [--force]   # your key pair; prints the line to add
sentinel operator init --service [--key PATH]                # sentinel serve's service key
sentinel operator add NAME --key ed25519:... [--group G ...]  # trust a key (an admin)
sentinel operator add NAME --service --key ed25519:...       # trust a service key
sentinel operator list [--json]                              # name, groups, key id, state, kind
sentinel operator revoke NAME
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
import time
from pathlib import Path

from sentinel.errors import SentinelConfigError

FILE_HELP = (
    "trusted operators file (default $SENTINEL_OPERATORS_FILE, else /etc/sentinel/operators.json "
    "when it exists or for root, else operators.json in the configuration folder)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "operator",
        help="operator keys and the trusted operators who may sign decisions",
        description="Create your operator key (or sentinel serve's service key) and manage the "
        "trusted operators file the waiting calls check decisions against.",
    )
    sub = p.add_subparsers(dest="operator_command", metavar="SUBCOMMAND", required=True)

    init = sub.add_parser("init", help="create your Ed25519 key pair (private key mode 0600)")
    init.add_argument(
        "--name", help="operator name to suggest to the admin (default: your OS user)"
    )
    init.add_argument(
        "--key",
        type=Path,
        default=None,
        help="private key file (default $SENTINEL_OPERATOR_KEY, else operator-key.pem in the "
        "configuration folder; with --service $SENTINEL_SERVICE_KEY, else service-key.pem there)",
    )
    init.add_argument(
        "--service",
        action="store_true",
        help="create sentinel serve's service key, which signs API decisions on behalf of the "
        "API tokens (run it as the user that runs sentinel serve)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing key file")
    init.set_defaults(func=_init)

    add = sub.add_parser("add", help="trust an operator's public key")
    add.add_argument("name")
    add.add_argument("--key", required=True, metavar="PUBKEY", help="ed25519:<base64> public key")
    add.add_argument(
        "--group", action="append", default=[], metavar="G", help="a group (repeatable)"
    )
    add.add_argument(
        "--service",
        action="store_true",
        help="trust it as a service key (kind service: sentinel serve signing for its API "
        "tokens, whose role and groups it binds); it may sign for any operator name",
    )
    add.add_argument("--file", type=Path, default=None, help=FILE_HELP)
    add.set_defaults(func=_add)

    lst = sub.add_parser("list", help="list the trusted operators")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.add_argument("--file", type=Path, default=None, help=FILE_HELP)
    lst.set_defaults(func=_list)

    rev = sub.add_parser("revoke", help="revoke an operator's key (kept, marked revoked)")
    rev.add_argument("name")
    rev.add_argument("--file", type=Path, default=None, help=FILE_HELP)
    rev.set_defaults(func=_revoke)


def _fail(exc: Exception) -> int:
    print(f"sentinel operator: {exc}", file=sys.stderr)
    return 1


def _path(args: argparse.Namespace) -> Path:
    from sentinel.trust.operators import operators_path

    return Path(args.file).absolute() if args.file is not None else operators_path()


def _init(args: argparse.Namespace) -> int:
    from sentinel.trust.keys import default_key_path, generate_key

    if args.service:
        return _init_service(args)
    name = args.name
    if not name:
        try:
            name = pwd.getpwuid(os.getuid()).pw_name  # the kernel's account, never $USER
        except KeyError:
            name = f"uid{os.getuid()}"
    path = args.key.absolute() if args.key is not None else default_key_path()
    try:
        key = generate_key(path, force=args.force)
    except SentinelConfigError as exc:
        return _fail(exc)
    print(f"sentinel operator add {name} --key {key.public_key}")
    print(
        f"private key written to {key.path} (mode 0600, key id {key.key_id}); keep it to "
        "yourself. Ask an admin to run the line above to trust it.",
        file=sys.stderr,
    )
    return 0


def _init_service(args: argparse.Namespace) -> int:
    from sentinel.server.signing import default_service_key_path
    from sentinel.trust.keys import generate_key

    name = args.name or "sentinel-serve"
    path = args.key.absolute() if args.key is not None else default_service_key_path()
    try:
        key = generate_key(path, force=args.force)
    except SentinelConfigError as exc:
        return _fail(exc)
    print(f"sentinel operator add {name} --service --key {key.public_key}")
    print(
        f"service key written to {key.path} (mode 0600, key id {key.key_id}); only the account "
        "running sentinel serve may read it. Ask the operators file's admin to run the line "
        "above: every API token's decisions are then signed with it"
        + ("" if args.key is None else f" (start the server with --service-key {key.path})"),
        file=sys.stderr,
    )
    return 0


def _add(args: argparse.Namespace) -> int:
    from sentinel.trust.operators import add_operator

    path = _path(args)
    if args.service and args.group:
        return _fail(
            SentinelConfigError(
                f"operator {args.name!r}: field 'groups': a service key has no groups of its own "
                "(it signs each API token's role and groups); drop --group",
            )
        )
    kind = "service" if args.service else "operator"
    try:
        op = add_operator(path, args.name, args.key, args.group, kind=kind)
    except SentinelConfigError as exc:
        return _fail(exc)
    groups = f" (groups: {', '.join(op.groups)})" if op.groups else ""
    what = "service" if op.is_service else "operator"
    print(f"{what} {op.name!r} trusted{groups}, key id {op.key_id}, in {path}", file=sys.stderr)
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _list(args: argparse.Namespace) -> int:
    from sentinel.trust.operators import load_operators

    path = _path(args)
    try:
        trusted = load_operators(path, missing_ok=True)
    except SentinelConfigError as exc:
        return _fail(exc)
    if args.json:
        rows = [{**op.to_dict(), "kind": op.kind, "key_id": op.key_id} for op in trusted.operators]
        print(json.dumps({"file": str(path), "operators": rows}, indent=2))
        return 0
    for op in trusted.operators:
        state = "active" if op.revoked_at is None else f"revoked {_when(op.revoked_at)}"
        print(f"{op.name}\t{','.join(op.groups) or '-'}\t{op.key_id}\t{state}\t{op.kind}")
    if not trusted.operators:
        print(f"no trusted operators in {path}", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from sentinel.trust.operators import revoke_operator

    path = _path(args)
    try:
        op = revoke_operator(path, args.name)
    except SentinelConfigError as exc:
        return _fail(exc)
    what = "service" if op.is_service else "operator"
    print(
        f"{what} {op.name!r} revoked at {_when(op.revoked_at)} in {path}: decisions signed "
        "with this key from now on are refused",
        file=sys.stderr,
    )
    return 0
