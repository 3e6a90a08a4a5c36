"""The HTTP face of the sandbox: Cal.com API v2's routes, guards and JSON shapes, on Starlette.

Each request goes through what Nest does, in Nest's order: route match (path, method and the family's
`cal-api-version`), the global throttler guard (unknown key → 401, over the limit → 429), the auth guard
of auth-only routes (401), the endpoint's validation pipe (400), then the handler.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appt_tools.sandbox.inputs import (
    parse_bookings_query,
    parse_cancel,
    parse_create,
    parse_reschedule,
    parse_slots,
)
from appt_tools.sandbox.problems import (
    MSG_INTERNAL,
    MSG_INVALID_KEY,
    MSG_INVALID_TOKEN,
    MSG_NO_AUTH,
    MSG_THROTTLED,
    Problem,
    bad_request,
)
from appt_tools.sandbox.slots import iso_in_zone, iso_z, local_date_key
from appt_tools.sandbox.state import BookingRecord, EventTypeDef, OutboxMessage, SandboxState

logger = logging.getLogger(__name__)

# `cal-api-version` per endpoint family (NOTES §2). Real Cal.com sends a missing or other value to its
# legacy 2024-04-15 controllers, whose request and response shapes differ. The sandbox has no legacy
# controllers, so it answers as Nest does for a route no controller serves: 404 "Cannot GET /v2/…".
# That is exact for /v2/slots (the legacy slots controller has no such route) and for event types with
# 2024-08-13/2024-09-04; for the bookings family it is the sandbox's chosen stand-in for "legacy shape",
# so a client that forgets the header fails loudly instead of getting a shape it cannot parse.
BOOKINGS: Final = "2024-08-13"
SLOTS: Final = "2024-09-04"
EVENT_TYPES: Final = "2024-06-14"
API_KEY_PREFIX: Final = "cal_"

Auth = Literal["required", "optional"]
Body = dict[str, object]


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it, after the guards."""

    request: Request
    state: SandboxState
    authenticated: bool
    params: dict[str, str]

    async def json(self) -> object:
        raw = await self.request.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"Unexpected token in JSON at position {getattr(exc, 'pos', 0)}") from exc


Handler = Callable[[Call], Awaitable[tuple[int, Body]]]


def create_app(state: SandboxState) -> Starlette:
    """A Starlette app serving `state` under Cal.com's API v2 paths, plus `/_sandbox/*` helpers."""

    def v2(path: str, method: str, handler: Handler, version: str | None, auth: Auth) -> Route:
        return Route(path, _guarded(state, handler, version, auth), methods=[method])

    async def route_not_found(request: Request, exc: Exception) -> Response:
        # Nest answers an unknown path or method with 404 "Cannot <METHOD> <url>".
        return _problem_response(state, Problem(404, f"Cannot {request.method} {_url(request)}"), _url(request))

    routes = [
        v2("/v2/me", "GET", _me, None, "required"),
        v2("/v2/event-types", "GET", _event_types, EVENT_TYPES, "optional"),
        v2("/v2/slots", "GET", _slots, SLOTS, "optional"),
        v2("/v2/bookings", "POST", _create_booking, BOOKINGS, "optional"),
        v2("/v2/bookings", "GET", _list_bookings, BOOKINGS, "required"),
        v2("/v2/bookings/{uid}", "GET", _get_booking, BOOKINGS, "optional"),
        v2("/v2/bookings/{uid}/reschedule", "POST", _reschedule, BOOKINGS, "optional"),
        v2("/v2/bookings/{uid}/cancel", "POST", _cancel, BOOKINGS, "optional"),
        Route("/_sandbox/outbox", _sandbox_endpoint(state, _outbox), methods=["GET"]),
        Route("/_sandbox/info", _sandbox_endpoint(state, _info), methods=["GET"]),
    ]
    handlers = {404: route_not_found, 405: route_not_found}
    return Starlette(routes=routes, exception_handlers=handlers)


# --- guards and responses ------------------------------------------------------------------------


