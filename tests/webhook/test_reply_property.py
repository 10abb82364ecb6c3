"""Whatever a status server sends, reading it never raises and never approves without proof."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.approval.base import ApprovalStatus
from sentinel.approval.webhook import read_status_reply, sign, verify

ACTION = "0123456789abcdef0123456789abcdef"
SECRET = "prop-secret"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "status": st.one_of(
                st.sampled_from(["approved", "denied", "APPROVED", "pending", "x"]), json_values
            )
        },
        optional={"action_id": st.sampled_from([ACTION, "other", 3])},
    ).map(lambda d: json.dumps(d).encode()),
)
headers = st.dictionaries(
    st.sampled_from(["X-Sentinel-Timestamp", "X-Sentinel-Signature", "Content-Type"]),
    st.text(max_size=80),
)


@settings(max_examples=400, deadline=None)
@given(code=st.integers(100, 599), headers=headers, body=bodies)
def test_reading_any_reply_never_raises(code: int, headers: dict[str, str], body: bytes) -> None:
    reply = read_status_reply(code, headers, body, action_id=ACTION)
    assert reply.outcome in ("decided", "ended", "pending", "ignored", "retry")
    if reply.outcome == "decided":
        assert 200 <= code < 300


@settings(max_examples=300, deadline=None)
@given(code=st.integers(100, 599), headers=headers, body=bodies)
def test_without_a_valid_signature_nothing_is_approved(
    code: int, headers: dict[str, str], body: bytes
) -> None:
    reply = read_status_reply(code, headers, body, action_id=ACTION, secret=SECRET)
    assert reply.status is not ApprovalStatus.APPROVED


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=100), skew=st.floats(-10_000, 10_000))
def test_signatures_verify_only_fresh_and_exact(body: bytes, skew: float) -> None:
    now = time.time()
    ts = str(int(now + skew))
    sig = sign(SECRET, ts, body)
    ok = verify(SECRET, ts, sig, body, now=now, max_skew=300)
    assert (ok is None) == (abs(int(now + skew) - now) <= 300)
    assert verify(SECRET, ts, sig, body + b"x", now=now, max_skew=1e9) == "bad signature"
