"""``X-Sentinel-Timestamp`` must be plain decimal epoch seconds, and the skew check cannot be
switched off by a non-finite number.

``float()`` takes ``nan``, ``inf``, ``1.7e9``, ``+1_700_000_000`` and surrounding space, and NaN
compares false with everything: a skew check written as ``abs(now - ts) > max_skew`` passes for
a NaN on either side. Every such timestamp is refused with a reason that names it (the API
answers 401), a ``max_skew`` of NaN/inf refuses everything instead of accepting everything, and
the webhook channel refuses to be built with one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import pytest

from sentinel.approval.base import ApprovalStatus
from sentinel.approval.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookApprovalInterface,
    sign,
    verify,
)
from sentinel.errors import SentinelConfigError
from tests.server.conftest import SECRET as SERVER_SECRET
from tests.server.conftest import start_server
from tests.webhook.receiver import Receiver, Reply
from tests.webhook.test_channel import SECRET, channel, make_request, status_script

BODY = b'{"action_id":"x","status":"approved"}'


# Templates of bad stamps, filled in with the current time when a test runs: the test ids must
# not depend on the clock (pytest-xdist workers collect separately and compare the ids).
_BAD_STAMPS = [
    "nan", "NaN", "-nan", "+nan", "inf", "-inf", "Infinity", "1e400",
    "{now:e}", " {now} ", "{now}\n", "+{now}", "-{now}", "{now:_}", "{now}.",
    ".5", "0x10", "\u0661\u0662\u0663", "{now}" + "0" * 20, "now",
]  # fmt: skip


def _signature(stamp: str, body: bytes = BODY, secret: str = SECRET) -> str:
    try:
        return sign(secret, stamp, body)
    except UnicodeEncodeError:  # a non-ASCII stamp cannot be signed; any signature will do
        return "sha256=" + "0" * 64


@pytest.mark.parametrize("template", _BAD_STAMPS)
def test_a_timestamp_that_is_not_decimal_epoch_seconds_is_refused(template: str) -> None:
    stamp = template.format(now=int(time.time()))
    why = verify(SECRET, stamp, _signature(stamp), BODY)
    assert why is not None and why.startswith("bad timestamp"), (stamp, why)
    assert repr(stamp[:40]) in why  # names what was sent (escaped: it is untrusted text)


@pytest.mark.parametrize("fmt", ["{:.0f}", "{:.3f}", "{:.9f}"])
def test_decimal_epoch_seconds_are_accepted(fmt: str) -> None:
    stamp = fmt.format(time.time())
    assert verify(SECRET, stamp, _signature(stamp), BODY) is None
    stale = fmt.format(time.time() - 3600)
    assert verify(SECRET, stale, _signature(stale), BODY) == "stale timestamp"


@pytest.mark.parametrize("skew", [math.nan, math.inf, -1.0])
def test_a_non_finite_max_skew_refuses_instead_of_accepting_everything(skew: float) -> None:
    old = str(int(time.time()) - 10 * 365 * 86400)  # a reply signed ten years ago
    fresh = str(int(time.time()))
    for stamp in (old, fresh):
        why = verify(SECRET, stamp, _signature(stamp), BODY, max_skew=skew)
        assert why is not None and "max_skew" in why, why


@pytest.mark.parametrize("skew", [math.nan, math.inf, -math.inf, -1.0, True, "300"])
def test_the_channel_refuses_a_max_skew_that_is_not_finite_seconds(skew: object) -> None:
    with pytest.raises(SentinelConfigError, match="max_skew_seconds") as caught:
        WebhookApprovalInterface(
            "http://127.0.0.1:1/a",
            "http://127.0.0.1:1/{action_id}",
            max_skew_seconds=skew,  # type: ignore[arg-type]
        )
    assert caught.value.field == "max_skew_seconds"


@pytest.mark.parametrize("stamp", ["nan", "inf", "{now:e}"])
async def test_a_signed_approval_with_a_bad_timestamp_never_decides(stamp: str) -> None:
    stamp = stamp.format(now=time.time())
    req = make_request(timeout_seconds=0.6)
    body = json.dumps({"action_id": req.request_id, "status": "approved"}).encode()
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(SECRET, stamp, body),  # a correct signature over that stamp
    }
    with Receiver(status_script([Reply(200, body, headers)])) as rx:
        result = await channel(rx.url, secret=SECRET).request_approval(req)
        polls = len(rx.requests("GET"))
    assert result.status is ApprovalStatus.TIMEOUT
    assert polls >= 2  # it kept polling instead of accepting


def test_the_api_answers_401_naming_the_bad_timestamp(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        payload = {
            "action_id": "a" * 32, "function_name": "transfer_funds", "rule_id": "big",
            "parameters": {"amount": 5}, "reason": "r", "timeout_seconds": 60,
        }  # fmt: skip
        body = json.dumps(payload).encode()
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as c:
            for stamp in ("nan", "inf", f"{time.time():e}"):
                r = c.post(
                    "/approval",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        TIMESTAMP_HEADER: stamp,
                        SIGNATURE_HEADER: sign(SERVER_SECRET, stamp, body),
                    },
                )
                assert r.status_code == 401, (stamp, r.text)
                assert "bad timestamp" in r.json()["error"], r.text
            stamp = str(int(time.time()))  # the same request, properly stamped, is accepted
            r = c.post(
                "/approval",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign(SERVER_SECRET, stamp, body),
                },
            )
            assert r.status_code in (200, 201, 202), r.text
    finally:
        server.stop()
