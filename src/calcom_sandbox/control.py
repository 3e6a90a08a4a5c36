"""The sandbox-only endpoints under `/_sandbox/`: no version header, no auth, no faults.

    GET    /_sandbox/info                          API key, host, event type ids
    GET    /_sandbox/outbox[?bookingUid=…&to=…]    the e-mails Cal.com would have sent
    GET    /_sandbox/faults                        armed faults and the log of those that fired
    POST   /_sandbox/faults                        arm faults: a JSON fault object or a list of them
    DELETE /_sandbox/faults                        disarm them all (the log stays)
    GET    /_sandbox/served                        the last 10,000 API requests: method, path, status, ms
    GET    /_sandbox/webhooks/deliveries[?trigger=…]   every webhook delivery and how it went
    POST   /_sandbox/webhooks/redeliver            {"deliveryId": …}: the same bytes and signature again
    POST   /_sandbox/webhooks/hold                 {"hold": true|false}: keep new deliveries back or not
    POST   /_sandbox/webhooks/release              {"order": [ids…]}: send the held ones, those named first
    POST   /_sandbox/reset                         back to the initial state (key, host, webhooks stay)
    GET    /_sandbox/clock                         the sandbox's time
    POST   /_sandbox/clock                         {"advance_minutes": N} or {"set": "<ISO with offset>"}

Success is `{"status":"success","data":…}`; a bad request is 400 and an unknown delivery 404, both
`{"status":"error","error":{"message":…}}`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from calcom_sandbox.clock import TravelClock
from calcom_sandbox.faults import armed_json, fault_from_json
from calcom_sandbox.inputs import parse_iso
from calcom_sandbox.shapes import delivery_json, fault_event_json, outbox_json
from calcom_sandbox.slots import iso_z
from calcom_sandbox.state import SandboxState

Body = dict[str, object]
Control = Callable[[Request, SandboxState], Awaitable[tuple[int, object]]]


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def control_routes(state: SandboxState) -> list[Route]:
    def route(path: str, method: str, handler: Control) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                status, data = await handler(request, state)
            except _Refused as refused:
                return JSONResponse({"status": "error", "error": {"message": refused.message}}, refused.status)
            return JSONResponse({"status": "success", "data": data}, status)

        return Route(path, endpoint, methods=[method])

    return [
        route("/_sandbox/info", "GET", _info),
        route("/_sandbox/outbox", "GET", _outbox),
        route("/_sandbox/faults", "GET", _faults),
        route("/_sandbox/faults", "POST", _arm_faults),
        route("/_sandbox/faults", "DELETE", _clear_faults),
        route("/_sandbox/served", "GET", _served),
        route("/_sandbox/webhooks/deliveries", "GET", _deliveries),
        route("/_sandbox/webhooks/redeliver", "POST", _redeliver),
        route("/_sandbox/webhooks/hold", "POST", _hold),
        route("/_sandbox/webhooks/release", "POST", _release),
        route("/_sandbox/reset", "POST", _reset),
        route("/_sandbox/clock", "GET", _clock),
        route("/_sandbox/clock", "POST", _move_clock),
    ]


async def _info(request: Request, state: SandboxState) -> tuple[int, object]:
    host = state.host
    types = [
        {"id": et.id, "slug": et.slug, "title": et.title, "lengthInMinutes": et.length}
        | ({"lengthInMinutesOptions": list(et.length_options)} if et.length_options else {})
        for et in state.event_types
    ]
    return 200, {
        "apiKey": state.api_key,
        "host": {"id": host.id, "username": host.username, "email": host.email, "timeZone": host.time_zone},
        "defaultEventTypeId": state.default_event_type_id,
        "eventTypes": types,
        "teams": [
            {
                "id": team.id,
                "slug": team.slug,
                "eventTypes": [
                    {"id": et.id, "slug": et.slug, "title": et.title, "schedulingType": et.scheduling}
                    for et in team.event_types
                ],
            }
            for team in state.teams
        ],
    }


async def _outbox(request: Request, state: SandboxState) -> tuple[int, object]:
    uid, to = request.query_params.get("bookingUid"), request.query_params.get("to")
    messages = [m for m in state.outbox if (uid is None or m.booking_uid == uid) and (to is None or m.to == to)]
    return 200, [outbox_json(m) for m in messages]


async def _faults(request: Request, state: SandboxState) -> tuple[int, object]:
    return 200, {
        "faults": [armed_json(armed) for armed in state.faults.armed],
        "log": [fault_event_json(event) for event in state.fault_log],
    }


async def _served(request: Request, state: SandboxState) -> tuple[int, object]:
    return 200, [dataclasses.asdict(served) for served in state.served]


async def _arm_faults(request: Request, state: SandboxState) -> tuple[int, object]:
    raw = await _json(request)
    items = raw if isinstance(raw, list) else [raw]
    try:
        faults = [fault_from_json(item) for item in items]
    except (ValueError, TypeError) as exc:
        raise _Refused(400, str(exc)) from exc
    return 201, [armed_json(state.faults.add(fault)) for fault in faults]


async def _clear_faults(request: Request, state: SandboxState) -> tuple[int, object]:
    return 200, {"cleared": state.faults.clear()}


async def _deliveries(request: Request, state: SandboxState) -> tuple[int, object]:
    trigger = request.query_params.get("trigger")
    return 200, [delivery_json(d) for d in state.deliveries if trigger is None or d.trigger == trigger]


async def _redeliver(request: Request, state: SandboxState) -> tuple[int, object]:
    raw = await _json(request)
    delivery_id = raw.get("deliveryId") if isinstance(raw, dict) else None
    if not isinstance(delivery_id, str):
        raise _Refused(400, 'send {"deliveryId": "<id of a delivery>"}')
    try:
        return 201, delivery_json(state.redeliver_webhook(delivery_id))
    except KeyError:
        raise _Refused(404, f"no delivery {delivery_id}") from None


async def _hold(request: Request, state: SandboxState) -> tuple[int, object]:
    raw = await _json(request)
    hold = raw.get("hold") if isinstance(raw, dict) else None
    if not isinstance(hold, bool):
        raise _Refused(400, 'send {"hold": true} or {"hold": false}')
    state.webhook_hold = hold
    return 200, {"hold": hold}


async def _release(request: Request, state: SandboxState) -> tuple[int, object]:
    raw = await _json(request, default={})
    order = raw.get("order", []) if isinstance(raw, dict) else None
    if not isinstance(order, list) or not all(isinstance(i, str) for i in order):
        raise _Refused(400, 'send {"order": ["<delivery id>", …]} (or {} for the order they were made)')
    try:
        released = await state.release_webhooks(order)
    except ValueError as exc:
        raise _Refused(400, str(exc)) from exc
    return 200, [delivery_json(d) for d in released]


async def _reset(request: Request, state: SandboxState) -> tuple[int, object]:
    state.reset()
    return await _info(request, state)


async def _clock(request: Request, state: SandboxState) -> tuple[int, object]:
    return 200, {"now": iso_z(state.now())}


_CLOCK_USAGE = (
    'send {"advance_minutes": 90} (a whole number of minutes, 0 to 525600) or {"set": "2030-01-07T09:00:00-05:00"} '
    "(ISO 8601 with a UTC offset)"
)


async def _move_clock(request: Request, state: SandboxState) -> tuple[int, object]:
    raw = await _json(request)
    clock = state.now
    if not isinstance(clock, TravelClock):
        raise _Refused(409, "this sandbox's clock is fixed by the code that started it; it cannot be moved")
    if not isinstance(raw, dict) or len(raw) != 1 or not set(raw) <= {"advance_minutes", "set"}:
        raise _Refused(400, _CLOCK_USAGE)
    if "advance_minutes" in raw:
        minutes = raw["advance_minutes"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes <= 525_600:
            raise _Refused(400, f"advance_minutes: {minutes!r} is not allowed; {_CLOCK_USAGE}")
        clock.advance(minutes)
    else:
        at = parse_iso(raw["set"]) if isinstance(raw["set"], str) else None
        if at is None or at.utcoffset() is None:
            raise _Refused(400, f"set: {raw['set']!r} is not a time; {_CLOCK_USAGE}")
        clock.set(at)
    return 200, {"now": iso_z(state.now())}


async def _json(request: Request, default: object = None) -> object:
    raw = await request.body()
    if not raw.strip():
        if default is not None:
            return default
        raise _Refused(400, "send a JSON body")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Refused(400, f"the body is not JSON: {exc}") from exc
