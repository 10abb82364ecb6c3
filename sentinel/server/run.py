"""Run the approval API with uvicorn: loopback by default, loud when told otherwise."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from sentinel.errors import SentinelConfigError
from sentinel.store.location import PgLocation, describe

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _require_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise SentinelConfigError(
            "sentinel serve needs starlette and uvicorn, which are not installed",
            hint="pip install 'sentinel-guard[serve]'",
        ) from None


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db_path: Path | PgLocation,
    tokens_path: Path | None,
    secret: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    notify: bool = True,
    notify_all: bool = False,
    service_key: Path | None = None,
    out: TextIO = sys.stderr,
) -> int:
    """Serve the API until interrupted. Returns the exit status.

    ``service_key`` (default ``$SENTINEL_SERVICE_KEY``, else ``service-key.pem`` in the
    configuration folder) signs API decisions; when the operators file lists operators and the
    key is missing or not trusted as a service, SentinelConfigError is raised before anything
    listens (see :mod:`sentinel.server.signing`)."""
    _require_extra()
    import uvicorn

    from sentinel.server.app import ServerSettings, create_app
    from sentinel.server.auth import TOKENS_ENV, TokenRegistry, check_outside_db_folder
    from sentinel.server.signing import ServiceSigning

    if tokens_path is not None:  # also for callers other than the CLI: agents write there
        check_outside_db_folder(tokens_path, db_path)
    tokens = TokenRegistry.load(tokens_path, os.environ.get(TOKENS_ENV))
    if not len(tokens) and not secret:
        print(
            "sentinel serve: no credentials configured, so every request would be refused.\n"
            f"  create a token:  sentinel serve --add-token NAME{'' if tokens_path is None else f' --tokens {tokens_path}'}\n"
            f"  or set {TOKENS_ENV}=name:token (and/or SENTINEL_WEBHOOK_SECRET for signed agents)",
            file=out,
        )
        return 2
    if bool(tls_cert) != bool(tls_key):
        print("sentinel serve: --tls-cert and --tls-key go together", file=out)
        return 2
    # Before anything listens: an API whose approvals every waiting call would refuse is refused.
    signing = ServiceSigning.load(service_key)
    scheme = "https" if tls_cert else "http"
    shown_host = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{shown_host}:{port}"
    if not is_loopback(host):
        bar = "!" * 78
        print(
            f"{bar}\n"
            f"WARNING: sentinel serve is listening on {host}, not on loopback.\n"
            "Anyone who can reach this port can try tokens against your approval queue.\n"
            + (
                "Traffic is NOT encrypted (no --tls-cert): tokens and decisions cross the network in clear.\n"
                if not tls_cert
                else ""
            )
            + "Prefer --host 127.0.0.1 with an SSH tunnel: ssh -L "
            f"{port}:127.0.0.1:{port} <this host>\n{bar}",
            file=out,
        )

    notifier = None
    hints: Any = None
    if notify or notify_all:
        from sentinel.notify import notify_pending

        hints = SimpleNamespace(
            notify_decide_url=os.environ.get("SENTINEL_NOTIFY_DECIDE_URL") or base, db_path=db_path
        )

        def notifier(store: Any, record: Any) -> None:
            notify_pending(hints, record, store)

    settings = ServerSettings(
        db_path=db_path,
        tokens=tokens,
        secret=secret,
        notify=notifier,
        notify_all=hints if notify_all else None,
        signing=signing,
    )
    app = create_app(settings)
    print(
        f"sentinel serve: approval API on {base} (database {describe(db_path)}, "
        f"{len(tokens)} token(s){', signatures accepted' if secret else ''}"
        f"{'' if tokens_path is None else f'; tokens file {tokens_path}, re-read when it changes'})\n"
        f"  {signing.mode}\n"
        f"  agents:    SENTINEL_WEBHOOK_URL={base}/approval "
        f"SENTINEL_STATUS_URL='{base}/approval/{{action_id}}/status'\n"
        f"  operators: curl -H 'Authorization: Bearer <token>' {base}/approvals/pending",
        file=out,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback", "serve"]
