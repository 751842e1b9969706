"""Signing in to the portal: the admin's one-time link, opened (never spent) by scanners, spent by
the button once; the session cookie's flags; signing out; suspended and revoked partners."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from analytics.portal.signin import token_signer
from edge.registry.destinations import DestinationPolicy
from edge.registry.partners import PartnerRegistry
from edge.signing import TokenSigner
from tests.analytics.portal.conftest import Portal, hidden_fields, sign_in
from tests.analytics.test_api import AnalyticsServer
from tests.conftest import SECRET, make_settings

pytestmark = pytest.mark.servers


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_the_admin_gets_a_one_time_link_to_the_portal_for_24_hours(portal: Portal) -> None:
    with portal.admin() as http:
        answer = http.post("/api/partners/apex/portal-link")

    body = answer.json()
    assert answer.status_code == 201
    assert body["url"].startswith(f"{portal.url}/portal/signin?token=")
    expires = time.mktime(time.strptime(body["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(expires - time.mktime(time.gmtime()) - 24 * 3600) < 120
    assert answer.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize(("partner_id", "status"), [("nobody", 404), ("bad id!", 422)])
def test_a_link_for_an_unknown_or_malformed_partner_is_refused(
    portal: Portal, partner_id: str, status: int
) -> None:
    with portal.admin() as http:
        answer = http.post(f"/api/partners/{partner_id}/portal-link")

    assert answer.status_code == status
    assert answer.json()["error"]["code"] in ("not_found", "invalid_input")


def test_a_suspended_partner_gets_no_link(portal: Portal) -> None:
    portal.programme.partner("rival", status="suspended")

    with portal.admin() as http:
        answer = http.post("/api/partners/rival/portal-link")

    assert answer.status_code == 409
    assert "suspended" in answer.json()["error"]["message"]


def test_only_the_admin_token_issues_links(portal: Portal) -> None:
    with portal.server.client(None) as anonymous, portal.server.partner("apex") as partner:
        refused = [anonymous.post("/api/partners/apex/portal-link"),
                   partner.post("/api/partners/apex/portal-link")]

    assert [answer.status_code for answer in refused] == [401, 403]


def test_opening_the_link_shows_a_sign_in_button_and_spends_nothing(portal: Portal) -> None:
    url = portal.link("apex")
    with portal.browser() as scanner:
        first = scanner.get(url)
        second = scanner.get(url)
        preview = scanner.head(url)

    assert first.status_code == second.status_code == preview.status_code == 200
    assert 'id="signin"' in second.text and "Apex Capital" in second.text
    with portal.browser() as person:
        assert sign_in(person, url).status_code == 303


def test_the_button_signs_in_once_with_a_strict_http_only_session_cookie(portal: Portal) -> None:
    with portal.browser() as http:
        opened = http.get(portal.link("apex"))
        answer = http.post("/portal/signin", data=hidden_fields(opened.text))
        overview = http.get("/portal")

    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("invite_portal="))
    assert answer.status_code == 303 and answer.headers["location"] == "/portal"
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/portal" in session
    assert "Max-Age=43200" in session and "Secure" not in session  # INVITE_COOKIE_SECURE=0 here
    assert overview.status_code == 200 and "Apex Capital" in overview.text


def test_the_cookies_are_secure_unless_turned_off(
    portal: Portal, clickhouse_session: Client, tmp_path: Path
) -> None:
    settings = make_settings(  # INVITE_COOKIE_SECURE left at its default
        tmp_path, portal.programme.redis_url,
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    server = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    try:
        with server.admin() as admin:
            url = admin.post("/api/partners/apex/portal-link").json()["url"]
        with server.client(None) as http:
            opened = http.get(url)
            form_cookie = opened.headers["set-cookie"]
            answer = http.post("/portal/signin", data=hidden_fields(opened.text), headers={
                "Cookie": form_cookie.split(";")[0]})
    finally:
        server.stop()

    assert form_cookie.endswith("HttpOnly; SameSite=Strict; Secure")
    assert answer.status_code == 303
    session = answer.headers.get_list("set-cookie")[0]
    assert session.startswith("invite_portal=") and session.endswith("; Secure")


def test_the_second_use_of_a_link_is_refused_with_a_page_saying_so(portal: Portal) -> None:
    url = portal.link("apex")
    with portal.browser() as first, portal.browser() as second:
        opened = second.get(url)  # opened before the first person pressed the button
        assert sign_in(first, url).status_code == 303
        again = second.post("/portal/signin", data=hidden_fields(opened.text))
        reopened = second.get(url)
        after = second.get("/portal")

    assert again.status_code == reopened.status_code == 410
    assert "already been used" in again.text and "already been used" in reopened.text
    assert after.status_code == 401


def test_an_expired_link_is_refused_with_a_page_saying_so(portal: Portal) -> None:
    signer = token_signer(portal.server.settings.secrets)
    past = int(time.time() * 1000) - 25 * 3600 * 1000
    token = signer.sign(orjson.dumps({"p": "apex", "n": "A" * 24, "iat": past,
                                      "exp": past + 24 * 3600 * 1000}))
    with portal.browser() as http:
        opened = http.get("/portal/signin", params={"token": token})

    assert opened.status_code == 410
    assert "expired" in opened.text and "24 hours" in opened.text


@pytest.mark.parametrize("token", [
    "", "x", "abc.def", "A" * 5000, "é.é",
    TokenSigner("portal-session", ["test-secret-0123456789abcdef"]).sign(b'{"p": "apex"}'),
    TokenSigner("portal-signin", ["another-secret-0123456789"]).sign(
        orjson.dumps({"p": "apex", "n": "A" * 24, "iat": 1, "exp": 2**50})),
])
def test_a_forged_or_mangled_link_is_refused_with_a_page(portal: Portal, token: str) -> None:
    with portal.browser() as http:
        opened = http.get("/portal/signin", params={"token": token})
        pressed = http.post("/portal/signin", data={"token": token})

    assert opened.status_code in (400, 401)
    assert pressed.status_code in (400, 403)
    assert "<h1>" in opened.text and "<h1>" in pressed.text


def test_the_button_without_the_sign_in_page_s_cookie_spends_nothing(portal: Portal) -> None:
    url = portal.link("apex")
    with portal.browser() as http:
        opened = http.get(url)
    with portal.browser() as elsewhere:  # another browser posts the form
        refused = elsewhere.post("/portal/signin", data=hidden_fields(opened.text))
    with portal.browser() as person:
        accepted = sign_in(person, url)

    assert refused.status_code == 403
    assert accepted.status_code == 303


def test_signing_out_ends_the_session_even_for_a_kept_cookie(portal: Portal) -> None:
    with portal.signed_in("apex") as http:
        kept = dict(http.cookies)
        form = hidden_fields(http.get("/portal").text)
        out = http.post("/portal/signout", data={"csrf": form["csrf"]})
        after = http.get("/portal")
    with portal.browser() as replay:
        for name, value in kept.items():
            replay.cookies.set(name, value, path="/portal")
        replayed = replay.get("/portal")

    assert out.status_code == 303
    assert "invite_portal=;" in out.headers["set-cookie"]
    assert after.status_code == replayed.status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "wrong", "x" * 32])
def test_signing_out_without_the_session_s_csrf_token_is_refused(
    portal: Portal, csrf: str | None
) -> None:
    with portal.signed_in("apex") as http:
        answer = http.post("/portal/signout", data={} if csrf is None else {"csrf": csrf})
        still = http.get("/portal")

    assert answer.status_code == 403
    assert still.status_code == 200


def test_a_suspended_partner_s_session_stops_working(portal: Portal) -> None:
    with portal.signed_in("apex") as http:
        assert http.get("/portal/links").status_code == 200
        portal.programme.partner("apex", status="suspended")
        answer = http.get("/portal/links")

    assert answer.status_code == 401
    assert "suspended" in answer.text


def test_revoking_a_partner_s_tokens_ends_its_sessions_and_unused_links(portal: Portal) -> None:
    unused = portal.link("apex")
    with portal.signed_in("apex") as http:
        _revoke(portal, "apex")
        answer = http.get("/portal")
    with portal.browser() as other:
        opened = other.get(unused)

    assert answer.status_code == 401 and "revoked" in answer.text
    assert opened.status_code == 401 and "revoked" in opened.text


def _revoke(portal: Portal, partner_id: str) -> None:
    """What DELETE /api/partners/{id}/tokens does on the edge (PartnerRegistry.revoke_tokens)."""
    async def go() -> None:
        client = Redis.from_url(portal.programme.redis_url, decode_responses=True)
        try:
            await PartnerRegistry(client, SECRET, DestinationPolicy(())).revoke_tokens(partner_id)
        finally:
            await client.aclose()
    asyncio.run(go())


def test_api_clients_get_json_errors(portal: Portal) -> None:
    with httpx.Client(base_url=portal.url) as http:
        answer = http.get("/portal")

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "signed_out"
