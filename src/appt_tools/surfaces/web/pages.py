"""The dashboard's pages and sign-in, and its route table.

GET  /                       the table (or the calendar, when that was the last view this session)
GET  /calendar               the month calendar (?month=YYYY-MM)
GET  /settings               Cal.com key, default event type, time zone, duration, business name
GET  /login, POST /login     sign in with an HTTP API key (only when the server has keys)
POST /logout
POST /app/tenant             an operator's session switches business (form: tenant=<slug>, next=<path>)
GET  /app/table              the table, as a fragment (?q, status, sort, order, page, page_size)
GET  /app/calendar           the month grid, as a fragment (?month)
GET  /app/slots              free times on a day for the drawer (?date, event_type_id)
GET  /app/appointments/{id}  one appointment for the drawer, with its history
POST /app/appointments       book (service.book)
POST /app/appointments/{id}  edit details (service.update) and/or move (service.reschedule)
POST /app/appointments/{id}/cancel                        service.cancel
POST /app/appointments/{id}/confirm|decline                service.confirm|decline (a pending booking)
POST /app/settings, /app/settings/test, /app/event-types/refresh
GET  /static/…               the dashboard's own CSS and script
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from appt_tools import validation
from appt_tools.core.service import AppointmentService
from appt_tools.runtime import Runtime
from appt_tools.surfaces.auth import CredentialChecker
from appt_tools.surfaces.web import render
from appt_tools.surfaces.web.appointments import Appointments
from appt_tools.surfaces.web.gate import BadRequest, Gate, failure, form_body
from appt_tools.surfaces.web.session import Session, Sessions, csrf_ok, foreign_origin
from appt_tools.surfaces.web.settings import SettingsPage
from appt_tools.surfaces.web.tenancy import Acting, KeyringSource

VIEW_COOKIE = "appt_view"  # "table" or "calendar": the last view, for this browser session
FAILED_SIGN_IN_DELAY = 0.25  # seconds; keys are long and random, this only slows a script down further


class Dashboard:
    def __init__(
        self,
        service: AppointmentService,
        checker: CredentialChecker,
        *,
        sandbox: bool,
        keyring: KeyringSource | None = None,
    ) -> None:
        self.acting = Acting(service)
        self.sessions = Sessions(
            checker,
            secret=lambda: _session_secret(service),
            ledger=service.store,
            keyring=keyring,
            default_tenant=service.store.tenant_id,
        )
        self.gate = Gate(self.sessions, lambda: self.acting.service.timezone, self.acting)
        self.appointments = Appointments(self.acting)
        self.settings = SettingsPage(self.acting, sandbox=sandbox)
        self.sandbox = sandbox

    @property
    def service(self) -> AppointmentService:
        """The service of the tenant this request acts for (web/tenancy.py)."""
        return self.acting.service

    def routes(self) -> list[BaseRoute]:
        page, read, change, a = self.gate.page, self.gate.read, self.gate.change, self.appointments
        return [
            Route("/", page(self.table_page), methods=["GET"]),
            Route("/calendar", page(self.calendar_page), methods=["GET"]),
            Route("/settings", page(self.settings_page), methods=["GET"]),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", change(self.logout, form=True), methods=["POST"]),
            Route("/app/tenant", change(self.switch_tenant, form=True), methods=["POST"]),
            Route("/app/table", read(a.table_fragment), methods=["GET"]),
            Route("/app/calendar", read(a.calendar_fragment), methods=["GET"]),
            Route("/app/slots", read(a.slots), methods=["GET"]),
            Route("/app/appointments", change(a.create), methods=["POST"]),
            Route("/app/appointments/{id}", read(a.get), methods=["GET"]),
            Route("/app/appointments/{id}", change(a.update), methods=["POST"]),
            Route("/app/appointments/{id}/cancel", change(a.cancel), methods=["POST"]),
            Route("/app/appointments/{id}/confirm", change(a.confirm), methods=["POST"]),
            Route("/app/appointments/{id}/decline", change(a.decline), methods=["POST"]),
            Route("/app/settings", change(self.settings.save), methods=["POST"]),
            Route("/app/settings/test", change(self.settings.test), methods=["POST"]),
            Route("/app/event-types/refresh", change(self.settings.refresh), methods=["POST"]),
            Mount("/static", StaticFiles(directory=render.STATIC_DIR), name="dashboard-static"),
        ]

    async def _common(self, session: Session, view: str) -> dict[str, Any]:
        types = await self.appointments.event_types()
        default = self.service.settings.event_type_id or next((t.id for t in types if not t.hidden), None)
        ring = await self.sessions.keyring()
        acting = ring.business(self.service.store.tenant_id)
        return {
            # The business shown, and (an operator's session, with several) the ones it may switch to.
            "business": acting if len(ring.businesses) > 1 else None,
            "businesses": ring.businesses if session.tenant is None and len(ring.businesses) > 1 else (),
            "view": view,
            "csrf": session.csrf,
            "open": await self.sessions.is_open(),
            "sandbox": self.sandbox,
            "timezone": self.service.timezone,
            "event_types": types,
            "default_event_type": default,
            # Each event type's questions, for the drawer to ask when booking (rendered with `tojson`).
            "event_type_questions": {
                str(t.id): [q.model_dump(mode="json") for q in t.questions] for t in types if t.questions
            },
            "configured": self.service.settings.calcom_api_key is not None,
            "business_name": self.service.settings.business_name,
            "region_name": validation.country_name(validation.country_of_zone(self.service.timezone)) or "",
        }

    # --- pages --------------------------------------------------------------------------------

    async def table_page(self, request: Request, session: Session) -> Response:
        wanted = request.query_params.get("view")
        if wanted is None and request.cookies.get(VIEW_COOKIE) == "calendar":
            return RedirectResponse("/calendar", 303)
        context = {**await self._common(session, "table"), **await self.appointments.table(request.query_params)}
        return _remember(render.html("table.html", **context), request, "table")

    async def calendar_page(self, request: Request, session: Session) -> Response:
        context = {**await self._common(session, "calendar"), **await self.appointments.calendar(request.query_params)}
        return _remember(render.html("calendar.html", **context), request, "calendar")

    async def settings_page(self, request: Request, session: Session) -> Response:
        context = {**await self._common(session, "settings"), **await self.settings.context()}
        return render.html("settings.html", **context)

    async def switch_tenant(self, request: Request, session: Session) -> Response:
        """An operator's session chooses the business it shows and acts for (kept in the session)."""
        form = await form_body(request)
        if session.tenant is not None:
            return failure(
                403,
                "forbidden",
                "This key belongs to one business and shows only that one. Sign in with an operator key "
                "(APPT_TOOLS_OPERATOR_KEYS) to switch between businesses.",
            )
        ring = await self.sessions.keyring()
        slug = form.get("tenant", "").strip()
        chosen = ring.by_slug(slug)
        if chosen is None:
            known = ", ".join(b.slug for b in ring.businesses) or "(none)"
            return failure(404, "not_found", f"There is no business {slug[:63]!r} here; choose one of: {known}.")
        response = RedirectResponse(_next(form.get("next")), 303)
        self.sessions.store(response, request, dataclasses.replace(session, acting=chosen.id))
        return response

    # --- signing in and out -------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session = await self.sessions.read(request)
        if await self.sessions.signed_in(session):
            return render.secure(RedirectResponse(_next(request.query_params.get("next")), 303))
        current = session or self.sessions.new()
        response = self._login_form(current, None, 200, request.query_params.get("next"))
        if session is None:
            self.sessions.store(response, request, current)
        return response

    async def login(self, request: Request) -> Response:
        session = await self.sessions.read(request)
        if foreign_origin(request):
            return failure(403, "forbidden", "This sign-in came from another web site, so it was refused.")
        try:
            form = await form_body(request)
        except BadRequest as exc:
            return failure(exc.status, "invalid_request", exc.message)
        if session is None or not csrf_ok(session, form.get("csrf")):
            fresh = self.sessions.new()
            response = self._login_form(fresh, "This page had expired. Paste your key again.", 403, form.get("next"))
            self.sessions.store(response, request, fresh)
            return response
        signed = await self.sessions.sign_in(form.get("api_key", ""))
        if signed is None:
            await asyncio.sleep(FAILED_SIGN_IN_DELAY)
            message = (
                "That is not one of this server's API keys."
                if await self.sessions.keys()
                else "This server has no API key set, so nobody can sign in from another computer. "
                "Set one with: appt-tools settings set http_api_keys"
            )
            return self._login_form(session, message, 401, form.get("next"))
        response = render.secure(RedirectResponse(_next(form.get("next")), 303))
        self.sessions.store(response, request, signed)  # a new session: new CSRF token, old cookie void
        return response

    def _login_form(self, session: Session, error: str | None, status: int, target: str | None) -> Response:
        return render.html("login.html", status, csrf=session.csrf, error=error, next=_next(target))

    async def logout(self, request: Request, session: Session) -> Response:
        """Ends the session on the server (every instance): its cookie, even copied, no longer signs in."""
        await self.sessions.end(session)
        response = RedirectResponse("/login", 303)
        self.sessions.store(response, request, self.sessions.new())
        return response


def _remember(response: Response, request: Request, view: str) -> Response:
    response.set_cookie(
        VIEW_COOKIE, view, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


def _next(raw: str | None) -> str:
    """Where to go after signing in: a path on this server only (never '//elsewhere' or a URL)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    parts = urlsplit(raw)
    return "/" if parts.scheme or parts.netloc else raw


SESSION_SECRET_SETTING = "internal.dashboard_session_secret"


async def _session_secret(service: AppointmentService) -> bytes:
    """The cookie-signing key every server on this database shares, made on first use."""
    value = await Runtime.of(service).shared_secret(SESSION_SECRET_SETTING, lambda: secrets.token_urlsafe(32))
    return value.encode()
