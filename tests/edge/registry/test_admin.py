"""The partners and links API: auth, hierarchy, validation."""

from __future__ import annotations

import pytest
import redis

from edge.registry import tokens as partner_tokens
from edge.registry.keys import partner_key
from edge.signing import TokenSigner
from tests.conftest import EdgeServer, stream_events
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_admin_routes_need_the_admin_bearer_token(edge: EdgeServer) -> None:
    with edge.client() as client:
        missing = client.put("/api/partners/p1", json={})
        wrong = client.put("/api/partners/p1", json={}, headers={"Authorization": "Bearer nope"})
        basic = client.get("/api/partners/p1", headers={"Authorization": "Basic abc"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_rotated_admin_tokens_are_all_accepted(edge_factory) -> None:  # type: ignore[no-untyped-def]
    edge = edge_factory(INVITE_ADMIN_TOKEN="new-admin-token-123456,old-admin-token-123456")
    for token in ("new-admin-token-123456", "old-admin-token-123456"):
        with edge.client(headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.put(f"/api/partners/{token[:3]}", json={}).status_code == 201


def test_partner_create_then_update(edge: EdgeServer) -> None:
    with edge.admin() as admin:
        created = admin.put("/api/partners/ib-1", json={"type": "ib", "name": "Master"})
        updated = admin.put("/api/partners/ib-1", json={"name": "Master IB"})
        fetched = admin.get("/api/partners/ib-1")
    assert created.status_code == 201
    assert updated.status_code == 200
    body = fetched.json()
    assert body["name"] == "Master IB"
    assert body["type"] == "ib"
    assert body["status"] == "active"
    assert body["level"] == 1
    assert body["ancestors"] == []


def test_three_level_tree_has_levels_and_ancestors_root_first(edge: EdgeServer) -> None:
    put_partner(edge, "master", type="ib")
    put_partner(edge, "sub", type="ib", parentPartnerId="master")
    leaf = put_partner(edge, "leaf", parentPartnerId="sub")
    assert leaf["level"] == 3
    assert leaf["ancestors"] == ["master", "sub"]


def test_reparenting_rewrites_the_subtree_ancestors(edge: EdgeServer) -> None:
    put_partner(edge, "a")
    put_partner(edge, "b")
    put_partner(edge, "c", parentPartnerId="a")
    put_partner(edge, "d", parentPartnerId="c")
    put_partner(edge, "c", parentPartnerId="b")
    with edge.admin() as admin:
        assert admin.get("/api/partners/d").json()["ancestors"] == ["b", "c"]


@pytest.mark.parametrize(
    ("partner_id", "parent"), [("a", "a"), ("a", "c"), ("b", "c")], ids=["self", "two-up", "one-up"]
)
def test_hierarchy_cycles_are_refused_with_422(
    edge: EdgeServer, partner_id: str, parent: str
) -> None:
    put_partner(edge, "a")
    put_partner(edge, "b", parentPartnerId="a")
    put_partner(edge, "c", parentPartnerId="b")
    with edge.admin() as admin:
        response = admin.put(f"/api/partners/{partner_id}", json={"parentPartnerId": parent})
    assert response.status_code == 422
    assert "cycle" in response.json()["error"]["message"] or "own parent" in response.text


@pytest.mark.parametrize(
    "body",
    [{"type": "reseller"}, {"status": "deleted"}, {"parentPartnerId": "ghost"},
     {"destination": "https://evil.test/"}, {"name": 5}, {"unknown": 1}, {"name": "x" * 500}],
    ids=["type", "status", "unknown-parent", "destination", "name-type", "unknown-field", "long"],
)
def test_bad_partner_fields_get_422_with_reason(edge: EdgeServer, body: dict[str, object]) -> None:
    with edge.admin() as admin:
        response = admin.put("/api/partners/p-bad", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["message"]


@pytest.mark.parametrize("partner_id", ["-x", "a b", "x" * 65, "é"])
def test_bad_partner_ids_are_refused(edge: EdgeServer, partner_id: str) -> None:
    with edge.admin() as admin:
        response = admin.put(f"/api/partners/{partner_id}", json={})
    assert response.status_code == 422


def test_malformed_json_is_a_400(edge: EdgeServer) -> None:
    with edge.admin() as admin:
        not_json = admin.put("/api/partners/p", content=b"{nope")
        not_object = admin.put("/api/partners/p", content=b"[1]")
    assert not_json.status_code == 400
    assert not_object.status_code == 400


def test_unknown_partner_is_404(edge: EdgeServer) -> None:
    with edge.admin() as admin:
        assert admin.get("/api/partners/nobody").status_code == 404
        assert admin.post("/api/partners/nobody/links", json={}).status_code == 404
        assert admin.get("/api/links/zzzzzzzz").status_code == 404


def test_link_is_created_and_read_back(edge: EdgeServer) -> None:
    put_partner(edge, "p-l")
    link = create_link(edge, "p-l", campaign="launch", subId="s1")
    assert len(link["code"]) >= 7
    assert link["url"].endswith(f"/r/{link['code']}")
    assert link["partnerId"] == "p-l"
    assert link["campaign"] == "launch"
    assert link["destination"] is None
    with edge.admin() as admin:
        fetched = admin.get(f"/api/links/{link['code']}").json()
    assert fetched["campaign"] == "launch"
    assert fetched["subId"] == "s1"


def test_taken_alias_is_a_409(edge: EdgeServer) -> None:
    put_partner(edge, "p-al")
    create_link(edge, "p-al", alias="promo-1")
    with edge.admin() as admin:
        response = admin.post("/api/partners/p-al/links", json={"alias": "promo-1"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    "destination",
    ["https://evil.test/", "//evil.test", "https:evil.test", "\\\\evil.test",
     "https://register.broker.test@evil.test/", "javascript:alert(1)",
     "https://evil.test%2F.broker.test/", "https://register.broker.test.evil.test/"],
    ids=["other-host", "scheme-relative", "no-slashes", "backslashes", "userinfo", "javascript",
         "encoded", "suffix"],
)
def test_link_destination_off_the_allow_list_is_refused(
    edge: EdgeServer, destination: str
) -> None:
    put_partner(edge, "p-d")
    with edge.admin() as admin:
        response = admin.post("/api/partners/p-d/links", json={"destination": destination})
    assert response.status_code == 422


def test_partner_token_is_issued_by_admin_only(edge: EdgeServer) -> None:
    put_partner(edge, "p-tok")
    with edge.admin() as admin:
        response = admin.post("/api/partners/p-tok/tokens")
    assert response.status_code == 201
    assert response.json()["token"]
    with edge.client() as client:
        assert client.post("/api/partners/p-tok/tokens").status_code == 401


def test_revoking_a_partners_tokens_stamps_the_partner_for_the_analytics_api(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "p-rev")
    with edge.admin() as admin:
        issued = admin.post("/api/partners/p-rev/tokens").json()["token"]
        response = admin.delete("/api/partners/p-rev/tokens")
        unknown = admin.delete("/api/partners/nobody/tokens")
    with edge.client() as client:
        assert client.delete("/api/partners/p-rev/tokens").status_code == 401

    assert response.status_code == 200, response.text
    not_before = response.json()["tokensNotBefore"]
    stored = redis_client.hget(partner_key("p-rev"), "tokens_not_before")
    assert int(stored) == not_before  # type: ignore[arg-type]
    signer = TokenSigner("partner-api", edge.settings.secrets)
    [_, issued_at] = partner_tokens.claims(signer, issued)  # type: ignore[misc]
    assert issued_at < not_before
    assert unknown.status_code == 404


def test_ops_routes_answer(edge: EdgeServer) -> None:
    with edge.client() as client:
        client.get("/r/unknown-code")
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["redis"] == "ok"
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "invite_spool_depth" in metrics.text
    assert 'invite_requests_total{route="redirect"} 1.0' in metrics.text
    assert 'invite_redirects_total{kind="crawler",outcome="orphan"} 1.0' in metrics.text


def test_unknown_route_is_json_404(edge: EdgeServer) -> None:
    with edge.client() as client:
        response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_reparenting_past_the_depth_limit_changes_nothing(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    """The whole subtree is checked before anything is written: a refused move leaves every
    partner as it was, and a redirect still carries the old tree."""
    put_partner(edge, "level-1")
    for level in range(2, 31):
        put_partner(edge, f"level-{level}", parentPartnerId=f"level-{level - 1}")
    put_partner(edge, "top")
    put_partner(edge, "middle", parentPartnerId="top")
    put_partner(edge, "bottom", parentPartnerId="middle")
    link = create_link(edge, "bottom")
    with edge.client() as client:
        client.get(f"/r/{link['code']}")  # the edge caches the link with its ancestors
    with edge.admin() as admin:
        before = {p: admin.get(f"/api/partners/{p}").json() for p in ("top", "middle", "bottom")}
        refused = admin.put("/api/partners/top", json={"parentPartnerId": "level-30"})
        after = {p: admin.get(f"/api/partners/{p}").json() for p in ("top", "middle", "bottom")}
    with edge.client() as client:
        client.get(f"/r/{link['code']}", headers={"User-Agent": FIREFOX})
    with edge.admin() as admin:
        moved_under = admin.put("/api/partners/top", json={"parentPartnerId": "level-28"})
    assert refused.status_code == 422
    assert "deeper than 32 levels" in refused.json()["error"]["message"]
    assert after == before
    assert stream_events(redis_client)[-1]["ancestors"] == ["top", "middle"]
    assert moved_under.status_code == 200
    with edge.admin() as admin:
        assert admin.get("/api/partners/bottom").json()["level"] == 31
