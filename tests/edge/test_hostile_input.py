"""The edge's routes fed what an attacker or a careless caller sends: never a 5xx, never a
traceback in the log, numbers only in ASCII digits, one spelling of every signed value and id,
bodies refused from their length, and no partner spoofed through a passed-through query."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.signing import TokenSigner
from tests.conftest import (
    ADMIN_TOKEN,
    HOOK_TOKEN,
    SECRET,
    EdgeServer,
    Tracebacks,
    ctrader_env,
    wait_for,
)
from tests.edge.helpers import create_link, put_partner
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
WEBHOOK = {"INVITE_CTRADER_WEBHOOK_USER": "ctrader", "INVITE_CTRADER_WEBHOOK_PASSWORD": "pw-123"}
# Digits that are not ASCII: superscript two, Arabic-Indic 1 2 3, fullwidth 7, Devanagari 5.
UNICODE_DIGITS = ["²", "١٢٣", "７", "५", "12³"]


@pytest.fixture
def hostile_edge(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader
) -> EdgeServer:
    edge = edge_factory(**ctrader_env(fake_ctrader, INVITE_HOOK_BUDGET_MS="0"), **WEBHOOK)
    put_partner(edge, "ib-1", type="ib")
    put_partner(edge, "ib-2", type="ib")
    return edge


def hook(edge: EdgeServer, path: str, body: Any) -> httpx.Response:
    with edge.client(headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as client:
        return client.post(path, json=body)


def webhook(edge: EdgeServer, body: Any) -> httpx.Response:
    with edge.client(auth=("ctrader", "pw-123")) as client:
        return client.post("/hooks/ctrader/attribution", json=body)


# --- 1. only ASCII digits are numbers ------------------------------------------------------


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize("field", ["userId", "ctidTraderAccountId"])
def test_unicode_digits_in_a_hook_id_are_a_422_naming_the_field(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, field: str, digits: str
) -> None:
    response = hook(hostile_edge, "/hooks/sso/referral", {field: digits, "partnerId": "ib-1"})
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize("field", ["invitedUserId", "partnerUserId"])
def test_unicode_digits_on_the_ctrader_webhook_are_a_422_naming_the_field(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, field: str, digits: str
) -> None:
    body = {"invitedUserId": 11, "partnerUserId": 12, "brokerName": "broker", field: digits}
    response = webhook(hostile_edge, body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("limit", [*UNICODE_DIGITS, "+5", " 5", "5_0", "0", "1001", ""])
def test_a_dead_letters_limit_that_is_no_ascii_number_is_a_422(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, limit: str
) -> None:
    with hostile_edge.admin() as admin:
        response = admin.get("/api/ctrader/dead-letters", params={"limit": limit})
    assert response.status_code == 422, response.text
    assert "limit" in response.json()["error"]["message"]


# --- 3, 4. one spelling of a signed value; signed absurd numbers are no attribution --------


def _cookie(edge: EdgeServer) -> str:
    link = create_link(edge, "ib-1")
    with edge.client() as client:
        response = client.get(f"/r/{link['code']}", headers={"User-Agent": CHROME})
    return response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def _other_spellings(token: str) -> list[str]:
    body, tag = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # A 16-byte tag is 22 characters: the last one carries 2 bits, its 4 low bits are unused.
    flipped = tag[:-1] + alphabet[alphabet.index(tag[-1]) ^ 1]
    spellings = [f"{body}.{tag}=", f"{body}.{tag}==", f"{body}=.{tag}", f"{body}.{flipped}",
                 token.replace("-", "+").replace("_", "/")]
    return [spelling for spelling in spellings if spelling != token]


def test_a_cookie_or_token_in_another_spelling_is_refused(
    hostile_edge: EdgeServer, tracebacks: Tracebacks
) -> None:
    token = _cookie(hostile_edge)
    with hostile_edge.client() as client:
        assert client.post("/api/attribution/verify", json={"token": token}).status_code == 200
        for spelling in _other_spellings(token):
            client.cookies.clear()
            context = client.get("/attribution", headers={"Cookie": f"invite_ref={spelling}"})
            verified = client.post("/api/attribution/verify", json={"token": spelling})
            assert context.status_code == 204, spelling
            assert verified.status_code == 422, spelling


@pytest.mark.parametrize("numbers", [
    {"t": 1_700_000_000_000, "e": 1e300}, {"t": -10**18, "e": 4_000_000_000_000},
    {"t": 1_700_000_000_000, "e": 10**30}, {"t": 1.5, "e": 4_000_000_000_000},
    {"t": True, "e": 4_000_000_000_000}, {"t": 4_000_000_000_000, "e": 1_700_000_000_000},
])
def test_a_validly_signed_token_with_absurd_numbers_counts_as_no_token(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, numbers: dict[str, Any]
) -> None:
    payload = {"p": "ib-1", "k": str(uuid.uuid4()), "v": "visitor", **numbers}
    token = TokenSigner("attribution", [SECRET]).sign(json.dumps(payload).encode())
    with hostile_edge.client() as client:
        context = client.get("/attribution", headers={"Cookie": f"invite_ref={token}"})
        verified = client.post("/api/attribution/verify", json={"token": token})
    assert context.status_code == 204
    assert verified.status_code == 422
    assert verified.json()["error"]["message"] == "token is invalid or expired"


# --- 5. one spelling of a clickId -------------------------------------------------------------


def _spellings(click_id: str) -> list[str]:
    return [click_id.upper(), click_id.replace("-", ""), "{" + click_id + "}",
            "urn:uuid:" + click_id]


def test_a_click_id_in_another_spelling_cannot_credit_another_partner(
    hostile_edge: EdgeServer, redis_client: redis.Redis, tracebacks: Tracebacks
) -> None:
    link = create_link(hostile_edge, "ib-1")
    with hostile_edge.client() as client:
        location = client.get(f"/r/{link['code']}", headers={"User-Agent": CHROME}).headers[
            "location"
        ]
    click_id = dict(parse_qsl(urlsplit(location).query))["clickId"]
    wait_for(lambda: redis_client.xlen("invite:clicks") == 1, what="the click in the stream")
    canonical = hook(hostile_edge, "/hooks/sso/referral",
                     {"userId": 501, "clickId": click_id, "partnerId": "ib-2"})
    assert canonical.status_code == 422
    for spelling in _spellings(click_id):
        response = hook(hostile_edge, "/hooks/sso/referral",
                        {"userId": 501, "clickId": spelling, "partnerId": "ib-2"})
        assert response.status_code == 422, (spelling, response.text)
        assert "canonical" in response.json()["error"]["message"]
    credited = hook(hostile_edge, "/hooks/sso/referral", {"userId": 501, "clickId": click_id})
    assert credited.status_code == 200, credited.text
    assert credited.json()["partnerId"] == "ib-1"


# --- 9. bodies refused from their length, and while they stream in ---------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/api/partners/big"), ("POST", "/api/partners/ib-1/links"),
    ("POST", "/api/attribution/verify"), ("POST", "/hooks/sso/referral"),
    ("POST", "/hooks/sso/users"),
])
def test_an_oversized_body_is_refused_before_it_is_read_whole(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, method: str, path: str
) -> None:
    token = HOOK_TOKEN if path.startswith("/hooks") else ADMIN_TOKEN
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def streamed() -> Iterator[bytes]:  # no Content-Length: chunked
        yield b'{"token": "'
        for _ in range(200):
            yield b"x" * 65_536
        yield b'"}'

    # Declares 10 MB and sends 2 bytes: the answer comes without waiting for the rest.
    status, answer = raw_request(hostile_edge, f"{method} {path}", headers, b"{}",
                                 content_length="10000000")
    assert status == 413, answer
    assert b"body_too_large" in answer
    with hostile_edge.client() as client:
        chunked = client.request(method, path, content=streamed(), headers=headers)
    assert chunked.status_code == 413, chunked.text
    assert chunked.json()["error"]["code"] == "body_too_large"


def raw_request(
    edge: EdgeServer, request_line: str, headers: dict[str, str], body: bytes,
    content_length: str,
) -> tuple[int, bytes]:
    """One request written by hand (httpx will not send a body shorter than its length)."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    raw = (f"{request_line} HTTP/1.1\r\nHost: edge\r\n{head}Content-Length: "
           f"{content_length}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while b"\r\n\r\n" not in answer or b"}" not in answer.partition(b"\r\n\r\n")[2]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split()[1]), answer


