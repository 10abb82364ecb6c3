"""The API tokens file (issue 20.7): it sat in the database folder, which agents write to, so an
agent could add itself an operator token; a file others can write was used as is; and the server
read it once, so neither a withdrawn token nor a broken file ever changed what it accepted.

Every test runs a real ``sentinel serve`` process and talks to it over real HTTP; the tokens file
is written by the real ``sentinel serve --add-token`` where an operator would do it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sentinel.server.auth import hash_token
from tests.helpers import ROOT, python_env
from tests.server.conftest import ApiServer, config_dir_for, start_server

FILE_ONLY = {"SENTINEL_API_TOKENS": "", "SENTINEL_WEBHOOK_SECRET": ""}
MALLORY = "snt_mallory-gave-herself-an-operator-token"
OTHER_UID = 4321  # not this process's user, not root (the tests run as root: chown works)


def sentinel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args],
        cwd=str(ROOT),
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_token(config: Path, name: str, role: str = "operator") -> str:
    """``sentinel serve --add-token`` into ``config``/api-tokens.json (named explicitly, so the
    servers below read the same file on the code before the fix too)."""
    made = sentinel(
        "serve", "--tokens", str(config / "api-tokens.json"), "--add-token", name, "--role", role,
        env={"SENTINEL_CONFIG_DIR": str(config)},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def status(server: ApiServer, token: str) -> int:
    with server.client(token) as c:
        return c.get("/approvals/pending").status_code


def wait_for(check: object, what: str) -> None:
    """Wait (bounded) for a change the server must pick up; no timing is asserted."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never {what}")


def with_operator(text: str, name: str, token: str) -> str:
    data = json.loads(text)
    data["tokens"][name] = {"sha256": hash_token(token), "role": "operator", "created_at": None}
    return json.dumps(data, indent=2) + "\n"


def tokens_arg(tmp: Path) -> list[str]:
    return ["--tokens", str(config_dir_for(tmp) / "api-tokens.json")]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ApiServer, Path, str]]:
    """A server whose only credential is alice's token in the default (config) tokens file."""
    config = config_dir_for(tmp_path)
    alice = add_token(config, "alice")
    server = start_server(tmp_path, extra_env=FILE_ONLY, args=tokens_arg(tmp_path))
    assert status(server, alice) == 200
    yield server, config / "api-tokens.json", alice
    server.stop()


def test_the_default_tokens_file_is_not_in_the_database_folder(tmp_path: Path) -> None:
    db_folder, xdg = tmp_path / "db", tmp_path / "xdg"
    made = sentinel(
        "serve",
        "--add-token",
        "alice",
        env={"SENTINEL_HOME": str(db_folder), "XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)},
    )
    assert made.returncode == 0, made.stderr
    assert not (db_folder / "api-tokens.json").exists()
    tokens = xdg / "sentinel" / "api-tokens.json"
    assert tokens.is_file() and str(tokens) in made.stderr
    assert (tokens.stat().st_mode & 0o777, tokens.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_a_tokens_file_at_the_old_place_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """An agent wrote <db folder>/api-tokens.json with its own operator token, mode 0600 and
    owned by the same user: nothing about the file shows it, so the place alone refuses it."""
    db = tmp_path / "home" / "sentinel.db"
    db.parent.mkdir()
    legacy = db.parent / "api-tokens.json"
    legacy.write_text(with_operator('{"version": 1, "tokens": {}}', "mallory", MALLORY))
    legacy.chmod(0o600)
    with pytest.raises(RuntimeError) as refused:
        start_server(tmp_path, db=db, extra_env=FILE_ONLY).stop()
    message = str(refused.value)
    assert str(legacy) in message and "agents write" in message and "mallory" in message
    assert f"mv -n {legacy} {config_dir_for(tmp_path) / 'api-tokens.json'}" in message
    # An explicit --tokens into the database folder is refused as well.
    run = sentinel(
        "serve", "--db", str(db), "--tokens", str(legacy), "--list-tokens",
        env={"SENTINEL_CONFIG_DIR": str(config_dir_for(tmp_path))},
    )  # fmt: skip
    assert run.returncode == 1 and "inside the database folder" in run.stderr


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("file 0666", "has mode 0666: writable by group and others"),
        ("file 0620", "has mode 0620: writable by group"),
        ("folder 0775", "has mode 0775: writable by group"),
        ("folder 0777", "has mode 0777: writable by group and others"),
        ("file owner", f"is owned by uid {OTHER_UID}"),
        ("folder owner", f"is owned by uid {OTHER_UID}"),
    ],
)
def test_a_tokens_file_others_could_write_is_refused(
    tmp_path: Path, change: str, shown: str
) -> None:
    config = config_dir_for(tmp_path)
    add_token(config, "alice")
    tokens = config / "api-tokens.json"
    what, how = change.split()
    target = tokens if what == "file" else config
    if how == "owner":
        os.chown(target, OTHER_UID, -1)
    else:
        target.chmod(int(how, 8))
    with pytest.raises(RuntimeError) as refused:
        start_server(tmp_path, extra_env=FILE_ONLY, args=tokens_arg(tmp_path)).stop()
    assert f"{target} {shown}" in str(refused.value)
    assert str(target) in str(refused.value)


