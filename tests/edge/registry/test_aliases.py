"""Aliases match without regard to case, and aliases stored in their original case by earlier
versions move to that rule once, the oldest link keeping a clashing alias."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from redis.asyncio import Redis

from edge.registry.aliases import AliasFolding
from edge.registry.keys import ALIASES_FOLDED, PREFIX, link_key
from tests.conftest import EdgeServer, stream_events, wait_for
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _partner_of(edge: EdgeServer, code: str) -> str | None:
    with edge.client() as client:
        response = client.get(f"/r/{code}", headers={"User-Agent": CHROME})
    if response.status_code != 302:
        return None
    return parse_qs(urlsplit(response.headers["location"]).query).get("partnerId", [None])[0]


def test_an_alias_answers_in_any_case(edge: EdgeServer, redis_client: redis.Redis) -> None:
    put_partner(edge, "aff-1")
    link = create_link(edge, "aff-1", alias="Spring-Promo")
    assert link["code"] == "Spring-Promo"
    assert [_partner_of(edge, code) for code in ("Spring-Promo", "spring-promo", "SPRING-PROMO")
            ] == ["aff-1"] * 3
    with edge.admin() as admin:
        assert admin.get("/api/links/sPrInG-pRoMo").json()["code"] == "Spring-Promo"
    # One link, one code in the clicks, however it was typed.
    assert {event["code"] for event in stream_events(redis_client)} == {"Spring-Promo"}


def test_an_alias_differing_only_in_case_is_a_409(edge: EdgeServer) -> None:
    put_partner(edge, "aff-1")
    put_partner(edge, "aff-2")
    create_link(edge, "aff-1", alias="spring")
    with edge.admin() as admin:
        response = admin.post("/api/partners/aff-2/links", json={"alias": "SPRING"})
    assert response.status_code == 409
    assert "without regard to case" in response.json()["error"]["message"]
    assert _partner_of(edge, "Spring") == "aff-1"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def alias_log() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("invite.registry.aliases")
    logger.addHandler(records)
    yield records
    logger.removeHandler(records)


def _store_as_before(redis_client: redis.Redis, alias: str, link: dict[str, str],
                     partner_num: int, link_num: int) -> None:
    """What an earlier version stored for an alias: the key in the alias's own case."""
    redis_client.set(f"{PREFIX}alias:{alias}", f"{partner_num}:{link_num}")
    redis_client.hset(link_key(partner_num, link_num), "alias", alias)


def test_aliases_stored_in_their_case_are_folded_at_startup_the_oldest_keeping_a_clash(
    edge_factory: Callable[..., EdgeServer], redis_client: redis.Redis, alias_log: Records
) -> None:
    first = edge_factory()
    put_partner(first, "old-aff")   # partner number 1
    put_partner(first, "new-aff")   # partner number 2
    older = create_link(first, "old-aff")
    younger = create_link(first, "new-aff")
    single = create_link(first, "new-aff")
    _store_as_before(redis_client, "Spring", older, 1, 1)
    _store_as_before(redis_client, "spring", younger, 2, 1)
    _store_as_before(redis_client, "Promo-X", single, 2, 2)
    redis_client.delete(ALIASES_FOLDED)  # as before this version
    first.stop()

    edge = edge_factory()
    wait_for(lambda: redis_client.exists(ALIASES_FOLDED) == 1, what="the aliases to be folded")
    assert [_partner_of(edge, code) for code in ("Spring", "spring", "SPRING")] == ["old-aff"] * 3
    assert _partner_of(edge, "promo-x") == _partner_of(edge, "Promo-X") == "new-aff"
    assert _partner_of(edge, younger["code"]) == "new-aff"  # its generated code still works

    with edge.admin() as admin:
        clashes = admin.get("/api/alias-clashes").json()["items"]
        moved = admin.get(f"/api/links/{younger['code']}").json()
        kept = admin.get("/api/links/spring").json()
    assert [(c["alias"], c["partnerId"], c["code"], c["keptBy"]) for c in clashes] == [
        ("spring", "new-aff", younger["code"], {"alias": "Spring", "partnerId": "old-aff"})
    ]
    assert (moved["alias"], moved["code"]) == (None, younger["code"])
    assert (kept["code"], kept["partnerId"]) == ("Spring", "old-aff")
    assert any("'spring'" in message and "new-aff" in message for message in alias_log.messages)
    assert sorted(key.decode() for key in redis_client.scan_iter(f"{PREFIX}alias:*")) == [
        f"{PREFIX}alias:promo-x", f"{PREFIX}alias:spring",
    ]


def test_folding_again_changes_nothing(edge: EdgeServer, redis_client: redis.Redis) -> None:
    put_partner(edge, "aff-1")
    create_link(edge, "aff-1", alias="Stays-Put")
    before = {key: redis_client.dump(key) for key in redis_client.scan_iter(f"{PREFIX}*")
              if b"alias" in key}

    async def fold_again() -> int:
        client = Redis.from_url(edge.settings.redis_url or "", decode_responses=True)
        await client.delete(ALIASES_FOLDED)
        try:
            return await AliasFolding(client).ensure_folded()
        finally:
            await client.aclose()

    assert asyncio.run(fold_again()) == 0
    after = {key: redis_client.dump(key) for key in redis_client.scan_iter(f"{PREFIX}*")
             if b"alias" in key and b"folded" not in key}
    assert after == {key: value for key, value in before.items() if b"folded" not in key}
    assert _partner_of(edge, "stays-put") == "aff-1"
