"""Signing in and out: the admin's one-time link, its page (opening it spends nothing), the "Sign
in" button that spends it and starts a session, and signing out."""

from __future__ import annotations

import hmac
import secrets
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from analytics.auth import ViewerAuth
from analytics.portal.access import Access, SignedOut, base_url, current_partner
from analytics.portal.sessions import COOKIE, SESSION_SECONDS, cookie_header, csrf_matches
from analytics.portal.signin import LinkState, SignInLinks, token_signer
from analytics.portal.web import HEADERS, notice, page, query_value, read_form
from edge.clock import iso_utc
from edge.errors import Conflict, Forbidden
from edge.registry.model import check_partner_id

# The sign-in page's own cookie, sent back with its form: the button signs in this browser only
# (a page elsewhere cannot post a link's token into someone else's browser).
FORM_COOKIE: Final = "invite_portal_signin"
FORM_COOKIE_PATH: Final = "/portal/signin"
FORM_SECONDS: Final = 3600
MAX_TOKEN_CHARS: Final = 1024

REFUSALS: Final = {
    LinkState.FORGED: (400, "This sign-in link is not valid",
                       "The link is damaged or incomplete (it may have been cut when it was "
                       "copied). Open it again from the message you received, or ask your "
                       "account manager for a new one."),
    LinkState.EXPIRED: (410, "This sign-in link has expired",
                        "Sign-in links work for 24 hours. Ask your account manager for a new "
                        "one."),
    LinkState.USED: (410, "This sign-in link has already been used",
                     "Each sign-in link works once. If that was not you, tell your account "
                     "manager. To sign in again, ask them for a new link."),
    LinkState.UNKNOWN: (410, "This sign-in link is no longer valid",
                        "Ask your account manager for a new sign-in link."),
}


class SigningIn:
    def __init__(self, access: Access) -> None:
        self._access = access
        self._settings = access.settings
        self._signer = token_signer(access.settings.secrets)
        self._auth = ViewerAuth(access.settings)

    async def issue_link(self, request: Request) -> Response:
        """POST /api/partners/{partnerId}/portal-link (admin): a one-time sign-in link."""
        if not self._auth.viewer(request).is_admin:
            raise Forbidden("this route takes the admin token")
        partner_id = check_partner_id(request.path_params["partner_id"])
        async with self._access.redis() as redis:
            partner = await self._access.registry(redis).get(partner_id)
            if not partner.active:
                raise Conflict(f"partner {partner_id!r} is suspended: set its status to active "
                               "(PUT /api/partners/{partnerId}) before giving it a portal link")
            token, expires = await SignInLinks(redis, self._signer).issue(partner_id)
        url = f"{base_url(self._settings, request)}/portal/signin?{urlencode({'token': token})}"
        return JSONResponse({"url": url, "expiresAt": iso_utc(expires), "partnerId": partner_id},
                            status_code=201, headers=HEADERS)

    async def signin_page(self, request: Request) -> Response:
        """The page a sign-in link opens: a button, once the link is checked (not spent)."""
        token = query_value(request, "token")
        if request.query_params.get("signed-out") == "1":
            return notice(request, 200, "You are signed out",
                          "To sign in again, open a new sign-in link from your account manager.")
        if token is None:
            return notice(request, 401, "Sign in to your partner portal",
                          "Open the sign-in link your account manager sent you.")
        async with self._access.redis() as redis:
            state, claims = await SignInLinks(redis, self._signer).look(token[:MAX_TOKEN_CHARS])
            if state is not LinkState.VALID or claims is None:
                return self._refused(request, state)
            partner = await current_partner(redis, claims.partner_id, claims.issued_ms)
        form_key = secrets.token_urlsafe(24)
        response = page("signin.html", {
            "partner": partner, "token": token, "form_key": form_key,
            "expires": iso_utc(claims.expires_ms)[:16].replace("T", " ") + " UTC",
        })
        response.headers.append("Set-Cookie", cookie_header(
            form_key, FORM_SECONDS, secure=self._settings.edge.cookie_secure,
            path=FORM_COOKIE_PATH, name=FORM_COOKIE))
        return response

    async def signin(self, request: Request) -> Response:
        """The button: spends the link and starts a 12-hour session in this browser."""
        form = await read_form(request)
        presented = form.get("form_key", "").encode("utf-8", "surrogateescape")
        kept = request.cookies.get(FORM_COOKIE, "").encode("utf-8", "surrogateescape")
        if not kept or not hmac.compare_digest(presented, kept):
            return notice(request, 403, "Your browser did not keep the sign-in page's cookie",
                          "Allow cookies for this site, then open your sign-in link again (it "
                          "has not been used).", code="csrf_failed")
        async with self._access.redis() as redis:
            links = SignInLinks(redis, self._signer)
            state, claims = await links.spend(form.get("token", "")[:MAX_TOKEN_CHARS])
            if state is not LinkState.VALID or claims is None:
                return self._refused(request, state)
            await current_partner(redis, claims.partner_id, claims.issued_ms)
            sessions = self._access.sessions(redis)
            earlier = await sessions.find(request.cookies.get(COOKIE))
            if earlier is not None:  # a new sign-in never keeps an old session id
                await sessions.end(earlier)
            _, cookie = await sessions.begin(claims.partner_id)
        secure = self._settings.edge.cookie_secure
        response = RedirectResponse("/portal", status_code=303, headers=HEADERS)
        response.headers.append("Set-Cookie", cookie_header(cookie, SESSION_SECONDS,
                                                            secure=secure))
        response.headers.append("Set-Cookie", cookie_header(
            "", 0, secure=secure, path=FORM_COOKIE_PATH, name=FORM_COOKIE))
        return response

    async def signout(self, request: Request) -> Response:
        """Ends the session (its record goes, so the cookie is worthless even if kept)."""
        async with self._access.redis() as redis:
            try:
                visit = await self._access.visit(request, redis)
            except SignedOut:
                visit = None
            if visit is not None:
                form = await read_form(request)
                if not csrf_matches(visit.session, form.get("csrf")):
                    return notice(request, 403, "This form has expired",
                                  "Open the page again and sign out from there.",
                                  code="csrf_failed", action=("/portal", "Back to the overview"))
                await self._access.sessions(redis).end(visit.session)
        response = RedirectResponse("/portal/signin?signed-out=1", status_code=303,
                                    headers=HEADERS)
        response.headers.append("Set-Cookie", self._access.clear_cookie())
        return response

    def _refused(self, request: Request, state: LinkState) -> Response:
        status, title, message = REFUSALS.get(state, REFUSALS[LinkState.UNKNOWN])
        return notice(request, status, title, message, code=f"link_{state.value}")

