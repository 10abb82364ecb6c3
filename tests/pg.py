"""A real, throwaway PostgreSQL server for the test suite (issue 17: the PostgreSQL backend).

One cluster per test session: ``initdb`` into a temporary folder, the server started on a Unix
socket in that folder and on a free loopback port, every test that asks gets its own database
(created from a template, dropped afterwards), and the server is stopped when the session ends.

``initdb`` and ``postgres`` refuse to run as root, and the suite runs as root in CI: then the
cluster belongs to the ``postgres`` OS user (the folder is chowned to it and both programs run
under ``setpriv``). A small watchdog process is the server's parent and stops it when the session
goes, so a test run that is killed outright still leaves no server behind.

Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the data is thrown
away at the end, and speed is what the suite needs from it. Authentication is real: the test role
logs in with a password (SCRAM) on the socket and on the port; only the ``postgres`` superuser,
on the socket, is trusted, for administration.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

#: Oldest server this suite runs against (the image ships 15).
MIN_VERSION = 15
#: The OS user that owns the cluster when the suite runs as root.
OS_USER = "postgres"
#: The database superuser (trusted on the socket only) and the role tests log in as.
SUPERUSER = "postgres"
TEST_ROLE = "sentinel"
#: Every per-test database is a copy of this one (a backend can migrate its schema into it once).
TEMPLATE = "sentinel_template"
#: Folders of sessions that died without cleaning up are removed once this old (seconds).
STALE_AFTER = 600
PREFIX = "sentinel-pg-"
START_TIMEOUT = 30.0
#: The watchdog's worst case: fast shutdown (30 s), immediate (10 s), kill (10 s).
STOP_TIMEOUT = 60.0

_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # The torture test runs 8 agent processes with pools, plus deciders and the command center.
    "max_connections": "200",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_timezone": "UTC",
    "timezone": "UTC",
}

#: What ``PgCluster.start(durable=True)`` leaves at the server's (durable) defaults.
_NOT_DURABLE = ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "max_wal_senders")

_HBA = f"""\
# Written by tests/pg.py: the superuser is trusted on the socket, everyone else needs a password.
local   all   {SUPERUSER}   trust
local   all   all           scram-sha-256
host    all   all           127.0.0.1/32   scram-sha-256
"""


class PostgresUnavailable(RuntimeError):
    """The throwaway server cannot be set up or started here (the message says why and what to do)."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres`` of PostgreSQL >= MIN_VERSION.

    ``$PG_BINDIR`` if set, else the folder of an ``initdb`` on ``PATH``, else the newest
    ``/usr/lib/postgresql/N/bin`` (Debian keeps the server programs off ``PATH``).
    """
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit() and (p / "bin").is_dir()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    found = []
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            version = _major_version(bindir)
            if version >= MIN_VERSION:
                return bindir
            found.append(f"{bindir} (PostgreSQL {version})")
    raise PostgresUnavailable(
        f"no PostgreSQL >= {MIN_VERSION} server programs (initdb, postgres) found"
        + (f"; too old: {', '.join(found)}" if found else "")
        + ": `make test` installs them (apt-get install postgresql), or set PG_BINDIR"
    )


def _major_version(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\b(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sweep_stale(parent: Path) -> None:
    """Remove the folders of earlier sessions that were killed before they could clean up.

    Their servers are gone already (the parent-death signal); a folder whose server still runs,
    or that is young (another session may be setting it up), is left alone.
    """
    for folder in parent.glob(PREFIX + "*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_AFTER:
                continue
            pidfile = folder / "data" / "postmaster.pid"
            if pidfile.exists():
                pid = int(pidfile.read_text().split("\n", 1)[0])
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 0)
                    continue
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue


@dataclass
class PgCluster:
    """A running throwaway cluster. Use :meth:`start` (a context manager) to get one."""

    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    bindir: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str, *, via_socket: bool = False) -> str:
        """The test role's URL for ``dbname``: loopback TCP, or the Unix socket."""
        auth = f"{TEST_ROLE}:{quote(self.password, safe='')}"
        if via_socket:
            return (
                f"postgresql://{auth}@/{dbname}?host={quote(str(self.socket_dir))}&port={self.port}"
            )
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin_url(self, dbname: str = "postgres") -> str:
        """The superuser's URL (socket, trusted): for roles, grants and killing backends."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={quote(str(self.socket_dir))}&port={self.port}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection (close it, or use it as a context manager)."""
        return psycopg.connect(self.admin_url(dbname), autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None) -> str:
        """Create a database owned by the test role (a copy of TEMPLATE); returns its name."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    sql.Identifier(name),
                    sql.Identifier(TEMPLATE),
                    sql.Identifier(TEST_ROLE),
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whatever is still connected to it."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database for one test: yields its URL, drops it afterwards."""
        name = self.create_database()
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def server_pid(self) -> int | None:
        """The postmaster's pid (None while it is down)."""
        try:
            return int((self.root / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (fast shutdown: every session ends), keep it down ``down_for``
        seconds, start it again on the same port and data; returns once it accepts connections.
        Only for a cluster of the test's own: other tests share the session's."""
        before = self.server_pid()
        assert self.process.stdin is not None
        self.process.stdin.write(f"restart {down_for:g}\n".encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + START_TIMEOUT + STOP_TIMEOUT + down_for
        while time.monotonic() < deadline:
            pid = self.server_pid()
            if pid is not None and pid != before and _wait_ready(self):
                return
            time.sleep(0.05)
        raise PostgresUnavailable(f"the test server did not come back:\n{_log_tail(self.log_path)}")

    @classmethod
    @contextlib.contextmanager
    def start(cls, parent: Path | None = None, *, durable: bool = False) -> Iterator[PgCluster]:
        """initdb, start, yield the running cluster; stop it and remove its folder on exit.

        ``durable``: the server's default durability (fsync, synchronous commit, full page
        writes on), for benchmarks whose figures must hold for a real server."""
        bindir = find_bindir()
        parent = parent or Path(tempfile.gettempdir())
        _sweep_stale(parent)
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        try:
            as_user = _prepare_owner(root)
            password = secrets.token_hex(16)
            _initdb(bindir, root, as_user)
            cluster = _launch(cls, bindir, root, as_user, password, durable)
            try:
                _provision(cluster)
                yield cluster
            finally:
                _stop(cluster.process)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _prepare_owner(root: Path) -> list[str]:
    """Make ``root`` the cluster owner's; returns the command prefix that runs as that owner."""
    (root / "socket").mkdir()
    if os.geteuid() != 0:
        return []
    try:
        owner = pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"the suite runs as root and initdb refuses root, but there is no {OS_USER!r} OS user "
            "to own the test cluster (installing the postgresql package creates it)"
        ) from None
    for path in (root, root / "socket"):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    as_owner = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"]
    if subprocess.run([*as_owner, "test", "-w", str(root)], check=False).returncode != 0:
        raise PostgresUnavailable(
            f"the {OS_USER!r} OS user cannot write {root} (is a parent folder closed to it? "
            "set TMPDIR to a folder it can reach)"
        )
    return as_owner


