"""``sentinel tui --web``: the command center served by textual-serve on loopback, behind a key,
loaded in headless Chromium (skipped cleanly when no Chromium is installed)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.store import NewRequest, Store
from sentinel_tui.web import _loopback_host, serve_web, startup_message
from tests.helpers import ROOT, python_env
from tests.server.browser import Browser, find_chromium, png_stats
from tests.webhook.receiver import free_port

KEY = "test-key-0123456789"
READY_JS = (  # textual.js marks <body> when the app's first frame arrives and when it ends
    "(() => { const b = document.body.classList;"
    " return b.contains('-first-byte') && !b.contains('-closed')"
    " && !document.querySelector('.-closed'); })()"
)


@dataclass
class WebServer:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def seed(db: Path) -> None:
    """Three realistic pending requests (they stay pending: this test process is their waiter)."""
    store = Store(db)
    rows = [
        (
            "transfer_funds",
            {"amount": 25000, "to": "acct-99 (new payee)", "api_key": "[REDACTED]"},
            25000.0,
            "billing-bot",
            "large_transfer",
            "Transfer of 25000 to acct-99 needs approval",
        ),
        (
            "deploy",
            {"environment": "production", "service": "payments"},
            None,
            "release-bot",
            "prod_deploy",
            "Production deploys need approval",
        ),
        (
            "send_email",
            {"to": "ceo@rival.example", "subject": "Q3 numbers"},
            None,
            "mail-bot",
            "external_email",
            "Email to outside address ceo@rival.example needs approval",
        ),
    ]
    for fn, args, value, agent, rule, reason in rows:
        store.submit(
            NewRequest(
                id=uuid.uuid4().hex,
                function=fn,
                arguments=args,
                digest=uuid.uuid4().hex * 2,
                timeout_seconds=3600,
                agent_id=agent,
                rule_id=rule,
                rule_ids=(rule,),
                reason=reason,
                value_at_risk=value,
            )
        )
    store.close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    pytest.importorskip("textual_serve")
    db = tmp_path / "home" / "sentinel.db"
    seed(db)
    port = free_port()
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel_tui.web",
                "--port",
                str(port),
                "--db",
                str(db),
                "--key",
                KEY,
            ],
            cwd=str(tmp_path),
            env=python_env(SENTINEL_HOME=str(tmp_path / "home")),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = WebServer(proc, port, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(server.url + "/", trust_env=False, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_the_page_needs_the_key_and_a_loopback_host(web: WebServer) -> None:
    def get(path: str, **kw: Any) -> httpx.Response:
        return httpx.get(web.url + path, trust_env=False, follow_redirects=False, **kw)

    assert get("/").status_code == 401
    assert get("/?key=wrong").status_code == 401
    assert get("/ws").status_code == 401
    assert get(f"/?key={KEY}", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    first = get(f"/?key={KEY}")
    assert first.status_code == 302 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = get("/", cookies={"sentinel_web_key": KEY})
    assert page.status_code == 200 and f"ws://127.0.0.1:{web.port}/ws" in page.text
    hijack = get(
        "/ws",
        cookies={"sentinel_web_key": KEY},
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert hijack.status_code == 403
    text = web.log.read_text()
    assert f"ssh -N -L {web.port}:127.0.0.1:{web.port}" in text


def test_the_command_center_renders_in_headless_chromium(web: WebServer, tmp_path: Path) -> None:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    out_dir = Path(os.environ.get("WEB_SCREENSHOT_DIR") or tmp_path)
    shot = out_dir / "web.png"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Browser(exe, profile, 1280, 800)
    try:
        ready = browser.screenshot(f"{web.url}/?key={KEY}", shot, READY_JS, timeout=30, settle=2.5)
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    assert ready is True, (
        "the app never sent its first frame, or the session ended:\n" + web.log.read_text()[-3000:]
    )
    width, height, colours = png_stats(shot)
    assert width >= 1000 and height >= 600
    assert colours > 300  # a rendered screen of text, not a blank page or a dialog


def test_serve_web_refuses_anything_but_loopback() -> None:
    out = io.StringIO()
    assert serve_web(host="0.0.0.0", out=out) == 2
    assert "127.0.0.1 only" in out.getvalue()
    assert (
        _loopback_host("127.0.0.1:8566")
        and _loopback_host("localhost:1")
        and _loopback_host("[::1]:9")
    )
    assert not _loopback_host("evil.example:8566") and not _loopback_host("10.0.0.1")
    assert "ssh -N -L 9000:127.0.0.1:9000" in startup_message(9000, "k")


_ = ROOT


def test_a_postgresql_url_never_reaches_the_child_command_line(tmp_path: Path) -> None:
    from sentinel_tui.web import app_command, child_db

    url = "postgresql://ops:Sup3rSecret@db.internal:5432/sentinel"
    env: dict[str, str] = {}
    given = child_db(url, env)
    assert given is None and env == {"SENTINEL_DB": url}  # inherited by the children instead
    assert "Sup3rSecret" not in app_command(given) and "postgresql" not in app_command(given)
    path = tmp_path / "s.db"
    assert child_db(path, env) == path and str(path) in app_command(child_db(path, {}))
