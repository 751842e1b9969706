"""The redirect's Location: destination, passed-through query, the edge's parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge.hotpath.location import RESERVED_PARAMS, Destination, build_location

# --- Location --------------------------------------------------------------------------

REGISTER = Destination.parse("https://broker.com/register")
PARAMS = {"partnerId": "p1", "clickId": "c1"}


def test_destination_is_split_into_prefix_query_and_fragment() -> None:
    assert Destination.parse("https://broker.com/r?lang=en&x=1#signup") == Destination(
        prefix="https://broker.com/r", query="lang=en&x=1", fragment="signup"
    )
    assert Destination.parse("https://broker.com/r") == Destination(
        prefix="https://broker.com/r", query="", fragment=""
    )


def test_location_without_request_query_has_only_the_params() -> None:
    assert build_location(REGISTER, "", PARAMS) == (
        "https://broker.com/register?partnerId=p1&clickId=c1"
    )


def test_location_without_params_or_query_is_the_destination() -> None:
    assert build_location(REGISTER, "", {}) == "https://broker.com/register"


def test_request_query_is_passed_through_before_the_params() -> None:
    location = build_location(REGISTER, "utm_source=x&utm_medium=y", PARAMS)
    assert location == (
        "https://broker.com/register?utm_source=x&utm_medium=y&partnerId=p1&clickId=c1"
    )


def test_destination_query_comes_first_and_fragment_last() -> None:
    destination = Destination.parse("https://broker.com/r?lang=en#signup")
    location = build_location(destination, "a=1", {**PARAMS, "campaign": "spring"})
    assert location == (
        "https://broker.com/r?lang=en&a=1&partnerId=p1&clickId=c1&campaign=spring#signup"
    )


@pytest.mark.parametrize(
    "spoof",
    [
        "partnerId=evil",
        "clickId=evil",
        "campaign=evil",
        "partner%49d=evil",
        "PARTNERID=evil",
        "partnerId",
        "partnerId+=evil",
        "clickId=a&clickId=b",
    ],
)
def test_clicker_cannot_spoof_reserved_params(spoof: str) -> None:
    location = build_location(REGISTER, f"keep=1&{spoof}", {**PARAMS, "campaign": "real"})
    pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    assert pairs == [("keep", "1"), ("partnerId", "p1"), ("clickId", "c1"), ("campaign", "real")]


def test_repeated_keys_and_keys_without_value_are_kept() -> None:
    location = build_location(REGISTER, "a=1&a=2&flag", {})
    assert location == "https://broker.com/register?a=1&a=2&flag"


def test_empty_and_nameless_pairs_are_dropped() -> None:
    assert build_location(REGISTER, "&&=x&a=1&", {}) == "https://broker.com/register?a=1"


def test_param_values_are_percent_encoded() -> None:
    location = build_location(REGISTER, "", {"campaign": "spring sale/ü&x=1#"})
    assert location == "https://broker.com/register?campaign=spring%20sale%2F%C3%BC%26x%3D1%23"


@pytest.mark.parametrize(
    ("request_query", "passed"),
    [
        ("q=%zz", "q=%25zz"),
        ("q=\xe9", "q=%E9"),
        ("q=a#b", "q=a%23b"),
        ("q=\r\nX: y", "q=%0D%0AX:%20y"),
        ('q=<script>"', "q=%3Cscript%3E%22"),
        ("q=a+b%20c", "q=a+b%20c"),
        ("q=a@b", "q=a%40b"),
    ],
    ids=["bare-percent", "latin-1-byte", "hash", "crlf", "markup", "escapes-kept", "at-sign"],
)
def test_odd_request_query_is_re_escaped(request_query: str, passed: str) -> None:
    assert build_location(REGISTER, request_query, {}) == f"https://broker.com/register?{passed}"


@given(st.text())
def test_junk_request_query_never_breaks_the_location(request_query: str) -> None:
    destination = Destination.parse("https://broker.com/r?lang=en#signup")
    location = build_location(destination, request_query, {**PARAMS, "campaign": "c"})
    assert location.startswith("https://broker.com/r?lang=en")
    assert location.endswith("&partnerId=p1&clickId=c1&campaign=c#signup")
    assert location.isascii() and not any(char <= " " or char == "\x7f" for char in location)
    assert location.count("#") == 1
    split = urlsplit(location)
    reserved = [(k, v) for k, v in parse_qsl(split.query) if k in RESERVED_PARAMS]
    assert reserved == [("partnerId", "p1"), ("clickId", "c1"), ("campaign", "c")]


@given(st.binary(max_size=200))
def test_request_query_bytes_reach_the_destination_unchanged(raw: bytes) -> None:
    request_query = raw.decode("latin-1")  # how the server hands the raw query over
    assume(not any(name.lower() in request_query.lower() for name in RESERVED_PARAMS))
    location = build_location(REGISTER, request_query, {})
    sent = parse_qsl(request_query, keep_blank_values=True, encoding="latin-1")
    received = parse_qsl(urlsplit(location).query, keep_blank_values=True, encoding="latin-1")
    assert received == [(name, value) for name, value in sent if name]


def test_destination_own_reserved_params_are_dropped_once_at_parse() -> None:
    destination = Destination.parse("https://broker.com/r?partnerId=old&lang=de&CAMPAIGN=x#f")
    assert destination.query == "lang=de"
    location = build_location(destination, "", {"partnerId": "new"})
    assert location == "https://broker.com/r?lang=de&partnerId=new#f"
