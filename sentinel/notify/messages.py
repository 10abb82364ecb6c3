"""What a notification says: a generic JSON document and a Slack-compatible message.

Everything an agent supplied is treated as hostile: only the redacted arguments are used; Slack
``mrkdwn`` control characters (``& < >``) are escaped so a function name cannot ping ``<!channel>``
or smuggle a link, and backticks cannot break out of code spans.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sentinel.redact import safe_text
from sentinel.store.models import RequestRecord

SHORT_ID = 12


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(v: float | None) -> str:
    if v is None:
        return "not declared"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def decide_commands(rec: RequestRecord, decide_url: str | None) -> dict[str, Any]:
    """How to decide this request: CLI commands, and the API URLs when a server is known."""
    short = rec.id[:SHORT_ID]
    out: dict[str, Any] = {
        "cli": {
            "approve": f"sentinel approve {short}",
            "deny": f"sentinel deny {short}",
            "tui": "sentinel tui",
        }
    }
    if decide_url:
        out["api"] = {
            "approve": f"{decide_url}/approval/{rec.id}/approve",
            "deny": f"{decide_url}/approval/{rec.id}/deny",
            "status": f"{decide_url}/approval/{rec.id}/status",
        }
    return out


#: The fields of :meth:`RequestRecord.to_dict` a notification carries.
_NOTIFIED = frozenset((
    "id", "function", "agent_id", "arguments", "context", "rule_id", "rule_ids", "reason",
    "value_at_risk", "risk_score", "risk_explanation", "created_at", "expires_at", "digest",
    "policy_version",
))  # fmt: skip


def generic_payload(
    rec: RequestRecord, decide_url: str | None, now: float | None = None
) -> dict[str, Any]:
    """The JSON document POSTed to ``SENTINEL_NOTIFY_WEBHOOK`` (signed by the sender)."""
    return {
        "event": "approval_requested",
        "sent_at": time.time() if now is None else now,
        # The request's one JSON form, without where the agent runs or decision fields (it is
        # pending); arguments are the redacted copy, the only one stored.
        "request": {k: v for k, v in rec.to_dict().items() if k in _NOTIFIED},
        "decide": decide_commands(rec, decide_url),
    }


def escalation_of(rec: RequestRecord) -> dict[str, Any]:
    """What an escalation notification says of it: to whom, when, after how long, and who may
    decide now: the approvers of ``rec.terms`` (the waiting call's own terms when it announces)
    and whom it was escalated to."""
    escalated_at = rec.escalated_at if rec.escalated_at is not None else time.time()
    to = list(rec.escalated_to or rec.terms.escalate_to)
    # Escalated: the approvers and whom it went to (empty approvers: anyone could all along).
    may = list(dict.fromkeys((*rec.terms.approvers, *to))) if rec.terms.approvers else []
    may = may or ["any operator"]
    return {
        "to": to,
        "escalated_at": escalated_at,
        "after_seconds": round(escalated_at - rec.created_at, 3),
        "escalate_after": rec.terms.escalate_after,
        "may_decide": may,
        "quorum": rec.terms.quorum,
        "approvals": len(rec.approvals),
    }


def escalated_payload(
    rec: RequestRecord, decide_url: str | None, now: float | None = None
) -> dict[str, Any]:
    """The JSON document POSTed to ``SENTINEL_NOTIFY_WEBHOOK`` when a request is escalated."""
    return {
        "event": "approval_escalated",
        "sent_at": time.time() if now is None else now,
        "request": {k: v for k, v in rec.to_dict().items() if k in _NOTIFIED},
        "escalation": escalation_of(rec),
        "decide": decide_commands(rec, decide_url),
    }


def slack_escape(value: Any, limit: int = 300) -> str:
    """Agent text made safe for Slack mrkdwn: terminal-safe, ``& < >`` escaped, no backticks."""
    text = safe_text(value if isinstance(value, str) else json.dumps(value, default=str), limit)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def _arguments(rec: RequestRecord, limit: int = 8) -> str:
    items = list((rec.arguments or {}).items())
    lines = [f"{slack_escape(str(k), 40)} = {slack_escape(v, 120)}" for k, v in items[:limit]]
    if len(items) > limit:
        lines.append(f"… and {len(items) - limit} more")
    return "\n".join(lines) if lines else "(no arguments)"


def _slack_message(
    rec: RequestRecord,
    decide_url: str | None,
    now: float,
    *,
    fallback: str,
    header: str,
    summary: str,
) -> dict[str, Any]:
    """The message both kinds share: a header, the request's fields, ``summary`` (why it is
    announced), the redacted arguments, how to decide and the request id."""
    fn = slack_escape(rec.function, 80)
    agent = slack_escape(rec.agent_id, 60) if rec.agent_id else "unnamed agent"
    left = _duration(rec.expires_at - now)
    cmds = decide_commands(rec, decide_url)
    decide = f"`{cmds['cli']['approve']}`  ·  `{cmds['cli']['deny']}`  ·  or press a / d in `sentinel tui`"
    if "api" in cmds:
        decide += f"\nAPI: `POST {slack_escape(cmds['api']['approve'], 300)}` (or `/deny`)"
    return {
        "text": fallback,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Function*\n`{fn}`"},
                    {"type": "mrkdwn", "text": f"*Agent*\n{agent}"},
                    {"type": "mrkdwn", "text": f"*Value at risk*\n{_value(rec.value_at_risk)}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Expires*\nin {left} ({_when(rec.expires_at)})",
                    },
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Arguments (redacted)*\n```{_arguments(rec)}```",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Decide:* {decide}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"request `{rec.id}` · digest `{rec.digest[:12]}`",
                    }
                ],
            },
        ],
    }


def slack_payload(
    rec: RequestRecord, decide_url: str | None, now: float | None = None
) -> dict[str, Any]:
    """A Slack incoming-webhook message: what waits, value at risk, why, how to decide."""
    now = time.time() if now is None else now
    fn = slack_escape(rec.function, 80)
    agent = slack_escape(rec.agent_id, 60) if rec.agent_id else "unnamed agent"
    value = _value(rec.value_at_risk)
    left = _duration(rec.expires_at - now)
    why = slack_escape(rec.reason or "a rule requires approval", 500)
    return _slack_message(
        rec,
        decide_url,
        now,
        fallback=f"Sentinel: {fn} from {agent} is waiting for approval (value at risk {value}, "
        f"expires in {left})",
        header=f"Approval needed: {slack_escape(rec.function, 120)}",
        summary=f"*Why:* {why}\n*Rule:* {slack_escape(rec.rule_id or 'default', 80)}",
    )


def slack_escalated_payload(
    rec: RequestRecord, decide_url: str | None, now: float | None = None
) -> dict[str, Any]:
    """A Slack message for an escalation: "escalated to security", the request, the rule, who
    may decide now, how long it waited and how to decide."""
    now = time.time() if now is None else now
    esc = escalation_of(rec)
    to = ", ".join(slack_escape(n, 64) for n in esc["to"]) or "nobody"
    may = ", ".join(slack_escape(n, 64) for n in esc["may_decide"])
    fn = slack_escape(rec.function, 80)
    agent = slack_escape(rec.agent_id, 60) if rec.agent_id else "unnamed agent"
    rule = slack_escape(rec.rule_id or "default", 80)
    waited = _duration(esc["after_seconds"])
    left = _duration(rec.expires_at - now)
    tally = ""
    if esc["quorum"] > 1:
        tally = f"\n*Approvals:* {esc['approvals']} of {esc['quorum']}"
    return _slack_message(
        rec,
        decide_url,
        now,
        fallback=f"Sentinel: {fn} from {agent} escalated to {to}: no decision after {waited} "
        f"(rule {rule}; may decide now: {may}; expires in {left})",
        header=f"Escalated to {to[:80]}: {slack_escape(rec.function, 100)}",
        summary=f"*No decision after {waited}:* escalated to {to}\n*Rule:* {rule}\n"
        f"*May decide now:* {may}{tally}",
    )


__all__ = [
    "decide_commands",
    "escalated_payload",
    "escalation_of",
    "generic_payload",
    "slack_escalated_payload",
    "slack_escape",
    "slack_payload",
]
