"""The redirect's Location: a checked destination split once, the clicker's own query passed
through, the edge's parameters added, and nobody else's copies of them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes, unquote_plus, urlencode

# The parameters the edge sets itself; a destination's or a clicker's own copies are dropped.
RESERVED_PARAMS = frozenset({"partnerId", "clickId", "campaign"})


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
        # would make the registration page see two values, after "&" or after ";" (which some
        # backends also split on).
        query = "&".join(
            kept for kept in (
                ";".join(part for part in pair.split(";") if not _names_reserved(part))
                for pair in query.split("&")
            ) if kept
        )
        return cls(prefix=prefix, query=query, fragment=fragment)


# Characters a passed-through query pair keeps as they are; "%" only where it starts
# an escape (see _BARE_PERCENT), never "#", which would start a fragment, and never ";", which
# some backends split pairs on ("x=1;partnerId=EVIL" would spoof the partner there).
_QUERY_PAIR_SAFE = "!$'()*+,=:/?%"
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RESERVED_PARAMS_FOLDED = frozenset(name.casefold() for name in RESERVED_PARAMS)


def _names_reserved(pair: str) -> bool:
    return unquote_plus(pair.partition("=")[0]).strip().casefold() in _RESERVED_PARAMS_FOLDED


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
        if _names_reserved(pair):
            continue
        yield quote_from_bytes(_query_bytes(_BARE_PERCENT.sub("%25", pair)), _QUERY_PAIR_SAFE)


def _query_bytes(text: str) -> bytes:
    # The server hands the raw query bytes over decoded as latin-1, so encoding back to
    # latin-1 restores them exactly; anything wider can only come from other callers.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")

