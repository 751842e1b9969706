"""Tell a person from a HEAD probe, a prefetch, a link preview, a mail scanner or a crawler."""

from __future__ import annotations

import enum
import functools
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

import crawleruseragents

__all__ = [
    "EXCLUDED_CRAWLER_PATTERNS",
    "EXTRA_CRAWLER_PATTERNS",
    "MAX_CACHED_UA_LENGTH",
    "PREFETCH_PURPOSES",
    "PREVIEW_PATTERNS",
    "SCANNER_PATTERNS",
    "UA_CACHE_SIZE",
    "Kind",
    "classify",
    "classify_user_agent",
    "is_prefetch",
]


class Kind(enum.StrEnum):
    PERSON = "person"
    HEAD = "head"
    PREFETCH = "prefetch"
    PREVIEW = "preview"  # a chat or social app fetching a pasted link to draw its card
    SCANNER = "scanner"  # a mail-security gateway following the links of a delivered message
    CRAWLER = "crawler"

    @property
    def is_person(self) -> bool:
        return self is Kind.PERSON


# Product decisions: which user agents are which. Preview and scanner patterns are looked at
# before the crawler list, which also names some preview bots. Patterns are case-sensitive, as
# the vendors spell them, except the scanner ones.

PREVIEW_PATTERNS: tuple[str, ...] = (
    r"Slackbot|Slack-ImgProxy",  # "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
    r"TelegramBot",  # the in-app browser says "Telegram-Android" and must stay a person
    r"WhatsApp",  # the sender's phone fetches the card: "WhatsApp/2.23.20.0 A"
    r"Discordbot",
    r"LinkedInBot",  # the app's own browser says "LinkedInApp"
    # Skype and Teams unfurl through the same service. The bare "Teams" token is left out: the
    # Teams desktop client sends "Teams/1.6.00..." and a person may be behind it.
    r"SkypeUriPreview|MicrosoftPreview/",
    # iMessage's card fetcher carries both "facebookexternalhit" and "Twitterbot".
    r"facebookexternalhit|Facebot|Twitterbot",
    r"Pinterestbot|pinterest\.com/bot",  # not "Pinterest": the app's browser says "[Pinterest/iOS]"
    r"redditbot",
    # Anchored: Viber's Android in-app browser ends its UA with "Viber/21.7.0.1".
    r"^Viber\b",
    # LINE fetches cards as "facebookexternalhit/1.1;line-poker/1.0"; its browser says "Line/14.x".
    r"line-poker",
    # Snapchat's fetcher; the in-app browser says "Snapchat/13.x".
    r"Snap URL Preview Service|SnapURLPreview/",
    r"Google-PageRenderer",  # Google's page-snippet fetcher (developers.google.com/+/web/snippet)
    r"GoogleMessages",  # Google Messages' (SMS/RCS) card fetcher, "GoogleMessages/20"
    r"Embedly|Iframely",  # embed services behind many smaller apps (Atlassian, Medium, ...)
    r"vkShare",
    r"Mastodon/",  # "http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/)"
    r"Bluesky Cardyb|BlueskyPreviewBot|Bluesky/",
    # Anchored: Tumblr's in-app browser ends its UA with "Tumblr/23.9.1.100", and Notion's
    # desktop app carries "Notion/3.14.0" in the middle of its Electron UA.
    r"^Tumblr/|^Notion/",
    # Signal builds cards on the sender's phone with no UA of its own: nothing to match.
)

SCANNER_PATTERNS: tuple[str, ...] = (
    r"Barracuda",  # "Barracuda Sentinel (EE)", Barracuda's impersonation protection
    r"Proofpoint|urldefense",  # Proofpoint URL Defense / TAP, when it names itself
    r"Mimecast",  # Mimecast URL Protect, when it names itself (mostly it sends a browser UA)
    # Office asks whether a link exists before handing it to the browser. Defender Safe Links'
    # own detonation sends a plain browser UA from Microsoft's addresses: no UA to match.
    r"Microsoft Office (?:Existence|Protocol) Discovery|ms-office",
    # Gmail's scanner, from Google's addresses: a 2015 Chrome/Edge UA with a stray "Mozilla/5.0".
    r"Edge/12\.246 Mozilla/5\.0",
)

# Added to the crawler list. The tools are in it today, named here so that no change upstream
# lets them through.
EXTRA_CRAWLER_PATTERNS: tuple[str, ...] = (
    r"Sonic(?! Slack_SSB)",  # the excluded "Sonic" crawler pattern, minus Slack's desktop app
    r"curl/",
    r"Wget",
    r"python-requests",
    r"Go-http-client",
    r"HeadlessChrome",
    r"PhantomJS",
)

