"""Link codes, aliases, destination checks and the redirect's Location."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from hashids import Hashids
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError, InvalidInput
from edge.registry.links import (
    ALIAS_PATTERN,
    CODE_MIN_LENGTH,
    MAX_CODE_LENGTH,
    RESERVED_PARAMS,
    Destination,
    DestinationPolicy,
    LinkCodec,
    build_location,
    is_code_syntax,
    validate_alias,
)

SALT = "test-salt"
CODEC = LinkCodec(SALT)
ALLOWED = ["broker.com", "*.broker.com", "127.0.0.1", "::1"]
POLICY = DestinationPolicy(ALLOWED)
numbers = st.integers(min_value=1, max_value=2**40)


def host_is_allowed(host: str) -> bool:
    return host in {"broker.com", "127.0.0.1", "::1"} or host.endswith(".broker.com")


# --- codes -----------------------------------------------------------------------------


@given(numbers, numbers)
def test_code_decodes_to_the_numbers_it_encodes(partner_num: int, link_num: int) -> None:
    code = CODEC.encode(partner_num, link_num)
    assert is_code_syntax(code)
    assert CODEC.decode(code) == (partner_num, link_num)


def test_codes_are_at_least_the_minimum_length() -> None:
    assert CODE_MIN_LENGTH == 7
    assert len(CODEC.encode(1, 1)) >= CODE_MIN_LENGTH
    assert len(LinkCodec(SALT, min_length=12).encode(1, 1)) >= 12


def test_different_salts_give_different_codes() -> None:
    other = LinkCodec("another-salt")
    pairs = [(1, 1), (1, 2), (42, 7), (2**40, 2**40)]
    assert all(CODEC.encode(*pair) != other.encode(*pair) for pair in pairs)
    assert other.decode(CODEC.encode(42, 7)) != (42, 7)


def test_encoding_numbers_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        CODEC.encode(0, 1)
    with pytest.raises(ValueError):
        CODEC.encode(1, -5)


def test_empty_salt_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        LinkCodec("")


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "a",
        "!!!!!!!",
        "abc def",
        "abcdefg\n",
        "a" * (MAX_CODE_LENGTH + 1),
        "🙂🙂🙂🙂🙂🙂🙂",
        "-------",
        "_______",
        "0000000",
        "../../etc",
    ],
)
def test_junk_does_not_decode(junk: str) -> None:
    assert CODEC.decode(junk) is None


def test_one_number_hashid_does_not_decode() -> None:
    assert CODEC.decode(Hashids(salt=SALT, min_length=CODE_MIN_LENGTH).encode(5)) is None


def test_three_number_hashid_does_not_decode() -> None:
    assert CODEC.decode(Hashids(salt=SALT, min_length=CODE_MIN_LENGTH).encode(1, 2, 3)) is None


def test_hashid_with_a_zero_does_not_decode() -> None:
    assert CODEC.decode(Hashids(salt=SALT, min_length=CODE_MIN_LENGTH).encode(0, 2)) is None


@pytest.mark.parametrize("min_length", [0, 12, 20], ids=["unpadded", "padded-12", "padded-20"])
def test_other_padding_of_the_same_numbers_does_not_decode(min_length: int) -> None:
    # hashids reads these as (3, 4) too; only the canonical spelling may name the link
    variant = Hashids(salt=SALT, min_length=min_length).encode(3, 4)
    assert variant != CODEC.encode(3, 4)
    assert CODEC.decode(variant) is None


@given(st.text())
def test_decode_never_raises_and_only_accepts_canonical_codes(text: str) -> None:
    decoded = CODEC.decode(text)
    if decoded is not None:
        assert CODEC.encode(*decoded) == text


@given(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
def test_decode_of_code_shaped_text_is_canonical_or_none(text: str) -> None:
    decoded = CODEC.decode(text)
    if decoded is not None:
        assert CODEC.encode(*decoded) == text


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("abc", True),
        ("A_b-9", True),
        ("x" * MAX_CODE_LENGTH, True),
        ("", False),
        ("x" * (MAX_CODE_LENGTH + 1), False),
        ("abc\n", False),
        ("ab/c", False),
        ("ab.c", False),
        ("١٢٣", False),
        ("\u212a", False),
    ],
)
def test_code_syntax_is_ascii_letters_digits_dash_underscore_up_to_64(
    code: str, expected: bool
) -> None:
    assert is_code_syntax(code) is expected


# --- aliases ---------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["spring", "abc", "IB-42_promo", "9lives", "a" * 64])
def test_alias_following_the_rules_is_returned(alias: str) -> None:
    assert validate_alias(alias, CODEC) == alias


@pytest.mark.parametrize(
    ("alias", "rule"),
    [
        ("ab", "shorter than 3"),
        ("a" * 65, "longer than 64"),
        ("-promo", "start"),
        ("_promo", "start"),
        ("spring sale", "other than"),
        ("a/b/c", "other than"),
        ("a.b.c", "other than"),
        ("café", "other than"),
        ("promo\n", "other than"),
        ("", "shorter than 3"),
    ],
    ids=[
        "too-short",
        "too-long",
        "leading-dash",
        "leading-underscore",
        "space",
        "slash",
        "dot",
        "non-ascii",
        "trailing-newline",
        "empty",
    ],
)
def test_alias_breaking_the_pattern_is_refused_naming_the_rule(alias: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_alias(alias, CODEC)
    assert rule in refused.value.message
    assert "3 to 64 characters" in refused.value.message
    assert refused.value.status == 422


def test_alias_pattern_rejects_a_trailing_newline() -> None:
    assert ALIAS_PATTERN.match("promo\n") is None
    assert ALIAS_PATTERN.match("promo") is not None


@pytest.mark.parametrize(
    "alias",
    ["api", "healthz", "readyz", "metrics", "attribution", "dashboard", "demo", "hooks", "API"],
)
def test_reserved_route_name_alias_is_refused(alias: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        validate_alias(alias, CODEC)


def test_alias_that_reads_as_a_generated_code_is_refused() -> None:
    with pytest.raises(InvalidInput, match="link code"):
        validate_alias(CODEC.encode(12, 34), CODEC)


def test_alias_that_reads_as_a_one_number_hashid_is_refused() -> None:
    single = Hashids(salt=SALT, min_length=CODE_MIN_LENGTH).encode(77)
    with pytest.raises(InvalidInput, match="link code"):
        validate_alias(single, CODEC)


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
