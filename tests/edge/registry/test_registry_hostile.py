"""Every new registry route under generated input: no 5xx, no traceback, whatever the path, query
or body."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EdgeServer, Tracebacks
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | text | st.sampled_from(["active", "disabled", "https://www.broker.test/x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(["status", "destination", "alias", "campaign"]), json_values,
                    max_size=3),
    json_values,
    st.binary(max_size=80),
)
path_parts = st.one_of(
    st.sampled_from(["aff-1", "Promo-1", "PROMO-1", "nobody", "x" * 65, "%00", ".."]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
            min_size=1, max_size=70).map(lambda s: s.replace("/", "_")),
)
ROUTES = [
    ("GET", "/api/partners"), ("GET", "/api/partners/{}/links"), ("GET", "/api/partners/{}/tree"),
    ("PATCH", "/api/links/{}"), ("GET", "/api/links/{}/qr.svg"), ("GET", "/api/links/{}/qr.png"),
    ("HEAD", "/api/links/{}/qr.png"), ("GET", "/api/alias-clashes"),
]
PARAMETERS = ["parent", "roots", "q", "status", "limit", "cursor", "depth", "size", "x"]


@pytest.fixture
def registry_edge(edge: EdgeServer) -> EdgeServer:
    put_partner(edge, "aff-1", name="Affiliate")
    put_partner(edge, "sub-1", parentPartnerId="aff-1")
    create_link(edge, "aff-1", alias="Promo-1")
    return edge


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(route=st.sampled_from(ROUTES), part=path_parts, body=bodies,
       query=st.dictionaries(st.sampled_from(PARAMETERS),
                             st.one_of(text, st.sampled_from(["1", "500", "true", "active"])),
                             max_size=4))
def test_no_generated_registry_request_gets_a_5xx_or_logs_a_traceback(
    registry_edge: EdgeServer, tracebacks: Tracebacks, route: tuple[str, str], part: str,
    body: Any, query: dict[str, str],
) -> None:
    method, template = route
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    path = template.format(quote(part, safe="")) if "{}" in template else template
    with registry_edge.admin() as admin:
        response = admin.request(method, path, params=query,
                                 content=content if method == "PATCH" else None)
    assert response.status_code < 500, (method, path, query, response.text[:300])
    if response.status_code >= 400 and method != "HEAD":
        assert response.json()["error"]["message"]
