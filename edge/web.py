"""What every room's HTTP routes share: bearer tokens, bodies read within their limit, the one JSON
error response, health and readiness, and files served from an installed package."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.util
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge.config import Settings
from edge.errors import (
    BadRequest,
    BodyTooLarge,
    InviteError,
    Unauthorized,
    Unavailable,
    error_body,
)
from edge.signing import token_matches
from edge.spelling import is_ascii_digits

log = logging.getLogger("invite.web")

MAX_BODY_BYTES = 64 * 1024
READY_TIMEOUT_S = 1.0
NO_STORE = {"Cache-Control": "private, no-store"}

Endpoint = Callable[[Request], Awaitable[Response]]
# A readiness check: raises when its dependency cannot serve (Unavailable with the reason); a
# text it returns is shown instead of "ok" (a dependency it could not ask, say).
Check = Callable[[], Awaitable[object]]


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error every route answers with: `{"error": {"code", "message"}}`."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def invite_error_response(error: InviteError, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


async def _invite_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InviteError)
    return invite_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (unknown route, wrong method) in the JSON error shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _redis_error(request: Request, exc: Exception) -> Response:
    log.warning("request failed: redis unavailable (%s)", type(exc).__name__)
    return error_response(
        503, "redis_unavailable", "Redis did not answer; check INVITE_REDIS_URL and retry"
    )


# For Starlette(exception_handlers=…): every error a route lets through, as JSON.
EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    InviteError: _invite_error,
    HTTPException: _http_error,
    RedisError: _redis_error,
}


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    return token.strip()


def bearer_only(
    accepted: Callable[[Settings], Iterable[str]], refusal: str
) -> Callable[[Endpoint], Endpoint]:
    """Guard an endpoint with one of the (rotating) bearer tokens `accepted` picks from Settings."""

    def guard(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not token_matches(bearer_token(request), accepted(request.app.state.settings)):
                raise Unauthorized(refusal)
            return await endpoint(request)

        return guarded

    return guard


admin_only = bearer_only(
    lambda settings: settings.tokens.admin,
    "the bearer token is not the admin token (INVITE_ADMIN_TOKEN)",
)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) from its Content-Length or, without one, as soon as more
    than `limit` bytes have arrived: an oversized body is never held whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not is_ascii_digits(declared.strip()):
            raise BadRequest(f"Content-Length {declared[:20]!r} is not a number of bytes")
        if int(declared) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes ({int(declared)} declared)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); BadRequest for anything else."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def public_base_url(request: Request) -> str:
    """INVITE_PUBLIC_URL, else the base URL the request came to."""
    configured: str | None = request.app.state.settings.edge.public_url
    return configured or str(request.base_url).rstrip("/")


async def healthz(request: Request) -> Response:
    """The process is up (no dependency is asked)."""
    return JSONResponse({"status": "ok"})


async def readiness(
    checks: Mapping[str, Check], details: Mapping[str, object] | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> Response:
    """200 when every dependency answers within the timeout, else 503 naming what did not."""
    body: dict[str, object] = {"status": "ready"}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), timeout_s) for check in checks.values()),
        return_exceptions=True,
    )
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            body["status"] = "unavailable"
            body[name] = (
                result.message if isinstance(result, Unavailable)
                else f"unreachable ({type(result).__name__})"
            )
        else:
            body[name] = result if isinstance(result, str) else "ok"
    body.update(details or {})
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


@dataclass(frozen=True)
class Asset:
    """A static file held in memory, gzipped once, with its ETag."""

    body: bytes
    gzipped: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0), media_type, etag)


def package_path(package: str, relative: str) -> Path | None:
    """A path inside an installed package (a file or folder it ships), None when absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / relative
    return found if found.exists() else None


def asset_response(request: Request, asset: Asset, headers: Mapping[str, str]) -> Response:
    """The asset with its ETag: 304 when the client holds it, gzipped when it takes gzip."""
    headers = {**headers, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=asset.media_type,
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=headers)
