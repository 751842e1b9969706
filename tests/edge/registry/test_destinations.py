"""Destination checks: which URLs a link may redirect to."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError, InvalidInput
from edge.registry.destinations import DestinationPolicy

ALLOWED = ["broker.com", "*.broker.com", "127.0.0.1", "::1"]
POLICY = DestinationPolicy(ALLOWED)


def host_is_allowed(host: str) -> bool:
    return host in {"broker.com", "127.0.0.1", "::1"} or host.endswith(".broker.com")


# --- destinations: refused -------------------------------------------------------------

REFUSED = {
    "scheme-relative": "//evil.com",
    "triple-slash": "///evil.com",
    "scheme-without-slashes": "https:evil.com",
    "scheme-single-slash": "https:/evil.com",
    "scheme-backslashes": "https:\\\\evil.com",
    "backslash-after-slashes": "https://\\evil.com",
    "backslash-in-path": "https://broker.com\\@evil.com",
    "backslash-anywhere": "https://broker.com/a\\b",
    "leading-backslashes": "\\\\evil.com",
    "slash-backslash": "/\\evil.com",
    "userinfo-host": "https://broker.com@evil.com",
    "userinfo-credentials": "https://user:pw@broker.com/",
    "userinfo-port-lookalike": "https://broker.com:443@evil.com",
    "javascript-scheme": "javascript:alert(1)",
    "javascript-scheme-with-slashes": "javascript://broker.com/%0Aalert(1)",
    "data-scheme": "data:text/html,<script>alert(1)</script>",
    "ftp-scheme": "ftp://broker.com/",
    "file-scheme": "file:///etc/passwd",
    "tab-in-scheme": "java\tscript:alert(1)",
    "tab-in-host": "https://bro\tker.com/",
    "newline-in-url": "https://broker.com/\nx",
    "carriage-return": "https://broker.com/\r\nSet-Cookie: x=1",
    "space-in-path": "https://broker.com/a b",
    "leading-space": " https://broker.com/",
    "trailing-newline": "https://broker.com/\n",
    "nul-in-host": "https://broker.com\x00.evil.com/",
    "control-character": "https://broker.com/\x01",
    "delete-character": "https://broker.com/\x7f",
    "unicode-line-separator": "https://broker.com/\u2028",
    "zero-width-space": "https://broker.com\u200b.evil.com/",
    "right-to-left-override": "https://broker.com/\u202egnp.exe",
    "percent-encoded-slash-in-host": "https://evil.com%2F.broker.com",
    "percent-encoded-at-in-host": "https://broker.com%40evil.com",
    "percent-encoded-slashes-after-scheme": "https:%2F%2Fevil.com",
    "percent-encoded-scheme": "%68ttps://broker.com/",
    "percent-in-port": "https://broker.com:%34%34%33/",
    "relative-path": "register",
    "absolute-path": "/register",
    "bare-host": "broker.com/register",
    "host-and-port-without-scheme": "broker.com:443/register",
    "empty-host": "https:///register",
    "empty-host-with-port": "https://:443/",
    "nothing-after-slashes": "https://",
    "host-not-allowed": "https://evil.com/",
    "cyrillic-lookalike-host": "https://brоker.com/",
    "fullwidth-dot-host": "https://broker。com/",
    "fullwidth-slash-host": "https://broker.com／.evil.com/",
    "allowed-host-as-prefix": "https://broker.com.evil.com/",
    "allowed-host-as-suffix-without-dot": "https://evilbroker.com/",
    "fragment-at-trick": "https://evil.com#@broker.com",
    "query-at-trick": "https://evil.com?@broker.com",
    "non-numeric-port": "https://broker.com:http/",
    "port-too-large": "https://broker.com:65536/",
    "port-zero": "https://broker.com:0/",
    "negative-port": "https://broker.com:-1/",
    "empty-port": "https://broker.com:/",
    "two-ports": "https://broker.com:443:80/",
    "ipv6-not-allowed": "https://[::2]/",
    "ipv6-zone-id": "https://[::1%25eth0]/",
    "ipv6-unterminated": "https://[::1/",
    "ipv6-junk-after-bracket": "https://[::1]x/",
    "decimal-ipv4": "http://2130706433/",
    "hex-ipv4": "http://0x7f.0.0.1/",
    "short-ipv4": "http://127.1/",
    "empty-label": "https://a..broker.com/",
    "leading-dot": "https://.broker.com/",
    "two-trailing-dots": "https://broker.com../",
    "underscore-in-host": "https://evil_com.broker.com/",
    "too-long": "https://broker.com/" + "a" * 2048,
    "too-long-once-encoded": "https://broker.com/" + "ü" * 1000,
}


@pytest.mark.parametrize("url", list(REFUSED.values()), ids=list(REFUSED))
def test_open_redirect_destination_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        POLICY.check(url)
    assert refused.value.status == 422


def test_scheme_relative_destination_is_refused() -> None:
    with pytest.raises(InvalidInput, match="absolute URL"):
        POLICY.check("//evil.com/register")


def test_refusal_names_the_destination_and_the_rule() -> None:
    with pytest.raises(InvalidInput) as refused:
        POLICY.check("https://evil.com/register")
    assert "https://evil.com/register" in refused.value.message
    assert "not an allowed destination" in refused.value.message


def test_refusal_of_a_long_destination_states_the_limit() -> None:
    with pytest.raises(InvalidInput, match="longer than 2048 characters"):
        POLICY.check("https://broker.com/" + "a" * 3000)


def test_wildcard_entry_does_not_allow_the_bare_domain() -> None:
    policy = DestinationPolicy(["*.partner.com"])
    assert policy.check("https://go.partner.com/x") == "https://go.partner.com/x"
    with pytest.raises(InvalidInput):
        policy.check("https://partner.com/x")


def test_empty_allow_list_refuses_everything() -> None:
    with pytest.raises(InvalidInput):
        DestinationPolicy([]).check("https://broker.com/")


# --- destinations: accepted ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://broker.com/register?x=1#frag", "https://broker.com/register?x=1#frag"),
        ("http://127.0.0.1:8000/demo/register", "http://127.0.0.1:8000/demo/register"),
        ("https://BROKER.com./x", "https://broker.com/x"),
        ("HTTPS://Register.Broker.COM/Path?Q=A", "https://register.broker.com/Path?Q=A"),
        ("https://a.b.broker.com/", "https://a.b.broker.com/"),
        ("https://broker.com", "https://broker.com/"),
        ("https://broker.com?x=1", "https://broker.com/?x=1"),
        ("https://broker.com:0443/x", "https://broker.com:443/x"),
        ("http://[::1]:8000/x", "http://[::1]:8000/x"),
        ("http://[0:0:0:0:0:0:0:1]/x", "http://[::1]/x"),
        ("https://broker.com/r?email=a@b.com", "https://broker.com/r?email=a%40b.com"),
        ("https://broker.com/ü?q=<x>", "https://broker.com/%C3%BC?q=%3Cx%3E"),
        ("https://broker.com/a%2Fb?x=%20", "https://broker.com/a%2Fb?x=%20"),
        ("https://broker.com//evil.com", "https://broker.com//evil.com"),
    ],
    ids=[
        "plain",
        "loopback-with-port",
        "upper-case-and-trailing-dot",
        "subdomain-mixed-case",
        "deep-subdomain",
        "no-path",
        "query-without-path",
        "port-leading-zero",
        "ipv6-allowed",
        "ipv6-long-form",
        "at-in-query-encoded",
        "non-ascii-path-encoded",
        "escapes-kept",
        "double-slash-path-stays-on-host",
    ],
)
def test_allowed_destination_is_accepted_and_normalized(url: str, normalized: str) -> None:
    assert POLICY.check(url) == normalized


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("broker.com", True),
        ("BROKER.COM.", True),
        ("x.broker.com", True),
        ("127.0.0.1", True),
        ("[::1]", True),
        ("::1", True),
        ("evil.com", False),
        ("broker.com.evil.com", False),
        ("", False),
        ("brоker.com", False),
        ("bro%6Ber.com", False),
        ("127.1", False),
    ],
)
def test_is_allowed_host_matches_exact_entries_and_wildcard_subdomains(
    host: str, allowed: bool
) -> None:
    assert POLICY.is_allowed_host(host) is allowed


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "*.com",
        "https://broker.com",
        "broker.com/x",
        "brоker.com",
        "*.127.0.0.1",
        "a..b",
        "*.::1",
    ],
)
def test_unusable_allow_list_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError):
        DestinationPolicy([entry])


def test_allow_list_entries_are_trimmed_and_blank_ones_skipped() -> None:
    policy = DestinationPolicy([" Broker.COM ", "", "  "])
    assert policy.is_allowed_host("broker.com")


# --- destinations: properties ----------------------------------------------------------

STRICT_READING = re.compile(
    r"\Ahttps?://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::[0-9]{1,5})?(?:[/?#]|\Z)"
)


def usually(typical: str, tricks: list[str]) -> st.SearchStrategy[str]:
    """The typical piece half the time, so that whole URLs are accepted often enough to test."""
    return st.one_of(st.just(typical), st.sampled_from(tricks))


tricky_urls = st.builds(
    "".join,
    st.tuples(
        usually("https", ["http", "HTTPS", "javascript", "ftp", "%68ttps", "", "h\ttps"]),
        usually("://", [":", ":/", ":///", ":\\\\", "://\\", ":%2F%2F", "//", "/\\"]),
        usually("", ["user@", "broker.com@", "a:b@", "broker.com:443@", "@"]),
        usually(
            "broker.com",
            [
                "BROKER.com.",
                "go.broker.com",
                "evil.com",
                "broker.com.evil.com",
                "evilbroker.com",
                "brоker.com",
                "127.0.0.1",
                "[::1]",
                "[::2]",
                "2130706433",
                "broker.com%2F.evil.com",
                "",
                ".broker.com",
                "broker.com\\",
                "xn--brker-2fe.com",
            ],
        ),
        usually("", [":443", ":8000", ":99999", ":x", ":", "@evil.com", ":443@evil.com"]),
        usually("/", ["?", "#", ""]),
        st.one_of(
            st.text(alphabet=st.sampled_from("/?#@%:.;=&aZ0é"), max_size=20),
            st.text(alphabet=st.sampled_from("/?#@\\%:.;=&aZ0 \t\n\x00é"), max_size=20),
        ),
    ),
)


def assert_points_to_an_allowed_host(normalized: str) -> None:
    split = urlsplit(normalized)
    assert split.scheme in ("http", "https")
    assert split.username is None and split.password is None
    assert split.hostname is not None and host_is_allowed(split.hostname)
    assert split.port is None or 1 <= split.port <= 65535
    assert "@" not in normalized and "\\" not in normalized
    assert normalized.isascii() and not any(char <= " " for char in normalized)
    strict = STRICT_READING.match(normalized)
    assert strict is not None
    assert host_is_allowed(strict.group("host").strip("[]"))


@settings(max_examples=1000)  # about one in twenty of these URLs is accepted
@given(tricky_urls)
def test_accepted_tricky_destination_points_to_an_allowed_host(url: str) -> None:
    try:
        normalized = POLICY.check(url)
    except InvalidInput:
        return
    assert_points_to_an_allowed_host(normalized)
    # and the URL as given already went there: nothing was repaired into an allowed one
    given_host = urlsplit(url).hostname
    assert given_host is not None and host_is_allowed(given_host.rstrip("."))


@given(st.text(max_size=80))
def test_accepted_arbitrary_destination_points_to_an_allowed_host(text: str) -> None:
    for url in (text, "https://" + text, "https://broker.com" + text):
        try:
            normalized = POLICY.check(url)
        except InvalidInput:
            continue
        assert_points_to_an_allowed_host(normalized)


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_accepting_a_destination_twice_gives_the_same_url(tail: str) -> None:
    try:
        normalized = POLICY.check("https://broker.com/" + tail)
    except InvalidInput:
        return
    assert POLICY.check(normalized) == normalized
