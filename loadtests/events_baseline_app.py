"""The reference `POST /api/events` is measured against: Starlette on uvicorn, one XADD per event.

Written the way a first version would be: the bearer token compared, the body read whole and
parsed with the standard library, each event appended to the stream with its own awaited XADD,
no checks and no duplicate detection. `python -m loadtests.events_baseline_app --port P
--redis-url URL --token T`.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STREAM = "baseline:events"


def create_app(redis_url: str, token: str) -> Starlette:
    redis = Redis.from_url(redis_url)
    expected = f"Bearer {token}".encode()

    async def post_events(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
            return JSONResponse({"error": {"code": "unauthorized", "message": "token"}}, 401)
        events = json.loads(await request.body())["events"]
        for event in events:
            await redis.xadd(STREAM, {"e": json.dumps(event)})
        return JSONResponse({"accepted": len(events), "duplicates": 0})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    return Starlette(
        routes=[Route("/api/events", post_events, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.redis_url, args.token), host=args.host, port=args.port, workers=1,
        loop="uvloop", http="httptools", access_log=False, lifespan="on", log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
