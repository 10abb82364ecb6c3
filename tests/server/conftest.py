"""A real ``sentinel serve`` process on a free loopback port, and an HTTP client for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.trust import OperatorKey, add_operator, generate_key, load_operators
from tests.helpers import ROOT, python_env
from tests.webhook.receiver import free_port

ALICE = "snt_alice-operator-token-0123456789"
BOB = "snt_bob-operator-token-0123456789ab"
BOT = "snt_bot-agent-token-0123456789abcdef"
SECRET = "server-test-secret"
TOKENS_ENV = f"alice:{ALICE},bob:{BOB},bot:{BOT}:agent"


@dataclass
class ApiServer:
    proc: subprocess.Popen[bytes]
    url: str
    db: Path
    log: Path

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, trust_env=False, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_pending(
    api: ApiServer, token: str, agent_id: str = "e2e-agent", timeout: float = 20
) -> dict[str, Any]:
    """The first request of ``agent_id`` listed by ``GET /approvals/pending`` (as ``token``)."""
    deadline = time.monotonic() + timeout
    with api.client(token) as c:
        while time.monotonic() < deadline:
            rows = [
                r
                for r in c.get("/approvals/pending", params={"limit": 10000}).json()
                if r["agent_id"] == agent_id
            ]
            if rows:
                return rows[0]
            time.sleep(0.05)
    raise AssertionError("the agent's request never showed up in /approvals/pending")


def result_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The ``result`` line an agent process printed (killed if it does not end in 30 s)."""
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    results = [
        x for x in (json.loads(line) for line in out.splitlines() if line.strip())
        if x["event"] == "result"
    ]  # fmt: skip
    assert results, f"no result from the agent: {out!r} {err!r}"
    return results[0]


def config_dir_for(tmp: Path) -> Path:
    """The per-user config folder of a test's server: beside ``tmp``, which holds the database
    (a tokens file inside the database folder is refused)."""
    return tmp.with_name(tmp.name + "-config")


def trust_service_key(config: Path, operators: Path, name: str = "sentinel-serve") -> OperatorKey:
    """Make the server's service key at its default place (``service-key.pem`` in ``config``)
    and trust it in ``operators`` as kind service, as ``sentinel operator init --service`` and
    ``sentinel operator add NAME --service`` do."""
    key = generate_key(config / "service-key.pem", force=True)
    add_operator(operators, name, key.public_key, kind="service")
    return key


def _needs_service_key(env: dict[str, str], config: Path) -> Path | None:
    """The operators file the server will read when it lists operators but no service key the
    server has (signing is expected, so serve would refuse to start), else None."""
    if env.get("SENTINEL_SERVICE_KEY"):
        return None
    ops = Path(env.get("SENTINEL_OPERATORS_FILE") or config / "operators.json")
    if not ops.exists():
        return None
    trusted = load_operators(ops)
    if not trusted.operators or any(op.is_service for op in trusted.operators):
        return None
    return ops


def start_server(
    tmp: Path,
    db: Path | None = None,
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> ApiServer:
    """Start ``python -m sentinel.cli serve`` and wait until /health answers."""
    port = free_port()
    db = db or tmp / "sentinel.db"
    log = tmp / f"serve-{port}.log"
    settings = {
        "SENTINEL_API_TOKENS": TOKENS_ENV,
        "SENTINEL_WEBHOOK_SECRET": SECRET,
        "SENTINEL_HOME": str(tmp / "home"),
        # The default tokens file is per-user configuration: keep tests out of the real one.
        "SENTINEL_CONFIG_DIR": str(config_dir_for(tmp)),
        **(extra_env or {}),
    }
    env = python_env(**settings)
    ops = _needs_service_key(env, config_dir_for(tmp))
    if ops is not None:
        trust_service_key(config_dir_for(tmp), ops)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(db),
                *(args or []),
            ],
            cwd=str(ROOT),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ApiServer(proc, f"http://127.0.0.1:{port}", db, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sentinel serve exited {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1, trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sentinel serve did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()
