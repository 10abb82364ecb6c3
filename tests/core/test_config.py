"""SentinelConfig: original field names and defaults, SENTINEL_* variables, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel import SentinelConfig, SentinelConfigError
from sentinel.config import ENVIRONMENT

RULES = "default_action: allow\nrules: []\n"


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(RULES)


def test_original_defaults(rules: Path) -> None:
    cfg = SentinelConfig(rules_path=rules)
    assert cfg.fail_mode == "secure"
    assert cfg.timeout_seconds == 300
    assert cfg.agent_id is None
    assert cfg.audit_log is False
    assert cfg.audit_log_dir == Path("sentinel_logs")
    assert cfg.anomaly_detection is False
    assert cfg.anomaly_statistical is True
    assert cfg.anomaly_escalation_threshold == 7.0
    assert cfg.anomaly_block_threshold == 9.0
    assert cfg.approval_interface == "queue"


def test_rules_path_accepts_str(rules: Path) -> None:
    assert SentinelConfig(rules_path=str(rules)).rules_path == rules


def test_rules_path_from_environment(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_RULES_PATH", str(rules))
    assert SentinelConfig().rules_path == rules


def test_rules_path_defaults_to_rules_yaml_in_cwd(
    rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(rules.parent)
    assert SentinelConfig().rules_path == Path("rules.yaml")


def test_missing_rules_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SentinelConfigError) as info:
        SentinelConfig(rules_path=tmp_path / "nope.yaml")
    assert info.value.field == "rules_path"
    assert "nope.yaml" in str(info.value)
    assert "SENTINEL_RULES_PATH" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"fail_mode": "open"}, "fail_mode", "'secure' or 'safe'"),
        ({"approval_interface": "slack"}, "approval_interface", "queue, terminal, webhook"),
        ({"approval_interface": 42}, "approval_interface", "ApprovalInterface"),
        ({"timeout_seconds": 0}, "timeout_seconds", "positive"),
        ({"timeout_seconds": "soon"}, "timeout_seconds", "positive"),
        ({"anomaly_block_threshold": 11}, "anomaly_block_threshold", "0 to 10"),
        ({"anomaly_llm_provider": "x"}, "anomaly_llm_provider", "openai"),
    ],
)
def test_invalid_values_name_the_field(rules: Path, kwargs: dict, field: str, needle: str) -> None:
    with pytest.raises(SentinelConfigError) as info:
        SentinelConfig(rules_path=rules, **kwargs)
    assert info.value.field == field
    assert needle in str(info.value)


def test_every_documented_variable_is_read(
    rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "SENTINEL_RULES_PATH": str(rules),
        "SENTINEL_APPROVAL_INTERFACE": "terminal",
        "SENTINEL_FAIL_MODE": "safe",
        "SENTINEL_TIMEOUT": "42",
        "SENTINEL_AGENT_ID": "billing",
        "SENTINEL_HOME": str(tmp_path / "h"),
        "SENTINEL_AUDIT_LOG": "true",
        "SENTINEL_LOG_DIR": str(tmp_path / "logs"),
        "SENTINEL_AUDIT_SYNC": "1",
        "SENTINEL_ANOMALY": "yes",
        "SENTINEL_WEBHOOK_URL": "https://hooks.example/approve",
        "SENTINEL_STATUS_URL": "https://hooks.example/status/{action_id}",
        "SENTINEL_WEBHOOK_TOKEN": "tok",
        "SENTINEL_WEBHOOK_SECRET": "sekrit",
        "SENTINEL_WEBHOOK_TIMEOUT": "3",
        "SENTINEL_POLL_INTERVAL": "0.5",
        "SENTINEL_REQUIRE_SIGNED": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = SentinelConfig()
    assert cfg.rules_path == rules
    assert cfg.approval_interface == "terminal"
    assert cfg.fail_mode == "safe"
    assert cfg.timeout_seconds == 42
    assert cfg.agent_id == "billing"
    assert cfg.db_path == tmp_path / "h" / "sentinel.db"
    assert cfg.audit_log is True
    assert cfg.audit_log_dir == tmp_path / "logs"
    assert cfg.audit_sync is True
    assert cfg.anomaly_detection is True
    assert cfg.webhook_url == "https://hooks.example/approve"
    assert cfg.webhook_status_url == "https://hooks.example/status/{action_id}"
    assert cfg.webhook_token == "tok"
    assert cfg.webhook_secret == "sekrit"
    assert cfg.webhook_timeout == 3
    assert cfg.webhook_poll_interval == 0.5
    assert cfg.require_signed_decisions is False
    # Every variable we document is one we read (SENTINEL_OPERATOR is read by identity, and the
    # operators file and key variables by sentinel.trust, the PostgreSQL password file by
    # sentinel.store.location, the host by the store's liveness: tested there).
    read_elsewhere = {
        "SENTINEL_DB", "SENTINEL_OPERATOR", "SENTINEL_OPERATORS_FILE", "SENTINEL_OPERATOR_KEY",
        "SENTINEL_DB_PASSWORD_FILE", "SENTINEL_HOST",
    }
    assert set(env) | read_elsewhere == set(ENVIRONMENT)


def test_sentinel_db_overrides_home(
    rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_DB", str(tmp_path / "x.db"))
    assert SentinelConfig(rules_path=rules).db_path == tmp_path / "x.db"


def test_explicit_argument_beats_environment(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_FAIL_MODE", "safe")
    assert SentinelConfig(rules_path=rules, fail_mode="secure").fail_mode == "secure"


def test_bad_environment_value_names_variable(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_TIMEOUT", "ten")
    with pytest.raises(SentinelConfigError, match="SENTINEL_TIMEOUT"):
        SentinelConfig(rules_path=rules)
    monkeypatch.delenv("SENTINEL_TIMEOUT")
    monkeypatch.setenv("SENTINEL_AUDIT_LOG", "maybe")
    with pytest.raises(SentinelConfigError, match="SENTINEL_AUDIT_LOG"):
        SentinelConfig(rules_path=rules)


def test_a_config_holds_settings_only_and_shares_the_policy_source(tmp_path: Path) -> None:
    import copy
    import dataclasses

    from sentinel import SentinelConfig

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    config = SentinelConfig(rules_path=rules, db_path=tmp_path / "s.db", hot_reload=False)
    config.policy_source()  # used once: nothing live may stay behind on the config
    twin = copy.deepcopy(config)
    assert twin == config
    assert all(not callable(v) or isinstance(v, type) for v in dataclasses.asdict(config).values())
    assert isinstance(config.rules_path, Path) and isinstance(config.db_path, Path)
    assert isinstance(config.timeout_seconds, float)
    # Both copies reach the one policy source of the process for that file.
    assert twin.policy_source() is config.policy_source()
