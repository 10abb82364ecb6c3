"""The command center in a browser: the same Textual app served by ``textual-serve``.

``sentinel tui --web [--port 8566]`` (or ``python -m sentinel_tui.web``) listens on 127.0.0.1 only;
reach it from another machine through an SSH tunnel. textual-serve itself has no authentication,
so this wrapper adds what a page that can approve payments needs:

* a random **key** printed at start-up: the first visit is ``/?key=…``; it becomes an HttpOnly,
  SameSite=Strict cookie and the key leaves the address bar (redirect);
* every request must carry that cookie (static assets excepted), so another local user or a
  web page in the operator's browser cannot open the app or its websocket;
* the ``Host`` header must name a loopback address (defeats DNS rebinding), and a websocket
  ``Origin`` must be the page's own origin (defeats cross-site websocket hijacking).

Each browser tab runs its own app process (``python -m sentinel_tui.web --child …``), which
decides as the OS account that started the server (recorded with channel ``tui``).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import secrets
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

DEFAULT_PORT = 8566
COOKIE = "sentinel_web_key"


def _loopback_host(host_header: str) -> bool:
    """True when a ``Host`` header names a loopback address (any port)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def child_db(
    db_path: str | os.PathLike[str] | None, env: dict[str, str] | None = None
) -> str | os.PathLike[str] | None:
    """What the per-browser app processes get as ``--db``: a SQLite path as is; for a
    PostgreSQL URL None, the URL going into ``env`` (default this process's environment, which
    the children inherit) as ``SENTINEL_DB`` instead — never on a command line, where every
    local user can read it, password and all."""
    if db_path is None:
        return None
    from sentinel.store.location import PgLocation, parse_location

    location = parse_location(db_path, source="--db")
    if not isinstance(location, PgLocation):
        return db_path
    (os.environ if env is None else env)["SENTINEL_DB"] = location.url
    return None


def app_command(
    db_path: str | os.PathLike[str] | None,
    rules_path: str | os.PathLike[str] | None = None,
    readonly: bool = False,
    keymap_path: str | os.PathLike[str] | None = None,
) -> str:
    """The shell command textual-serve runs for each browser connection."""
    parts = [sys.executable, "-m", "sentinel_tui.web", "--child"]
    if db_path is not None:
        parts += ["--db", str(Path(db_path).absolute())]
    if rules_path is not None:
        parts += ["--rules", str(Path(rules_path).absolute())]
    if keymap_path is not None:
        parts += ["--keymap", str(Path(keymap_path).absolute())]
    if readonly:
        parts.append("--readonly")
    return " ".join(shlex.quote(p) for p in parts)


def startup_message(port: int, key: str) -> str:
    """What ``sentinel tui --web`` prints: the local URL and the SSH tunnel to reach it."""
    url = f"http://127.0.0.1:{port}/?key={key}"
    return (
        f"sentinel tui --web: the command center is served on 127.0.0.1:{port} only.\n"
        f"  on this machine:   open {url}\n"
        f"  from your laptop:  ssh -N -L {port}:127.0.0.1:{port} <user>@<this host>\n"
        f"                     then open {url}\n"
        "  the key in the URL is the password to this page; decisions made here are recorded as "
        "the account running this server. Ctrl+C stops it."
    )


def _make_server(command: str, port: int, key: str, out: TextIO) -> Any:
    import aiohttp_jinja2
    from aiohttp import web
    from textual_serve.server import Server

    class GuardedServer(Server):
        """textual-serve with a key, loopback Host checks and same-origin websockets."""

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(self._guard)
            return app

        @web.middleware
        async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
            if not _loopback_host(request.host):
                return web.Response(status=403, text="forbidden: not a loopback host\n")
            if request.path.startswith("/static/"):
                return await handler(request)
            given = request.query.get("key")
            if request.path == "/" and given is not None:
                if not hmac.compare_digest(given.encode(), key.encode()):
                    return web.Response(status=401, text="wrong key\n")
                response = web.HTTPFound("/")
                response.set_cookie(COOKIE, key, httponly=True, samesite="Strict", path="/")
                return response
            cookie = request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(cookie.encode(), key.encode()):
                return web.Response(
                    status=401,
                    text="open the URL with ?key=… that `sentinel tui --web` printed\n",
                )
            origin = request.headers.get("Origin")
            if request.path == "/ws" and origin is not None and origin != f"http://{request.host}":
                return web.Response(status=403, text="forbidden: cross-origin websocket\n")
            return await handler(request)

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            # URLs follow the address the browser used, so a tunnel on another local port works.
            self.public_url = f"http://{request.host}"
            original: Any = Server.handle_index
            context: dict[str, Any] = await original.__wrapped__(self, request)
            return context

        async def on_startup(self, app: web.Application) -> None:
            print(startup_message(port, key), file=out, flush=True)

    return GuardedServer(command, host="127.0.0.1", port=port, title="Sentinel command center")


def serve_web(
    db_path: str | os.PathLike[str] | None = None,
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    rules_path: str | os.PathLike[str] | None = None,
    readonly: bool = False,
    keymap_path: str | os.PathLike[str] | None = None,
    key: str | None = None,
    out: TextIO = sys.stderr,
) -> int:
    """Serve the command center to browsers on 127.0.0.1:``port`` until interrupted.

    ``host`` must be a loopback address: the page can approve calls, so it is never exposed to
    the network (use an SSH tunnel). ``key`` defaults to a fresh random one (or
    ``$SENTINEL_WEB_KEY``). Returns the exit status.
    """
    if not _loopback_host(host):
        print(
            f"sentinel tui --web: refusing to listen on {host}: the command center is served on "
            "127.0.0.1 only; reach it with ssh -L",
            file=out,
        )
        return 2
    if not 0 < port < 65536:
        print(f"sentinel tui --web: --port {port} is not a port number", file=out)
        return 2
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        print("sentinel tui --web needs textual-serve: pip install 'sentinel-guard[web]'", file=out)
        return 2
    key = key or os.environ.get("SENTINEL_WEB_KEY") or secrets.token_urlsafe(24)
    db_path = child_db(db_path)
    server = _make_server(app_command(db_path, rules_path, readonly, keymap_path), port, key, out)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, typically
        print(
            f"sentinel tui --web: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
            file=out,
        )
        return 1
    return 0


def _child(args: argparse.Namespace) -> int:
    """Run the app inside textual-serve's web driver. Its stdin is a pipe, not a TTY, so the
    app's lost-terminal guard is off (the server ends the process when the tab closes), and
    decisions are recorded with channel ``web``."""
    from sentinel.identity import current_operator
    from sentinel_tui.app import SentinelApp

    app = SentinelApp(
        args.db,
        args.rules,
        args.readonly,
        keymap_path=args.keymap,
        watch_terminal=False,
        operator=current_operator(channel="web"),
    )
    code = app.run()
    return int(code or app.return_code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sentinel_tui.web [--port N] [--db PATH] …``."""
    parser = argparse.ArgumentParser(
        prog="python -m sentinel_tui.web", description="Serve the command center to a browser"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", default=None)
    parser.add_argument("--rules", default=None)
    parser.add_argument("--keymap", default=None)
    parser.add_argument("--readonly", action="store_true")
    parser.add_argument("--key", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    return serve_web(
        args.db,
        port=args.port,
        rules_path=args.rules,
        readonly=args.readonly,
        keymap_path=args.keymap,
        key=args.key,
    )


if __name__ == "__main__":
    sys.exit(main())