# crawler-user-agents patterns (spelled exactly as in its JSON) that also match people.
EXCLUDED_CRAWLER_PATTERNS: frozenset[str] = frozenset(
    {
        "okhttp",  # the HTTP client inside countless Android apps
        "MetaIAB Facebook",  # Facebook's own in-app browser since late 2025, not a fetcher
        "Viber",  # also in Viber's in-app browser; the fetcher is matched, anchored, above
        r"Tumblr\/",  # also in Tumblr's in-app browser; the fetcher is matched, anchored, above
        r"Notion\/",  # also in Notion's desktop app; the fetcher is matched, anchored, above
        "Sonic",  # also in Slack's desktop app ("Sonic Slack_SSB/4.41.97"); narrowed above
    }
)

# Tokens of Sec-Purpose / Purpose / X-Moz ("prefetch", "prefetch;prerender") and Safari's
# X-Purpose ("preview"), compared in lower case.
PREFETCH_PURPOSES: frozenset[str] = frozenset({"prefetch", "prerender", "preview"})

UA_CACHE_SIZE = 65_536
# Longer UAs are classified but not cached, so that junk headers cannot fill the cache's memory.
MAX_CACHED_UA_LENGTH = 512


class _Matchers(NamedTuple):
    preview: re.Pattern[str]
    scanner: re.Pattern[str]
    crawler: re.Pattern[str]


def _alternation(patterns: Iterable[str]) -> str:
    """Join regexes into one alternation, grouping those that open with the same literal character.

    `re` tries every branch at every position of the UA; with the ~1,500 crawler patterns
    grouped by their first character a browser UA is searched many times faster.
    """
    by_first_character: defaultdict[str, list[str]] = defaultdict(list)
    ungrouped: list[str] = []
    for pattern in patterns:
        # Only safe to split when the first character is a plain literal that no quantifier
        # follows and no top-level "|" would leave it applying to one branch only.
        if (
            len(pattern) > 1
            and pattern[0].isalnum()
            and pattern[1] not in "?*+{"
            and "|" not in pattern
        ):
            by_first_character[pattern[0]].append(pattern[1:])
        else:
            ungrouped.append(f"(?:{pattern})")
    grouped = [f"{first}(?:{'|'.join(rests)})" for first, rests in by_first_character.items()]
    return "|".join(grouped + ungrouped)


@functools.cache
def _matchers() -> _Matchers:
    crawler_list = [
        str(entry["pattern"])
        for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA
        if entry["pattern"] not in EXCLUDED_CRAWLER_PATTERNS
    ]
    return _Matchers(
        preview=re.compile(_alternation(PREVIEW_PATTERNS)),
        scanner=re.compile(_alternation(SCANNER_PATTERNS), re.IGNORECASE),
        # Case-sensitive, as crawler-user-agents' own is_crawler() uses its patterns by default.
        crawler=re.compile(_alternation([*crawler_list, *EXTRA_CRAWLER_PATTERNS])),
    )


def _classify_user_agent(user_agent: str) -> Kind:
    if not user_agent.strip():
        return Kind.CRAWLER
    matchers = _matchers()
    if matchers.preview.search(user_agent):
        return Kind.PREVIEW
    if matchers.scanner.search(user_agent):
        return Kind.SCANNER
    if matchers.crawler.search(user_agent):
        return Kind.CRAWLER
    return Kind.PERSON


_cached_classify_user_agent = functools.lru_cache(maxsize=UA_CACHE_SIZE)(_classify_user_agent)


def classify_user_agent(user_agent: str) -> Kind:
    """PERSON, PREVIEW, SCANNER or CRAWLER; cached, as real traffic repeats its User-Agents."""
    if len(user_agent) > MAX_CACHED_UA_LENGTH:
        return _classify_user_agent(user_agent)
    return _cached_classify_user_agent(user_agent)


def is_prefetch(purpose: str) -> bool:
    """Whether the purpose headers' values, joined with ",", name one of PREFETCH_PURPOSES."""
    if not purpose:
        return False
    tokens = purpose.replace(";", ",").split(",")
    return any(token.strip().lower() in PREFETCH_PURPOSES for token in tokens)


def classify(method: str, user_agent: str, purpose: str) -> Kind:
    """The kind of a hit on GET|HEAD /r/{code}: the method first, then the purpose, then the UA."""
    if method.upper() == "HEAD":
        return Kind.HEAD
    if is_prefetch(purpose):
        return Kind.PREFETCH
    return classify_user_agent(user_agent)
