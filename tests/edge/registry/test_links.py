"""Link codes and aliases."""

from __future__ import annotations

import pytest
from hashids import Hashids
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import ConfigError, InvalidInput
from edge.registry.links import (
    ALIAS_PATTERN,
    CODE_MIN_LENGTH,
    MAX_CODE_LENGTH,
    LinkCodec,
    is_code_syntax,
    validate_alias,
)

SALT = "test-salt"
CODEC = LinkCodec(SALT)
numbers = st.integers(min_value=1, max_value=2**40)


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
