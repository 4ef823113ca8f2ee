"""Property: whatever a PUT carries, the server answers 2xx/4xx, never 5xx,
and stores exactly the valid JSON objects it acknowledged."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_logging.server import run_server

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=8), _json_values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
)
_content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "APPLICATION/JSON"]
)


def test_random_put_bodies_never_5xx_and_never_store_partially():
    with run_server() as srv, httpx.Client(timeout=10.0) as client:
        acknowledged: list[object] = []

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=_bodies, content_type=_content_types)
        def check(body: bytes, content_type: str) -> None:
            headers = {"Authorization": f"Bearer {srv.token}"}
            if content_type:
                headers["Content-Type"] = content_type
            r = client.put(srv.session_url("fuzz"), content=body, headers=headers)
            assert r.status_code in (200, 201, 400, 409), r.text
            if r.status_code >= 400:
                assert set(r.json()["error"]) == {"message", "type"}
            else:
                acknowledged.append(json.loads(body))

        check()
        assert srv.entries("fuzz") == acknowledged
