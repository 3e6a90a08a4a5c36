"""The HTTP face of the sandbox: Cal.com API v2's routes and guards on Starlette, with injected faults.

Each v2 request goes through what Nest does, in Nest's order: route match (path, method and the
family's `cal-api-version`), the global throttler guard (unknown key → 401, over the limit → 429), the
auth guard of auth-only routes (401), the endpoint's validation pipe (400), then the handler.

Faults (`faults.py`) wrap that: after the route match, a `before` fault may answer instead (the
request is not carried out) or delay it; after the handler, an `after` fault may spoil the answer of
what was carried out. The `X-Sandbox-Fault` header asks for one fault on this request alone.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from calcom_sandbox.answers import fault_answer
from calcom_sandbox.control import control_routes
from calcom_sandbox.faults import HEADER, Fault, Phase, fault_from_header
from calcom_sandbox.handlers import ROUTES, Auth, Call, Handler
from calcom_sandbox.problems import (
    MSG_INTERNAL,
    MSG_INVALID_KEY,
    MSG_INVALID_TOKEN,
    MSG_NO_AUTH,
    Problem,
    throttled,
)
from calcom_sandbox.ratelimit import RateDecision
from calcom_sandbox.records import Served
from calcom_sandbox.slots import iso_z
from calcom_sandbox.state import SandboxState

logger = logging.getLogger(__name__)

API_KEY_PREFIX: Final = "cal_"


def create_app(state: SandboxState) -> Starlette:
    """A Starlette app serving `state` under Cal.com's API v2 paths, plus `/_sandbox/*` helpers."""

    async def route_not_found(request: Request, exc: Exception) -> Response:
        # Nest answers an unknown path or method with 404 "Cannot <METHOD> <url>".
        return _problem_response(state, Problem(404, f"Cannot {request.method} {_url(request)}"), _url(request))

    routes = [
        Route(path, _guarded(state, handler, version, auth), methods=[method])
        for path, method, handler, version, auth in ROUTES
    ]
    routes += control_routes(state)
    handlers = {404: route_not_found, 405: route_not_found}
    return Starlette(routes=routes, exception_handlers=handlers)


# --- guards, faults and responses ----------------------------------------------------------------


def _guarded(
    state: SandboxState, handler: Handler, version: str | None, auth: Auth
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await _faulted(request)
        ms = (time.perf_counter() - started) * 1000
        state.served.append(Served(request.method, request.url.path, response.status_code, ms))
        return response

    async def _faulted(request: Request) -> Response:
        if version is not None and request.headers.get("cal-api-version", "").strip() != version:
            raise HTTPException(404)
        try:
            asked = fault_from_header(request.headers[HEADER]) if HEADER in request.headers else None
        except ValueError as exc:
            return JSONResponse({"statusCode": 400, "message": str(exc)}, 400)
        before = _fault_for(state, request, asked, "before")
        if before is not None:
            early = await _inject(state, request, *before, spoiled=None)
            if early is not None:
                return early
        response = await _answer(state, request, handler, auth)
        after = _fault_for(state, request, asked, "after")
        if after is not None:
            response = await _inject(state, request, *after, spoiled=response) or response
        return response

    return endpoint


async def _answer(state: SandboxState, request: Request, handler: Handler, auth: Auth) -> Response:
    """The real answer: guards, then the handler."""
    url = _url(request)
    headers: dict[str, str] = {}
    try:
        authenticated, tracker = _credential(request, state)
        decision = state.rate_limiter.hit(tracker, state.now())
        headers = _rate_headers(decision)
        if not decision.allowed:
            raise throttled()
        if auth == "required" and not authenticated:
            raise Problem(401, MSG_NO_AUTH)
        call = Call(request, state, authenticated, dict(request.query_params))
        status, body = await handler(call)
    except Problem as problem:
        return _problem_response(state, problem, url, headers)
    except Exception:
        logger.exception("sandbox: unexpected error on %s %s", request.method, url)
        return JSONResponse({"statusCode": 500, "message": MSG_INTERNAL}, 500, headers=headers)
    return JSONResponse(body, status, headers={**headers, "X-Request-Id": str(uuid.uuid4())})


def _fault_for(
    state: SandboxState, request: Request, asked: Fault | None, phase: Phase
) -> tuple[Fault, str | None] | None:
    """The header's fault for this phase, else the first armed one that matches (one use spent)."""
    if asked is not None and asked.phase == phase:
        return asked, None
    armed = state.faults.take(request.method, request.url.path, phase)
    return (armed.fault, armed.id) if armed is not None else None


async def _inject(
    state: SandboxState, request: Request, fault: Fault, fault_id: str | None, *, spoiled: Response | None
) -> Response | None:
    """Apply one fault; the answer to send instead, or None to carry on (latency before the handler)."""
    state.faults.record(fault, fault_id, request.method, request.url.path)
    if fault.kind == "latency":
        await state.faults.pause(fault.hold_seconds)
        return spoiled
    if fault.kind == "rate_limit":
        block = timedelta(seconds=fault.seconds) if fault.seconds is not None else None
        decision = state.rate_limiter.block_now(_tracker(request, state), state.now(), block)
        return _problem_response(state, throttled(), _url(request), _rate_headers(decision))
    return fault_answer(fault, state.faults, spoiled)


def _credential(request: Request, state: SandboxState) -> tuple[bool, str]:
    """(authenticated, throttler tracker). A bearer value that is not the sandbox's key is refused."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        client = request.client.host if request.client else "unknown"
        return False, f"ip:{request.headers.get('cf-connecting-ip', client)}"
    if token == state.api_key:
        return True, f"api_key:{token}"
    raise Problem(401, MSG_INVALID_KEY if token.startswith(API_KEY_PREFIX) else MSG_INVALID_TOKEN)


def _tracker(request: Request, state: SandboxState) -> str:
    try:
        return _credential(request, state)[1]
    except Problem:
        return f"token:{request.headers.get('authorization', '')}"


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit-Default": str(decision.limit),
        "X-RateLimit-Remaining-Default": str(decision.remaining),
        "X-RateLimit-Reset-Default": str(decision.reset_seconds),
    }


def _problem_response(
    state: SandboxState, problem: Problem, url: str, headers: dict[str, str] | None = None
) -> Response:
    out = dict(headers or {})
    if not problem.plain:
        out["X-Request-Id"] = str(uuid.uuid4())
    body = problem.body(path=url, timestamp=iso_z(state.now()))
    return JSONResponse(body, problem.status, headers=out)


def _url(request: Request) -> str:
    """Nest's `request.url`: the path and the raw query string."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
