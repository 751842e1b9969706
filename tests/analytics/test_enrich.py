"""From a stream event to a `clicks` row: real user agents, referrers, and what is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.enrich import CLICK_COLUMNS, Agent, click_row, parse_user_agent, referer_host
from edge.errors import BadEvent
from tests.analytics.conftest import click_event

REAL_AGENTS = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
        Agent("mobile", "iOS", "Mobile Safari", ""),
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        Agent("mobile", "Android", "Chrome Mobile", ""),
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        Agent("tablet", "iOS", "Mobile Safari", ""),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        Agent("tablet", "Android", "Chrome", ""),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        Agent("desktop", "Windows", "Edge", ""),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Safari/605.1.15",
        Agent("desktop", "Mac OS X", "Safari", ""),
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        Agent("desktop", "Linux", "Firefox", ""),
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        Agent("bot", "", "", "Googlebot"),
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        Agent("bot", "", "", "FacebookBot"),
    ),
    ("", Agent("other", "", "", "")),
]


@pytest.mark.parametrize(("user_agent", "expected"), REAL_AGENTS)
def test_real_user_agents_get_their_device_os_browser_and_bot_family(
    user_agent: str, expected: Agent
) -> None:
    assert parse_user_agent(user_agent) == expected


def row_of(**overrides: Any) -> dict[str, Any]:
    return dict(zip((name for name, _ in CLICK_COLUMNS), click_row(click_event(**overrides)),
                    strict=True))


def test_a_person_with_a_browser_is_human() -> None:
    row = row_of()
    assert row["is_human"] == 1
    assert (row["device"], row["os"], row["browser"], row["bot_family"]) == (
        "desktop", "Windows", "Chrome", "",
    )


def test_a_person_kind_with_a_bot_user_agent_is_not_human() -> None:
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    row = row_of(user_agent=googlebot)
    assert row["is_human"] == 0
    assert row["bot_family"] == "Googlebot"


def test_bots_the_edge_recognised_get_a_bot_family_even_when_the_parser_does_not() -> None:
    row = row_of(kind="crawler", user_agent="curl/8.4.0")
    assert row["is_human"] == 0
    assert row["bot_family"] == "curl"


@pytest.mark.parametrize("kind", ["head", "prefetch", "preview", "scanner", "crawler"])
def test_non_person_kinds_are_never_human(kind: str) -> None:
    assert row_of(kind=kind)["is_human"] == 0


@pytest.mark.parametrize(
    ("referer", "host"),
    [
        ("https://www.Google.com/search?q=broker", "google.com"),
        ("https://t.co/abc", "t.co"),
        ("android-app://org.telegram.messenger/", "org.telegram.messenger"),
        ("", ""),
        ("not a url", ""),
        ("http://[::1", ""),
    ],
)
def test_referer_host_is_the_lower_case_host_without_www(referer: str, host: str) -> None:
    assert referer_host(referer) == host


def test_a_row_keeps_the_events_fields_and_types() -> None:
    event = click_event(ancestors=["master"], first_click=False, visitor_id="v-1")
    row = row_of(**event)
    assert row["click_id"] == event["click_id"]
    assert row["ts"] == event["ts"]
    assert row["ancestors"] == ["master"]
    assert row["first_click"] == 0
    assert row["visitor_id"] == "v-1"
    assert row["referer_host"] == "google.com"


def test_click_ids_are_stored_in_their_canonical_spelling() -> None:
    click_id = uuid.uuid4()
    assert row_of(click_id=str(click_id).upper())["click_id"] == str(click_id)
    assert row_of(click_id=click_id.hex)["click_id"] == str(click_id)


def test_an_orphan_click_without_partner_or_ancestors_is_a_valid_row() -> None:
    row = row_of(outcome="orphan", partner_id="", ancestors=[], campaign="", destination="")
    assert (row["partner_id"], row["ancestors"], row["outcome"]) == ("", [], "orphan")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"click_id": None}, "click_id is missing"),
        ({"click_id": "abc"}, "click_id 'abc' is not a UUID"),
        ({"ts": "2024-01-01"}, "ts '2024-01-01' is not a click time"),
        ({"ts": 12}, "ts '12' is not a click time"),
        ({"ts": True}, "ts 'True' is not a click time"),
        ({"kind": "robot"}, "kind 'robot' is not one of"),
        ({"outcome": "lost"}, "outcome 'lost' is not one of"),
        ({"ancestors": "master"}, "ancestors is not a list"),
        ({"campaign": 7}, "campaign is a int, not a string"),
        ({"referer": "x" * 5000}, "referer is longer than 4096 characters"),
    ],
)
def test_events_that_break_a_rule_are_refused_with_the_reason(
    overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadEvent, match=reason.replace("(", r"\(")):
        click_row(click_event(**overrides))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from([name for name, _ in CLICK_COLUMNS]), json_values))
def test_any_json_object_becomes_a_row_or_a_bad_event_never_a_crash(
    overrides: dict[str, Any],
) -> None:
    try:
        row = click_row(click_event(**overrides))
    except BadEvent:
        return
    assert len(row) == len(CLICK_COLUMNS)


@given(st.text(max_size=300))
def test_referer_host_never_fails_on_any_text(referer: str) -> None:
    assert isinstance(referer_host(referer), str)


@given(st.text(max_size=300))
def test_any_user_agent_text_parses(user_agent: str) -> None:
    assert parse_user_agent(user_agent).device in {"mobile", "tablet", "desktop", "bot", "other"}
