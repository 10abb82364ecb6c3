"""``sentinel serve`` token management and start-up refusals (real subprocesses)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sentinel.errors import SentinelConfigError
from sentinel.server.auth import TokenRegistry, parse_env_tokens
from tests.helpers import ROOT, python_env
from tests.server.conftest import config_dir_for, start_server


def sentinel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args],
        cwd=str(ROOT),
        env=python_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_token_prints_it_once_and_stores_only_a_hash(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    made = sentinel("serve", "--tokens", str(tokens), "--add-token", "alice")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("snt_") and len(token) > 40
    assert "only time" in made.stderr
    text = tokens.read_text()
    assert token not in text and "alice" in text
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert (
        sentinel(
            "serve", "--tokens", str(tokens), "--add-token", "bot", "--role", "agent"
        ).returncode
        == 0
    )
    listed = sentinel("serve", "--tokens", str(tokens), "--list-tokens").stdout
    assert "alice\toperator" in listed and "bot\tagent" in listed
    reg = TokenRegistry.load(tokens)
    principal = reg.authenticate(token)
    assert principal is not None and principal.name == "alice" and principal.is_operator
    assert reg.authenticate(token + "x") is None
    assert sentinel("serve", "--tokens", str(tokens), "--remove-token", "alice").returncode == 0
    assert TokenRegistry.load(tokens).authenticate(token) is None
    assert sentinel("serve", "--tokens", str(tokens), "--remove-token", "alice").returncode == 1


def test_a_file_token_opens_the_api(tmp_path: Path) -> None:
    config = config_dir_for(tmp_path)  # the default place: per-user configuration
    made = sentinel("serve", "--add-token", "carol", env={"SENTINEL_CONFIG_DIR": str(config)})
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    tokens = config / "api-tokens.json"
    assert str(tokens) in made.stderr and not (tmp_path / "home" / "api-tokens.json").exists()
    srv = start_server(
        tmp_path, db=tmp_path / "home" / "sentinel.db", extra_env={"SENTINEL_API_TOKENS": ""}
    )
    try:
        with srv.client(token) as c:
            assert c.get("/approvals/pending").status_code == 200
        assert httpx.get(f"{srv.url}/approvals/pending", trust_env=False).status_code == 401
        assert f"tokens file {tokens}, re-read when it changes" in srv.log.read_text()
    finally:
        srv.stop()


def test_serve_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    run = sentinel(
        "serve",
        "--port",
        "1",
        "--db",
        str(tmp_path / "x.db"),
        "--tokens",
        str(config_dir_for(tmp_path) / "none.json"),  # outside the database folder
    )
    assert run.returncode == 2
    assert "--add-token" in run.stderr


def test_bad_token_names_and_env_specs_are_named_errors(tmp_path: Path) -> None:
    bad = sentinel("serve", "--tokens", str(tmp_path / "t.json"), "--add-token", "bad name!")
    assert bad.returncode == 1 and "bad name!" in bad.stderr
    with pytest.raises(SentinelConfigError, match="item 2"):
        parse_env_tokens("a:snt_0123456789abcdef,broken")
    with pytest.raises(SentinelConfigError, match="role"):
        parse_env_tokens("a:snt_0123456789abcdef:admin")
    (tmp_path / "bad.json").write_text(json.dumps({"tokens": {"x": {"sha256": "nothex"}}}))
    with pytest.raises(SentinelConfigError, match="bad.json"):
        TokenRegistry.load(tmp_path / "bad.json")
