"""The ``sentinel tui`` / ``python -m sentinel_tui`` entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sentinel.cli import build_parser
from tests.helpers import python_env


def test_sentinel_tui_command_is_registered() -> None:
    args = build_parser().parse_args(["tui", "--db", "x.db", "--rules", "r.yaml", "--readonly", "--keymap", "k.toml"])
    assert (args.db, args.rules, args.readonly, args.keymap) == ("x.db", "r.yaml", True, "k.toml")
    assert callable(args.func)


def test_without_a_terminal_it_says_so_and_exits_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sentinel_tui", "--db", str(tmp_path / "s.db")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=python_env(), timeout=60,
    )
    assert out.returncode == 2
    assert "needs an interactive terminal" in out.stderr


def test_bad_settings_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "tui.toml"
    bad.write_text("confirm_value = 'lots'\n")
    from sentinel.errors import SentinelConfigError
    from sentinel_tui.app import SentinelApp

    try:
        SentinelApp(tmp_path / "s.db", None, keymap_path=bad)
    except SentinelConfigError as exc:
        assert "tui.toml" in str(exc) and "confirm_value" in str(exc)
    else:
        raise AssertionError("a bad settings file was accepted")
