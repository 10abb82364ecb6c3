"""``sentinel serve``: the authenticated approval API (an extra), and its token management::

sentinel serve [--host 127.0.0.1] [--port 8765] [--db PATH] [--tokens FILE] [--service-key PATH]
sentinel serve --add-token NAME [--role operator|agent] [--group G ...]   # prints the token once
sentinel serve --remove-token NAME
sentinel serve --list-tokens
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sentinel.cli.options import add_db_option
from sentinel.errors import SentinelConfigError, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the approval HTTP API (needs the [serve] extra)",
        description=(
            "Serve the approval API on the same database the agents and the command center use. "
            "Every endpoint except /health needs a bearer token (create one with --add-token) "
            "or, for agents, an HMAC signature with SENTINEL_WEBHOOK_SECRET."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    add_db_option(p)
    p.add_argument(
        "--tokens",
        type=Path,
        default=None,
        help="tokens file (default $SENTINEL_CONFIG_DIR/api-tokens.json, else "
        "$XDG_CONFIG_HOME/sentinel/api-tokens.json or ~/.config/sentinel/api-tokens.json; "
        "never inside the database folder, which agents write to)",
    )
    p.add_argument("--add-token", metavar="NAME", help="create a token, print it once, and exit")
    p.add_argument(
        "--role",
        choices=("operator", "agent"),
        default="operator",
        help="role of the token created by --add-token: operator (decide) or agent (submit, poll)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="G",
        help="a group of the token created by --add-token (repeatable): what a rule's approvers "
        "can name it by, signed with its decisions",
    )
    p.add_argument(
        "--service-key",
        type=Path,
        default=None,
        metavar="PATH",
        help="the service key that signs API decisions for the tokens (default "
        "$SENTINEL_SERVICE_KEY, else service-key.pem in the configuration folder; create it with "
        "sentinel operator init --service). Required once the operators file lists operators",
    )
    p.add_argument("--remove-token", metavar="NAME", help="delete a token and exit")
    p.add_argument(
        "--list-tokens", action="store_true", help="list token names and roles, then exit"
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key for --tls-cert (PEM)")
    p.add_argument(
        "--no-notify",
        action="store_true",
        help="do not send SENTINEL_NOTIFY_* notifications for requests submitted over HTTP",
    )
    p.add_argument(
        "--notify-all",
        action="store_true",
        help="send SENTINEL_NOTIFY_* notifications for every new pending request in the database, "
        "not only those submitted over HTTP (then agents need no notification settings)",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from sentinel.server.auth import (
        add_token,
        check_outside_db_folder,
        default_tokens_path,
        legacy_refusal,
        legacy_tokens_path,
        read_tokens_file,
        remove_token,
    )
    from sentinel.store.location import parse_or_default

    tokens = Path(args.tokens) if args.tokens is not None else default_tokens_path()
    try:
        db = parse_or_default(args.db, source="--db")
        # The database folder is written by agents: a tokens file there could hold a token an
        # agent gave itself, whatever its mode says — so it is never used, not even read.
        check_outside_db_folder(tokens, db)
        legacy = legacy_tokens_path(db)
        if args.tokens is None and legacy is not None and os.path.lexists(legacy):
            raise legacy_refusal(legacy, tokens)
        if args.add_token:
            token = add_token(tokens, args.add_token, args.role, args.group)
            print(token)
            groups = f", groups {', '.join(args.group)}" if args.group else ""
            print(
                f"token {args.add_token!r} ({args.role}{groups}) saved as a hash in {tokens}; "
                "this is the only time it is shown",
                file=sys.stderr,
            )
            return 0
        if args.remove_token:
            if remove_token(tokens, args.remove_token):
                print(f"token {args.remove_token!r} removed from {tokens}", file=sys.stderr)
                return 0
            print(
                f"sentinel serve: no token named {args.remove_token!r} in {tokens}", file=sys.stderr
            )
            return 1
        if args.list_tokens:
            entries = read_tokens_file(tokens) if tokens.exists() else []
            for e in sorted(entries, key=lambda e: e.name):
                print(f"{e.name}\t{e.role}\t{','.join(e.groups) or '-'}")
            if not entries:
                print(f"no tokens in {tokens}", file=sys.stderr)
            return 0
        if not 0 < args.port < 65536:
            print(f"sentinel serve: --port {args.port} is not a port number", file=sys.stderr)
            return 2
        from sentinel.server.run import serve

        return serve(
            host=args.host,
            port=args.port,
            db_path=db,
            tokens_path=tokens,
            secret=os.environ.get("SENTINEL_WEBHOOK_SECRET") or None,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            notify=not args.no_notify,
            notify_all=args.notify_all,
            service_key=args.service_key.absolute() if args.service_key is not None else None,
        )
    except (SentinelConfigError, StoreError) as exc:
        print(f"sentinel serve: {exc}", file=sys.stderr)
        return 1
