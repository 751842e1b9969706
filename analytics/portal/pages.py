"""The portal's pages, each confined to the session's partner: the overview, its links (create,
copy, QR, share), its downline level by level, its commissions and statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import quote, urlencode

import orjson
from clickhouse_connect.driver.client import Client
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from analytics.commissions.reads import decode_cursor as decode_line_cursor
from analytics.portal import questions
from analytics.portal.access import Visit
from analytics.portal.ranges import (
    PRESETS,
    Range,
    month_label,
    neighbours,
    parse_month,
    parse_range,
    short_month,
)
from analytics.portal.web import CHART_CSP, HEADERS, page, query_value
from edge.errors import InvalidInput, NotFound
from edge.registry.edits import LinkEdit
from edge.registry.model import PARTNER_ID_PATTERN, Link
from edge.registry.paging import LinkQuery, decode_cursor
from edge.registry.qr import render_qr
from edge.spelling import is_ascii_digits

T = TypeVar("T")
LINKS_PER_PAGE: Final = 25
QR_SIZES: Final = {"svg": 240, "png": 1024}


class Ask(Protocol):
    def __call__(self, question: Callable[[Client], T], /) -> Awaitable[T]: ...


def share_links(url: str, name: str | None) -> dict[str, str]:
    """Plain share URLs (no script from the networks): Telegram, WhatsApp, X, e-mail."""
    text = f"Open your trading account with {name}" if name else "Open your trading account"
    return {
        "Telegram": f"https://t.me/share/url?{urlencode({'url': url, 'text': text})}",
        "WhatsApp": f"https://wa.me/?{urlencode({'text': f'{text}: {url}'})}",
        "X": f"https://twitter.com/intent/tweet?{urlencode({'url': url, 'text': text})}",
        "E-mail": f"mailto:?subject={quote(text)}&body={quote(f'{text}: {url}')}",
    }


class Pages:
    def __init__(self, ask: Ask, currency: str) -> None:
        self._ask = ask
        self._currency = currency

    def _context(self, visit: Visit, section: str, **more: Any) -> dict[str, Any]:
        return {"partner": visit.partner, "csrf": visit.session.csrf, "section": section,
                "currency": self._currency, "presets": PRESETS, **more}

    def _range(self, visit: Visit) -> Range:
        return parse_range(query_value(visit.request, "range"), datetime.now(UTC))

    async def overview(self, visit: Visit) -> Response:
        window = self._range(visit)
        found = await self._ask(lambda c: questions.overview(c, visit.partner_id, window))
        chart = orjson.dumps([
            {"day": p.day, "clicks": p.clicks, "registrations": p.registrations,
             "ftd": p.first_deposits} for p in found.series]).decode()
        return page("overview.html", self._context(
            visit, "overview", window=window, found=found, chart=chart), csp=CHART_CSP)

    # Links.

    async def links(self, visit: Visit, *, error: str | None = None,
                    entered: dict[str, str] | None = None) -> Response:
        window = self._range(visit)
        cursor = query_value(visit.request, "cursor")
        before = decode_cursor("links", cursor) if cursor else None
        if before is not None and not is_ascii_digits(before):
            raise InvalidInput("cursor is not one this list gave")
        listed = await visit.registry.list_links(visit.partner_id, LinkQuery(
            limit=LINKS_PER_PAGE, before=int(before) if before else None))
        spellings = [tuple(code for code in (link.code, link.alias) if code)
                     for link in listed.items]
        figures = await self._ask(
            lambda c: questions.link_figures(c, visit.partner_id, window, spellings))
        rows = []
        for link, counted in zip(listed.items, figures, strict=True):
            url = link.to_json(visit.base_url)["url"]
            rows.append({"link": link, "url": url, "figures": counted,
                         "share": share_links(url, visit.partner.name)})
        return page("links.html", self._context(
            visit, "links", window=window, rows=rows, next_cursor=listed.next_cursor,
            created=query_value(visit.request, "created"), error=error, entered=entered or {},
        ), status=422 if error else 200)

    async def create_link(self, visit: Visit) -> Response:
        entered = {name: visit.form.get(name, "").strip()
                   for name in ("campaign", "subId", "destination")}
        try:
            edit = LinkEdit(campaign=entered["campaign"] or None,
                            sub_id=entered["subId"] or None,
                            destination=entered["destination"] or None)
            link = await visit.registry.create_link(visit.partner_id, edit)
        except InvalidInput as refused:
            return await self.links(visit, error=refused.message, entered=entered)
        return RedirectResponse(f"/portal/links?created={quote(link.shown_code)}",
                                status_code=303, headers=HEADERS)

    async def _own_link(self, visit: Visit) -> Link:
        """The link the path names, if it is the session partner's; 404 alike otherwise."""
        code = visit.request.path_params["code"]
        try:
            link = await visit.registry.get_link(code)
        except NotFound:
            link = None
        if link is None or link.partner_id != visit.partner_id:
            raise NotFound(f"you have no link {code[:64]!r}")
        return link

    async def qr_svg(self, visit: Visit) -> Response:
        return await self._qr(visit, "svg")

    async def qr_png(self, visit: Visit) -> Response:
        return await self._qr(visit, "png")

    async def _qr(self, visit: Visit, image_format: str) -> Response:
        link = await self._own_link(visit)
        url = link.to_json(visit.base_url)["url"]
        image = await run_in_threadpool(render_qr, url, image_format, QR_SIZES[image_format])
        disposition = "inline" if image_format == "svg" else "attachment"
        return Response(image.content, media_type=image.media_type, headers={
            **HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "Content-Disposition": f'{disposition}; filename="{link.shown_code}.{image.extension}"',
        })

    # The downline.

    async def downline(self, visit: Visit) -> Response:
        window = self._range(visit)
        node = query_value(visit.request, "partner") or visit.partner_id
        if not PARTNER_ID_PATTERN.fullmatch(node):
            raise NotFound("no such partner in your downline")

        def question(client: Client) -> dict[str, Any] | None:
            if not questions.in_subtree(client, visit.partner_id, node):
                return None
            return questions.downline(client, visit.partner_id, node, window)

        level = await self._ask(question)
        if level is None:  # another partner's, or nobody's: the same answer
            raise NotFound("no such partner in your downline")
        return page("downline.html", self._context(
            visit, "downline", window=window, level=level, node=node))

    # Commissions.

    async def commissions(self, visit: Visit) -> Response:
        now = datetime.now(UTC)
        period = parse_month(query_value(visit.request, "month"), now)
        cursor = query_value(visit.request, "cursor")
        after = decode_line_cursor(cursor) if cursor else None
        month = await self._ask(
            lambda c: questions.commission_month(c, visit.partner_id, period, after))
        before, after_month = neighbours(period)
        return page("commissions.html", self._context(
            visit, "commissions", period=period, period_label=month_label(period), month=month,
            previous=before if before >= "2000-01" else None,
            following=after_month if after_month <= f"{now:%Y-%m}" else None,
            month_label=month_label, short_month=short_month,
        ))
