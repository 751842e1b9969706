"""The redirect as a clicker, a bot and a marketing team see it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REGISTRATION_URL, EdgeServer, stream_events, wait_for
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


@pytest.fixture
def link(edge: EdgeServer) -> dict[str, object]:
    put_partner(edge, "ib-1", type="ib", name="Master IB")
    put_partner(edge, "sub-1", parentPartnerId="ib-1")
    return create_link(edge, "sub-1", campaign="spring", subId="banner-a")


def test_person_click_redirects_with_attribution_and_cookie(
    edge: EdgeServer, link: dict[str, object], redis_client: redis.Redis
) -> None:
    with edge.client() as client:
        response = client.get(f"/r/{link['code']}?utm_source=x", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REGISTRATION_URL + "?")
    query = _query(location)
    assert query["partnerId"] == ["sub-1"]
    assert query["campaign"] == ["spring"]
    assert query["utm_source"] == ["x"]
    click_id = query["clickId"][0]
    assert uuid.UUID(click_id).version == 7
    assert response.headers["cache-control"] == "private, no-store"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("invite_ref=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000", "Secure"):
        assert attribute in cookie
    assert "Domain=" not in cookie

    (event,) = stream_events(redis_client)
    assert event["click_id"] == click_id
    assert event["kind"] == "person"
    assert event["outcome"] == "credited"
    assert event["partner_id"] == "sub-1"
    assert event["ancestors"] == ["ib-1"]
    assert event["campaign"] == "spring"
    assert event["sub_id"] == "banner-a"
    assert event["first_click"] is True
    assert event["ip_prefix"] == "127.0.0.0/24"
    assert "127.0.0.1" not in str(event)


def test_click_ids_are_unique_and_time_ordered(
    edge: EdgeServer, link: dict[str, object]
) -> None:
    with edge.client() as client:
        ids = [
            _query(client.get(f"/r/{link['code']}").headers["location"])["clickId"][0]
            for _ in range(20)
        ]
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


def test_clicker_cannot_spoof_partner_in_query(edge: EdgeServer, link: dict[str, object]) -> None:
    with edge.client() as client:
        response = client.get(f"/r/{link['code']}?partnerId=evil&clickId=x&campaign=y&a=1")
    query = _query(response.headers["location"])
    assert query["partnerId"] == ["sub-1"]
    assert query["campaign"] == ["spring"]
    assert query["clickId"] != ["x"]
    assert query["a"] == ["1"]


def test_cookie_domain_and_insecure_flag_follow_settings(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    edge = edge_factory(INVITE_COOKIE_DOMAIN=".broker.test", INVITE_COOKIE_SECURE="0",
                        INVITE_ATTRIBUTION_DAYS="7")
    put_partner(edge, "p1")
    code = create_link(edge, "p1")["code"]
    with edge.client() as client:
        cookie = client.get(f"/r/{code}", headers={"User-Agent": CHROME}).headers["set-cookie"]
    assert "Domain=.broker.test" in cookie
    assert "Secure" not in cookie
    assert "Max-Age=604800" in cookie


@pytest.mark.parametrize(
    ("headers", "method", "kind"),
    [
        ({"User-Agent": SLACKBOT}, "GET", "preview"),
        ({"User-Agent": GOOGLEBOT}, "GET", "crawler"),
        ({"User-Agent": CHROME}, "HEAD", "head"),
        ({"User-Agent": CHROME, "Sec-Purpose": "prefetch;prerender"}, "GET", "prefetch"),
        ({"User-Agent": CHROME, "Purpose": "prefetch"}, "GET", "prefetch"),
        ({"User-Agent": "Mozilla/5.0 (compatible; Mimecast)"}, "GET", "scanner"),
    ],
    ids=["preview-bot", "crawler", "head", "sec-purpose-prefetch", "purpose-prefetch", "scanner"],
)
def test_non_person_gets_redirect_without_cookie_and_flagged_event(
    edge: EdgeServer, link: dict[str, object], redis_client: redis.Redis,
    headers: dict[str, str], method: str, kind: str,
) -> None:
    with edge.client() as client:
        response = client.request(method, f"/r/{link['code']}", headers=headers)
    assert response.status_code == 302
    assert "set-cookie" not in response.headers
    assert _query(response.headers["location"])["partnerId"] == ["sub-1"]
    (event,) = stream_events(redis_client)
    assert event["kind"] == kind


def test_unknown_code_gets_404_page_and_orphan_event(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    with edge.client() as client:
        response = client.get("/r/doesNotExist1", headers={"User-Agent": CHROME})
    assert response.status_code == 404
    assert "does not exist" in response.text
    assert "set-cookie" not in response.headers
    (event,) = stream_events(redis_client)
    assert event["outcome"] == "orphan"
    assert event["code"] == "doesNotExist1"
    assert event["partner_id"] == ""


def test_unknown_code_goes_to_fallback_url_when_set(
    edge_factory: Callable[..., EdgeServer], redis_client: redis.Redis
) -> None:
    edge = edge_factory(INVITE_FALLBACK_URL="https://www.broker.test/")
    with edge.client() as client:
        response = client.get("/r/nope")
    assert response.status_code == 302
    assert response.headers["location"] == "https://www.broker.test/"
    assert stream_events(redis_client)[0]["outcome"] == "orphan"


def test_suspended_partner_is_not_credited_within_a_second(
    edge: EdgeServer, link: dict[str, object], redis_client: redis.Redis
) -> None:
    with edge.client() as client:
        assert "partnerId" in _query(client.get(f"/r/{link['code']}").headers["location"])
        put_partner(edge, "sub-1", status="suspended")

        def uncredited() -> bool:
            response = client.get(f"/r/{link['code']}", headers={"User-Agent": CHROME})
            return "partnerId" not in _query(response.headers["location"])

        wait_for(uncredited, timeout=1.0, what="the suspension to reach the edge")
        response = client.get(f"/r/{link['code']}", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    assert response.headers["location"].startswith(REGISTRATION_URL)
    assert "set-cookie" not in response.headers
    assert "clickId" in _query(response.headers["location"])
    assert stream_events(redis_client)[-1]["outcome"] == "suspended"


def test_link_destination_and_alias_are_used(edge: EdgeServer) -> None:
    put_partner(edge, "aff-7", type="affiliate")
    link = create_link(
        edge, "aff-7", alias="spring-promo", destination="https://www.broker.test/open?lang=de#top"
    )
    assert link["code"] == "spring-promo"
    with edge.client() as client:
        response = client.get("/r/spring-promo?x=1")
    location = response.headers["location"]
    assert location.startswith("https://www.broker.test/open?lang=de&x=1&partnerId=aff-7")
    assert location.endswith("#top")


def test_partner_destination_is_the_default_for_its_links(edge: EdgeServer) -> None:
    put_partner(edge, "p-dest", destination="https://de.broker.test/register")
    code = create_link(edge, "p-dest")["code"]
    with edge.client() as client:
        location = client.get(f"/r/{code}").headers["location"]
    assert location.startswith("https://de.broker.test/register?partnerId=p-dest")


def test_other_methods_are_refused_with_405(edge: EdgeServer, link: dict[str, object]) -> None:
    with edge.client() as client:
        response = client.post(f"/r/{link['code']}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    ["/r/", "/r/" + "a" * 5000, "/r/%00%ff%fe", "/r/..%2F..%2Fetc", "/r/abc/def",
     "/r/%E2%80%AEabc", "/r/' OR 1=1 --", "/r/spring-promo%0d%0aSet-Cookie:x=1"],
    ids=["empty", "overlong", "odd-bytes", "traversal", "slash", "bidi", "sql", "crlf"],
)
def test_odd_codes_never_yield_5xx(edge: EdgeServer, path: str) -> None:
    with edge.client() as client:
        response = client.get(path)
    assert response.status_code == 404


def test_junk_and_huge_headers_never_yield_5xx(edge: EdgeServer, link: dict[str, object]) -> None:
    junk_headers: dict[str, str | bytes] = {
        "Cookie": "invite_ref=" + "x" * 6000 + "; a=%00; invite_ref=..; =;;",
        "User-Agent": ("é" * 2000).encode("utf-8"),
        "Referer": "http://" + "r" * 4000,
        "Accept-Language": "de-DE,de;q=0.9," * 200,
        "CF-IPCountry": "XXXXXXXXXXXX",
        "Sec-Purpose": "",
    }
    with edge.client() as client:
        response = client.get(f"/r/{link['code']}", headers=junk_headers)
        control_bytes = client.get(f"/r/{link['code']}", headers={"Cookie": b"a=\x7f\x01"})
        huge = client.get(f"/r/{link['code']}", headers={"X-Junk": "j" * 200_000})
    assert response.status_code == 302
    # The HTTP server refuses what HTTP forbids before the app runs: a 4xx, never a 5xx.
    assert control_bytes.status_code in (302, 400)
    assert huge.status_code < 500


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    code=st.text(min_size=0, max_size=80),
    query=st.text(max_size=200),
    cookie=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300),
)
def test_any_input_never_yields_5xx(
    edge: EdgeServer, link: dict[str, object], code: str, query: str, cookie: str
) -> None:
    from urllib.parse import quote

    with edge.client() as client:
        response = client.get(
            f"/r/{quote(code, safe='')}?{quote(query, safe='=&')}",
            headers={"Cookie": f"invite_ref={cookie}", "User-Agent": CHROME},
        )
    assert response.status_code in (302, 404)


def test_rotating_the_secret_keeps_shared_links_working(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    old = edge_factory(INVITE_SECRET="old-secret-0123456789")
    put_partner(old, "p-rot")
    code = create_link(old, "p-rot")["code"]
    old.stop()
    for secrets in ("new-secret-0123456789,old-secret-0123456789", "new-secret-0123456789"):
        edge = edge_factory(INVITE_SECRET=secrets)
        with edge.client() as client:
            response = client.get(f"/r/{code}")
        assert _query(response.headers["location"])["partnerId"] == ["p-rot"]
        edge.stop()
