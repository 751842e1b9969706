"""Full IPs never leave the process: a keyed hash whose salt changes daily, and a network prefix."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime
from functools import lru_cache


class IpAnonymizer:
    """A keyed hash of an IP, its salt changing every UTC day: visits of one day can be told
    apart, not traced back or joined across days."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"invite-edge/ip-salt", hashlib.sha256).digest()
        self._day = -1
        self._salt = b""

    def _salt_for(self, ts_ms: int) -> bytes:
        day = ts_ms // 86_400_000  # the UTC day number: no date formatting per click
        if day != self._day:
            label = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
            self._salt = hmac.new(self._key, label.encode(), hashlib.sha256).digest()
            self._day = day
        return self._salt

    def hash(self, ip: str, ts_ms: int) -> str:
        if not ip:
            return ""
        return hmac.digest(self._salt_for(ts_ms), ip.encode(), hashlib.sha256).hex()[:32]


@lru_cache(maxsize=65536)
def ip_prefix(ip: str) -> str:
    """The /24 of an IPv4 address or the /48 of an IPv6 one; '' for anything unparseable."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 48), strict=False))
    v4 = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address
    return str(ipaddress.IPv4Network((v4, 24), strict=False))
