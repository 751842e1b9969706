"""The reference the edge is measured against: Starlette on uvicorn awaiting one XADD per request.

Written the way a first version of the redirect would be: a routed endpoint, one `XADD` awaited per
click, a cookie and a 302. `python -m loadtests.baseline_app --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

STREAM = "baseline:clicks"
DESTINATION = "http://127.0.0.1:8000/demo/register"
COOKIE_NAME = "invite_ref"
COOKIE_MAX_AGE_S = 30 * 86400


def create_app(redis_url: str) -> Starlette:
    redis = Redis.from_url(redis_url)
    answered = [0]

    async def redirect(request: Request) -> Response:
        code = request.path_params["code"]
        await redis.xadd(STREAM, {
            "code": code,
            "ts": time.time_ns() // 1_000_000,
            "user_agent": request.headers.get("user-agent", ""),
            "ip": request.client.host if request.client else "",
        })
        answered[0] += 1
        response = RedirectResponse(DESTINATION, status_code=302)
        response.set_cookie(
            COOKIE_NAME, code, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="lax"
        )
        return response

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def answered_count(request: Request) -> Response:
        # The baseline's answer to the edge's invite_redirects_total, for the clicks check.
        return JSONResponse({"answered": answered[0]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    return Starlette(
        routes=[
            Route("/r/{code}", redirect),
            Route("/healthz", healthz),
            Route("/answered", answered_count),
        ],
        lifespan=lifespan,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.redis_url), host=args.host, port=args.port, workers=1, loop="uvloop",
        http="httptools", access_log=False, lifespan="on", log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
