"""Operator keys: created 0600, never overwritten silently, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sentinel.errors import SentinelConfigError
from sentinel.trust.keys import default_key_path, generate_key, load_key, parse_public_key


def test_a_new_key_is_mode_0600_in_a_0700_folder_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "operator-key.pem"
    key = generate_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    loaded = load_key(path)
    assert loaded.public_key == key.public_key and loaded.key_id == key.key_id
    assert (
        key.public_key.startswith("ed25519:") and parse_public_key(key.public_key)[1] == key.key_id
    )
    assert [p.name for p in path.parent.iterdir()] == ["operator-key.pem"]  # no temp file left


def test_an_existing_key_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = generate_key(path)
    before = path.read_bytes()
    with pytest.raises(SentinelConfigError, match=r"already exists; it is kept.*--force"):
        generate_key(path)
    assert path.read_bytes() == before
    second = generate_key(path, force=True)
    assert second.public_key != first.public_key
    assert load_key(path).public_key == second.public_key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620])
def test_a_key_others_can_read_or_write_is_refused_naming_path_and_fix(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "k.pem"
    generate_key(path)
    os.chmod(path, mode)
    with pytest.raises(SentinelConfigError) as info:
        load_key(path)
    text = str(info.value)
    assert f"{path} has mode {mode:04o}" in text and f"chmod 600 {path}" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_key_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    generate_key(path)
    os.chown(path, 54321, 54321)
    with pytest.raises(SentinelConfigError, match=r"owned by uid 54321, not by this user"):
        load_key(path)


def test_missing_and_garbage_keys_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SentinelConfigError, match=r"does not exist.*sentinel operator init"):
        load_key(tmp_path / "none.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    os.chmod(bad, 0o600)
    with pytest.raises(SentinelConfigError, match=rf"{bad} is not an unencrypted PEM private key"):
        load_key(bad)


def test_default_key_path_follows_the_config_folder(tmp_path: Path) -> None:
    assert default_key_path({"SENTINEL_CONFIG_DIR": str(tmp_path)}) == tmp_path / "operator-key.pem"
    assert (
        default_key_path({"SENTINEL_OPERATOR_KEY": str(tmp_path / "x.pem")}) == tmp_path / "x.pem"
    )
    assert (
        default_key_path({"XDG_CONFIG_HOME": str(tmp_path)})
        == tmp_path / "sentinel" / "operator-key.pem"
    )


@pytest.mark.parametrize(
    "text, why",
    [
        ("ssh-ed25519 AAAA", "is not an 'ed25519:<base64>' public key"),
        ("ed25519:!!!!", "not valid base64"),
        ("ed25519:AAAA", "holds 3 bytes"),
    ],
)
def test_bad_public_keys_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_public_key(text)
