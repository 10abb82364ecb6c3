"""``sentinel operator ...`` in real processes: what they print, write and refuse."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from sentinel.trust import load_key, load_operators, sign_decision, verify_decision
from tests.helpers import PYTHON, ROOT, python_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "etc").mkdir(mode=0o755)
    env = python_env(
        SENTINEL_CONFIG_DIR=str(tmp_path / "cfg"),
        SENTINEL_OPERATORS_FILE=str(tmp_path / "etc" / "operators.json"),
    )
    env.pop("SENTINEL_OPERATOR_KEY")  # the key goes to the default place in SENTINEL_CONFIG_DIR
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "operator", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_init_add_list_revoke_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    init = run(env, "init", "--name", "alice")
    assert init.returncode == 0, init.stderr
    line = init.stdout.strip()
    assert line.startswith("sentinel operator add alice --key ed25519:")
    key_path = tmp_path / "cfg" / "operator-key.pem"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert f"private key written to {key_path} (mode 0600" in init.stderr

    again = run(env, "init")
    assert again.returncode == 1 and "already exists; it is kept" in again.stderr
    assert "--force" in again.stderr

    add = run(env, *line.split()[2:], "--group", "finance")
    assert add.returncode == 0, add.stderr
    assert "operator 'alice' trusted (groups: finance)" in add.stderr

    listed = json.loads(run(env, "list", "--json").stdout)
    (entry,) = listed["operators"]
    assert entry["name"] == "alice" and entry["groups"] == ["finance"]
    assert entry["revoked_at"] is None and entry["public_key"] == line.split()[-1]
    plain = run(env, "list")
    assert plain.stdout.startswith("alice\tfinance\ted25519:") and "active" in plain.stdout

    # the key made by init signs decisions the file written by add verifies
    ops = Path(env["SENTINEL_OPERATORS_FILE"])
    fields = dict(request_id="r1", digest="d" * 64, verdict="deny", operator="alice",
                  decided_at=10.0, expires_at=20.0)  # fmt: skip
    sig = sign_decision(load_key(key_path), **fields)
    assert verify_decision(load_operators(ops), sig, **fields).groups == ("finance",)

    rev = run(env, "revoke", "alice")
    assert rev.returncode == 0 and "operator 'alice' revoked" in rev.stderr
    assert "revoked" in run(env, "list").stdout
    assert run(env, "revoke", "alice").returncode == 1


def test_errors_are_named(env: dict[str, str], tmp_path: Path) -> None:
    bad = run(env, "add", "bob", "--key", "ed25519:AAAA")
    assert bad.returncode == 1
    assert "sentinel operator: operator 'bob': field 'public_key'" in bad.stderr
    assert "holds 3 bytes" in bad.stderr
    assert not Path(env["SENTINEL_OPERATORS_FILE"]).exists()

    missing = run(env, "revoke", "bob")
    assert missing.returncode == 1 and "does not exist" in missing.stderr

    init = run(env, "init", "--name", "bob")
    assert run(env, *init.stdout.split()[2:]).returncode == 0
    ops = Path(env["SENTINEL_OPERATORS_FILE"])
    os.chmod(ops, 0o666)
    refused = run(env, "list")
    assert refused.returncode == 1
    assert f"operators file {ops} has mode 0666: writable by group and others" in refused.stderr
    assert f"chmod 644 {ops}" in refused.stderr
    os.chmod(ops, 0o644)
    ops.write_text("{broken")
    broken = run(env, "list", "--json")
    assert broken.returncode == 1 and f"operators file {ops} is not valid JSON" in broken.stderr


def test_init_with_an_explicit_key_path_and_force(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "mine" / "k.pem"
    first = run(env, "init", "--key", str(path))
    assert first.returncode == 0, first.stderr
    second = run(env, "init", "--key", str(path), "--force")
    assert second.returncode == 0 and second.stdout != first.stdout
    assert load_key(path).public_key == second.stdout.split()[-1]


def test_service_key_init_add_list(env: dict[str, str], tmp_path: Path) -> None:
    init = run(env, "init", "--service")
    assert init.returncode == 0, init.stderr
    line = init.stdout.strip()
    assert line.startswith("sentinel operator add sentinel-serve --service --key ed25519:")
    key_path = tmp_path / "cfg" / "service-key.pem"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert f"service key written to {key_path} (mode 0600" in init.stderr
    assert not (tmp_path / "cfg" / "operator-key.pem").exists()
    assert run(env, "init", "--service").returncode == 1  # never replaced without --force

    grouped = run(env, *line.split()[2:], "--group", "finance")
    assert grouped.returncode == 1
    assert "operator 'sentinel-serve': field 'groups': a service key has no groups" in grouped.stderr
    add = run(env, *line.split()[2:])
    assert add.returncode == 0, add.stderr
    assert "service 'sentinel-serve' trusted, key id ed25519:" in add.stderr
    (entry,) = load_operators(Path(env["SENTINEL_OPERATORS_FILE"])).operators
    assert entry.is_service and entry.public_key == line.split()[-1]
    assert load_key(key_path).key_id == entry.key_id

    person = run(env, "init", "--name", "alice")
    assert run(env, *person.stdout.split()[2:]).returncode == 0
    rows = run(env, "list").stdout.splitlines()
    assert rows[0].startswith("sentinel-serve\t-\ted25519:") and rows[0].endswith("\tactive\tservice")
    assert rows[1].startswith("alice\t-\t") and rows[1].endswith("\toperator")
    kinds = {o["name"]: o["kind"] for o in json.loads(run(env, "list", "--json").stdout)["operators"]}
    assert kinds == {"sentinel-serve": "service", "alice": "operator"}

    other = tmp_path / "srv" / "k.pem"
    explicit = run({**env, "SENTINEL_SERVICE_KEY": str(tmp_path / "env.pem")}, "init", "--service",
                   "--key", str(other), "--name", "api2")  # fmt: skip
    assert explicit.returncode == 0 and f"--service-key {other}" in explicit.stderr
    assert explicit.stdout.startswith("sentinel operator add api2 --service --key ")
    assert other.exists() and not (tmp_path / "env.pem").exists()
