"""Signed values have exactly one accepted spelling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.signing import TokenSigner

SIGNER = TokenSigner("test", ["a-secret-of-enough-length"])
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def spellings(token: str) -> set[str]:
    """The same bytes written otherwise: padded, in standard base64, with unused bits set."""
    body, tag = token.split(".")
    others = {f"{body}.{tag}=", f"{body}.{tag}==", f"{body}=.{tag}",
              token.replace("-", "+").replace("_", "/")}
    for index in range(1, 4):  # a 16-byte tag leaves the last character's 4 low bits unused
        others.add(f"{body}.{tag[:-1]}{ALPHABET[ALPHABET.index(tag[-1]) ^ index]}")
    if len(body) % 4 in (2, 3):  # the body's last character has unused bits too
        last = ALPHABET.index(body[-1])
        others.add(f"{body[:-1]}{ALPHABET[last ^ 1]}.{tag}")
    others.discard(token)
    return others


@given(st.binary(max_size=200))
def test_a_token_verifies_in_its_own_spelling_and_in_no_other(payload: bytes) -> None:
    token = SIGNER.sign(payload)
    assert SIGNER.unsign(token) == payload
    for other in spellings(token):
        assert SIGNER.unsign(other) is None, other
