"""The registry's lists on a large programme: how long building the indexes takes for partners an
earlier version stored, and how long each kind of page takes to answer.

    python -m loadtests.bench_registry [--partners 100000]

Partners are written as an earlier version stored them (hashes, children sets, no index): 50
master IBs, one of which heads a tenth of everyone directly, the rest in trees up to five levels
deep; one link per ten partners; 2% suspended. Then the indexes are built once (the upgrade), and
each question is asked `--repeats` times through PartnerRegistry, as the admin API asks it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import PartnerEdit
from edge.registry.keys import (
    PARTNER_BY_NUM,
    PARTNER_SEQ,
    children_key,
    link_key,
    link_seq_key,
    partner_key,
)
from edge.registry.paging import LinkQuery, PartnerQuery
from edge.registry.partners import PartnerRegistry
from loadtests.processes import BenchRedis, Children

WORDS = ("Atlas", "Brook", "Capital", "Delta", "Equity", "Forex", "Global", "Harbor", "Invest",
         "Jade", "Kappa", "Lion", "Markets", "Nova", "Orbit", "Prime", "Quant", "River")


def programme(partners: int, seed: int = 7) -> list[tuple[str, str | None, list[str], str]]:
    """(partner id, parent, ancestors, name) for a programme of `partners` partners."""
    rng = random.Random(seed)
    rows: list[tuple[str, str | None, list[str], str]] = []
    for index in range(50):
        rows.append((f"ib-{index:02d}", None, [], f"{rng.choice(WORDS)} Master {index}"))
    while len(rows) < partners:
        if rng.random() < 0.1:
            parent_id, _, ancestors, _ = rows[0]
        else:
            parent_id, _, ancestors, _ = rng.choice(rows)
        if len(ancestors) >= 4:
            continue
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {len(rows)}"
        rows.append((f"p-{len(rows):06d}", parent_id, [*ancestors, parent_id], name))
    return rows


async def store_as_before(redis: Redis, rows: list[tuple[str, str | None, list[str], str]]) -> None:
    rng = random.Random(11)
    async with redis.pipeline(transaction=False) as pipe:
        for num, (partner_id, parent, ancestors, name) in enumerate(rows, start=1):
            pipe.hset(partner_key(partner_id), mapping={
                "num": num, "parent": parent or "", "ancestors": orjson.dumps(ancestors),
                "name": name, "type": "ib" if num <= 50 else "individual",
                "status": "suspended" if rng.random() < 0.02 else "active",
                "created_at": num, "updated_at": num,
            })
            pipe.hset(PARTNER_BY_NUM, str(num), partner_id)
            if parent:
                pipe.sadd(children_key(parent), partner_id)
            if num % 10 == 0:
                pipe.hset(link_key(num, 1), mapping={
                    "pnum": num, "lnum": 1, "partner_id": partner_id, "campaign": "bench",
                    "created_at": num,
                })
                pipe.set(link_seq_key(num), 1)
            if len(pipe) >= 5000:
                await pipe.execute()
        pipe.set(PARTNER_SEQ, len(rows))
        await pipe.execute()


async def timed(repeats: int, ask: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """The median ms of `repeats` calls, and the last answer."""
    times: list[float] = []
    answer: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await ask()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


async def bench(redis_url: str, partners: int, repeats: int) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    registry = PartnerRegistry(redis, "bench-secret", DestinationPolicy(["broker.test"]))
    rows = programme(partners)
    await store_as_before(redis, rows)
    started = time.perf_counter()
    await registry.prepare()
    print(f"indexes built for {partners:,} partners in {time.perf_counter() - started:.1f} s")

    rare = rows[len(rows) // 2][3]
    big = rows[0][0]
    questions: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("first page, limit 50", lambda: registry.list_partners(PartnerQuery())),
        ("first page, limit 500", lambda: registry.list_partners(PartnerQuery(limit=500))),
        ("page from a cursor mid-list", lambda: registry.list_partners(
            PartnerQuery(after=rows[len(rows) // 2][0]))),
        ("roots", lambda: registry.list_partners(PartnerQuery(roots=True))),
        (f"children of {big} ({partners // 10:,}+)", lambda: registry.list_partners(
            PartnerQuery(parent_id=big))),
        ("search, many matches ('capital')", lambda: registry.list_partners(
            PartnerQuery(search="capital"))),
        (f"search, one match ({rare!r})", lambda: registry.list_partners(
            PartnerQuery(search=rare))),
        ("search, no match", lambda: registry.list_partners(PartnerQuery(search="zzz-none"))),
        ("status=suspended", lambda: registry.list_partners(PartnerQuery(status="suspended"))),
        (f"tree of {big}, depth 3 (capped)", lambda: registry.subtree(big, 3)),
        ("tree of ib-01, depth 32", lambda: registry.subtree("ib-01", 32)),
        ("links of a partner", lambda: registry.list_links(rows[9][0], LinkQuery())),
    ]
    print(f"median of {repeats} calls each:")
    for label, ask in questions:
        ms, answer = await timed(repeats, ask)
        shown = len(answer.items) if hasattr(answer, "items") else answer.node_count
        print(f"  {label:<48} {ms:8.1f} ms  ({shown} shown)")

    started = time.perf_counter()
    pages = 0
    page = await registry.list_partners(PartnerQuery(limit=500))
    while page.next_cursor:
        pages += 1
        after = page.items[-1].partner.partner_id
        page = await registry.list_partners(PartnerQuery(limit=500, after=after))
    print(f"  every partner in pages of 500 ({pages + 1} pages): "
          f"{time.perf_counter() - started:.1f} s")
    ms, _ = await timed(repeats, lambda: registry.upsert(
        f"p-{partners // 3:06d}", PartnerEdit(name=f"Renamed {time.perf_counter()}")))
    print(f"  a partner write with its index entries: {ms:.1f} ms")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as directory:
        children = Children(Path(directory))
        server = BenchRedis(children, Path(directory) / "redis")
        try:
            server.start()
            asyncio.run(bench(server.url, args.partners, args.repeats))
        finally:
            children.close()


if __name__ == "__main__":
    main()