def test_a_content_length_that_is_no_number_is_refused(
    hostile_edge: EdgeServer, tracebacks: Tracebacks
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, answer = raw_request(hostile_edge, "PUT /api/partners/x", headers, b"{}",
                                 content_length="2x")
    assert status == 400, answer


# --- 10. ";" in a passed-through query ----------------------------------------------------------


def test_a_semicolon_in_the_query_cannot_smuggle_a_partner_id(
    hostile_edge: EdgeServer, tracebacks: Tracebacks
) -> None:
    link = create_link(hostile_edge, "ib-1")
    with hostile_edge.client() as client:
        location = client.get(f"/r/{link['code']}?x=1;partnerId=EVIL;clickId=c&y=2",
                              headers={"User-Agent": CHROME}).headers["location"]
    query = urlsplit(location).query
    pairs = [pair for part in query.split("&") for pair in part.split(";")]
    assert [pair for pair in pairs if pair.lower().startswith("partnerid=")] == [
        "partnerId=ib-1"
    ]
    assert "EVIL" not in dict(parse_qsl(query))["partnerId"]
    assert "x=1%3BpartnerId=EVIL%3BclickId=c" in query


# --- every route, generated input ------------------------------------------------------------

text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
hook_fields = ["userId", "ctidTraderAccountId", "token", "clickId", "partnerId", "email",
               "preferredLanguage", "nickName", "firstName", "invitedUserId", "partnerUserId",
               "brokerName", "brokerPartnerId", "parentPartnerId", "name", "type", "status",
               "destination", "webhookUrl", "ctidUserId", "campaign", "subId", "alias"]
bodies = st.one_of(
    st.dictionaries(st.sampled_from(hook_fields), json_values, max_size=5),
    json_values,
    st.binary(max_size=80),
)
path_parts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                     min_size=1, max_size=30).map(lambda s: s.replace("/", "_"))
ROUTES = [
    ("PUT", "/api/partners/{}", ADMIN_TOKEN), ("GET", "/api/partners/{}", ADMIN_TOKEN),
    ("POST", "/api/partners/{}/links", ADMIN_TOKEN), ("GET", "/api/links/{}", ADMIN_TOKEN),
    ("POST", "/api/partners/{}/tokens", ADMIN_TOKEN),
    ("DELETE", "/api/partners/{}/tokens", ADMIN_TOKEN),
    ("GET", "/api/partners/{}/webhook", ADMIN_TOKEN),
    ("POST", "/hooks/sso/referral", HOOK_TOKEN), ("POST", "/hooks/sso/users", HOOK_TOKEN),
    ("POST", "/api/attribution/verify", None), ("GET", "/r/{}", None),
    ("HEAD", "/r/{}", None), ("GET", "/attribution", None),
    ("GET", "/api/ctrader/dead-letters", ADMIN_TOKEN), ("GET", "/readyz", None),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(route=st.sampled_from(ROUTES), part=path_parts, body=bodies,
       query=st.dictionaries(st.sampled_from(["limit", "x", "partnerId", "clickId"]), text,
                             max_size=3),
       header=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                      max_size=40))
def test_no_generated_request_gets_a_5xx_or_logs_a_traceback(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, route: tuple[str, str, str | None],
    part: str, body: Any, query: dict[str, str], header: str,
) -> None:
    method, template, token = route
    header = header.strip(" \t")  # h11 refuses to send a value with white space at its ends
    headers = {"User-Agent": header, "Cookie": f"invite_ref={header}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    path = template.format(quote(part, safe=""))
    with hostile_edge.client() as client:
        response = client.request(
            method, path, params=query, content=content,
            headers=[(name, value.encode()) for name, value in headers.items()],
        )
    assert response.status_code < 500, (method, path, response.text[:300])


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(body=st.dictionaries(st.sampled_from(hook_fields), json_values, max_size=5),
       auth=st.sampled_from([("ctrader", "pw-123"), ("ctrader", "wrong"), ("", "")]))
def test_the_ctrader_webhook_never_answers_a_5xx(
    hostile_edge: EdgeServer, tracebacks: Tracebacks, body: dict[str, Any],
    auth: tuple[str, str],
) -> None:
    with hostile_edge.client(auth=auth) as client:
        response = client.post("/hooks/ctrader/attribution", content=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text[:300]
