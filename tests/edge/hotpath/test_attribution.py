"""The invite_ref cookie and token: signing, expiry, rotation, models, and the frontend routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from edge.hotpath.attribution import Attribution, AttributionCodec, cookie_value
from tests.conftest import SECRET, EdgeServer, make_settings, stream_events
from tests.edge.helpers import create_link, put_partner

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _codec(tmp_path: Path, secret: str = SECRET) -> AttributionCodec:
    settings = make_settings(tmp_path, "redis://127.0.0.1:1/0", INVITE_SECRET=secret)
    return AttributionCodec(settings.edge, settings.secrets)


def _attribution(expires_at_ms: int = 4_000_000_000_000) -> Attribution:
    return Attribution("p-1", "spring", "click-1", "visitor-1", 1_700_000_000_000, expires_at_ms)


def test_token_round_trips(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    assert codec.decode(codec.encode(_attribution())) == _attribution()


def test_tampered_token_is_worthless(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    token = codec.encode(_attribution())
    body, tag = token.split(".")
    forged = codec.encode(Attribution("evil", None, "c", "v", 1, 4_000_000_000_000))
    assert codec.decode(forged.split(".")[0] + "." + tag) is None
    assert codec.decode(body + "." + tag[:-2] + ("AA" if tag[-2:] != "AA" else "BB")) is None
    assert codec.decode(body[:-1] + "." + tag) is None


def test_expired_token_is_refused(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    token = codec.encode(_attribution(expires_at_ms=1_700_000_000_000))
    assert codec.decode(token, now_ms=1_700_000_000_001) is None
    assert codec.decode(token, now_ms=1_699_999_999_999) is not None


def test_rotated_key_still_verifies_and_new_key_signs(tmp_path: Path) -> None:
    old_secret, new_secret = "old-secret-0123456789", "new-secret-0123456789"
    old_token = _codec(tmp_path, old_secret).encode(_attribution())
    rotated = _codec(tmp_path, f"{new_secret},{old_secret}")
    assert rotated.decode(old_token) == _attribution()
    new_token = rotated.encode(_attribution())
    assert _codec(tmp_path, new_secret).decode(new_token) == _attribution()
    assert _codec(tmp_path, old_secret).decode(new_token) is None


def test_key_removed_from_rotation_stops_verifying(tmp_path: Path) -> None:
    token = _codec(tmp_path, "old-secret-0123456789").encode(_attribution())
    assert _codec(tmp_path, "new-secret-0123456789").decode(token) is None


@given(st.text(max_size=300))
def test_any_text_decodes_to_none_or_an_attribution(text: str) -> None:
    settings = make_settings(Path("/tmp/unused"), "redis://x:1/0")
    codec = AttributionCodec(settings.edge, settings.secrets)
    result = codec.decode(text)
    assert result is None or isinstance(result, Attribution)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("invite_ref=abc", "abc"), ("a=1; invite_ref=abc; b=2", "abc"), ("xinvite_ref=abc", None),
     ("invite_ref=", None), ("", None), ("invite_ref=" + "x" * 9000, None)],
)
def test_cookie_value_is_found_only_under_its_own_name(header: str, expected: str | None) -> None:
    assert cookie_value(header) == expected


# --- through the running edge -------------------------------------------------------------


def _click(client: httpx.Client, code: str) -> httpx.Response:
    return client.get(f"/r/{code}", headers={"User-Agent": CHROME})


@pytest.mark.servers
def test_attribution_route_returns_context_from_cookie(edge: EdgeServer) -> None:
    put_partner(edge, "p-a")
    code = create_link(edge, "p-a", campaign="launch")["code"]
    with edge.client() as client:
        click = _click(client, code)
        token = click.cookies["invite_ref"]
        response = client.get("/attribution", headers={"Cookie": f"invite_ref={token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["partnerId"] == "p-a"
    assert body["campaign"] == "launch"
    assert body["token"] == token
    assert body["clickedAt"].endswith("Z") and body["expiresAt"] > body["clickedAt"]


@pytest.mark.servers
def test_attribution_route_without_cookie_is_204(edge: EdgeServer) -> None:
    with edge.client() as client:
        assert client.get("/attribution").status_code == 204
        tampered = client.get("/attribution", headers={"Cookie": "invite_ref=abc.def"})
    assert tampered.status_code == 204


@pytest.mark.servers
def test_attribution_cors_admits_only_allowed_origins_with_credentials(edge: EdgeServer) -> None:
    with edge.client() as client:
        allowed = client.get("/attribution", headers={"Origin": "https://register.broker.test"})
        other = client.get("/attribution", headers={"Origin": "https://evil.test"})
        preflight = client.options(
            "/attribution",
            headers={"Origin": "https://register.broker.test",
                     "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers["access-control-allow-origin"] == "https://register.broker.test"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200


@pytest.mark.servers
def test_verify_accepts_a_good_token_and_refuses_bad_ones(edge: EdgeServer) -> None:
    put_partner(edge, "p-v")
    code = create_link(edge, "p-v")["code"]
    with edge.client() as client:
        token = _click(client, code).cookies["invite_ref"]
        good = client.post("/api/attribution/verify", json={"token": token})
        forged = client.post("/api/attribution/verify", json={"token": token[:-3] + "abc"})
        missing = client.post("/api/attribution/verify", json={})
        junk = client.post("/api/attribution/verify", content=b"{nope")
    assert good.status_code == 200 and good.json()["partnerId"] == "p-v"
    assert forged.status_code == 422
    assert forged.json()["error"]["code"] == "invalid_input"
    assert missing.status_code == 422
    assert junk.status_code == 400


@pytest.mark.servers
def test_last_click_model_replaces_cookie_and_keeps_visitor(
    edge_factory: Callable[..., EdgeServer], redis_client: redis.Redis
) -> None:
    edge = edge_factory(INVITE_COOKIE_SECURE="0")  # the test client speaks plain http
    put_partner(edge, "first")
    put_partner(edge, "second")
    code_1, code_2 = create_link(edge, "first")["code"], create_link(edge, "second")["code"]
    with edge.client() as client:
        _click(client, code_1)
        second = _click(client, code_2)
        context = client.get("/attribution").json()
    assert "set-cookie" in second.headers
    assert context["partnerId"] == "second"
    first_event, second_event = stream_events(redis_client)
    assert first_event["first_click"] is True
    assert second_event["first_click"] is False
    assert second_event["visitor_id"] == first_event["visitor_id"]


@pytest.mark.servers
def test_first_click_model_keeps_unexpired_cookie(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    edge = edge_factory(INVITE_ATTRIBUTION_MODEL="first", INVITE_COOKIE_SECURE="0")
    put_partner(edge, "first")
    put_partner(edge, "second")
    code_1, code_2 = create_link(edge, "first")["code"], create_link(edge, "second")["code"]
    with edge.client() as client:
        _click(client, code_1)
        second = _click(client, code_2)
        context = client.get("/attribution").json()
    assert "set-cookie" not in second.headers
    assert context["partnerId"] == "first"


@pytest.mark.servers
def test_tampered_cookie_counts_as_no_cookie(edge: EdgeServer, redis_client: redis.Redis) -> None:
    put_partner(edge, "p-t")
    code = create_link(edge, "p-t")["code"]
    with edge.client() as client:
        response = client.get(
            f"/r/{code}", headers={"User-Agent": CHROME, "Cookie": "invite_ref=forged.token"}
        )
    assert "set-cookie" in response.headers
    assert stream_events(redis_client)[0]["first_click"] is True
