"""CPU time of one redirect through RedirectHandler, without the network: a cached link, an unknown
code, a disabled link. Steadier than wrk on a shared machine (process CPU time, best of many).

    python -m loadtests.bench_redirect_cpu
    # an earlier commit, for comparison (this venv, that tree):
    git worktree add /tmp/before REV
    (cd /tmp/before && PYTHONPATH=. python -m loadtests.bench_redirect_cpu)

The click writer is replaced by one that drops the event (its cost is the group commit's, measured
by bench-edge); everything else is the edge's own code on a real Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from edge.config import Settings
from edge.hotpath.attribution import AttributionCodec
from edge.hotpath.metrics import EdgeMetrics
from edge.hotpath.redirect import RedirectHandler
from edge.hotpath.resolver import LinkResolver
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import LinkEdit, PartnerEdit
from edge.registry.partners import PartnerRegistry
from loadtests.processes import BenchRedis, Children

CHROME = (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          b"Chrome/131.0.0.0 Safari/537.36")


class DroppingWriter:
    async def record(self, payload: bytes) -> None:
        return None


async def _send(message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {}


async def bench(redis_url: str, data_dir: str, repeats: int, calls: int) -> None:
    settings = Settings.from_env({
        "INVITE_DATA_DIR": data_dir, "INVITE_REDIS_URL": redis_url, "INVITE_SECRET": "s" * 32,
        "INVITE_ADMIN_TOKEN": "a" * 24, "INVITE_HOOK_TOKEN": "h" * 24,
        "INVITE_REGISTRATION_URL": "https://register.broker.test/signup",
    })
    redis = Redis.from_url(redis_url, decode_responses=True)
    registry = PartnerRegistry(redis, settings.signing_secret,
                               DestinationPolicy(["register.broker.test"]))
    await registry.upsert("ib", PartnerEdit(type="ib"))
    await registry.upsert("aff", PartnerEdit(parent_id="ib"))
    codes = {"cached link": (await registry.create_link("aff", LinkEdit(campaign="c"))).code,
             "unknown code": "unknownCode1"}
    if hasattr(registry, "update_link"):  # from the version that has disabled links
        from edge.registry.edits import LinkPatch

        disabled = (await registry.create_link("aff", LinkEdit())).code
        await registry.update_link(disabled, LinkPatch(status="disabled"))
        codes["disabled link"] = disabled
    resolver = LinkResolver(redis, redis, registry, settings.edge.registration_url)
    handler = RedirectHandler(settings, resolver, DroppingWriter(),  # type: ignore[arg-type]
                              AttributionCodec(settings.edge, settings.secrets), EdgeMetrics())
    for label, code in codes.items():
        await resolver.resolve(code)
        scope = {"type": "http", "method": "GET", "path": f"/r/{code}",
                 "query_string": b"utm_source=x", "headers": [(b"user-agent", CHROME)],
                 "client": ("203.0.113.7", 50000)}
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for _ in range(calls):
                await handler(scope, _receive, _send)
            best = min(best, (time.process_time() - started) / calls * 1e6)
        print(f"{label:<14} {best:6.1f} µs CPU per redirect (best of {repeats} × {calls})")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-redirect-") as directory:
        children = Children(Path(directory))
        server = BenchRedis(children, Path(directory) / "redis")
        try:
            server.start()
            asyncio.run(bench(server.url, directory, args.repeats, args.calls))
        finally:
            children.close()


if __name__ == "__main__":
    main()
