"""Partner tokens for the analytics API: signed by the edge, revoked all at once per partner.

A token carries the partner and when it was issued (ms). Revoking stamps the partner with
`tokens_not_before` (PartnerRegistry.revoke_tokens): every token issued earlier is refused by the
analytics API as soon as the partners table in ClickHouse has the stamp (the batcher copies
registry changes within seconds).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from edge.clock import now_ms
from edge.signing import TokenSigner

PURPOSE = "partner-api"
# Tokens issued before the ms clock were stamped in seconds.
_SECONDS_BEFORE = 10**11
_LATEST_MS = 7_258_118_400_000  # 2200-01-01


def token_signer(secrets: Iterable[str]) -> TokenSigner:
    return TokenSigner(PURPOSE, secrets)


def issue(signer: TokenSigner, partner_id: str, issued_ms: int | None = None) -> str:
    issued = now_ms() if issued_ms is None else issued_ms
    return signer.sign(orjson.dumps({"p": partner_id, "iat": issued}))


def claims(signer: TokenSigner, token: str) -> tuple[str, int] | None:
    """The partner id and issue time (ms) of a genuine token, else None."""
    payload = signer.unsign(token)
    if payload is None:
        return None
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    partner_id, issued = decoded.get("p"), decoded.get("iat", 0)
    if not isinstance(partner_id, str) or type(issued) is not int or not 0 <= issued < _LATEST_MS:
        return None
    return partner_id, issued * 1000 if issued < _SECONDS_BEFORE else issued
