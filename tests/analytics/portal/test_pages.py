"""The portal's pages show the session partner's own figures, links, downline and commissions,
and answer 404 for anything naming another partner's."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import httpx
import pytest

from tests.analytics.fixtures_api import click, insert_clicks, insert_registrations
from tests.analytics.portal.conftest import Portal, hidden_fields, today
from tests.edge.registry.qr_reading import decoded, png_pixels, svg_pixels

pytestmark = pytest.mark.servers


def cell(page: str, key: str, column: str) -> str:
    found = re.search(rf'<tr data-key="{key}">.*?<td class="{column}">([^<]*)</td>', page, re.S)
    assert found, f"no {key} row"
    return found.group(1)


def test_the_overview_shows_the_partner_alone_and_with_its_downline(traffic: Portal) -> None:
    with traffic.signed_in("apex") as http:
        answer = http.get("/portal", params={"range": "7d"})

    page = answer.text
    assert answer.status_code == 200
    assert "Apex Capital" in page and "Rival" not in page
    # apex: 1 person (and a preview); with the desk (3) and signals (4): 8 people today.
    assert (cell(page, "clicks", "own"), cell(page, "clicks", "team")) == ("1", "8")
    assert (cell(page, "registrations", "own"), cell(page, "registrations", "team")) == ("0", "2")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_a_longer_range_counts_the_older_days_too(traffic: Portal) -> None:
    with traffic.signed_in("apex") as http:
        week = http.get("/portal", params={"range": "7d"}).text
        month = http.get("/portal", params={"range": "30d"}).text

    assert cell(week, "clicks", "team") == "8"
    assert cell(month, "clicks", "team") == "14"


def test_a_sub_ib_sees_its_own_subtree_only(traffic: Portal) -> None:
    with traffic.signed_in("apex-desk") as http:
        page = http.get("/portal", params={"range": "7d"}).text

    assert (cell(page, "clicks", "own"), cell(page, "clicks", "team")) == ("3", "7")


@pytest.mark.parametrize("preset", ["7d", "30d", "month", "last-month"])
def test_every_preset_answers(traffic: Portal, preset: str) -> None:
    with traffic.signed_in("apex") as http:
        assert http.get("/portal", params={"range": preset}).status_code == 200


def test_an_unknown_range_is_a_page_naming_the_choices(traffic: Portal) -> None:
    with traffic.signed_in("apex") as http:
        answer = http.get("/portal", params={"range": "1y"})

    assert answer.status_code == 422
    assert "7d, 30d, month, last-month" in answer.text


def create_link(http: httpx.Client, **fields: str) -> httpx.Response:
    page = http.get("/portal/links")
    form = {"csrf": hidden_fields(page.text)["csrf"], **fields}
    return http.post("/portal/links", data=form)


def test_a_partner_creates_a_link_and_sees_it_with_its_share_urls(portal: Portal) -> None:
    with portal.signed_in("apex") as http:
        created = create_link(http, campaign="spring", subId="tg-channel")
        page = http.get(created.headers["location"])

    assert created.status_code == 303
    code = re.search(r'data-code="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    url = f"{portal.url}/r/{code}"
    assert f'value="{url}"' in page.text and "spring" in page.text and "tg-channel" in page.text
    quoted = url.replace(":", "%3A").replace("/", "%2F")
    assert f"https://t.me/share/url?url={quoted}" in page.text
    assert "https://wa.me/?text=" in page.text
    assert "https://twitter.com/intent/tweet?url=" in page.text
    assert "mailto:?subject=" in page.text


@pytest.mark.parametrize(("fields", "message"), [
    ({"campaign": "<script>"}, "campaign must be 1-128 characters"),
    ({"subId": "x" * 129}, "subId must be 1-128 characters"),
    ({"destination": "https://evil.example/"}, "evil.example"),
    ({"destination": "javascript:alert(1)"}, "destination"),
])
def test_a_refused_link_shows_the_form_again_with_the_reason(
    portal: Portal, fields: dict[str, str], message: str
) -> None:
    with portal.signed_in("apex") as http:
        answer = create_link(http, **fields)

    assert answer.status_code == 422
    assert message in answer.text
    assert "<script>" not in answer.text


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_creating_a_link_without_the_session_s_csrf_token_is_refused(
    portal: Portal, csrf: str | None
) -> None:
    with portal.signed_in("apex") as http:
        answer = http.post("/portal/links",
                           data={"campaign": "x", **({} if csrf is None else {"csrf": csrf})})
        page = http.get("/portal/links")

    assert answer.status_code == 403
    assert "data-code=" not in page.text


def test_the_qr_code_of_an_own_link_reads_as_its_url(portal: Portal) -> None:
    with portal.signed_in("apex") as http:
        create_link(http)
        page = http.get("/portal/links").text
        code = re.search(r'data-code="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        svg = http.get(f"/portal/links/{code}/qr.svg")
        png = http.get(f"/portal/links/{code}/qr.png")

    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content
    assert png.headers["content-type"] == "image/png"
    assert "attachment" in png.headers["content-disposition"]
    url = f"{portal.url}/r/{code}"
    assert decoded(png_pixels(png.content)) == decoded(svg_pixels(svg.content)) == url


def test_another_partner_s_link_qr_and_downline_are_404(portal: Portal) -> None:
    with portal.signed_in("rival") as rival:
        create_link(rival)
        code = re.search(r'data-code="([^"]+)"',  # type: ignore[union-attr]
                         rival.get("/portal/links").text).group(1)
    with portal.signed_in("apex") as http:
        answers = [http.get(f"/portal/links/{code}/qr.svg"),
                   http.get(f"/portal/links/{code}/qr.png"),
                   http.get("/portal/downline", params={"partner": "rival"}),
                   http.get("/portal/downline", params={"partner": "nobody"})]
        upline = None
    with portal.signed_in("apex-desk") as desk:
        upline = desk.get("/portal/downline", params={"partner": "apex"})

    assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
    assert upline.status_code == 404
    assert all("Rival" not in answer.text for answer in answers)


def test_the_downline_opens_level_by_level_with_each_subtree_s_totals(traffic: Portal) -> None:
    with traffic.signed_in("apex") as http:
        top = http.get("/portal/downline", params={"range": "7d"}).text
        desk = http.get("/portal/downline", params={"partner": "apex-desk", "range": "7d"}).text

    row = r'<tr data-partner="([^"]+)">.*?<td [^>]*class="clicks">([^<]*)</td>'
    rows = re.findall(row, top, re.S)
    assert rows == [("apex-desk", "7")]  # the desk's 3 and signals' 4
    assert re.findall(r'<tr data-partner="([^"]+)">', desk) == ["signals"]
    assert "Apex Dubai desk" in desk and "Rival" not in top + desk


def uuid7(at: datetime) -> uuid.UUID:
    """A click id as the edge makes them: UUIDv7, holding the click's millisecond."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | uuid.uuid4().int >> 66)


def test_a_link_shows_its_clicks_and_registrations_in_the_range(portal: Portal) -> None:
    with portal.signed_in("apex") as http:
        create_link(http, campaign="spring")
        code = re.search(r'data-code="([^"]+)"',  # type: ignore[union-attr]
                         http.get("/portal/links").text).group(1)
        clicks = [click("apex", at=today(), code=code, ancestors=[], click_id=uuid7(today()))
                  for _ in range(3)]
        insert_clicks(portal.programme.clickhouse, [
            *clicks, click("apex", at=today(), code="other", ancestors=[])])
        insert_registrations(portal.programme.clickhouse, "apex", 1, at=today(), ancestors=[],
                             click_id=str(clicks[0]["click_id"]))
        page = http.get("/portal/links", params={"range": "7d"}).text

    card = page[page.index(f'id="link-{code}"'):]
    assert re.search(r'<dd class="clicks">([^<]*)</dd>', card).group(1) == "3"  # type: ignore[union-attr]
    assert re.search(r"<dt>Registrations</dt><dd>([^<]*)</dd>", card).group(1) == "1"  # type: ignore[union-attr]