def _env() -> dict[str, str]:
    # libpq variables of whoever runs the suite must not redirect the server or its clients.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _initdb(bindir: Path, root: Path, as_user: list[str]) -> None:
    command = [
        *as_user, str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
        "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
        "--no-sync", "--no-instructions",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=root, env=_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"initdb failed in {root} (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    hba = root / "data" / "pg_hba.conf"
    hba.write_text(_HBA, encoding="utf-8")
    stat = (root / "data").stat()
    os.chown(hba, stat.st_uid, stat.st_gid)


#: The server's parent: it starts the postmaster and, once its stdin closes (the session ended,
#: or died without a teardown, even by SIGKILL), stops it and reaps it. PostgreSQL clears a
#: parent-death signal set for it, so it cannot watch the session itself. A line
#: ``restart <seconds down>`` on its stdin stops the server (fast shutdown: every session ends)
#: and starts it again on the same port and data (PgCluster.restart, for fault tests).
_WATCHDOG = r"""
import queue, shutil, signal, subprocess, sys, threading, time

signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the session's teardown stops us
root, command = sys.argv[1], sys.argv[2:]

def start():
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

def stop(server):
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
        try:
            server.send_signal(sig)
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue

requests = queue.Queue()

def read():
    for line in sys.stdin:
        requests.put(line.split())
    requests.put(None)  # the session is gone

threading.Thread(target=read, daemon=True).start()
server = start()
while True:
    if server.poll() is not None:
        sys.exit(server.returncode)  # it did not start (or died): the session reads the log
    try:
        request = requests.get(timeout=0.2)
    except queue.Empty:
        continue
    if request is None:
        break
    if request and request[0] == "restart":
        stop(server)
        time.sleep(float(request[1]) if len(request) > 1 else 0.0)
        server = start()
stop(server)
shutil.rmtree(root, ignore_errors=True)
"""


def _launch(
    cls: type[PgCluster],
    bindir: Path,
    root: Path,
    as_user: list[str],
    password: str,
    durable: bool = False,
) -> PgCluster:
    """Start the server under its watchdog; retry on a port taken meanwhile."""
    last = ""
    for _ in range(3):
        port = _free_port()
        settings = {**_SETTINGS, "port": str(port), "unix_socket_directories": str(root / "socket")}
        if durable:
            for key in _NOT_DURABLE:
                settings.pop(key)
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        command = [*as_user, str(bindir / "postgres"), "-D", str(root / "data"), *options]
        log = (root / "server.log").open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(root), *command],
                cwd=root, env=_env(), stdin=subprocess.PIPE, stdout=log, stderr=log,
            )  # fmt: skip
        finally:
            log.close()
        cluster = cls(root=root, port=port, password=password, process=process, bindir=bindir)
        if _wait_ready(cluster):
            return cluster
        _stop(process)
        last = _log_tail(root / "server.log")
        if "could not bind" not in last and "already in use" not in last:
            break
    raise PostgresUnavailable(f"the test PostgreSQL server in {root} did not start:\n{last}")


def _wait_ready(cluster: PgCluster) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if cluster.process.poll() is not None:
            return False
        try:
            with psycopg.connect(cluster.admin_url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


def _provision(cluster: PgCluster) -> None:
    """The test role (password, may create databases) and the template its databases copy."""
    with cluster.admin() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(TEST_ROLE), sql.Literal(cluster.password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} IS_TEMPLATE true").format(
                sql.Identifier(TEMPLATE), sql.Identifier(TEST_ROLE)
            )
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog to stop the server (fast shutdown) and wait until both are gone."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no server log at {path})"
