"""A fake cTrader backend on loopback: the calls of CONTRACT.md, their error bodies, and faults.

It runs under uvicorn in a thread (tests and loadtests share it). Tell it to fail with
`fail("500"|"timeout"|"rate_limit"|"invalid"|"expired", times=n)`, slow it with `delay_s`, take it
down with `down = True`; `calls` records what it received. `python -m tests.fake_ctrader` runs it
as a process of its own (the benchmark does), steered by `POST /_fake/state` and read by
`GET /_fake/stats`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.cli.embedded_redis import free_port

FAULTS = ("500", "timeout", "rate_limit", "invalid", "expired")
HANG_S = 30.0


def error(status: int, code: str, description: str) -> Response:
    return JSONResponse(
        {"error": {"errorCode": code, "description": description}}, status_code=status
    )


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None
    at: float

    @property
    def token(self) -> str:
        return self.params.get("token", "")


@dataclass
class FakeCTrader:
    crm_name: str = "test-broker"
    fixed_token: str = "fixed-manager-token-0123456789"
    managers: dict[int, str] = field(default_factory=lambda: {1001: "manager-password"})
    delay_s: float = 0.0
    down: bool = False
    accept_any_user: bool = False  # the benchmark's users are not created one by one
    record_calls: bool = True
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[int, dict[str, Any]] = {}
        self.accounts: dict[int, int] = {}
        self.referrals: dict[int, str] = {}
        self.issued_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self._faults: deque[tuple[str, str | None]] = deque()
        self._lock = threading.Lock()
        self._next_user = 50_000
        self._next_account = 7_000_000
        self.assigned = 0
        app = Starlette(routes=[
            Route("/cid/oauth2/ctid/create", self._create, methods=["POST"]),
            Route("/cid/oauth2/ctid/referral", self._referral, methods=["PUT", "GET", "DELETE"]),
            Route("/v2/webserv/managers/token", self._manager_token, methods=["POST"]),
            Route("/_fake/state", self._set_state, methods=["POST"]),
            Route("/_fake/stats", self._stats, methods=["GET"]),
        ])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeCTrader:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake cTrader did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM (a process of its own)."""
        self._server.run()

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # do not wait for the calls told to hang
        self._thread.join(timeout=10)

    # What tests tell it and ask it.

    def fail(self, fault: str, times: int = 1, path: str | None = None) -> None:
        """The next `times` calls (to `path`, if given) fail with `fault`."""
        assert fault in FAULTS, fault
        with self._lock:
            self._faults.extend([(fault, path)] * times)

    def expire_tokens(self) -> None:
        """Every token issued so far answers CID_TOKEN_EXPIRED from now on."""
        with self._lock:
            self.expired_tokens |= self.issued_tokens | {self.fixed_token}
            self.issued_tokens.clear()

    def add_user(self, email: str = "") -> int:
        with self._lock:
            self._next_user += 1
            user_id = self._next_user
            self.users[user_id] = {"email": email or f"user{user_id}@example.test"}
        return user_id

    def add_account(self, user_id: int) -> int:
        with self._lock:
            self._next_account += 1
            self.accounts[self._next_account] = user_id
        return self._next_account

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method and call.path == path]

    def assignments(self) -> list[Call]:
        return self.calls_to("PUT", "/cid/oauth2/ctid/referral")

    # The server side.

    async def _record(self, request: Request) -> tuple[Call, Response | None]:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        call = Call(request.method, request.url.path, dict(request.query_params), body,
                    time.monotonic())
        with self._lock:
            if self.record_calls:
                self.calls.append(call)
            fault = self._take_fault(call.path)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            return call, error(503, "SERVICE_UNAVAILABLE", "the backend is down")
        if fault == "timeout":
            await asyncio.sleep(HANG_S)
        if fault == "500":
            return call, error(500, "INTERNAL_SERVER_ERROR", "something broke")
        if fault == "rate_limit":
            return call, error(429, "REQUEST_FREQUENCY_EXCEEDED", "too many requests")
        if fault == "invalid":
            return call, error(400, "INVALID_REQUEST", "the request is invalid")
        if fault == "expired":
            return call, error(401, "CID_TOKEN_EXPIRED", "the token has expired")
        return call, None

    def _take_fault(self, path: str) -> str | None:
        for index, (fault, only) in enumerate(self._faults):
            if only is None or only == path:
                del self._faults[index]
                return fault
        return None

    def _check_token(self, call: Call) -> Response | None:
        token = call.token
        if token in self.expired_tokens:
            return error(401, "CID_TOKEN_EXPIRED", "the token has expired")
        if token != self.fixed_token and token not in self.issued_tokens:
            return error(403, "CH_CLIENT_AUTH_FAILURE", "unknown token")
        return None

    def _check_crm(self, value: Any) -> Response | None:
        if value != self.crm_name:
            return error(400, "INVALID_REQUEST", f"unknown brokerCrmName {value!r}")
        return None

    def _user_of(self, fields: dict[str, Any]) -> int | None:
        try:
            if fields.get("userId") not in (None, ""):
                user_id = int(fields["userId"])
                return user_id if user_id in self.users or self.accept_any_user else None
            if fields.get("ctidTraderAccountId") not in (None, ""):
                return self.accounts.get(int(fields["ctidTraderAccountId"]))
        except (TypeError, ValueError):
            return None
        return None

    async def _create(self, request: Request) -> Response:
        call, failure = await self._record(request)
        failure = failure or self._check_token(call)
        if failure is not None:
            return failure
        body = call.body or {}
        failure = self._check_crm(body.get("brokerCrmName"))
        if failure is not None:
            return failure
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            return error(400, "INVALID_REQUEST", "email is required")
        if any(user["email"] == email for user in self.users.values()):
            return error(400, "INVALID_REQUEST", "a user with this email exists")
        user_id = self.add_user(email)
        return JSONResponse({"userId": user_id}, status_code=201)

    async def _referral(self, request: Request) -> Response:
        call, failure = await self._record(request)
        failure = failure or self._check_token(call)
        if failure is not None:
            return failure
        fields = (call.body or {}) if request.method == "PUT" else call.params
        failure = self._check_crm(fields.get("brokerCrmName"))
        if failure is not None:
            return failure
        user_id = self._user_of(fields)
        if user_id is None:
            return error(400, "INVALID_REQUEST", "user not found")
        if request.method == "PUT":
            partner_id = fields.get("partnerId")
            if not isinstance(partner_id, str) or not partner_id:
                return error(400, "INVALID_REQUEST", "partnerId is required")
            with self._lock:
                self.referrals[user_id] = partner_id
                self.assigned += 1
            return Response(status_code=200)
        if request.method == "DELETE":
            with self._lock:
                self.referrals.pop(user_id, None)
            return Response(status_code=200)
        account = next((a for a, u in self.accounts.items() if u == user_id), None)
        return JSONResponse({
            "userId": user_id, "ctidTraderAccountId": account,
            "partnerId": self.referrals.get(user_id),
        })

    async def _manager_token(self, request: Request) -> Response:
        call, failure = await self._record(request)
        if failure is not None:
            return failure
        body = call.body or {}
        password = self.managers.get(body.get("login"))  # type: ignore[arg-type]
        expected = hashlib.md5(password.encode()).hexdigest() if password else None  # noqa: S324
        if expected is None or body.get("hashedPassword") != expected:
            return error(403, "CH_CLIENT_AUTH_FAILURE", "wrong login or password")
        token = secrets.token_urlsafe(16)
        with self._lock:
            self.issued_tokens.add(token)
        return JSONResponse({"webservToken": token})

    async def _set_state(self, request: Request) -> Response:
        state = orjson.loads(await request.body())
        self.down = bool(state.get("down", self.down))
        self.delay_s = float(state.get("delay_ms", self.delay_s * 1000)) / 1000
        return await self._stats(request)

    async def _stats(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse({
                "down": self.down, "delayMs": self.delay_s * 1000, "assigned": self.assigned,
                "users": len(self.referrals),
            })


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="a fake cTrader backend on loopback")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--accept-any-user", action="store_true")
    args = parser.parse_args()
    fake = FakeCTrader(delay_s=args.delay_ms / 1000, accept_any_user=args.accept_any_user,
                       record_calls=False, port=args.port)
    fake.serve_forever()


if __name__ == "__main__":
    main()
