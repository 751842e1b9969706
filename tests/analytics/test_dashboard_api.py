"""What the dashboard asks beyond the basics: unknown partners, names, links and sub-IDs, the IB
tree level by level (with each subtree's totals), over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analytics import links
from analytics.clickhouse import Client
from analytics.filters import ClickFilter
from tests.analytics.fixtures_api import (
    BOT,
    DAY,
    TREE,
    click,
    hours,
    insert_clicks,
    insert_registrations,
    insert_tree,
)
from tests.analytics.test_api import AnalyticsServer, api, server, settings  # noqa: F401
from tests.analytics.test_funnel import click_id_at, funnel_server, story  # noqa: F401
from tests.conftest import ADMIN_TOKEN

ONE_DAY = {"from": "2025-03-10", "to": "2025-03-10"}
ROUTES = ("summary", "timeseries", "breakdown", "funnel", "clicks.csv", "tree")


@pytest.fixture
def tree_clicks(api: AnalyticsServer, clickhouse: Client) -> Client:  # noqa: F811
    """master-ib (1 own click) → sub-ib (1 person, 1 bot) → affiliate (3), other-ib (1); the
    affiliate's clicks on two links, one registration through the first."""
    insert_tree(clickhouse)
    clickhouse.command(
        "INSERT INTO invite.partners (partner_id, parent_id, name, ancestors, level, updated_at) "
        "VALUES ('master-ib', '', 'Master Markets Ltd', [], 1, now64(3) + 1)"
    )
    first = click(TREE.leaf, code="spring-tg", sub_id="tg-1", campaign="spring")
    insert_clicks(clickhouse, [
        click(TREE.master),
        click(TREE.sub), click(TREE.sub, **BOT),
        first, click(TREE.leaf, code="spring-tg", sub_id="tg-1", campaign="spring"),
        click(TREE.leaf, code="AbC123x", sub_id="", at=DAY + hours(2)),
        click(TREE.other),
    ])
    insert_registrations(clickhouse, TREE.leaf, 1, click_id=str(first["click_id"]),
                         campaign="spring")
    return clickhouse


