"""``SentinelConfig``: every setting of a protected function, with ``SENTINEL_*`` environment
variables as defaults.

Precedence: an explicit argument, then the environment variable, then the built-in default.
Invalid values raise :class:`~sentinel.errors.SentinelConfigError` naming the field and what is
allowed. Importing this module reads nothing and changes nothing (no ``.env`` loading).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sentinel.errors import SentinelConfigError
from sentinel.risk import RISK_BLOCK, RISK_ESCALATE

if TYPE_CHECKING:
    from sentinel.approval.base import ApprovalInterface
    from sentinel.policy import Policy
    from sentinel.policy_source import PolicySource
    from sentinel.store.location import PgLocation

#: Every environment variable Sentinel reads, with the field it sets and what it means.
ENVIRONMENT: dict[str, str] = {
    "SENTINEL_RULES_PATH": "rules_path: the rules file (default ./rules.yaml)",
    "SENTINEL_APPROVAL_INTERFACE": "approval_interface: queue | terminal | webhook",
    "SENTINEL_FAIL_MODE": "fail_mode: secure | safe",
    "SENTINEL_TIMEOUT": "timeout_seconds: seconds an approval request waits before it expires",
    "SENTINEL_AGENT_ID": "agent_id: the agent's name in requests, events and errors",
    "SENTINEL_HOME": "the folder holding sentinel.db (default ./.sentinel)",
    "SENTINEL_DB": "db: the database, a file path or a postgresql:// URL (overrides "
    "SENTINEL_HOME)",
    "SENTINEL_DB_PASSWORD_FILE": "a private file holding the PostgreSQL password (when the URL "
    "has none)",
    "SENTINEL_HOST": "the host name recorded with each request (default the machine's)",
    "SENTINEL_AUDIT_LOG": "audit_log: 1/true mirrors every event to daily JSONL files",
    "SENTINEL_LOG_DIR": "audit_log_dir: the folder of the JSONL mirror (default ./sentinel_logs)",
    "SENTINEL_AUDIT_SYNC": "audit_sync: 1/true writes allowed-call events synchronously",
    "SENTINEL_ANOMALY": "anomaly_detection: 1/true turns statistical anomaly detection on",
    "SENTINEL_OPERATOR": "a display name recorded next to the operator's OS account",
    "SENTINEL_OPERATORS_FILE": "the trusted operators file (default /etc/sentinel/operators.json)",
    "SENTINEL_OPERATOR_KEY": "this operator's private key (default in the configuration folder)",
    "SENTINEL_REQUIRE_SIGNED": "require_signed_decisions: 1/true or 0/false (default: on once "
    "the operators file exists)",
    "SENTINEL_WEBHOOK_URL": "webhook_url: where the webhook channel POSTs requests",
    "SENTINEL_STATUS_URL": "webhook_status_url: status URL template with {action_id}",
    "SENTINEL_WEBHOOK_TOKEN": "webhook_token: shared token (X-Sentinel-Token header)",
    "SENTINEL_WEBHOOK_SECRET": "webhook_secret: HMAC-SHA256 signing key for requests and replies",
    "SENTINEL_WEBHOOK_TIMEOUT": "webhook_timeout: seconds per HTTP request",
    "SENTINEL_POLL_INTERVAL": "webhook_poll_interval: seconds between status polls",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_CHANNELS = ("queue", "terminal", "webhook")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value is not None and value.strip() != "" else None


def _env_bool(name: str, field_name: str) -> bool | None:
    raw = _env(name)
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise SentinelConfigError(
        f"{name}={raw!r} is not a boolean", field=field_name, hint="use 1/0, true/false, yes/no"
    )


def _env_float(name: str, field_name: str) -> float | None:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise SentinelConfigError(
            f"{name}={raw!r} is not a number", field=field_name, hint="give seconds, e.g. 300"
        ) from None


def default_db_path() -> Path:
    """``$SENTINEL_DB``, else ``$SENTINEL_HOME/sentinel.db``, else ``./.sentinel/sentinel.db``."""
    from sentinel.store.paths import default_db_path as store_default

    return store_default()


@dataclass
class SentinelConfig:
    """Settings for :func:`sentinel.protect`. Field names and defaults follow agentic-sentinel 0.1.0.

    ``None`` means "not given": the ``SENTINEL_*`` variable, then the default, fills it in.
    """

    rules_path: Path | str | None = None
    approval_interface: ApprovalInterface | str | None = None
    fail_mode: str | None = None
    timeout_seconds: float | None = None
    agent_id: str | None = None
    audit_log: bool | None = None
    audit_log_dir: Path | str | None = None
    anomaly_detection: bool | None = None
    anomaly_statistical: bool = True
    anomaly_llm: bool = False
    anomaly_llm_provider: str = "openai"
    anomaly_llm_model: str = "gpt-4o-mini"
    anomaly_escalation_threshold: float = RISK_ESCALATE
    anomaly_block_threshold: float = RISK_BLOCK
    # Added by Sentinel (not in 0.1.0):
    db_path: Path | str | PgLocation | None = None
    audit_sync: bool | None = None
    hot_reload: bool = True
    show_waiting_hint: bool = True
    webhook_url: str | None = None
    webhook_status_url: str | None = None
    webhook_token: str | None = None
    webhook_secret: str | None = None
    webhook_timeout: float | None = None
    webhook_poll_interval: float | None = None
    #: Approvals must carry a trusted operator's signature (see sentinel.trust). None: on once
    #: the trusted operators file exists; False: the row's word is taken (a single user on a
    #: laptop — whoever can write the database can approve).
    require_signed_decisions: bool | None = None
    #: The database: a SQLite file path (or ``sqlite:///path``) or a ``postgresql://`` URL
    #: (:mod:`sentinel.store.location`). After construction a :class:`~pathlib.Path` or a
    #: :class:`~sentinel.store.location.PgLocation`; ``db_path`` holds the same (its older name).
    db: Path | str | PgLocation | None = None

    def __post_init__(self) -> None:
        rules = self.rules_path if self.rules_path is not None else _env("SENTINEL_RULES_PATH")
        self.rules_path = Path(rules) if rules is not None else Path("rules.yaml")
        if not self.rules_path.exists():
            raise SentinelConfigError(
                f"Rules file not found: {self.rules_path}",
                field="rules_path",
                hint="pass rules_path= or set SENTINEL_RULES_PATH",
            )

        channel = self.approval_interface
        if channel is None:
            channel = _env("SENTINEL_APPROVAL_INTERFACE") or "queue"
        if isinstance(channel, str):
            channel = channel.strip().lower()
            if channel not in _CHANNELS:
                raise SentinelConfigError(
                    f"Unknown approval interface {channel!r}",
                    field="approval_interface",
                    hint=f"use one of {', '.join(_CHANNELS)} or an ApprovalInterface instance",
                )
        else:
            from sentinel.approval.base import ApprovalInterface

            if not isinstance(channel, ApprovalInterface):
                raise SentinelConfigError(
                    f"approval_interface must be a channel name or an ApprovalInterface, "
                    f"got {type(channel).__name__}",
                    field="approval_interface",
                    hint=f"use one of {', '.join(_CHANNELS)} or subclass sentinel.ApprovalInterface",
                )
        self.approval_interface = channel

        mode = (
            self.fail_mode
            if self.fail_mode is not None
            else (_env("SENTINEL_FAIL_MODE") or "secure")
        )
        mode = str(mode).strip().lower()
        if mode not in ("secure", "safe"):
            raise SentinelConfigError(
                f"fail_mode must be 'secure' or 'safe', got {mode!r}", field="fail_mode"
            )
        self.fail_mode = mode

        timeout = self.timeout_seconds
        if timeout is None:
            timeout = _env_float("SENTINEL_TIMEOUT", "timeout_seconds")
        timeout = 300.0 if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise SentinelConfigError(
                f"timeout_seconds must be a positive number of seconds, got {timeout!r}",
                field="timeout_seconds",
            )
        self.timeout_seconds = float(timeout)

        if self.agent_id is None:
            self.agent_id = _env("SENTINEL_AGENT_ID")

        if self.audit_log is None:
            self.audit_log = bool(_env_bool("SENTINEL_AUDIT_LOG", "audit_log"))
        log_dir = self.audit_log_dir if self.audit_log_dir is not None else _env("SENTINEL_LOG_DIR")
        self.audit_log_dir = Path(log_dir) if log_dir is not None else Path("sentinel_logs")

        if self.anomaly_detection is None:
            self.anomaly_detection = bool(_env_bool("SENTINEL_ANOMALY", "anomaly_detection"))
        if self.audit_sync is None:
            self.audit_sync = bool(_env_bool("SENTINEL_AUDIT_SYNC", "audit_sync"))
        for name in ("anomaly_escalation_threshold", "anomaly_block_threshold"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= 10
            ):
                raise SentinelConfigError(
                    f"{name} must be a number from 0 to 10, got {value!r}", field=name
                )
        if self.anomaly_llm_provider not in ("openai", "anthropic"):
            raise SentinelConfigError(
                f"anomaly_llm_provider must be 'openai' or 'anthropic', got {self.anomaly_llm_provider!r}",
                field="anomaly_llm_provider",
            )

        # A value that is neither a path nor a known database URL is refused here, before
        # anything is created.
        from sentinel.store.location import default_location, parse_location
        from sentinel.store.paths import DatabaseValueError

        try:
            given = [
                (name, parse_location(value, source=name))
                for name, value in (("db", self.db), ("db_path", self.db_path))
                if value is not None
            ]
            if len(given) == 2 and given[0][1] != given[1][1]:
                raise SentinelConfigError(
                    f"db ({given[0][1]}) and db_path ({given[1][1]}) name different databases; "
                    "give one (db_path is the older name of db)",
                    field="db",
                )
            location = given[0][1] if given else default_location()
        except DatabaseValueError as exc:
            field = "db_path" if self.db is None and self.db_path is not None else "db"
            raise SentinelConfigError(str(exc), field=field) from exc
        self.db = self.db_path = location

        if self.require_signed_decisions is None:
            self.require_signed_decisions = _env_bool(
                "SENTINEL_REQUIRE_SIGNED", "require_signed_decisions"
            )
        if self.require_signed_decisions is not None and not isinstance(
            self.require_signed_decisions, bool
        ):
            raise SentinelConfigError(
                "require_signed_decisions must be True, False or None (on once operators "
                f"exist), got {self.require_signed_decisions!r}",
                field="require_signed_decisions",
            )

        self.webhook_url = self.webhook_url or _env("SENTINEL_WEBHOOK_URL")
        self.webhook_status_url = self.webhook_status_url or _env("SENTINEL_STATUS_URL")
        self.webhook_token = self.webhook_token or _env("SENTINEL_WEBHOOK_TOKEN")
        self.webhook_secret = self.webhook_secret or _env("SENTINEL_WEBHOOK_SECRET")
        if self.webhook_timeout is None:
            self.webhook_timeout = _env_float("SENTINEL_WEBHOOK_TIMEOUT", "webhook_timeout") or 10.0
        if self.webhook_poll_interval is None:
            self.webhook_poll_interval = (
                _env_float("SENTINEL_POLL_INTERVAL", "webhook_poll_interval") or 2.0
            )

    # -- policy -----------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy currently in force for this configuration (loaded on first use)."""
        return self.policy_source().current

    def policy_source(self) -> PolicySource:
        """The process's shared :class:`~sentinel.policy_source.PolicySource` for ``rules_path``
        (looked up in the process registry, not kept here: a configuration holds settings, no
        live objects, so it can be copied, compared and printed)."""
        from sentinel.policy_source import PolicySource

        return PolicySource.for_path(Path(self.rules_path or "rules.yaml"), watch=self.hot_reload)

    @property
    def channel_name(self) -> str:
        """``queue``, ``terminal``, ``webhook`` or the custom channel's class name."""
        channel = self.approval_interface
        return channel if isinstance(channel, str) else type(channel).__name__
