"""The three doors of the dashboard: pages (GET, sign-in page when needed), reads (GET fragments and
JSON, 401 when signed out) and changes (POST: same origin, signed in, CSRF token). See `session`."""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from appt_tools import validation
from appt_tools.errors import AppError
from appt_tools.surfaces.web import owner_messages, render
from appt_tools.surfaces.web.session import CSRF_HEADER, Session, Sessions, csrf_ok, foreign_host, foreign_origin
from appt_tools.surfaces.web.tenancy import Acting

logger = logging.getLogger("appt_tools.surfaces.web")

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Session], Awaitable[Response]]
MAX_BODY = 64 * 1024
FORM_KEY = "appt_tools.form"  # the parsed form, kept in the scope: a body can be read only once


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def failure(status: int, code: str, message: str) -> Response:
    return render.json({"error": {"code": code, "message": message}}, status)


def refusal(request: Request, status: int, message: str) -> Response:
    """A refusal as JSON for the dashboard's script, as a short page for a person."""
    if "text/html" in request.headers.get("accept", "") and request.method == "GET":
        return render.html("message.html", status, title="Not allowed", message=message)
    codes = {401: "unauthorized", 403: "forbidden"}
    return failure(status, codes.get(status, "invalid_request"), message)


SIGNED_OUT = "You are signed out (or your session ended). Sign in again with your API key."
FOREIGN_HOST = "This dashboard only answers at 127.0.0.1, localhost or [::1] while no API key is set."
FOREIGN_ORIGIN = "This change came from another web site, so it was refused."
UNEXPECTED = "Something went wrong on the server. Try again; if it keeps happening, check the server's log."
BAD_CSRF = "This page is out of date (its security token does not match). Reload the page and try again."


class Gate:
    def __init__(self, sessions: Sessions, timezone: Callable[[], str], acting: Acting | None = None) -> None:
        self.sessions = sessions
        self.timezone = timezone
        self.acting = acting  # runs each handler for the session's tenant (web/tenancy.py)

    async def _host_refused(self, request: Request) -> bool:
        return await self.sessions.is_open() and foreign_host(request)

    def page(self, handler: Handler) -> Endpoint:
        """A page: signed out → the sign-in page; gives a new visitor a session (for its CSRF token)."""

        async def endpoint(request: Request) -> Response:
            if await self._host_refused(request):
                return refusal(request, 403, FOREIGN_HOST)
            session = await self.sessions.read(request)
            fresh = session is None
            current = session or self.sessions.new()
            if await self.sessions.signed_in(current):
                response = await self._run(handler, request, current)
            else:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
            if fresh:
                self.sessions.store(response, request, current)
            return render.secure(response)

        return endpoint

    def read(self, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if await self._host_refused(request):
                return refusal(request, 403, FOREIGN_HOST)
            session = await self.sessions.read(request) or self.sessions.new()
            if not await self.sessions.signed_in(session):
                return refusal(request, 401, SIGNED_OUT)
            return render.secure(await self._run(handler, request, session))

        return endpoint

    def change(self, handler: Handler, *, form: bool = False) -> Endpoint:
        """A POST: from this site, signed in, with the session's CSRF token (header, or form field)."""

        async def endpoint(request: Request) -> Response:
            if await self._host_refused(request):
                return refusal(request, 403, FOREIGN_HOST)
            if foreign_origin(request):
                return refusal(request, 403, FOREIGN_ORIGIN)
            session = await self.sessions.read(request)
            if not await self.sessions.signed_in(session):
                return refusal(request, 401, SIGNED_OUT)
            offered = request.headers.get(CSRF_HEADER)
            if form and offered is None:
                try:
                    offered = (await form_body(request)).get("csrf")
                except BadRequest as exc:
                    return failure(exc.status, "invalid_request", exc.message)
            if session is None or not csrf_ok(session, offered):
                return refusal(request, 403, BAD_CSRF)
            return render.secure(await self._run(handler, request, session))

        return endpoint

    async def _run(self, handler: Handler, request: Request, session: Session) -> Response:
        """The handler's answer; the service's errors in plain words (see `plain`); nothing of an
        unexpected failure but a 500 (the traceback goes to the log, never the request's cookies)."""
        try:
            if self.acting is None:
                return await handler(request, session)
            async with self.acting.using(await self.sessions.acting_for(session)):
                return await handler(request, session)
        except BadRequest as exc:
            return failure(exc.status, "invalid_request", exc.message)
        except AppError as exc:
            status, body = owner_messages.problem(exc, self.timezone())
            return render.json(body, status)
        except Exception:
            logger.exception("dashboard request %s %s failed", request.method, request.url.path)
            return failure(500, "internal_error", UNEXPECTED)


async def _body(request: Request, content_type: str) -> bytes:
    if not request.headers.get("content-type", "").lower().startswith(content_type):
        raise BadRequest(415, f"Send the data as {content_type}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(413, "That is too much data for one request.")
    return bytes(body)


async def json_body(request: Request) -> dict[str, Any]:
    try:
        data = validation.json_document(await _body(request, "application/json"))
    except jsonlib.JSONDecodeError:
        raise BadRequest(400, "The data sent is not valid JSON.") from None
    except ValueError as exc:
        raise BadRequest(400, f"The data sent is not usable: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "The data sent must be a JSON object.")
    return data


async def form_body(request: Request) -> dict[str, str]:
    """An urlencoded form, first value of each field (starlette caches the body, so it can be read twice)."""
    cached: dict[str, str] | None = request.scope.get(FORM_KEY)
    if cached is not None:
        return cached
    raw = await _body(request, "application/x-www-form-urlencoded")
    try:
        fields = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise BadRequest(400, "The form is not valid UTF-8.") from None
    request.scope[FORM_KEY] = fields
    return fields
