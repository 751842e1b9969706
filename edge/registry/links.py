"""Short-link codes and aliases, destination checks, and the redirect's Location header."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes, unquote_plus, urlencode

from hashids import Hashids

from edge.errors import ConfigError, InvalidInput

__all__ = [
    "ALIAS_PATTERN",
    "CODE_MIN_LENGTH",
    "MAX_ALIAS_LENGTH",
    "MAX_CODE_LENGTH",
    "MAX_DESTINATION_LENGTH",
    "MIN_ALIAS_LENGTH",
    "RESERVED_ALIASES",
    "RESERVED_PARAMS",
    "Destination",
    "DestinationPolicy",
    "LinkCodec",
    "build_location",
    "is_code_syntax",
    "validate_alias",
]

MAX_CODE_LENGTH = 64
CODE_MIN_LENGTH = 7
MIN_ALIAS_LENGTH = 3
MAX_ALIAS_LENGTH = MAX_CODE_LENGTH
MAX_DESTINATION_LENGTH = 2048
RESERVED_PARAMS = frozenset({"partnerId", "clickId", "campaign"})
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
        raise InvalidInput(f"alias {_shown(alias)} breaks the rule: {_alias_fault(alias)}")
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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_AUTHORITY = re.compile(r"[^/?#]*")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST_NAME = re.compile(r"[a-z0-9.-]+")
# The WHATWG URL parser reads a host whose last label is a number as IPv4 ("0x7f.1",
# "2130706433"), so such a host is only taken in dotted-quad form.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Path, query and fragment keep RFC 3986's characters and percent-encode the rest,
# "@" too: then no lax parser downstream can find a userinfo in the URL.
_URL_REST_SAFE = "/?#:!$&'()*+,;=%"
# Refused anywhere: browsers drop or reinterpret these (tab and newline are stripped
# inside URLs), and invisible ones make a URL read differently from how it works.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def _shown(value: str, limit: int = 100) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _canonical_host(raw: str) -> str:
    """The host lower-cased, trailing dot dropped, IPv6 unbracketed; ValueError says why not."""
    if not raw:
        raise ValueError("the host is empty")
    if "%" in raw:
        raise ValueError(f"host {raw!r} is percent-encoded")
    if not raw.isascii():
        raise ValueError(
            f"host {raw!r} is not ASCII; give internationalized names in punycode (xn--…)"
        )
    if raw.startswith("[") or ":" in raw:
        literal = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
        try:
            return ipaddress.IPv6Address(literal).compressed
        except ValueError:
            raise ValueError(f"host {raw!r} is neither a host name nor an IPv6 address") from None
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]
    if _HOST_NAME.fullmatch(host) is None:
        raise ValueError(f"host {raw!r} may contain only letters, digits, '-' and '.'")
    if len(host) > 253:
        raise ValueError(f"host {raw!r} is longer than 253 characters")
    labels = host.split(".")
    if any(not label for label in labels):
        raise ValueError(f"host {raw!r} has an empty label")
    if any(len(label) > 63 for label in labels):
        raise ValueError(f"host {raw!r} has a label longer than 63 characters")
    if _NUMERIC_LABEL.fullmatch(labels[-1]) is not None:
        try:
            canonical_ipv4 = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical_ipv4 = ""
        if canonical_ipv4 != host:
            raise ValueError(f"host {raw!r} is numeric but not a dotted-quad IPv4 address")
    return host


class DestinationPolicy:
    """Which URLs a link may redirect to: http(s) on an allowed host, nothing that could mislead."""

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        exact: set[str] = set()
        suffixes: set[str] = set()
        for entry in allowed_hosts:
            entry = entry.strip()
            if not entry:
                continue
            wildcard = entry.startswith("*.")
            try:
                host = _canonical_host(entry[2:] if wildcard else entry)
            except ValueError as err:
                raise ConfigError(f"allowed destination {entry!r}: {err}") from None
            if not wildcard:
                exact.add(host)
                continue
            if ":" in host or _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
                raise ConfigError(f"allowed destination {entry!r}: '*.' needs a domain name")
            if "." not in host:
                raise ConfigError(
                    f"allowed destination {entry!r} would allow every host of a top-level domain"
                )
            suffixes.add("." + host)
        self._exact = frozenset(exact)
        self._suffixes = tuple(sorted(suffixes))

    def is_allowed_host(self, host: str) -> bool:
        try:
            canonical = _canonical_host(host)
        except ValueError:
            return False
        return self._allows(canonical)

    def _allows(self, canonical_host: str) -> bool:
        return canonical_host in self._exact or canonical_host.endswith(self._suffixes)

    def check(self, url: str) -> str:
        if len(url) > MAX_DESTINATION_LENGTH:
            raise _refused(url, f"is longer than {MAX_DESTINATION_LENGTH} characters")
        for char in url:
            if char == "\\":
                raise _refused(url, "contains a backslash, which browsers read as '/'")
            if (
                char <= " "
                or char == "\x7f"
                or (not char.isascii() and unicodedata.category(char) in _REFUSED_CATEGORIES)
            ):
                raise _refused(
                    url, f"contains the whitespace, control or invisible character {char!r}"
                )

        scheme, colon, after_scheme = url.partition(":")
        # "broker.com:443/x" has no scheme, whatever a generic parser would make of it.
        if not colon or _SCHEME.fullmatch(scheme) is None or "." in scheme:
            if "%" in scheme:
                raise _refused(url, "has a percent-encoded scheme")
            raise _refused(url, "is not an absolute URL starting with 'http://' or 'https://'")
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise _refused(url, f"has the scheme {scheme!r}; only http and https are allowed")
        if not after_scheme.startswith("//"):
            raise _refused(url, f"must have '//' and a host right after '{scheme}:'")

        after_slashes = after_scheme[2:]
        authority_match = _AUTHORITY.match(after_slashes)
        authority = authority_match.group() if authority_match else ""
        rest = after_slashes[len(authority) :]
        if "@" in authority:
            raise _refused(url, "carries a user name or password ('@' before the host)")
        if "%" in authority:
            raise _refused(url, "has percent-encoded characters in the host or port")
        if not authority.isascii():
            raise _refused(
                url, "has a non-ASCII host; give internationalized names in punycode (xn--…)"
            )

        if authority.startswith("["):
            closing = authority.find("]")
            if closing == -1:
                raise _refused(url, "has an unterminated IPv6 literal")
            host_text, after_host = authority[: closing + 1], authority[closing + 1 :]
            if after_host and not after_host.startswith(":"):
                raise _refused(url, f"has {after_host!r} after its IPv6 literal")
            port_text = after_host[1:] if after_host else None
        else:
            host_text, port_sep, port_after = authority.partition(":")
            port_text = port_after if port_sep else None

        try:
            host = _canonical_host(host_text)
        except ValueError as err:
            raise _refused(url, f"is refused: {err}") from None
        if not self._allows(host):
            raise _refused(url, f"goes to host {host!r}, which is not an allowed destination")

        netloc = f"[{host}]" if ":" in host else host
        if port_text is not None:
            if _PORT.fullmatch(port_text) is None or not 1 <= int(port_text) <= 65535:
                raise _refused(url, f"has the port {port_text!r}; a port is a number 1..65535")
            netloc += f":{int(port_text)}"

        if not rest.startswith("/"):
            rest = "/" + rest
        normalized = f"{scheme}://{netloc}{quote(rest, safe=_URL_REST_SAFE)}"
        if len(normalized) > MAX_DESTINATION_LENGTH:
            raise _refused(
                url, f"is longer than {MAX_DESTINATION_LENGTH} characters once percent-encoded"
            )
        return normalized


def _refused(url: str, rule: str) -> InvalidInput:
    return InvalidInput(f"destination {_shown(url)} {rule}")


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked destination URL split once, so that redirects only concatenate."""

    prefix: str
    query: str
    fragment: str

    @classmethod
    def parse(cls, url: str) -> Destination:
        before_fragment, _, fragment = url.partition("#")
        prefix, _, query = before_fragment.partition("?")
        # The edge sets partnerId, clickId and campaign itself: a destination's own copies
        # would make the registration page see two values.
        query = "&".join(
            pair for pair in query.split("&")
            if pair and unquote_plus(pair.partition("=")[0]).strip().casefold()
            not in _RESERVED_PARAMS_FOLDED
        )
        return cls(prefix=prefix, query=query, fragment=fragment)


