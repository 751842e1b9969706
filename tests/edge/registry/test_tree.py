"""GET /api/partners/{id}/tree: a subtree as nested nodes with roll-up counts, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.registry import listing
from tests.conftest import EdgeServer
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers


def _tree(edge: EdgeServer, partner_id: str, **params: Any) -> dict[str, Any]:
    with edge.admin() as admin:
        response = admin.get(f"/api/partners/{partner_id}/tree", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _shape(node: dict[str, Any]) -> Any:
    return (node["partnerId"], [_shape(child) for child in node["children"]])


@pytest.fixture
def ib_tree(edge: EdgeServer) -> EdgeServer:
    """master → sub-a (→ leaf-1 → deep-1), sub-b; links on sub-a and leaf-1."""
    put_partner(edge, "master", type="ib", name="Atlas Capital")
    put_partner(edge, "sub-b", type="ib", parentPartnerId="master")
    put_partner(edge, "sub-a", type="ib", name="Sub A", parentPartnerId="master")
    put_partner(edge, "leaf-1", parentPartnerId="sub-a", status="suspended")
    put_partner(edge, "deep-1", parentPartnerId="leaf-1")
    for partner_id in ("sub-a", "sub-a", "leaf-1"):
        create_link(edge, partner_id)
    return edge


def test_the_tree_nests_children_in_id_order_with_roll_up_counts(ib_tree: EdgeServer) -> None:
    body = _tree(ib_tree, "master")
    assert (body["partnerId"], body["depth"], body["truncated"]) == ("master", 3, False)
    assert body["nodeCount"] == 5
    root = body["tree"]
    assert _shape(root) == ("master", [("sub-a", [("leaf-1", [("deep-1", [])])]), ("sub-b", [])])
    assert (root["name"], root["type"], root["level"]) == ("Atlas Capital", "ib", 1)
    assert (root["childCount"], root["descendantCount"], root["linkCount"]) == (2, 4, 0)
    sub_a = root["children"][0]
    assert (sub_a["childCount"], sub_a["descendantCount"], sub_a["linkCount"]) == (1, 2, 2)
    leaf = sub_a["children"][0]
    assert (leaf["status"], leaf["level"], leaf["linkCount"]) == ("suspended", 3, 1)


def test_depth_limits_the_levels_shown_but_not_the_counts(ib_tree: EdgeServer) -> None:
    body = _tree(ib_tree, "master", depth="1")
    assert _shape(body["tree"]) == ("master", [("sub-a", []), ("sub-b", [])])
    assert body["tree"]["children"][0]["descendantCount"] == 2
    assert body["truncated"] is False


def test_a_subtree_opens_at_any_partner(ib_tree: EdgeServer) -> None:
    assert _shape(_tree(ib_tree, "leaf-1")["tree"]) == ("leaf-1", [("deep-1", [])])


def test_a_large_tree_is_cut_at_the_node_cap_and_says_so(
    ib_tree: EdgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "MAX_TREE_NODES", 3)
    body = _tree(ib_tree, "master", depth="5")
    assert body["truncated"] is True
    assert body["nodeCount"] == 3
    assert _shape(body["tree"]) == ("master", [("sub-a", []), ("sub-b", [])])
    assert body["tree"]["children"][0]["childCount"] == 1  # what can still be opened


def test_unknown_partner_tree_is_404(ib_tree: EdgeServer) -> None:
    with ib_tree.admin() as admin:
        assert admin.get("/api/partners/nobody/tree").status_code == 404


@pytest.mark.parametrize("depth", ["0", "33", "x", "３", "-1", "", "1.5"])
def test_bad_depths_are_422_naming_the_range(ib_tree: EdgeServer, depth: str) -> None:
    with ib_tree.admin() as admin:
        response = admin.get("/api/partners/master/tree", params={"depth": depth})
    assert response.status_code == 422
    assert "depth must be a whole number from 1 to 32" in response.json()["error"]["message"]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["depth", "limit"]), st.text(max_size=12),
                              max_size=2),
       partner_id=st.sampled_from(["master", "leaf-1", "nobody", "bad%20id", "x" * 70]))
def test_no_tree_request_gets_a_5xx(
    ib_tree: EdgeServer, params: dict[str, str], partner_id: str
) -> None:
    with ib_tree.admin() as admin:
        response = admin.get(f"/api/partners/{partner_id}/tree", params=params)
    assert response.status_code in (200, 404, 422), response.text
