"""HMAC token signing with key rotation: the first secret signs, every secret verifies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits: ample for tokens, shorter cookies.
MAX_TOKEN_LENGTH = 4096


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: the one spelling _b64encode gives, or ValueError. (The
    standard decoder also takes padding, `+/`, and set unused low bits in the last character:
    other spellings of the same bytes, which a signed value must not have.)"""
    if _B64URL.fullmatch(text) is None:
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:
        raise ValueError("not the canonical base64url spelling")
    return raw


class TokenSigner:
    """Signs opaque payloads for one purpose; keys for other purposes never verify here."""

    def __init__(self, purpose: str, secrets: Iterable[str]) -> None:
        # One derived key per purpose, so a cookie can never pass as a partner token.
        self._keys = [
            hmac.new(secret.encode(), b"invite-edge/" + purpose.encode(), hashlib.sha256).digest()
            for secret in secrets
        ]
        if not self._keys:
            raise ValueError("TokenSigner needs at least one secret")

    def _tag(self, key: bytes, body: bytes) -> bytes:
        return hmac.new(key, body, hashlib.sha256).digest()[:_TAG_BYTES]

    def sign(self, payload: bytes) -> str:
        body = _b64encode(payload).encode("ascii")
        return f"{body.decode('ascii')}.{_b64encode(self._tag(self._keys[0], body))}"

    def unsign(self, token: str) -> bytes | None:
        """The payload of a token signed by any current key; None for anything else."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            return None
        body_text, _, tag_text = token.partition(".")
        try:
            body = body_text.encode("ascii")
            tag = _b64decode(tag_text)
            payload = _b64decode(body_text)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            return None
        # Check every key, even after a match, so timing does not reveal which key signed.
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(self._tag(key, body), tag)
        return payload if valid else None


def token_matches(presented: str, accepted: Iterable[str]) -> bool:
    """Constant-time bearer token check against every accepted (rotating) token."""
    presented_bytes = presented.encode("utf-8", "surrogateescape")
    found = False
    for token in accepted:
        found |= hmac.compare_digest(presented_bytes, token.encode("utf-8"))
    return found
