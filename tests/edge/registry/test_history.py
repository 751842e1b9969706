"""Every partner write leaves the partner's new state in the registry's history stream, in the
same transaction; a partner's planId must name a plan."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from edge.registry.keys import HISTORY_STREAM, plan_key
from tests.conftest import EdgeServer
from tests.edge.helpers import put_partner

pytestmark = pytest.mark.servers


def history(client: redis.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"e"]) for _, fields in client.xrange(HISTORY_STREAM)]


def test_a_partner_write_records_its_state_in_the_history(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "root")
    put_partner(edge, "ib", parentPartnerId="root", ctidUserId=77)
    put_partner(edge, "ib", status="suspended")
    entries = history(redis_client)
    assert [(e["p"], e["parent"], e["ancestors"], e["status"], e["plan"], e["ctid"])
            for e in entries] == [
        ("root", "", [], "active", "", ""),
        ("ib", "root", ["root"], "active", "", "77"),
        ("ib", "root", ["root"], "suspended", "", "77"),
    ]
    assert entries[0]["ts"] <= entries[1]["ts"] <= entries[2]["ts"]


def test_a_reparenting_records_the_new_ancestors_of_the_moved_subtree(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    for partner_id, parent in (("a", None), ("b", None), ("c", "a"), ("d", "c")):
        put_partner(edge, partner_id, parentPartnerId=parent)
    put_partner(edge, "c", parentPartnerId="b")
    moved = history(redis_client)[-2:]
    assert [(e["p"], e["ancestors"]) for e in moved] == [("c", ["b"]), ("d", ["b", "c"])]


def test_a_refused_write_records_nothing(edge: EdgeServer, redis_client: redis.Redis) -> None:
    put_partner(edge, "solo")
    with edge.admin() as admin:
        response = admin.put("/api/partners/solo", json={"planId": "no-such-plan"})
    assert response.status_code == 422
    assert "no-such-plan" in response.json()["error"]["message"]
    assert len(history(redis_client)) == 1


def test_plan_id_names_an_existing_plan_and_null_clears_it(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    redis_client.hset(plan_key("std"), "1", "{}")
    assert put_partner(edge, "p1", planId="std")["planId"] == "std"
    assert history(redis_client)[-1]["plan"] == "std"
    assert put_partner(edge, "p1", name="Renamed")["planId"] == "std"
    assert put_partner(edge, "p1", planId=None)["planId"] is None
    assert history(redis_client)[-1]["plan"] == ""
    with edge.admin() as admin:
        for bad in ("", "x" * 65, 5, ["std"], "bad id"):
            assert admin.put("/api/partners/p1", json={"planId": bad}).status_code == 422