def _guarded(
    state: SandboxState, handler: Handler, version: str | None, auth: Auth
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        url = _url(request)
        if version is not None and request.headers.get("cal-api-version", "").strip() != version:
            raise HTTPException(404)
        headers: dict[str, str] = {}
        try:
            authenticated, tracker = _credential(request, state)
            decision = state.rate_limiter.hit(tracker, state.now())
            headers = {
                "X-RateLimit-Limit-Default": str(decision.limit),
                "X-RateLimit-Remaining-Default": str(decision.remaining),
                "X-RateLimit-Reset-Default": str(decision.reset_seconds),
            }
            if not decision.allowed:
                raise Problem(429, MSG_THROTTLED)
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

    return endpoint


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


def _ok(data: object, status: int = 200, **extra: object) -> tuple[int, Body]:
    return status, {"status": "success", "data": data, **extra}


# --- handlers ------------------------------------------------------------------------------------


async def _me(call: Call) -> tuple[int, Body]:
    host = call.state.host
    return _ok(
        {
            "id": host.id,
            "username": host.username,
            "email": host.email,
            "name": host.name,
            "timeFormat": 12,
            "defaultScheduleId": 1,
            "weekStart": "Sunday",
            "timeZone": host.time_zone,
            "organizationId": None,
        }
    )


async def _event_types(call: Call) -> tuple[int, Body]:
    """GET /v2/event-types. Without `username` the sandbox answers as Cal.com since PR #25178: the
    authenticated user's own types (anonymous: []); `event_types_need_username` restores the older []."""
    state, params = call.state, call.params
    username = params.get("username")
    if username is None:
        mine = call.authenticated and not state.event_types_need_username and "usernames" not in params
        types = state.event_types if mine else []
    else:
        types = state.event_types if username == state.host.username else []
    if "eventSlug" in params:
        types = [et for et in types if et.slug == params["eventSlug"]]
    if not call.authenticated:
        types = [et for et in types if not et.hidden]
    return _ok([_event_type_json(et, state) for et in types])


async def _slots(call: Call) -> tuple[int, Body]:
    query = parse_slots(call.params, call.state)
    meeting = timedelta(minutes=query.length)
    free = call.state.free_slots(query.event_type, query.start, query.end, query.length, ignore_uid=query.ignore_uid)
    data: dict[str, list[dict[str, str]]] = {}
    for start in free:
        slot = {"start": iso_in_zone(start, query.time_zone)}
        if query.format == "range":
            slot["end"] = iso_in_zone(start + meeting, query.time_zone)
        data.setdefault(local_date_key(start, query.time_zone), []).append(slot)
    return _ok(data)


async def _create_booking(call: Call) -> tuple[int, Body]:
    request = parse_create(await call.json(), call.state)
    booking = await call.state.create_booking(request)
    return _ok(_booking_json(booking, call.state), 201)


async def _list_bookings(call: Call) -> tuple[int, Body]:
    query = parse_bookings_query(call.params)
    page, total = call.state.query_bookings(query)
    take, skip = query.take, query.skip
    pagination = {
        "totalItems": total,
        "remainingItems": max(0, total - (skip + take)),
        "returnedItems": len(page),
        "itemsPerPage": take,
        "currentPage": skip // take + 1,
        "totalPages": math.ceil(total / take),
        "hasNextPage": skip + take < total,
        "hasPreviousPage": skip > 0,
    }
    return _ok([_booking_json(b, call.state) for b in page], pagination=pagination)


async def _get_booking(call: Call) -> tuple[int, Body]:
    return _ok(_booking_json(call.state.booking(call.request.path_params["uid"]), call.state))


async def _reschedule(call: Call) -> tuple[int, Body]:
    body = parse_reschedule(await call.json())
    booking = await call.state.reschedule_booking(
        call.request.path_params["uid"], body.start, reason=body.reason, rescheduled_by=body.rescheduled_by
    )
    return _ok(_booking_json(booking, call.state), 201)


async def _cancel(call: Call) -> tuple[int, Body]:
    # `cancelSubsequentBookings` only matters for recurring bookings, which the sandbox does not have.
    body = parse_cancel(await call.json())
    uid = call.request.path_params["uid"]
    booking = call.state.cancel_booking(uid, reason=body.reason, by_host=call.authenticated)
    return _ok(_booking_json(booking, call.state))


# --- sandbox-only helpers ------------------------------------------------------------------------


def _sandbox_endpoint(
    state: SandboxState, handler: Callable[[Request, SandboxState], Body]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(handler(request, state))

    return endpoint


def _outbox(request: Request, state: SandboxState) -> Body:
    uid, to = request.query_params.get("bookingUid"), request.query_params.get("to")
    messages = [m for m in state.outbox if (uid is None or m.booking_uid == uid) and (to is None or m.to == to)]
    return {"status": "success", "data": [_outbox_json(m) for m in messages]}


def _info(request: Request, state: SandboxState) -> Body:
    host = state.host
    types = [
        {"id": et.id, "slug": et.slug, "title": et.title, "lengthInMinutes": et.length}
        | ({"lengthInMinutesOptions": list(et.length_options)} if et.length_options else {})
        for et in state.event_types
    ]
    data = {
        "apiKey": state.api_key,
        "host": {"id": host.id, "username": host.username, "email": host.email, "timeZone": host.time_zone},
        "defaultEventTypeId": state.default_event_type_id,
        "eventTypes": types,
    }
    return {"status": "success", "data": data}


# --- JSON shapes ---------------------------------------------------------------------------------


def _booking_json(b: BookingRecord, state: SandboxState) -> Body:
    """BookingOutput_2024_08_13, keys in Cal.com's order; optional keys only when they have a value."""
    host = state.host
    et = state.event_type(b.event_type_id)
    attendee: Body = {
        "name": b.attendee.name,
        "email": b.attendee.email,
        "timeZone": b.attendee.time_zone,
        "language": b.attendee.language,
        "absent": False,
    }
    if b.attendee.phone_number:
        attendee["phoneNumber"] = b.attendee.phone_number
    responses: Body = {"name": b.attendee.name, "email": b.attendee.email}
    if b.attendee.phone_number:
        responses["attendeePhoneNumber"] = b.attendee.phone_number
    if b.guests:
        responses["guests"] = list(b.guests)
    responses.update(b.responses)
    cancelled = b.status in ("cancelled", "rejected")
    optional: Body = {
        "cancellationReason": b.cancellation_reason if cancelled else None,
        "cancelledByEmail": b.cancelled_by_email if cancelled else None,
        "reschedulingReason": b.rescheduling_reason,
        "rescheduledByEmail": b.rescheduled_by_email,
        "rescheduledFromUid": b.rescheduled_from_uid,
        "rescheduledToUid": b.rescheduled_to_uid,
    }
    out: Body = {
        "id": b.id,
        "uid": b.uid,
        "title": b.title,
        "description": b.description,
        "hosts": [
            {
                "id": host.id,
                "name": host.name,
                "email": host.email,
                "username": host.username,
                "timeZone": host.time_zone,
            }
        ],
        "status": b.status,
        **{key: value for key, value in optional.items() if value is not None},
        "start": iso_z(b.start),
        "end": iso_z(b.end),
        "duration": b.duration,
        "eventTypeId": b.event_type_id,
        "eventType": {"id": b.event_type_id, "slug": et.slug if et else ""},
        "meetingUrl": b.location,
        "location": b.location,
        "absentHost": False,
        "createdAt": iso_z(b.created_at),
        "updatedAt": iso_z(b.updated_at),
        "metadata": dict(b.metadata),
        "icsUid": f"{b.uid}@Cal.com",
        "attendees": [attendee],
    }
    if b.guests:
        out["guests"] = list(b.guests)
    out["bookingFieldsResponses"] = responses
    return out


def _event_type_json(et: EventTypeDef, state: SandboxState) -> Body:
    """EventTypeOutput_2024_06_14 with the fields a Cal.com account's own event type carries."""
    host = state.host
    locations: list[Body] = []
    for location in et.locations:
        if location.type == "address":
            locations.append({"type": "address", "address": location.address, "public": True})
        else:
            locations.append({"type": "integration", "integration": location.integration})
    out: Body = {"id": et.id, "lengthInMinutes": et.length}
    if et.length_options:
        out["lengthInMinutesOptions"] = list(et.length_options)
    out |= {
        "title": et.title,
        "slug": et.slug,
        "description": et.description,
        "locations": locations,
        "bookingFields": _BOOKING_FIELDS,
        "disableGuests": False,
        "slotInterval": et.slot_interval,
        "minimumBookingNotice": et.minimum_notice,
        "beforeEventBuffer": et.before_buffer,
        "afterEventBuffer": et.after_buffer,
        "recurrence": None,
        "metadata": {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": False,
        "seatsPerTimeSlot": None,
        "forwardParamsSuccessRedirect": None,
        "successRedirectUrl": None,
        "isInstantEvent": False,
        "seatsShowAvailabilityCount": None,
        "scheduleId": None,
        "requiresConfirmation": et.requires_confirmation,
        "hidden": et.hidden,
        "bookingRequiresAuthentication": False,
        "ownerId": host.id,
        "users": [
            {
                "id": host.id,
                "name": host.name,
                "username": host.username,
                "avatarUrl": None,
                "brandColor": "#292929",
                "darkBrandColor": "#fafafa",
                "weekStart": "Sunday",
                "metadata": {},
            }
        ],
    }
    if et.requires_confirmation:
        out["confirmationPolicy"] = {"type": "always", "blockUnconfirmedBookingsInBooker": False}
    return out


# Cal.com's default booking fields as GET /v2/event-types returns them.
_BOOKING_FIELDS: Final[list[Body]] = [
    {
        "isDefault": True,
        "type": "name",
        "slug": "name",
        "label": "Your name",
        "placeholder": "",
        "required": True,
        "disableOnPrefill": False,
    },
    {
        "isDefault": True,
        "type": "email",
        "slug": "email",
        "label": "Email address",
        "placeholder": "",
        "required": True,
        "hidden": False,
        "disableOnPrefill": False,
    },
    {"isDefault": True, "type": "text", "slug": "title", "required": True, "hidden": True},
    {"isDefault": True, "type": "textarea", "slug": "notes", "required": False, "hidden": False},
    {"isDefault": True, "type": "multiemail", "slug": "guests", "required": False, "hidden": False},
    {"isDefault": True, "type": "textarea", "slug": "rescheduleReason", "required": False, "hidden": False},
]


def _outbox_json(message: OutboxMessage) -> Body:
    return {
        "to": message.to,
        "kind": message.kind,
        "subject": message.subject,
        "bookingUid": message.booking_uid,
        "at": iso_z(message.at),
    }
