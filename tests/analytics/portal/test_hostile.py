"""Whatever reaches the portal (paths, query values, form fields, cookies, tokens) gets a page or
a 4xx, never a 5xx, and never another partner's data."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analytics.portal.conftest import Portal, hidden_fields, sign_in

pytestmark = pytest.mark.servers

HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["../rival", "rival", "%2e%2e%2f", "\x00", "' OR 1=1 --", "<script>x</script>",
                     "１２３", "٣", "2026-11", "9" * 40, "", " ", "\u202e", "A" * 5000]),
)
PAGES = ("/portal", "/portal/links", "/portal/downline", "/portal/commissions")
PARAMETERS = ("range", "partner", "month", "cursor", "created", "token", "partnerId")


@pytest.fixture
def apex(traffic: Portal) -> Iterator[httpx.Client]:
    with traffic.signed_in("apex") as http:
        yield http


SETTINGS = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(page=st.sampled_from(PAGES), name=st.sampled_from(PARAMETERS), value=HOSTILE_TEXT)
def test_hostile_query_values_get_no_5xx(apex: httpx.Client, page: str, name: str,
                                         value: str) -> None:
    answer = apex.get(page, params={name: value})

    assert answer.status_code < 500, answer.text
    assert "Rival" not in answer.text


@SETTINGS
@given(segment=HOSTILE_TEXT, shape=st.sampled_from(
    ["/portal/links/{}/qr.svg", "/portal/links/{}/qr.png", "/portal/statements/{}",
     "/portal/{}", "/portal/static/{}", "/portal/statements/{}.pdf"]))
def test_hostile_paths_get_no_5xx(apex: httpx.Client, segment: str, shape: str) -> None:
    answer = apex.get(shape.format(quote(segment, safe="")))

    assert answer.status_code < 500, answer.text
    assert answer.status_code != 200 or (shape == "/portal/{}" and not segment.strip("/"))


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(["campaign", "subId", "destination", "alias",
                                               "partnerId", "csrf"]), HOSTILE_TEXT, max_size=5))
def test_hostile_link_forms_get_no_5xx(apex: httpx.Client, fields: dict[str, str]) -> None:
    csrf = hidden_fields(apex.get("/portal/links").text)["csrf"]
    answer = apex.post("/portal/links", data={**fields, "csrf": csrf})

    assert answer.status_code in (303, 413, 422), answer.text  # 413: over 16 KiB of fields
    if answer.status_code == 303:
        created = apex.get(answer.headers["location"])
        assert created.status_code == 200


@SETTINGS
@given(body=st.binary(max_size=2000), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", "", "x/y"]))
def test_hostile_bodies_get_no_5xx(apex: httpx.Client, body: bytes, content_type: str) -> None:
    for path in ("/portal/links", "/portal/signout", "/portal/signin"):
        answer = apex.post(path, content=body, headers={"Content-Type": content_type})
        assert answer.status_code < 500, answer.text


@SETTINGS
@given(cookie=HOSTILE_TEXT, token=HOSTILE_TEXT)
def test_hostile_cookies_and_tokens_get_no_5xx(traffic: Portal, cookie: str,
                                                token: str) -> None:
    safe_cookie = quote(cookie, safe="")
    with traffic.browser() as http:
        pages = [http.get(page, headers={"Cookie": f"invite_portal={safe_cookie}"})
                 for page in PAGES]
        opened = http.get("/portal/signin", params={"token": token})
        pressed = http.post("/portal/signin", data={"token": token, "form_key": cookie},
                            headers={"Cookie": f"invite_portal_signin={safe_cookie}"})

    assert [answer.status_code for answer in pages] == [401] * len(PAGES)
    assert opened.status_code < 500 and pressed.status_code < 500
    assert "Apex" not in "".join(answer.text for answer in pages)


def test_a_body_past_the_limit_is_refused(apex: httpx.Client) -> None:
    answer = apex.post("/portal/links", content=b"a=" + b"x" * 20_000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 413


def test_another_session_s_csrf_token_is_refused(traffic: Portal) -> None:
    with traffic.signed_in("rival") as rival:
        rival_csrf = hidden_fields(rival.get("/portal/links").text)["csrf"]
    with traffic.signed_in("apex") as http:
        answer = http.post("/portal/links", data={"csrf": rival_csrf, "campaign": "x"})

    assert answer.status_code == 403


def test_a_signed_in_page_opened_again_in_a_new_browser_needs_its_own_sign_in(
    traffic: Portal,
) -> None:
    url = traffic.link("apex")
    with traffic.browser() as first:
        sign_in(first, url)
        with traffic.browser() as second:
            assert second.get("/portal").status_code == 401