def test_a_half_written_tokens_file_keeps_the_last_good_tokens(
    served: tuple[ApiServer, Path, str],
) -> None:
    server, tokens, alice = served
    bob = "snt_bob-new-operator-token-0123456789"
    full = with_operator(tokens.read_text(), "bob", bob)
    # A non-atomic writer (an editor, `>`): the file is cut halfway through for a while.
    with open(tokens, "w") as fh:
        fh.write(full[: len(full) // 2])
    assert status(server, alice) == 200  # the last good tokens are still in force
    assert status(server, bob) == 401
    assert "keeping the last good tokens" in server.log.read_text()
    assert str(tokens) in server.log.read_text()
    # The writer finishes: the complete file goes into force without a restart.
    with open(tokens, "w") as fh:
        fh.write(with_operator(full, "bob", bob).replace('"alice"', '"alice-old"'))
    wait_for(lambda: status(server, bob) == 200, "accepted the completed file")
    assert status(server, alice) == 200  # still in the file (under its new name)
    tokens.write_text(json.dumps({"version": 1, "tokens": {}}))
    wait_for(lambda: status(server, bob) == 401, "withdrew a token removed from the file")
    assert status(server, alice) == 401


def test_a_tokens_file_made_writable_or_replaced_by_another_user_changes_nothing(
    served: tuple[ApiServer, Path, str],
) -> None:
    server, tokens, alice = served
    forged = with_operator(tokens.read_text(), "mallory", MALLORY)
    tokens.write_text(forged)
    tokens.chmod(0o666)  # the edit shows, but so does who could have made it
    assert status(server, MALLORY) == 401
    assert status(server, alice) == 200
    log = server.log.read_text()
    assert f"{tokens} has mode 0666" in log and "keeping the last good tokens" in log
    # Replaced by a file of another user (e.g. renamed in through a writable folder).
    other = tokens.with_name("forged.json")
    other.write_text(forged)
    other.chmod(0o600)
    os.chown(other, OTHER_UID, -1)
    os.replace(other, tokens)
    assert status(server, MALLORY) == 401
    assert status(server, alice) == 200
    assert f"owned by uid {OTHER_UID}" in server.log.read_text()


def test_deleting_the_tokens_file_closes_the_api(served: tuple[ApiServer, Path, str]) -> None:
    server, tokens, alice = served
    tokens.unlink()
    wait_for(lambda: status(server, alice) == 401, "withdrew the tokens of a deleted file")
    assert httpx.get(f"{server.url}/approvals/pending", trust_env=False).status_code == 401
    assert status(server, alice) == 401  # and stays closed
    assert "was removed" in server.log.read_text()
