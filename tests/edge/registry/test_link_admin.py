"""A partner's links as an admin handles them: the list, PATCH (disable, destination), QR codes."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.registry.keys import link_seq_key
from edge.registry.paging import encode_cursor
from tests.conftest import EdgeServer
from tests.edge.helpers import create_link, put_partner
from tests.edge.registry.qr_reading import decoded, png_pixels, svg_pixels

pytestmark = pytest.mark.servers


def _links(edge: EdgeServer, partner_id: str, **params: Any) -> dict[str, Any]:
    with edge.admin() as admin:
        response = admin.get(f"/api/partners/{partner_id}/links", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _patch(edge: EdgeServer, code: str, body: object) -> Any:
    with edge.admin() as admin:
        return admin.patch(f"/api/links/{code}", json=body)


@pytest.fixture
def partner(edge: EdgeServer) -> EdgeServer:
    put_partner(edge, "aff-1", name="Affiliate One")
    return edge


# --- GET /api/partners/{id}/links ---------------------------------------------------------


def test_a_partners_links_are_listed_newest_first(partner: EdgeServer) -> None:
    codes = [create_link(partner, "aff-1", campaign=f"c{i}")["code"] for i in range(3)]
    put_partner(partner, "other")
    create_link(partner, "other")
    body = _links(partner, "aff-1")
    assert [item["code"] for item in body["items"]] == codes[::-1]
    assert body["nextCursor"] is None
    first = body["items"][0]
    assert first["campaign"] == "c2"
    assert first["status"] == "active"
    assert first["url"] == f"{partner.url}/r/{codes[2]}"


def test_link_pages_follow_the_cursor(partner: EdgeServer) -> None:
    codes = [create_link(partner, "aff-1")["code"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        body = _links(partner, "aff-1", limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= 2
        seen += [item["code"] for item in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == codes[::-1]


def test_a_link_number_an_alias_conflict_used_up_leaves_no_gap(
    partner: EdgeServer, redis_client: redis.Redis
) -> None:
    create_link(partner, "aff-1", alias="taken-one")
    with partner.admin() as admin:
        refused = admin.post("/api/partners/aff-1/links", json={"alias": "TAKEN-one"})
    assert refused.status_code == 409
    last = create_link(partner, "aff-1")
    assert int(redis_client.get(link_seq_key(1))) == 3  # type: ignore[arg-type]
    body = _links(partner, "aff-1", limit=1)
    assert [item["code"] for item in body["items"]] == [last["code"]]
    rest = _links(partner, "aff-1", cursor=body["nextCursor"])
    assert [item["code"] for item in rest["items"]] == ["taken-one"]


def test_links_filter_by_status(partner: EdgeServer) -> None:
    kept = create_link(partner, "aff-1")["code"]
    dropped = create_link(partner, "aff-1")["code"]
    assert _patch(partner, dropped, {"status": "disabled"}).status_code == 200
    assert [i["code"] for i in _links(partner, "aff-1", status="disabled")["items"]] == [dropped]
    assert [i["code"] for i in _links(partner, "aff-1", status="active")["items"]] == [kept]


def test_links_of_an_unknown_partner_are_404(partner: EdgeServer) -> None:
    with partner.admin() as admin:
        assert admin.get("/api/partners/nobody/links").status_code == 404
        assert admin.get("/api/partners/bad%20id/links").status_code == 422


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "x"}, {"status": "paused"}, {"cursor": "%%%"},
    {"cursor": encode_cursor("partners", "aff-1")}, {"cursor": encode_cursor("links", "0")},
    {"cursor": encode_cursor("links", "٣")}, {"campaign": "x"},
], ids=lambda value: str(value)[:30])
def test_bad_link_list_parameters_are_422(partner: EdgeServer, params: dict[str, str]) -> None:
    with partner.admin() as admin:
        response = admin.get("/api/partners/aff-1/links", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


# --- PATCH /api/links/{code} --------------------------------------------------------------


def test_patch_disables_and_enables_a_link(partner: EdgeServer) -> None:
    code = create_link(partner, "aff-1")["code"]
    disabled = _patch(partner, code, {"status": "disabled"})
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    with partner.admin() as admin:
        assert admin.get(f"/api/links/{code}").json()["status"] == "disabled"
    assert _patch(partner, code, {"status": "active"}).json()["status"] == "active"


def test_patch_changes_the_destination_within_the_allow_list(partner: EdgeServer) -> None:
    code = create_link(partner, "aff-1")["code"]
    changed = _patch(partner, code, {"destination": "https://www.broker.test/de/open"})
    assert changed.status_code == 200
    assert changed.json()["destination"] == "https://www.broker.test/de/open"
    with partner.client() as client:
        assert client.get(f"/r/{code}").headers["location"].startswith(
            "https://www.broker.test/de/open?")
    cleared = _patch(partner, code, {"destination": None})
    assert cleared.json()["destination"] is None


@pytest.mark.parametrize("body", [
    {"status": "paused"}, {"status": None}, {"status": 1},
    {"destination": "https://evil.test/"}, {"destination": "javascript:alert(1)"},
    {"destination": 5}, {"alias": "new-name"}, {"partnerId": "other"},
], ids=lambda value: str(value)[:30])
def test_bad_patches_are_422_and_change_nothing(partner: EdgeServer, body: object) -> None:
    link = create_link(partner, "aff-1")
    response = _patch(partner, link["code"], body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    with partner.admin() as admin:
        after = admin.get(f"/api/links/{link['code']}").json()
    assert (after["status"], after["destination"]) == ("active", None)


def test_patching_an_unknown_link_is_404_and_needs_the_admin_token(partner: EdgeServer) -> None:
    assert _patch(partner, "zzzzzzzz", {"status": "disabled"}).status_code == 404
    code = create_link(partner, "aff-1")["code"]
    with partner.client() as client:
        assert client.patch(f"/api/links/{code}", json={"status": "disabled"}).status_code == 401


def test_a_patch_body_that_is_not_an_object_is_400(partner: EdgeServer) -> None:
    code = create_link(partner, "aff-1")["code"]
    with partner.admin() as admin:
        assert admin.patch(f"/api/links/{code}", content=b"[1]").status_code == 400
        assert admin.patch(f"/api/links/{code}", content=b"{nope").status_code == 400


@pytest.fixture
def promo(partner: EdgeServer) -> EdgeServer:
    create_link(partner, "aff-1", alias="spring-promo")
    return partner


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(
    st.sampled_from(["status", "destination", "alias", ""]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40),
              st.sampled_from(["active", "disabled", "https://www.broker.test/x"])),
    max_size=3,
))
def test_no_patch_body_gets_a_5xx(promo: EdgeServer, body: dict[str, object]) -> None:
    with promo.admin() as admin:
        response = admin.patch("/api/links/spring-promo", json=body)
    assert response.status_code in (200, 404, 422), response.text


# --- QR codes -----------------------------------------------------------------------------


def test_the_png_qr_code_reads_as_the_links_url(partner: EdgeServer) -> None:
    link = create_link(partner, "aff-1", alias="Spring-Promo")
    with partner.admin() as admin:
        response = admin.get("/api/links/spring-promo/qr.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "private, max-age=86400"
    assert 'filename="Spring-Promo.png"' in response.headers["content-disposition"]
    pixels = png_pixels(response.content)
    assert pixels.shape[0] <= 256
    assert decoded(pixels) == link["url"] == f"{partner.url}/r/Spring-Promo"


def test_the_svg_qr_code_reads_as_the_links_url_at_the_size_asked(partner: EdgeServer) -> None:
    link = create_link(partner, "aff-1")
    with partner.admin() as admin:
        response = admin.get(f"/api/links/{link['code']}/qr.svg", params={"size": "512"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text.startswith('<svg width="512" height="512"')
    assert decoded(svg_pixels(response.content)) == link["url"]


def test_the_qr_code_carries_the_public_url_when_one_is_set(edge_factory) -> None:  # type: ignore[no-untyped-def]
    edge = edge_factory(INVITE_PUBLIC_URL="https://go.broker.test")
    put_partner(edge, "aff-1")
    link = create_link(edge, "aff-1")
    with edge.admin() as admin:
        image = admin.get(f"/api/links/{link['code']}/qr.png", params={"size": "400"}).content
    assert decoded(png_pixels(image)) == f"https://go.broker.test/r/{link['code']}"


def test_an_unchanged_qr_code_is_not_sent_again(partner: EdgeServer) -> None:
    code = create_link(partner, "aff-1")["code"]
    with partner.admin() as admin:
        first = admin.get(f"/api/links/{code}/qr.svg")
        again = admin.get(f"/api/links/{code}/qr.svg",
                          headers={"If-None-Match": first.headers["etag"]})
        other_size = admin.get(f"/api/links/{code}/qr.svg", params={"size": "300"})
    assert again.status_code == 304
    assert again.content == b""
    assert other_size.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize("params", [
    {"size": "63"}, {"size": "2049"}, {"size": "big"}, {"size": "２５６"}, {"size": ""},
    {"scale": "4"},
], ids=lambda value: str(value))
def test_bad_qr_sizes_are_422_naming_the_limits(
    partner: EdgeServer, params: dict[str, str]
) -> None:
    code = create_link(partner, "aff-1")["code"]
    with partner.admin() as admin:
        response = admin.get(f"/api/links/{code}/qr.png", params=params)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "64" in message or "scale" in message


def test_qr_codes_need_the_admin_token_and_a_known_link(partner: EdgeServer) -> None:
    code = create_link(partner, "aff-1")["code"]
    with partner.client() as client:
        assert client.get(f"/api/links/{code}/qr.svg").status_code == 401
    with partner.admin() as admin:
        assert admin.get("/api/links/zzzzzzzz/qr.svg").status_code == 404
        assert admin.get("/api/links/zzzzzzzz/qr.gif").status_code == 404
