"""GET /api/partners as a marketing team uses it: search, filters, paging, counts, bad input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.registry.keys import PARTNER_BY_NUM, PARTNER_SEQ, children_key, partner_key
from edge.registry.paging import encode_cursor
from tests.conftest import EdgeServer
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers


def _list(edge: EdgeServer, **params: Any) -> dict[str, Any]:
    with edge.admin() as admin:
        response = admin.get("/api/partners", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["partnerId"] for item in body["items"]]


def _all_pages(edge: EdgeServer, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        body = _list(edge, **params, **({"cursor": cursor} if cursor else {}))
        seen += _ids(body)
        cursor = body["nextCursor"]
        if cursor is None:
            return seen


@pytest.fixture
def tree(edge: EdgeServer) -> EdgeServer:
    """master → (sub-a → leaf-1, leaf-2), (sub-b); solo; a suspended partner."""
    put_partner(edge, "master", type="ib", name="Atlas Capital")
    put_partner(edge, "sub-a", type="ib", name="Ärger Trading", parentPartnerId="master")
    put_partner(edge, "sub-b", type="ib", name="Brook IB", parentPartnerId="master")
    put_partner(edge, "leaf-1", name="Leaf One", parentPartnerId="sub-a")
    put_partner(edge, "leaf-2", name="Leaf Two", parentPartnerId="sub-a")
    put_partner(edge, "solo", name="Solo Affiliate", type="affiliate")
    put_partner(edge, "gone", name="Suspended One", status="suspended")
    return edge


def test_every_partner_is_listed_once_in_id_order(tree: EdgeServer) -> None:
    body = _list(tree)
    assert _ids(body) == ["gone", "leaf-1", "leaf-2", "master", "solo", "sub-a", "sub-b"]
    assert body["nextCursor"] is None
    master = body["items"][3]
    assert master["name"] == "Atlas Capital"
    assert master["level"] == 1
    assert (master["childCount"], master["descendantCount"]) == (2, 4)


def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(tree: EdgeServer) -> None:
    first = _list(tree, limit=3)
    assert len(first["items"]) == 3
    assert first["nextCursor"]
    assert _all_pages(tree, limit=2) == _ids(_list(tree))


def test_a_partner_added_while_paging_appears_in_its_place(tree: EdgeServer) -> None:
    first = _list(tree, limit=2)  # gone, leaf-1
    put_partner(tree, "aaa-early")
    put_partner(tree, "zzz-late")
    rest = _list(tree, cursor=first["nextCursor"])
    assert _ids(rest) == ["leaf-2", "master", "solo", "sub-a", "sub-b", "zzz-late"]


@pytest.mark.parametrize(("q", "expected"), [
    ("LEAF", ["leaf-1", "leaf-2"]),
    ("capital", ["master"]),
    ("ärger", ["sub-a"]),
    ("ÄRGER", ["sub-a"]),
    ("sub-", ["sub-a", "sub-b"]),
    ("nothing-like-this", []),
])
def test_search_matches_id_or_name_in_any_case(
    tree: EdgeServer, q: str, expected: list[str]
) -> None:
    assert _ids(_list(tree, q=q)) == expected


def test_parent_lists_direct_children_only(tree: EdgeServer) -> None:
    assert _ids(_list(tree, parent="master")) == ["sub-a", "sub-b"]
    assert _ids(_list(tree, parent="sub-a")) == ["leaf-1", "leaf-2"]
    assert _ids(_list(tree, parent="leaf-1")) == []


def test_roots_lists_the_partners_without_a_parent(tree: EdgeServer) -> None:
    assert _ids(_list(tree, roots="true")) == ["gone", "master", "solo"]


def test_filters_combine(tree: EdgeServer) -> None:
    assert _ids(_list(tree, parent="sub-a", q="two")) == ["leaf-2"]
    assert _ids(_list(tree, status="suspended")) == ["gone"]
    assert _ids(_list(tree, roots="true", status="active")) == ["master", "solo"]


def test_a_search_pages_like_the_full_list(tree: EdgeServer) -> None:
    assert _all_pages(tree, q="e", limit=1) == _ids(_list(tree, q="e"))


def test_edits_move_partners_between_filters(tree: EdgeServer) -> None:
    put_partner(tree, "leaf-2", parentPartnerId="sub-b", name="Renamed Leaf")
    put_partner(tree, "solo", status="suspended")
    assert _ids(_list(tree, parent="sub-a")) == ["leaf-1"]
    assert _ids(_list(tree, parent="sub-b")) == ["leaf-2"]
    assert _ids(_list(tree, q="two")) == []
    assert _ids(_list(tree, q="renamed")) == ["leaf-2"]
    assert _ids(_list(tree, status="suspended")) == ["gone", "solo"]
    counts = {item["partnerId"]: item["descendantCount"] for item in _list(tree)["items"]}
    assert (counts["master"], counts["sub-a"], counts["sub-b"]) == (4, 1, 1)


def test_moving_a_subtree_rolls_its_counts_up_to_the_new_ancestors(tree: EdgeServer) -> None:
    put_partner(tree, "sub-a", parentPartnerId="solo")
    counts = {item["partnerId"]: item["descendantCount"] for item in _list(tree)["items"]}
    assert (counts["master"], counts["solo"], counts["sub-a"]) == (1, 3, 2)
    assert _ids(_list(tree, parent="solo")) == ["sub-a"]


def test_link_counts_are_listed(tree: EdgeServer) -> None:
    create_link(tree, "solo")
    create_link(tree, "solo", campaign="x")
    counts = {item["partnerId"]: item["linkCount"] for item in _list(tree)["items"]}
    assert (counts["solo"], counts["master"]) == (2, 0)


def test_unknown_parent_is_404(tree: EdgeServer) -> None:
    with tree.admin() as admin:
        response = admin.get("/api/partners", params={"parent": "nobody"})
    assert response.status_code == 404
    assert "nobody" in response.json()["error"]["message"]


def test_the_list_needs_the_admin_token(tree: EdgeServer) -> None:
    with tree.client() as client:
        assert client.get("/api/partners").status_code == 401


@pytest.mark.parametrize(("params", "named"), [
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "１０"}, "limit"),
    ({"limit": "+5"}, "limit"),
    ({"limit": " 5"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "99999999999999999999999"}, "limit"),
    ({"status": "deleted"}, "status"),
    ({"roots": "maybe"}, "roots"),
    ({"parent": "a b"}, "parent 'a b'"),
    ({"parent": "master", "roots": "true"}, "parent"),
    ({"q": "x" * 201}, "q"),
    ({"cursor": "not a cursor"}, "cursor"),
    ({"cursor": "eyJ4IjoxfQ"}, "cursor"),
    ({"cursor": encode_cursor("links", "5")}, "cursor"),
    ({"cursor": encode_cursor("partners", "bad id!")}, "cursor"),
    ({"limt": "5"}, "limt"),
], ids=lambda value: str(value)[:30])
def test_bad_parameters_get_a_422_naming_them(
    tree: EdgeServer, params: dict[str, str], named: str
) -> None:
    with tree.admin() as admin:
        response = admin.get("/api/partners", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert named in error["message"]


def test_a_parameter_given_twice_is_refused(tree: EdgeServer) -> None:
    with tree.admin() as admin:
        response = admin.get("/api/partners?limit=1&limit=2")
    assert response.status_code == 422
    assert "more than once" in response.json()["error"]["message"]


_text = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(
    st.sampled_from(["parent", "roots", "q", "status", "limit", "cursor", "other"]), _text,
    max_size=4,
))
def test_no_query_string_gets_a_5xx(tree: EdgeServer, params: dict[str, str]) -> None:
    with tree.admin() as admin:
        response = admin.get("/api/partners", params=params)
    assert response.status_code in (200, 404, 422), response.text
    if response.status_code != 200:
        assert response.json()["error"]["message"]


def test_partners_stored_before_the_index_existed_are_listed(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    """An upgrade: partners an older version wrote (no index) are indexed on first use."""
    for num, (partner_id, parent, name) in enumerate(
        [("old-root", "", "Old Root"), ("old-kid", "old-root", "Old Kid")], start=1
    ):
        redis_client.hset(partner_key(partner_id), mapping={
            "num": num, "parent": parent, "name": name, "type": "ib", "status": "active",
            "ancestors": orjson.dumps([parent] if parent else []), "created_at": 1,
            "updated_at": 1,
        })
        redis_client.hset(PARTNER_BY_NUM, str(num), partner_id)
        if parent:
            redis_client.sadd(children_key(parent), partner_id)
    redis_client.set(PARTNER_SEQ, 2)
    put_partner(edge, "new-kid", parentPartnerId="old-root")
    assert _ids(_list(edge)) == ["new-kid", "old-kid", "old-root"]
    assert _ids(_list(edge, parent="old-root")) == ["new-kid", "old-kid"]
    assert _ids(_list(edge, q="old kid")) == ["old-kid"]
    root = _list(edge, roots="true")["items"][0]
    assert (root["partnerId"], root["descendantCount"], root["childCount"]) == ("old-root", 2, 2)


def test_a_partner_written_behind_the_index_is_picked_up(
    tree: EdgeServer, redis_client: redis.Redis
) -> None:
    """A partner written without the index (an older edge still running) makes the counts
    disagree, and the next list rebuilds the index."""
    redis_client.hset(partner_key("stray"), mapping={
        "num": 99, "parent": "", "status": "active", "ancestors": "[]", "name": "Stray",
    })
    redis_client.hset(PARTNER_BY_NUM, "99", "stray")
    assert "stray" in _ids(_list(tree))
