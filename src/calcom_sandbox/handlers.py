"""The handlers of Cal.com API v2's endpoints, each run after the guards in `app.py`.

ROUTES  path, method, handler, `cal-api-version` (None: any) and auth of every v2 endpoint served
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from starlette.requests import Request

from calcom_sandbox.inputs import (
    parse_bookings_query,
    parse_cancel,
    parse_create,
    parse_reschedule,
    parse_reserve,
    parse_slots,
)
from calcom_sandbox.problems import MSG_NEEDS_AUTH, Problem, bad_request
from calcom_sandbox.shapes import booking_json, event_type_json, reservation_json, webhook_json
from calcom_sandbox.slots import iso_in_zone, local_date_key
from calcom_sandbox.state import SandboxState
from calcom_sandbox.webhook_inputs import parse_decline, parse_take_skip, parse_webhook

# `cal-api-version` per endpoint family (NOTES §2). Real Cal.com sends a missing or other value to its
# legacy 2024-04-15 controllers, whose request and response shapes differ. The sandbox has no legacy
# controllers, so it answers as Nest does for a route no controller serves: 404 "Cannot GET /v2/…".
# That is exact for /v2/slots (the legacy slots controller has no such route) and for event types with
# 2024-08-13/2024-09-04; for the bookings family it is the sandbox's chosen stand-in for "legacy shape",
# so a client that forgets the header fails loudly instead of getting a shape it cannot parse.
# /v2/me and /v2/webhooks accept every version and none.
BOOKINGS: Final = "2024-08-13"
SLOTS: Final = "2024-09-04"
EVENT_TYPES: Final = "2024-06-14"

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

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Call], Awaitable[tuple[int, Body]]]


def ok(data: object, status: int = 200, **extra: object) -> tuple[int, Body]:
    return status, {"status": "success", "data": data, **extra}


# --- bookings, slots, event types, me -------------------------------------------------------------


async def _me(call: Call) -> tuple[int, Body]:
    host = call.state.host
    return ok(
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
    return ok([event_type_json(et, state) for et in types])


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
    return ok(data)


async def _reserve(call: Call) -> tuple[int, Body]:
    request = parse_reserve(await call.json(), call.state, authenticated=call.authenticated)
    reservation = call.state.reserve(request.event_type, request.start, request.length, request.minutes)
    return ok(reservation_json(reservation), 201)


async def _get_reservation(call: Call) -> tuple[int, Body]:
    return ok(reservation_json(call.state.reservation(call.path("uid"))))


async def _delete_reservation(call: Call) -> tuple[int, Body]:
    reservation = call.state.reservation(call.path("uid"))
    del call.state.reservations[reservation.uid]
    return 200, {"status": "success"}


async def _create_booking(call: Call) -> tuple[int, Body]:
    request = parse_create(await call.json(), call.state)
    if request.event_type.requires_authentication and not call.authenticated:
        # bookings.service.ts `checkBookingRequiresAuthentication`; the sandbox's one key is the owner's,
        # so its 403 (another user's key) cannot happen here (NOTES §12.7).
        raise Problem(401, MSG_NEEDS_AUTH)
    booking, _new = await call.state.create_booking(request)
    return ok(booking_json(booking, call.state), 201)


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
    return ok([booking_json(b, call.state) for b in page], pagination=pagination)


async def _get_booking(call: Call) -> tuple[int, Body]:
    return ok(booking_json(call.state.booking(call.path("uid")), call.state))


async def _reschedule(call: Call) -> tuple[int, Body]:
    body = parse_reschedule(await call.json())
    booking = await call.state.reschedule_booking(
        call.path("uid"),
        body.start,
        reason=body.reason,
        rescheduled_by=body.rescheduled_by,
        by_host=call.authenticated,
    )
    return ok(booking_json(booking, call.state), 201)


async def _cancel(call: Call) -> tuple[int, Body]:
    # `cancelSubsequentBookings` only matters for recurring bookings, which the sandbox does not have.
    body = parse_cancel(await call.json())
    uid = call.path("uid")
    booking = call.state.cancel_booking(uid, reason=body.reason, by_host=call.authenticated)
    return ok(booking_json(booking, call.state))


async def _confirm(call: Call) -> tuple[int, Body]:
    booking = call.state.confirm_booking(call.path("uid"))
    return ok(booking_json(booking, call.state))


async def _decline(call: Call) -> tuple[int, Body]:
    reason = parse_decline(await call.json())
    booking = call.state.decline_booking(call.path("uid"), reason=reason)
    return ok(booking_json(booking, call.state))


# --- webhooks (user level) ------------------------------------------------------------------------


async def _create_webhook(call: Call) -> tuple[int, Body]:
    body = parse_webhook(await call.json(), partial=False)
    triggers = body.fields["triggers"]
    assert isinstance(triggers, list)
    hook = call.state.webhooks.create(
        call.state.host.id,
        subscriber_url=str(body.fields["subscriberUrl"]),
        active=body.fields["active"] is True,
        triggers=[str(t) for t in triggers],
        secret=body.text("secret"),
        payload_template=body.text("payloadTemplate"),
    )
    return ok(webhook_json(hook), 201)


async def _list_webhooks(call: Call) -> tuple[int, Body]:
    take, skip = parse_take_skip(call.params)
    return ok([webhook_json(h) for h in call.state.webhooks.of_user(call.state.host.id, skip, take)])


async def _get_webhook(call: Call) -> tuple[int, Body]:
    return ok(webhook_json(call.state.webhooks.get(call.path("webhookId"))))


async def _update_webhook(call: Call) -> tuple[int, Body]:
    body = parse_webhook(await call.json(), partial=True)
    return ok(webhook_json(call.state.webhooks.update(call.path("webhookId"), body.fields)))


async def _delete_webhook(call: Call) -> tuple[int, Body]:
    return ok(webhook_json(call.state.webhooks.delete(call.path("webhookId"))))


ROUTES: Final[tuple[tuple[str, str, Handler, str | None, Auth], ...]] = (
    ("/v2/me", "GET", _me, None, "required"),
    ("/v2/event-types", "GET", _event_types, EVENT_TYPES, "optional"),
    ("/v2/slots", "GET", _slots, SLOTS, "optional"),
    ("/v2/slots/reservations", "POST", _reserve, SLOTS, "optional"),
    ("/v2/slots/reservations/{uid}", "GET", _get_reservation, SLOTS, "optional"),
    ("/v2/slots/reservations/{uid}", "DELETE", _delete_reservation, SLOTS, "optional"),
    ("/v2/bookings", "POST", _create_booking, BOOKINGS, "optional"),
    ("/v2/bookings", "GET", _list_bookings, BOOKINGS, "required"),
    ("/v2/bookings/{uid}", "GET", _get_booking, BOOKINGS, "optional"),
    ("/v2/bookings/{uid}/reschedule", "POST", _reschedule, BOOKINGS, "optional"),
    ("/v2/bookings/{uid}/cancel", "POST", _cancel, BOOKINGS, "optional"),
    ("/v2/bookings/{uid}/confirm", "POST", _confirm, BOOKINGS, "required"),
    ("/v2/bookings/{uid}/decline", "POST", _decline, BOOKINGS, "required"),
    ("/v2/webhooks", "POST", _create_webhook, None, "required"),
    ("/v2/webhooks", "GET", _list_webhooks, None, "required"),
    ("/v2/webhooks/{webhookId}", "GET", _get_webhook, None, "required"),
    ("/v2/webhooks/{webhookId}", "PATCH", _update_webhook, None, "required"),
    ("/v2/webhooks/{webhookId}", "DELETE", _delete_webhook, None, "required"),
)