def get(http: Any, route: str, **params: str) -> dict[str, Any]:
    response = http.get(f"/api/analytics/{route}", params={**ONE_DAY, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- unknown partners ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_an_unknown_partner_is_404_on_every_analytics_route(
    tree_clicks: Client, api: AnalyticsServer, route: str  # noqa: F811
) -> None:
    with api.admin() as http:
        by = {"by": "os"} if route == "breakdown" else {}
        response = http.get(f"/api/analytics/{route}", params={"partnerId": "master-ibb", **by})

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_partner"
    assert "partnerId 'master-ibb' is unknown" in error["message"]


def test_a_partner_known_only_by_its_clicks_is_answered(
    api: AnalyticsServer, clickhouse: Client  # noqa: F811
) -> None:
    insert_clicks(clickhouse, [click("not-synced-yet")])

    with api.admin() as http:
        body = get(http, "summary", partnerId="not-synced-yet")

    assert body["clicks"] == 1


def test_a_partner_token_asking_for_an_unknown_id_is_403_not_404(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.partner(TREE.sub) as http:
        response = http.get("/api/analytics/tree", params={"partnerId": "nobody-at-all"})

    assert response.status_code == 403


# --- names, links, sub-IDs -------------------------------------------------------------------


def test_a_breakdown_by_partner_names_each_partner(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.admin() as http:
        rows = get(http, "breakdown", by="partner")["rows"]

    assert {row["key"]: row["name"] for row in rows} == {
        TREE.master: "Master Markets Ltd", TREE.sub: TREE.sub, TREE.leaf: TREE.leaf,
        TREE.other: TREE.other,
    }


def test_a_breakdown_by_link_shows_each_code_with_its_partner_campaign_and_registrations(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.admin() as http:
        rows = get(http, "breakdown", by="link", partnerId=TREE.leaf)["rows"]

    shown = [{name: row[name] for name in ("key", "partnerId", "campaign", "subId", "clicks",
                                           "humanClicks", "uniqueVisitors", "registrations")}
             for row in rows]
    assert shown == [
        {"key": "spring-tg", "partnerId": TREE.leaf, "campaign": "spring", "subId": "tg-1",
         "clicks": 2, "humanClicks": 2, "uniqueVisitors": 2, "registrations": 1},
        {"key": "AbC123x", "partnerId": TREE.leaf, "campaign": "launch", "subId": None,
         "clicks": 1, "humanClicks": 1, "uniqueVisitors": 1, "registrations": 0},
    ]
    assert rows[0]["depositAmount"] == "0.00"


def test_a_links_registrations_count_once_however_many_copies_of_its_click_are_unmerged(
    clickhouse: Client,
) -> None:
    clicked = [click_id_at(60_000 * i) for i in range(2)]
    rows = [click(TREE.leaf, at=DAY + hours(i / 60), click_id=uuid.UUID(c), code=code)
            for i, (c, code) in enumerate(zip(clicked, ("L1", "L2"), strict=True))]
    insert_clicks(clickhouse, rows)
    insert_clicks(clickhouse, rows[:1])  # a copy not merged yet
    for user, click_id in (("1", clicked[0]), ("2", clicked[1]), ("3", "not-a-click-id")):
        insert_registrations(clickhouse, TREE.leaf, 1, at=DAY + hours(2), user_id=user,
                             click_id=click_id)
    f = ClickFilter(start=DAY, end=DAY + hours(24))

    assert links.registrations(clickhouse, f, [TREE.leaf], ["L1", "L2", "L3"]) == {
        "L1": 1, "L2": 1}
    assert links.registrations(clickhouse, f, [TREE.other], ["L1"]) == {}


def test_a_breakdown_by_sub_id_counts_each_sub_id(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.partner(TREE.master) as http:
        rows = get(http, "breakdown", by="subId", includeDownline="true")["rows"]

    assert {row["key"]: row["clicks"] for row in rows} == {"": 4, "tg-1": 2}


def test_a_link_breakdown_carries_the_money_of_the_users_its_clicks_brought(
    story: AnalyticsServer,  # noqa: F811
) -> None:
    with story.admin() as http:
        rows = http.get("/api/analytics/breakdown", params={
            "from": "2025-03-10", "to": "2025-03-12", "by": "link"}).json()["rows"]

    assert [(row["key"], row["registrations"], row["firstDeposits"], row["depositAmount"],
             row["lots"]) for row in rows] == [("L1", 1, 1, "700.00", "2.5"),
                                               ("L2", 1, 0, "0.00", "0")]


# --- the IB tree -----------------------------------------------------------------------------


def nodes(body: dict[str, Any], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(child[name] for name in ("partnerId", *names)) for child in body["children"]]


def test_the_admin_tree_starts_at_the_roots_with_their_subtree_totals(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.admin() as http:
        body = get(http, "tree")

    assert body["path"] == []
    assert body["childCount"] == 2
    assert nodes(body, "name", "childCount", "clicks", "humanClicks", "botClicks",
                 "uniqueVisitors", "registrations") == [
        (TREE.master, "Master Markets Ltd", 1, 6, 5, 1, 5, 1),
        (TREE.other, TREE.other, 0, 1, 1, 0, 1, 0),
    ]


def test_the_tree_opens_a_partner_one_level_down(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.admin() as http:
        master = get(http, "tree", partnerId=TREE.master)
        sub = get(http, "tree", partnerId=TREE.sub)

    assert [step["partnerId"] for step in master["path"]] == [TREE.master]
    assert nodes(master, "childCount", "clicks", "registrations") == [(TREE.sub, 1, 5, 1)]
    assert [step["partnerId"] for step in sub["path"]] == [TREE.master, TREE.sub]
    assert nodes(sub, "childCount", "clicks", "registrations") == [(TREE.leaf, 0, 3, 1)]


@pytest.mark.parametrize("token", ["admin", "partner"])
def test_the_tree_counts_partial_hours_at_both_ends_of_the_range(
    tree_clicks: Client, api: AnalyticsServer, token: str  # noqa: F811
) -> None:
    http = api.admin() if token == "admin" else api.partner(TREE.master)
    with http:
        body = get(http, "tree", partnerId=TREE.master, **{
            "from": "2025-03-09T23:30:00Z", "to": "2025-03-10T02:30:00Z"})

    assert nodes(body, "clicks", "humanClicks", "uniqueVisitors") == [(TREE.sub, 5, 4, 4)]


def test_a_partner_token_tree_starts_at_its_partner_and_hides_its_upline(
    tree_clicks: Client, api: AnalyticsServer  # noqa: F811
) -> None:
    with api.partner(TREE.sub) as http:
        body = get(http, "tree")
        refused = http.get("/api/analytics/tree", params={"partnerId": TREE.master})

    assert [step["partnerId"] for step in body["path"]] == [TREE.sub]
    assert nodes(body, "clicks") == [(TREE.leaf, 3)]
    assert refused.status_code == 403


def test_the_tree_shows_the_busiest_children_first_and_counts_them_all(
    api: AnalyticsServer, clickhouse: Client  # noqa: F811
) -> None:
    insert_tree(clickhouse)
    insert_clicks(clickhouse, [click(TREE.other), click(TREE.other), click(TREE.master)])

    with api.admin() as http:
        body = get(http, "tree", limit="1")

    assert (body["childCount"], body["limit"]) == (2, 1)
    assert nodes(body, "clicks") == [(TREE.other, 2)]


def test_the_tree_carries_the_money_of_each_subtree(
    story: AnalyticsServer, clickhouse: Client  # noqa: F811
) -> None:
    insert_tree(clickhouse)

    with story.admin() as http:
        body = http.get("/api/analytics/tree",
                        params={"from": "2025-03-10", "to": "2025-03-12"}).json()

    assert nodes(body, "registrations", "firstDeposits", "depositAmount", "lots") == [
        (TREE.master, 2, 1, "700.00", "2.5"), (TREE.other, 0, 0, "0.00", "0"),
    ]


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": "0"}, "limit '0' must be a whole number from 1 to 500"),
    ({"includeDownline": "true"}, "unknown parameter 'includeDownline'"),
    ({"partnerId": "bad id!"}, "partnerId 'bad id!' must be 1-64 characters"),
])
def test_a_bad_tree_parameter_is_422_naming_it(
    api: AnalyticsServer, params: dict[str, str], message: str  # noqa: F811
) -> None:
    with api.admin() as http:
        response = http.get("/api/analytics/tree", params=params)

    assert response.status_code == 422
    assert message in response.json()["error"]["message"]


# --- the page's assets -----------------------------------------------------------------------


def test_the_charting_library_is_served_by_the_app_gzipped_and_cached(
    api: AnalyticsServer,  # noqa: F811
) -> None:
    with api.client(None) as http:
        page = http.get("/dashboard")
        library = http.get("/dashboard/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        again = http.get("/dashboard/plotly.min.js",
                         headers={"If-None-Match": library.headers["etag"]})

    assert '<script src="/dashboard/plotly.min.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp and "http" not in csp
    assert library.status_code == 200
    assert library.headers["content-encoding"] == "gzip"
    assert library.headers["content-type"].startswith("text/javascript")
    assert library.text.lstrip().startswith("/**") and "plotly.js" in library.text[:200]
    assert again.status_code == 304


@pytest.mark.parametrize("asset", ["period.js", "tables.js", "dashboard.js", "dashboard.css"])
def test_every_asset_of_the_page_is_served(api: AnalyticsServer, asset: str) -> None:  # noqa: F811
    with api.client(None) as http:
        page = http.get("/dashboard")
        response = http.get(f"/dashboard/{asset}")

    assert f"/dashboard/{asset}" in page.text
    assert response.status_code == 200


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
TREE_NAMES = ["from", "to", "partnerId", "campaign", "limit"]


@hypothesis_settings(max_examples=100, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(TREE_NAMES), TEXT, max_size=4),
       by=st.sampled_from(["link", "subId", "partner"]),
       token=st.sampled_from(["admin", "partner"]))
def test_no_generated_tree_or_link_question_gets_a_5xx(
    api: AnalyticsServer, query: dict[str, str], by: str, token: str  # noqa: F811
) -> None:
    http = api.admin() if token == "admin" else api.partner(TREE.sub)
    with http:
        tree = http.get("/api/analytics/tree", params=query)
        breakdown = http.get("/api/analytics/breakdown", params={
            **{k: v for k, v in query.items() if k != "limit"}, "by": by})
    assert tree.status_code < 500, (query, tree.text[:300])
    assert breakdown.status_code < 500, (query, breakdown.text[:300])
    assert ADMIN_TOKEN not in tree.text