# Characters a passed-through query pair keeps as they are; "%" only where it starts
# an escape (see _BARE_PERCENT), and never "#", which would start a fragment.
_QUERY_PAIR_SAFE = "!$'()*+,;=:/?%"
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RESERVED_PARAMS_FOLDED = frozenset(name.casefold() for name in RESERVED_PARAMS)


def build_location(destination: Destination, request_query: str, params: Mapping[str, str]) -> str:
    return location_with(destination, request_query, urlencode(params, quote_via=quote))


def location_with(destination: Destination, request_query: str, encoded_params: str) -> str:
    """`build_location` with the edge's own parameters already encoded (cached per link)."""
    query_parts: list[str] = []
    if destination.query:
        query_parts.append(destination.query)
    if request_query:
        query_parts.extend(_passed_through_pairs(request_query))
    if encoded_params:
        query_parts.append(encoded_params)
    location = destination.prefix
    if query_parts:
        location += "?" + "&".join(query_parts)
    if destination.fragment:
        location += "#" + destination.fragment
    return location


def _passed_through_pairs(request_query: str) -> Iterator[str]:
    """The request's own query pairs, re-escaped, minus those naming a reserved parameter."""
    for pair in request_query.split("&"):
        raw_name = pair.partition("=")[0]
        if not raw_name:
            continue
        # Decoded and case-folded so "partner%49d" or "PARTNERID" cannot slip a spoof through.
        if unquote_plus(raw_name).strip().casefold() in _RESERVED_PARAMS_FOLDED:
            continue
        yield quote_from_bytes(_query_bytes(_BARE_PERCENT.sub("%25", pair)), _QUERY_PAIR_SAFE)


def _query_bytes(text: str) -> bytes:
    # The server hands the raw query bytes over decoded as latin-1, so encoding back to
    # latin-1 restores them exactly; anything wider can only come from other callers.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
