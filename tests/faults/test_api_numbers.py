"""Extreme numbers in every numeric API input (issue 20.7): ``value_at_risk`` or
``timeout_seconds`` of ``10**400`` gave HTTP 500. Every input error is a 422 naming the field,
never a 500, and an accepted number is stored as sent. A real ``sentinel serve`` process."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.store import Store
from tests.server.conftest import ALICE, BOT, ApiServer, start_server

HUGE = "1" + "0" * 400  # 10**400: valid JSON, no float can hold it


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(tmp_path_factory.mktemp("numbers"))
    yield server
    server.stop()


def post_raw(api: ApiServer, body: str) -> tuple[int, dict[str, object]]:
    with api.client(BOT) as c:
        r = c.post("/approval", content=body.encode(), headers={"Content-Type": "application/json"})
    return r.status_code, r.json()


def body_with(field: str, literal: str) -> str:
    return '{"function_name": "transfer_funds", "' + field + '": ' + literal + "}"


@pytest.mark.parametrize("field", ["value_at_risk", "timeout_seconds"])
@pytest.mark.parametrize(
    "literal", [HUGE, "-" + HUGE, "1e400", "-1e400", "NaN", "Infinity", "-Infinity"]
)
def test_out_of_range_numbers_are_a_422_naming_the_field(
    api: ApiServer, field: str, literal: str
) -> None:
    status, data = post_raw(api, body_with(field, literal))
    assert status == 422, (field, literal, status, data)
    assert data["field"] == field and field in str(data["error"])


@pytest.mark.parametrize("where", ["parameters", "context"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_inside_arguments_are_a_422(
    api: ApiServer, where: str, literal: str
) -> None:
    status, data = post_raw(api, body_with(where, '{"items": [1, {"amount": ' + literal + "}]}"))
    assert status == 422, (where, literal, status, data)
    assert data["field"] == where and "items[1].amount" in str(data["error"])


def test_a_huge_integer_argument_is_stored_not_a_500(api: ApiServer) -> None:
    status, data = post_raw(api, body_with("parameters", '{"amount": ' + HUGE + "}"))
    assert status == 202, data
    with Store(api.db) as store:
        assert store.get(str(data["request_id"])).arguments == {"amount": 10**400}


@pytest.mark.parametrize(
    "limit", ["1" + "0" * 400, "9" * 5000, "²", "١٢", "-1", "0", "1e3", "10001", "NaN"]
)
def test_pending_limit_out_of_range_is_a_422(api: ApiServer, limit: str) -> None:
    with api.client(ALICE) as c:
        r = c.get("/approvals/pending", params={"limit": limit})
    assert r.status_code == 422, (limit, r.text)
    assert r.json()["field"] == "limit"


def test_a_content_length_that_is_not_ascii_digits_is_refused(api: ApiServer) -> None:
    import http.client

    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/approval")
    conn.putheader("Authorization", f"Bearer {BOT}")
    conn.putheader("Content-Length", "²".encode("latin-1"))  # type: ignore[arg-type]
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    assert status in (400, 413)


numbers = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**308, 2**1024, -(2**1024), sys.float_info.max, 5e-324, 0, -0.0]),
)


def _literal(n: int | float) -> str:
    if isinstance(n, float) and math.isnan(n):
        return "NaN"
    if isinstance(n, float) and math.isinf(n):
        return "Infinity" if n > 0 else "-Infinity"
    return json.dumps(n)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["value_at_risk", "timeout_seconds"]), n=numbers)
def test_any_number_in_a_numeric_field_is_accepted_as_sent_or_a_422(
    api: ApiServer, field: str, n: int | float
) -> None:
    status, data = post_raw(api, body_with(field, _literal(n)))
    try:
        as_float = float(n)
    except OverflowError:
        as_float = math.inf
    valid = math.isfinite(as_float) and (field == "value_at_risk" or 0 < as_float <= 604800)
    if not valid:
        assert status == 422 and data["field"] == field, (field, n, status, data)
        return
    assert status == 202, (field, n, status, data)
    with Store(api.db) as store:
        rec = store.get(str(data["request_id"]))
    if field == "value_at_risk":
        assert rec.value_at_risk == as_float
    else:
        assert rec.timeout_seconds == as_float
