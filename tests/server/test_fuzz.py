"""Property-based runs against the live server, driven by its own OpenAPI description:
schemathesis (when installed) and a hypothesis run that needs nothing else. Both assert that no
request makes the server fail (5xx) and that nothing but /health answers without credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import ALICE, BOT, ApiServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)
submit_bodies = st.fixed_dictionaries(
    {},
    optional={
        "action_id": st.one_of(st.text(max_size=70), json_values),
        "function_name": st.one_of(st.text(max_size=250), json_values),
        "rule_id": json_values,
        "parameters": json_values,
        "reason": json_values,
        "agent_id": json_values,
        "context": json_values,
        "timestamp": json_values,
        "timeout_at": st.one_of(st.text(max_size=40), json_values),
        "timeout_seconds": json_values,
        "digest": st.one_of(
            st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), json_values
        ),
        "value_at_risk": json_values,
    },
)


_ops: dict[str, list[tuple[str, str]]] = {}


def operations(api: ApiServer) -> list[tuple[str, str]]:
    if api.url not in _ops:
        with api.client(ALICE) as c:
            doc = c.get("/openapi.json").json()
        _ops[api.url] = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
    return _ops[api.url]


@pytest.mark.slow
def test_schemathesis_against_the_openapi_description(api: ApiServer, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(exe).exists():
        pytest.skip("schemathesis is not installed")
    run = subprocess.run(
        [
            exe,
            "run",
            f"{api.url}/openapi.json",
            "-H",
            f"Authorization: Bearer {ALICE}",
            "--checks",
            "all",
            # A schema cannot say "timeout_at must be in the future": a past one is rightly refused.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "-w",
            "1",
            "--seed",
            "20261124",
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCHEMATHESIS_TELEMETRY": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "ignored_auth" not in run.stdout  # authentication is never ignored
    assert "Stateful" in run.stdout  # create → status / approve / deny sequences ran too


def _request(
    api: ApiServer, method: str, path: str, ident: str, body: Any, token: str | None
) -> httpx.Response:
    url = api.url + path.replace("{action_id}", quote(ident, safe=""))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content = json.dumps(body, allow_nan=True).encode() if body is not None else b""
    return httpx.request(method, url, content=content, headers=headers, timeout=10, trust_env=False)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 1000),
    ident=st.one_of(
        st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        st.text(min_size=1, max_size=20),
    ),
    body=st.one_of(submit_bodies, json_values),
    token=st.sampled_from([None, ALICE, BOT, "snt_not-a-real-token-000000"]),
)
def test_hypothesis_requests_never_fail_and_never_skip_auth(
    api: ApiServer, which: int, ident: str, body: Any, token: str | None
) -> None:
    ops = operations(api)
    method, path = ops[which % len(ops)]
    r = _request(api, method, path, ident, body, token)
    assert r.status_code < 500, (method, path, r.status_code, r.text)
    if path != "/health" and token not in (ALICE, BOT):
        assert r.status_code in (401, 404), (method, path, r.status_code)  # 404: path not routable
        if r.status_code == 404:
            assert r.json() == {"error": "not found"}  # no handler ran
    r.json()  # always JSON
