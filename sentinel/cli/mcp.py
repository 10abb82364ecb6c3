"""``sentinel mcp``: run an MCP server behind Sentinel (the gating proxy, :mod:`sentinel.mcp`).

The client starts ``sentinel mcp -- <the server's command …>`` instead of the server itself (or
``sentinel mcp --url https://…/mcp`` for a remote server); the proxy speaks MCP over stdio to the
client and decides every tool call with the rules.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sentinel.cli.options import add_db_option


def register(sub: Any) -> None:
    """Add the ``mcp`` command."""
    p = sub.add_parser(
        "mcp",
        help="run an MCP server behind Sentinel: every tool call decided by the rules",
        description=(
            "A gating proxy for the Model Context Protocol. Replace a client's server command "
            "with `sentinel mcp -- <command …>`; tools/call is decided by the rules (allowed: "
            "forwarded; blocked: an isError result with the rule's message; approval: waits in "
            "the queue), everything else passes through."
        ),
    )
    p.add_argument(
        "--rules", metavar="FILE", help="rules file (default $SENTINEL_RULES_PATH or ./rules.yaml)"
    )
    add_db_option(p)
    p.add_argument(
        "--agent-id",
        metavar="NAME",
        help="the agent id in requests and audit (default mcp:<server>:<client>)",
    )
    p.add_argument(
        "--name",
        metavar="SERVER",
        help="the server's name (default: the upstream's serverInfo.name); implies --prefix",
    )
    p.add_argument(
        "--prefix",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rules see <server>.<tool> instead of <tool> (default: on with --name, else off)",
    )
    p.add_argument(
        "--hide-blocked",
        action="store_true",
        help="leave tools the rules block for every argument out of tools/list",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds an approval request waits (default $SENTINEL_TIMEOUT or 300)",
    )
    p.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress notifications while a call waits for approval (default 2)",
    )
    p.add_argument(
        "--url",
        metavar="URL",
        help="a streamable HTTP upstream (https://…/mcp) instead of a command",
    )
    p.add_argument(
        "--listen",
        metavar="127.0.0.1:PORT",
        help="also serve streamable HTTP on this loopback address (needs a token)",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="the bearer token clients of --listen must send (default $SENTINEL_MCP_TOKEN)",
    )
    p.add_argument(
        "upstream",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND …",
        help="the upstream MCP server's command",
    )
    p.set_defaults(func=_run)


def _fail(message: str, hint: str | None = None) -> int:
    print(f"sentinel mcp: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    command = list(args.upstream or [])
    if command and command[0] == "--":
        command = command[1:]
    if bool(command) == bool(args.url):
        return _fail(
            "give exactly one upstream: `sentinel mcp [options] -- <command …>` or --url URL",
            "e.g. sentinel mcp --rules rules.yaml -- npx -y @modelcontextprotocol/server-github",
        )
    if args.progress_interval is not None and not args.progress_interval > 0:
        return _fail(
            f"--progress-interval must be a positive number of seconds, got {args.progress_interval}"
        )
    try:
        from sentinel.mcp.cli import run_proxy
    except ImportError as exc:
        return _fail(str(exc), "pip install 'sentinel-guard[mcp]'")
    return run_proxy(args, command)
