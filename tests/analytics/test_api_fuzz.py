"""Schemathesis against the real apps, from the description each serves at /openapi.json.

Every operation gets a few generated requests that keep to the description and a few that break
it, plus (where its path names a partner, link, plan or month) a few on objects that exist, sent
with the credentials its security names, over loopback to uvicorn on a real Redis and the
embedded ClickHouse. None may get a 5xx, an answer the description does not allow (status,
content type, headers, body schema), or a 2xx for a request that breaks the description.
Bounded: EXAMPLES requests per operation and pass (about 700 requests in all)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics.api import create_analytics_app
from analytics.portal.sessions import COOKIE
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import LinkEdit
from edge.registry.partners import PartnerRegistry
from tests.analytics.commissions.conftest import Programme, programme  # noqa: F401
from tests.analytics.commissions.test_api import setup_month
from tests.analytics.test_api import AnalyticsServer
from tests.conftest import (
    ADMIN_TOKEN,
    HOOK_TOKEN,
    SECRET,
    EdgeServer,
    RedisServer,
    ctrader_env,
    make_settings,
)
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers

EXAMPLES = 5
EVENTS_TOKEN = "events-token-for-tests-0123456789"
WEBHOOK = ("ctrader-webhook", "webhook-password-for-tests")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES, phases=[Phase.generate], deadline=None, database=None,
    suppress_health_check=list(HealthCheck), derandomize=True,
)
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def config(session: str | None) -> schemathesis.Config:
    """The credentials of each security scheme we hold; the portal's session when signed in. No
    undeclared query parameters: OpenAPI cannot say whether a route refuses them."""
    schemes: dict[str, dict[str, str]] = {
        "admin": {"bearer": ADMIN_TOKEN}, "partner": {"bearer": ADMIN_TOKEN},
        "hook": {"bearer": HOOK_TOKEN}, "events": {"bearer": EVENTS_TOKEN},
        "ctraderWebhook": {"username": WEBHOOK[0], "password": WEBHOOK[1]},
    }
    if session:
        schemes["portalSession"] = {"api_key": session}
    return schemathesis.Config.from_dict({"auth": {"openapi": schemes},
                                          "generation": {"allow-extra-parameters": False}})


def fuzz(url: str, known: dict[str, Any], session: str | None = None) -> list[str]:
    """Every operation of the description at `url`: what failed, each with how to repeat it."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config(session))
    failures: list[str] = []
    # Reads first: they see the seeded objects before generated writes change them.
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda operation: operation.method.upper() not in ("GET", "HEAD"))
    for operation in operations:
        named = {name: known[name] for name in re.findall(r"\{(\w+)\}", operation.path)
                 if name in known}
        passes = [("positive", operation.as_strategy(GenerationMode.POSITIVE)),
                  ("negative", operation.as_strategy(GenerationMode.NEGATIVE))]
        if named:
            passes.append(("known ids", operation.as_strategy(path_parameters=named)))
        for name, strategy in passes:

            @SETTINGS
            @hypothesis.given(case=strategy)
            def run(case: Any) -> None:
                response = case.call(base_url=url, allow_redirects=False, timeout=60)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing in the operation can break its description (GET /healthz)
            except (Exception, FailureGroup) as failure:  # all operations tried, all reported
                failures.append(f"{operation.label} ({name}): {str(failure)[:3000]}")
    return failures


@pytest.fixture
def edge_for_fuzz(edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader) -> EdgeServer:
    return edge_factory(**ctrader_env(fake_ctrader), INVITE_EVENTS_TOKEN=EVENTS_TOKEN,
                        INVITE_CTRADER_WEBHOOK_USER=WEBHOOK[0],
                        INVITE_CTRADER_WEBHOOK_PASSWORD=WEBHOOK[1])


@pytest.fixture
def analytics_for_fuzz(programme: Programme, redis_server: RedisServer,  # noqa: F811
                       tmp_path: Path) -> Iterator[AnalyticsServer]:
    settings = make_settings(
        tmp_path, redis_server.url, INVITE_COOKIE_SECURE="0",
        INVITE_CLICKHOUSE_URL=f"chdb://{programme.clickhouse.path}",  # type: ignore[attr-defined]
        INVITE_BATCHER_FLUSH_MS="10",  # an erasure waits two flushes for late clicks
    )
    running = AnalyticsServer(settings, create_analytics_app(settings, programme.clickhouse))
    yield running
    running.stop()


def create_link(redis_url: str, partner_id: str) -> str:
    """A link of the partner, in the registry the portal reads: its code."""

    async def work() -> str:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            registry = PartnerRegistry(client, SECRET, DestinationPolicy(("broker.test",)))
            return (await registry.create_link(partner_id, LinkEdit(campaign="spring"))).code
        finally:
            await client.aclose()

    return asyncio.run(work())


def portal_session(api: AnalyticsServer, partner_id: str) -> str:
    """Sign in as a partner would: the admin's link, its page, the button; the session cookie."""
    with api.admin() as admin:
        link = admin.post(f"/api/partners/{partner_id}/portal-link").json()["url"]
    with httpx.Client(timeout=30, headers={"Accept": "text/html"}) as browser:
        page = browser.get(link)
        fields = dict(HIDDEN.findall(page.text))
        signed_in = browser.post(link.split("?")[0], data=fields)
        assert signed_in.status_code == 303, signed_in.text
        return str(browser.cookies[COOKIE])


def test_the_edge_answers_as_its_description_says(edge_for_fuzz: EdgeServer) -> None:
    with edge_for_fuzz.admin() as admin:
        admin.put("/api/partners/fuzz-ib", json={"name": "Fuzz IB", "type": "ib"})
        admin.put("/api/partners/fuzz-sub", json={"parentPartnerId": "fuzz-ib"})
        code = admin.post("/api/partners/fuzz-ib/links", json={"campaign": "spring"}).json()
    known = {"partner_id": "fuzz-ib", "code": code["code"]}

    failures = fuzz(edge_for_fuzz.url, known)

    assert not failures, "\n\n".join(failures)


def test_the_analytics_app_answers_as_its_description_says(
    analytics_for_fuzz: AnalyticsServer, programme: Programme,  # noqa: F811
) -> None:
    setup_month(programme, analytics_for_fuzz)  # master > ib > sub: November's ledger lines
    known = {"partner_id": "ib", "period": "2026-11", "plan_id": "std", "user_id": 7,
             "name": "2026-11.json", "code": create_link(programme.redis_url, "ib")}
    session = portal_session(analytics_for_fuzz, "ib")

    failures = fuzz(f"http://127.0.0.1:{analytics_for_fuzz.port}", known, session)

    assert not failures, "\n\n".join(failures)
