"""Short-link codes (hashids of partner and link numbers) and vanity aliases."""

from __future__ import annotations

import re

from hashids import Hashids

from edge.errors import ConfigError, InvalidInput

__all__ = [
    "ALIAS_PATTERN",
    "CODE_MIN_LENGTH",
    "MAX_ALIAS_LENGTH",
    "MAX_CODE_LENGTH",
    "MIN_ALIAS_LENGTH",
    "RESERVED_ALIASES",
    "LinkCodec",
    "is_code_syntax",
    "validate_alias",
]

MAX_CODE_LENGTH = 64
CODE_MIN_LENGTH = 7
MIN_ALIAS_LENGTH = 3
MAX_ALIAS_LENGTH = MAX_CODE_LENGTH
# Route names an alias must never take, should aliases ever be served outside /r/.
RESERVED_ALIASES = frozenset(
    {"api", "r", "healthz", "readyz", "metrics", "attribution", "dashboard", "demo", "hooks"}
)

_CODE_SYNTAX = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CODE_LENGTH}}}")
# \A and \Z rather than ^ and $: "$" also matches before a trailing newline.
ALIAS_PATTERN = re.compile(
    rf"\A[A-Za-z0-9][A-Za-z0-9_-]{{{MIN_ALIAS_LENGTH - 1},{MAX_ALIAS_LENGTH - 1}}}\Z"
)
_ALIAS_RULE = (
    f"an alias is {MIN_ALIAS_LENGTH} to {MAX_ALIAS_LENGTH} characters of letters, digits, "
    "'_' and '-', starting with a letter or digit"
)


def is_code_syntax(code: str) -> bool:
    return _CODE_SYNTAX.fullmatch(code) is not None


class LinkCodec:
    """Turns (partner number, link number) into a short code and back."""

    def __init__(self, salt: str, min_length: int = CODE_MIN_LENGTH) -> None:
        if not salt:
            raise ConfigError("the link-code salt is empty; codes would be guessable")
        self._hashids = Hashids(salt=salt, min_length=min_length)

    def encode(self, partner_num: int, link_num: int) -> str:
        if partner_num < 1 or link_num < 1:
            raise ValueError(
                f"link code numbers must be >= 1, got partner {partner_num}, link {link_num}"
            )
        code: str = self._hashids.encode(partner_num, link_num)
        return code

    def decode(self, code: str) -> tuple[int, int] | None:
        if not is_code_syntax(code):
            return None
        numbers = self._hashids.decode(code)
        if len(numbers) != 2:
            return None
        partner_num, link_num = numbers
        if partner_num < 1 or link_num < 1:
            return None
        # hashids decodes some strings it never produced (other padding, other lengths);
        # two spellings of one link would split its clicks and let aliases shadow codes.
        if self._hashids.encode(partner_num, link_num) != code:
            return None
        return partner_num, link_num

    def _is_any_code(self, text: str) -> bool:
        """Whether `text` is a canonical hashids string of any count of numbers."""
        return is_code_syntax(text) and bool(self._hashids.decode(text))


def validate_alias(alias: str, codec: LinkCodec) -> str:
    if ALIAS_PATTERN.fullmatch(alias) is None:
        shown = alias if len(alias) <= 100 else alias[:100] + "…"
        raise InvalidInput(f"alias {shown!r} breaks the rule: {_alias_fault(alias)}")
    if alias.casefold() in RESERVED_ALIASES:
        raise InvalidInput(f"alias {alias!r} is a reserved route name")
    # Refused for any count of numbers, not only generated codes, so a later change of
    # the code format cannot make an old alias collide with a new code.
    if codec._is_any_code(alias):
        raise InvalidInput(f"alias {alias!r} reads as a generated link code; choose another")
    return alias


def _alias_fault(alias: str) -> str:
    if len(alias) < MIN_ALIAS_LENGTH:
        return f"shorter than {MIN_ALIAS_LENGTH} characters ({_ALIAS_RULE})"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"longer than {MAX_ALIAS_LENGTH} characters ({_ALIAS_RULE})"
    if not (alias[0].isascii() and alias[0].isalnum()):
        return f"does not start with a letter or digit ({_ALIAS_RULE})"
    return f"contains a character other than letters, digits, '_' and '-' ({_ALIAS_RULE})"
