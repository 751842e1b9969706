"""One click event from the stream → one row of `invite.clicks`: checked, UA parsed, referrer host.

Pure functions. User agents are parsed with ua-parser (its Rust resolver when `ua-parser-rs` is
installed, far faster than the pure-Python one) and classified into device types with user-agents'
rules; results are cached per UA string, since real traffic repeats them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import ua_parser
from user_agents.parsers import (  # type: ignore[import-untyped]
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

from edge.errors import BadEvent
from edge.spelling import CANONICAL_UUID
from edge.streams import decode_payload

__all__ = [
    "BOT_KINDS",
    "CLICK_COLUMNS",
    "KINDS",
    "OUTCOMES",
    "UA_CACHE_SIZE",
    "Agent",
    "clear_caches",
    "click_line",
    "click_row",
    "derived_fields",
    "parse_user_agent",
    "referer_host",
]

# Distinct UAs kept parsed; ~2% of clicks bring a new one, so this covers hours of traffic.
UA_CACHE_SIZE = 100_000
KINDS = frozenset({"person", "head", "prefetch", "preview", "scanner", "crawler"})
BOT_KINDS = frozenset({"preview", "scanner", "crawler"})
OUTCOMES = frozenset({"credited", "suspended", "disabled", "orphan", "unresolved"})
MAX_TEXT = 4096  # the edge truncates its headers far below this; anything longer is not its event

# The insert order of the batcher's rows, with their types (so an insert needs no DESCRIBE).
CLICK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("click_id", "UUID"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("code", "String"),
    ("kind", "LowCardinality(String)"),
    ("is_human", "UInt8"),
    ("outcome", "LowCardinality(String)"),
    ("partner_id", "String"),
    ("ancestors", "Array(String)"),
    ("campaign", "String"),
    ("sub_id", "String"),
    ("destination", "String"),
    ("ip_hash", "String"),
    ("ip_prefix", "String"),
    ("user_agent", "String"),
    ("referer", "String"),
    ("referer_host", "LowCardinality(String)"),
    ("accept_language", "String"),
    ("country", "LowCardinality(String)"),
    ("device", "LowCardinality(String)"),
    ("os", "LowCardinality(String)"),
    ("browser", "LowCardinality(String)"),
    ("bot_family", "LowCardinality(String)"),
    ("first_click", "UInt8"),
    ("visitor_id", "String"),
    ("method", "LowCardinality(String)"),
)
_TEXT_FIELDS = (
    "code", "campaign", "sub_id", "destination", "ip_hash", "ip_prefix", "user_agent", "referer",
    "accept_language", "country",
)
# ts outside this range is not a click time (ms: 2020-01-01 .. 2100-01-01).
_TS_MIN_MS, _TS_MAX_MS = 1_577_836_800_000, 4_102_444_800_000


@dataclass(frozen=True, slots=True)
class Agent:
    device: str  # mobile, tablet, desktop, bot, other
    os: str  # ua-parser's family: iOS, Android, Windows, Mac OS X, ...; "" when unknown
    browser: str  # Chrome, Mobile Safari, Firefox, ...; "" when unknown
    bot_family: str  # the bot's name when the parser knows it as one, else ""

    @property
    def is_bot(self) -> bool:
        return self.device == "bot"


@functools.cache
def _parser() -> ua_parser.Parser:
    # Built once, on first use (loading the rules takes ~0.2 s); no cache of its own: ours is
    # in front of it and holds the finished Agent.
    return ua_parser.Parser(ua_parser.BestAvailableResolver(ua_parser.load_builtins()))


def _known(family: str | None) -> str:
    return "" if family in (None, "Other") else str(family)


@functools.lru_cache(maxsize=UA_CACHE_SIZE)
def parse_user_agent(user_agent: str) -> Agent:
    """Device type, OS, browser and bot family of a User-Agent header."""
    if not user_agent:
        return Agent("other", "", "", "")
    parsed = _parser().parse(user_agent)
    # user-agents' device rules on ua-parser's result, without its slow pure-Python parse.
    agent = UserAgent.__new__(UserAgent)
    agent.ua_string = user_agent
    agent.os = parse_operating_system(**_version_fields(parsed.os))
    agent.browser = parse_browser(**_version_fields(parsed.user_agent))
    device = parsed.device
    agent.device = parse_device(
        device.family if device else "Other", device.brand if device else None,
        device.model if device else None,
    )
    if agent.is_bot:
        return Agent("bot", _known(agent.os.family), "", _known(agent.browser.family) or "Other")
    if agent.is_tablet:
        device_type = "tablet"
    elif agent.is_mobile:
        device_type = "mobile"
    elif agent.is_pc:
        device_type = "desktop"
    else:
        device_type = "other"
    return Agent(device_type, _known(agent.os.family), _known(agent.browser.family), "")


def _version_fields(found: ua_parser.UserAgent | ua_parser.OS | None) -> dict[str, str | None]:
    if found is None:
        return {"family": "Other"}
    return {
        "family": found.family, "major": found.major, "minor": found.minor, "patch": found.patch,
    }


@functools.lru_cache(maxsize=UA_CACHE_SIZE)
def referer_host(referer: str) -> str:
    """The lower-case host of a Referer without `www.`; "" when there is none or it is no URL."""
    if not referer:
        return ""
    try:
        host = urlsplit(referer.strip()).hostname or ""
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


_ONLY_STR = {str}


def click_row(event: Mapping[str, Any]) -> list[Any]:
    """The `invite.clicks` row of one event, in CLICK_COLUMNS order; BadEvent says what is wrong."""
    click_id = event.get("click_id")
    if not isinstance(click_id, str):
        raise BadEvent("click_id is missing or not a string")
    if not CANONICAL_UUID.fullmatch(click_id):  # what the edge writes: no parsing needed
        try:
            click_id = str(uuid.UUID(click_id))  # the spelling ClickHouse prints back
        except ValueError:
            raise BadEvent(f"click_id {click_id[:64]!r} is not a UUID") from None
    ts = event.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool) or not _TS_MIN_MS <= ts < _TS_MAX_MS:
        raise BadEvent(f"ts {str(ts)[:32]!r} is not a click time in ms since the epoch")
    kind = event.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise BadEvent(f"kind {str(kind)[:32]!r} is not one of {', '.join(sorted(KINDS))}")
    outcome = event.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise BadEvent(
            f"outcome {str(outcome)[:32]!r} is not one of {', '.join(sorted(OUTCOMES))}"
        )
    text: dict[str, str] = {}
    for name in _TEXT_FIELDS:  # the hot loop of the batcher: the common case tested inline
        value = event.get(name)
        text[name] = value if value.__class__ is str and len(value) <= MAX_TEXT else _text(
            event, name
        )
    partner_id = _text(event, "partner_id")
    ancestors = event.get("ancestors") or []
    # map(type, …) loops in C: a generator per event cost more than the rest of the check.
    if ancestors.__class__ is not list or (ancestors and set(map(type, ancestors)) != _ONLY_STR):
        raise BadEvent("ancestors is not a list of partner ids")
    method = _text(event, "method") or "GET"
    first_click = bool(event.get("first_click", True))
    visitor_id = _text(event, "visitor_id") or click_id

    is_human, host, device, os_family, browser, bot_family = derived_fields(
        text["user_agent"], text["referer"], kind
    )
    return [
        click_id,
        ts,
        text["code"],
        kind,
        is_human,
        outcome,
        partner_id,
        ancestors,
        text["campaign"],
        text["sub_id"],
        text["destination"],
        text["ip_hash"],
        text["ip_prefix"],
        text["user_agent"],
        text["referer"],
        host,
        text["accept_language"],
        text["country"],
        device,
        os_family,
        browser,
        bot_family,
        1 if first_click else 0,
        visitor_id,
        method,
    ]


# What the batcher sends for a click: a line of JSONEachRow for `invite.clicks_ingest`
# (analytics/schema.py), whose view makes it a `clicks` row. An event as the edge writes it
# (canonical click_id, ts in ms, strings, a list of ancestors, a bool first_click) goes as it came,
# with the derived fields appended: ClickHouse parses the text once, and Python neither builds nor
# encodes a row (docs/benchmarks.md, "Pipeline"). Anything else goes through click_row, which
# names what is wrong or spells the row the canonical way.
DERIVED_COLUMNS = ("is_human", "referer_host", "device", "os", "browser", "bot_family")
_DERIVED = frozenset(DERIVED_COLUMNS)
_PASSED_TEXT = (*_TEXT_FIELDS, "partner_id", "visitor_id", "method")
_STR_OR_NONE = frozenset({str, type(None)})
INGEST_COLUMNS = tuple(name for name, _ in CLICK_COLUMNS)


def click_line(payload: bytes | str | None) -> tuple[str, int, bytes]:
    """(click_id, ts in ms, the JSONEachRow line for `clicks_ingest`) of a stream entry's field
    `e`; BadEvent says what is wrong with it."""
    event = decode_payload(payload)
    click_id = event.get("click_id")
    ts = event.get("ts")
    kind = event.get("kind")
    outcome = event.get("outcome")
    raw = payload if payload.__class__ is bytes else str(payload).encode()
    if (
        click_id.__class__ is str and ts.__class__ is int and kind.__class__ is str
        and outcome.__class__ is str and kind in KINDS and outcome in OUTCOMES
        and _TS_MIN_MS <= ts < _TS_MAX_MS and CANONICAL_UUID.fullmatch(click_id)
        and event.get("first_click", True).__class__ is bool and _passes(event, raw)
    ):
        user_agent, referer = event.get("user_agent") or "", event.get("referer") or ""
        suffix = _SUFFIXES.get((user_agent, referer, kind))
        if suffix is None:
            suffix = _derived_suffix(user_agent, referer, kind)
        return click_id, ts, raw.rstrip()[:-1] + suffix
    row = click_row(event)
    return row[0], row[1], orjson.dumps(dict(zip(INGEST_COLUMNS, row, strict=True)))


def _passes(event: dict[str, Any], raw: bytes) -> bool:
    """Whether the event's other fields can go to ClickHouse as they are (C loops only: this
    runs for every click)."""
    if len(raw) > MAX_TEXT or not raw.rstrip().endswith(b"}"):
        # No string inside is longer than the text (JSON never writes a character in less than
        # a byte): only a long event needs each length checked.
        return False
    if not _STR_OR_NONE.issuperset(map(type, map(event.get, _PASSED_TEXT))):
        return False
    ancestors = event.get("ancestors")
    if ancestors is not None and (
        ancestors.__class__ is not list or (ancestors and set(map(type, ancestors)) != _ONLY_STR)
    ):
        return False
    return _DERIVED.isdisjoint(event)


# The derived fields' text per (user agent, referer, kind): real traffic repeats them.
_SUFFIXES: dict[tuple[str, str, str], bytes] = {}


def derived_fields(user_agent: str, referer: str, kind: str) -> tuple[int, str, str, str, str, str]:
    """The columns the batcher adds to a click, in DERIVED_COLUMNS order."""
    agent = parse_user_agent(user_agent)
    bot_family = agent.bot_family
    if not bot_family and kind in BOT_KINDS:
        # The edge knew it for a bot by its own lists; name it as the parser reads it.
        bot_family = agent.browser or "Other"
    is_human = 1 if kind == "person" and not agent.is_bot else 0
    return is_human, referer_host(referer), agent.device, agent.os, agent.browser, bot_family


def _derived_suffix(user_agent: str, referer: str, kind: str) -> bytes:
    """The derived fields as the end of a JSON object: `,"is_human":…,"bot_family":…}`."""
    derived = dict(zip(DERIVED_COLUMNS, derived_fields(user_agent, referer, kind), strict=True))
    suffix = b"," + orjson.dumps(derived)[1:]
    if len(_SUFFIXES) >= UA_CACHE_SIZE:
        _SUFFIXES.clear()  # a new generation; the common ones are back within a batch
    _SUFFIXES[(user_agent, referer, kind)] = suffix
    return suffix


def clear_caches() -> None:
    """Forget every parsed UA and referer (benchmarks start cold)."""
    for cached in (parse_user_agent, referer_host):
        cached.cache_clear()
    _SUFFIXES.clear()


def _text(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"{name} is a {type(value).__name__}, not a string")
    if len(value) > MAX_TEXT:
        raise BadEvent(f"{name} is longer than {MAX_TEXT} characters")
    return value
