"""The public API stays compatible with agentic-sentinel 0.1.0's README."""

from __future__ import annotations

import subprocess

import pytest

import sentinel
from sentinel import (
    SentinelBlockedError,
    SentinelConfigError,
    SentinelDeniedError,
    SentinelError,
    SentinelTimeoutError,
    SentinelValidationError,
)
from tests.helpers import PYTHON, ROOT, python_env


def test_public_names_exist() -> None:
    for name in (
        "protect",
        "SentinelConfig",
        "SentinelWrapper",
        "SentinelError",
        "SentinelBlockedError",
        "SentinelConfigError",
        "SentinelTimeoutError",
        "SentinelValidationError",
        "SentinelDeniedError",
        "ApprovalInterface",
        "ApprovalRequest",
        "ApprovalResult",
        "ApprovalStatus",
        "clear_wrapper_cache",
    ):
        assert getattr(sentinel, name) is not None, name
    with pytest.raises(AttributeError):
        sentinel.does_not_exist  # noqa: B018


def test_every_stopping_exception_is_a_blocked_error() -> None:
    assert issubclass(SentinelDeniedError, SentinelBlockedError)
    assert issubclass(SentinelTimeoutError, SentinelBlockedError)
    assert issubclass(SentinelBlockedError, SentinelError)
    assert issubclass(SentinelConfigError, SentinelError)
    assert issubclass(SentinelValidationError, SentinelError)


def test_blocked_error_carries_fields_and_renders_one_line() -> None:
    exc = SentinelBlockedError(
        "Deletes are disabled", "delete_user", agent_id="sales", rule_id="no_delete"
    )
    assert exc.function_name == "delete_user"
    assert exc.reason == "Deletes are disabled"
    assert exc.rule_id == "no_delete"
    assert exc.agent_id == "sales"
    text = str(exc)
    assert "\n" not in text
    assert text.startswith("[sales] Action 'delete_user' blocked: Deletes are disabled")
    assert "no_delete" in text


def test_timeout_error_keeps_original_signature() -> None:
    exc = SentinelTimeoutError("transfer", 30)
    assert exc.timeout_seconds == 30
    assert "timed out after 30s" in str(exc)
    assert isinstance(exc, SentinelBlockedError)


def test_denied_error_names_who() -> None:
    exc = SentinelDeniedError("too much", "transfer", decided_by="alice@host", request_id="abc")
    assert exc.decided_by == "alice@host"
    assert "denied" in str(exc) and "abc" in str(exc)


def test_validation_error_lists_errors() -> None:
    exc = SentinelValidationError("bad", ["a", "b"])
    assert exc.errors == ["a", "b"]


def test_import_has_no_side_effects(tmp_path) -> None:
    """The original ran load_dotenv() at import time; ours must not touch the environment."""
    (tmp_path / ".env").write_text("SENTINEL_INJECTED=1\nOPENAI_API_KEY=leaked\n")
    code = "import os, sentinel; print(os.environ.get('SENTINEL_INJECTED'), os.environ.get('OPENAI_API_KEY'))"
    env = python_env()
    env.pop("OPENAI_API_KEY", None)
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None", "None"]
    assert not (tmp_path / ".sentinel").exists()


def test_cli_version_runs() -> None:
    out = subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "--version"],
        cwd=ROOT,
        env=python_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"sentinel {sentinel.__version__}"


def test_protect_is_the_function_even_after_submodule_import() -> None:
    code = "import sentinel.protect, sentinel.integrations._common; from sentinel import protect; print(callable(protect) and protect.__module__)"
    out = subprocess.run([PYTHON, "-c", code], env=python_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "sentinel.protect"
