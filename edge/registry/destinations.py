"""Which URLs a link, a partner or a partner's webhook may point at: http(s), canonical hosts, on
the allow-list (webhooks: any host), nothing that could mislead a browser or a lax parser."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

from edge.errors import ConfigError, InvalidInput

MAX_DESTINATION_LENGTH = 2048

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


class _AnyHost(DestinationPolicy):
    """The destination rules (scheme, no userinfo, no odd hosts) without the host allow-list."""

    def _allows(self, canonical_host: str) -> bool:
        return True


_WEBHOOK_URL_RULES = _AnyHost(())


def check_webhook_url(url: str) -> str:
    """A partner's webhook URL, normalized: any host, but the destinations' other rules."""
    try:
        return _WEBHOOK_URL_RULES.check(url)
    except InvalidInput as error:
        raise InvalidInput("webhookUrl" + error.message.removeprefix("destination")) from None
