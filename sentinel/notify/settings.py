"""Where notifications go, from ``SENTINEL_NOTIFY_*`` variables (or attributes of the config)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sentinel.errors import SentinelConfigError

#: The variables notifications read, with what they mean (for the README and ``--help``).
ENVIRONMENT: dict[str, str] = {
    "SENTINEL_NOTIFY_WEBHOOK": "URL that receives a signed JSON POST for each new pending request",
    "SENTINEL_NOTIFY_SLACK": "Slack (or compatible) incoming-webhook URL for a message per request",
    "SENTINEL_NOTIFY_SECRET": "HMAC-SHA256 key signing the JSON webhook (X-Sentinel-Signature)",
    "SENTINEL_NOTIFY_DECIDE_URL": "base URL of `sentinel serve`, shown as where to decide",
    "SENTINEL_NOTIFY_ATTEMPTS": "delivery attempts per notification (default 4)",
    "SENTINEL_NOTIFY_TIMEOUT": "seconds per delivery attempt (default 5)",
    "SENTINEL_NOTIFY_BACKOFF": "seconds before the first retry, doubling after each (default 1)",
}


@dataclass(frozen=True)
class NotifySettings:
    """Targets and delivery policy. Empty targets mean notifications are off."""

    webhook_url: str | None = None
    slack_url: str | None = None
    secret: str | None = None
    decide_url: str | None = None
    attempts: int = 4
    timeout: float = 5.0
    backoff: float = 1.0  # first retry pause (doubles each time)

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.slack_url)

    @classmethod
    def from_env(cls, config: Any = None) -> NotifySettings:
        """Read the settings: a ``notify_*`` attribute of ``config`` wins over the variable."""

        def pick(attr: str, env: str) -> str | None:
            value = getattr(config, attr, None) if config is not None else None
            if value is None:
                value = os.environ.get(env)
            value = (str(value).strip() if value is not None else "") or None
            return value

        webhook = pick("notify_webhook", "SENTINEL_NOTIFY_WEBHOOK")
        slack = pick("notify_slack", "SENTINEL_NOTIFY_SLACK")
        for name, url in (("SENTINEL_NOTIFY_WEBHOOK", webhook), ("SENTINEL_NOTIFY_SLACK", slack)):
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise SentinelConfigError(
                        f"{name} must be an http(s) URL",
                        field=name.lower(),
                        hint="e.g. https://hooks.slack.com/services/…",
                    )
        attempts_raw = pick("notify_attempts", "SENTINEL_NOTIFY_ATTEMPTS")
        timeout_raw = pick("notify_timeout", "SENTINEL_NOTIFY_TIMEOUT")
        backoff_raw = pick("notify_backoff", "SENTINEL_NOTIFY_BACKOFF")
        try:
            attempts = int(attempts_raw) if attempts_raw else 4
            timeout = float(timeout_raw) if timeout_raw else 5.0
            backoff = float(backoff_raw) if backoff_raw else 1.0
        except ValueError:
            raise SentinelConfigError(
                "SENTINEL_NOTIFY_ATTEMPTS must be a whole number; SENTINEL_NOTIFY_TIMEOUT and "
                "SENTINEL_NOTIFY_BACKOFF numbers of seconds",
                field="notify_attempts",
            ) from None
        if not 1 <= attempts <= 20 or not 0 < timeout <= 120 or not 0 <= backoff <= 60:
            raise SentinelConfigError(
                "SENTINEL_NOTIFY_ATTEMPTS must be 1-20, SENTINEL_NOTIFY_TIMEOUT 0-120 seconds "
                "and SENTINEL_NOTIFY_BACKOFF 0-60 seconds",
                field="notify_attempts",
            )
        decide = pick("notify_decide_url", "SENTINEL_NOTIFY_DECIDE_URL")
        return cls(
            webhook_url=webhook,
            slack_url=slack,
            secret=pick("notify_secret", "SENTINEL_NOTIFY_SECRET"),
            decide_url=decide.rstrip("/") if decide else None,
            attempts=attempts,
            timeout=timeout,
            backoff=backoff,
        )


__all__ = ["ENVIRONMENT", "NotifySettings"]
