"""Every request CalcomClient can send, checked against Cal.com's OpenAPI document.

The fake answers with bodies that are themselves checked against the spec, so the client is also
shown to read what the spec describes (with the NOTES §11 exceptions pinned in calcom_spec).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.models import BookingRequest
from calcom_spec import validate_request, validate_response
from test_calcom_client import API_KEY, booking_json, event_type_json, me_json, pagination_json

START = datetime(2050, 9, 5, 7, 0, tzinfo=UTC)
END = START + timedelta(days=2)


def spec_answer(request: httpx2.Request) -> httpx2.Response:
    """A success answer for any route the client uses, checked against the spec before it is sent."""
    method, path = request.method, request.url.path
    status, extra = 200, {}
    data: object
    if path == "/v2/me":
        data = me_json()
    elif path == "/v2/event-types":
        data = [event_type_json()]
    elif path == "/v2/slots":
        data = {"2050-09-05": [{"start": "2050-09-05T09:00:00.000Z", "end": "2050-09-05T09:30:00.000Z"}]}
    elif path == "/v2/bookings" and method == "GET":
        data, extra = [booking_json()], {"pagination": pagination_json(1, 1)}
    elif path == "/v2/bookings":
        status, data = 201, booking_json()
    elif path.endswith("/reschedule"):
        status, data = 201, booking_json(uid="new-uid", rescheduledFromUid="abc")
    elif path.endswith("/cancel"):
        data = booking_json(status="cancelled", cancellationReason="client asked")
    elif path.startswith("/v2/webhooks"):
        # UserWebhookOutputDto as Cal.com sends it (the sandbox's `webhook_json`: a string id, nulls).
        hook = {
            "payloadTemplate": None,
            "userId": 7,
            "id": "5f0c1e9e-7c1a-4a8e-9a57-0c3cb2b5e6a1",
            "triggers": ["BOOKING_CREATED"],
            "subscriberUrl": "https://a.example/webhooks/calcom",
            "active": True,
            "secret": "s" * 43,
        }
        data = [hook] if method == "GET" else hook
        status = 201 if method == "POST" else 200
    else:
        data = booking_json()
    body = {"status": "success", "data": data, **extra}
    validate_response(method, path, status, body)
    return httpx2.Response(status, json=body)


Call = Callable[[CalcomClient], Any]
BOOKING = BookingRequest(
    start=START,
    event_type_id=123,
    attendee_name="Ana Ruiz",
    attendee_email="ana@example.com",
    attendee_time_zone="Europe/Madrid",
)

CALLS: list[Any] = [
    pytest.param(lambda c: c.me(), id="me"),
    pytest.param(lambda c: c.event_types("host"), id="event_types"),
    pytest.param(lambda c: c.slots(123, START, END), id="slots"),
    pytest.param(lambda c: c.slots(123, START, END, time_zone="Europe/Madrid"), id="slots+tz"),
    pytest.param(lambda c: c.slots(123, START, END, duration_minutes=60), id="slots+duration"),
    pytest.param(lambda c: c.slots(123, START, END, booking_uid_to_reschedule="abc"), id="slots+reschedule"),
    pytest.param(
        lambda c: c.slots(
            123, START, END, time_zone="Europe/Madrid", duration_minutes=60, booking_uid_to_reschedule="abc"
        ),
        id="slots+all",
    ),
    pytest.param(lambda c: c.create_booking(BOOKING), id="create"),
    pytest.param(
        lambda c: c.create_booking(BOOKING.model_copy(update={"attendee_phone": "+34600111222"})),
        id="create+phone",
    ),
    pytest.param(lambda c: c.create_booking(BOOKING.model_copy(update={"length_minutes": 60})), id="create+length"),
    pytest.param(
        lambda c: c.create_booking(BOOKING.model_copy(update={"metadata": {"appointmentId": "apt_1"}})),
        id="create+metadata",
    ),
    pytest.param(
        lambda c: c.create_booking(
            BOOKING.model_copy(update={"attendee_phone": "+34600111222", "length_minutes": 60, "metadata": {"a": "b"}})
        ),
        id="create+all",
    ),
    pytest.param(
        lambda c: c.create_booking(
            BOOKING.model_copy(
                update={
                    "answers": {"topic": "My pension", "first-visit": True, "rooms": ["Kitchen"], "guests": 3.0},
                    "call_attendee_at": "+34600111222",
                    "attendee_phone": "+34600111222",
                    "language": "pt-BR",
                }
            )
        ),
        id="create+answers+phone_call+language",
    ),
    pytest.param(lambda c: c.confirm_booking("abc"), id="confirm"),
    pytest.param(lambda c: c.decline_booking("abc"), id="decline"),
    pytest.param(lambda c: c.decline_booking("abc", "Fully booked"), id="decline+reason"),
    pytest.param(lambda c: c.webhooks(), id="webhooks"),
    pytest.param(
        lambda c: c.create_webhook("https://a.example/webhooks/calcom", ["BOOKING_CREATED"], "s" * 43),
        id="webhook_create",
    ),
    pytest.param(
        lambda c: c.update_webhook("w1", "https://a.example/webhooks/calcom", ["BOOKING_CREATED"], "s" * 43),
        id="webhook_update",
    ),
    pytest.param(lambda c: c.delete_webhook("w1"), id="webhook_delete"),
    pytest.param(lambda c: c.list_bookings(), id="list"),
    pytest.param(lambda c: c.list_bookings(attendee_email="ana@example.com"), id="list+email"),
    pytest.param(lambda c: c.list_bookings(event_type_id=123), id="list+event_type"),
    pytest.param(lambda c: c.list_bookings(after_start=START, before_end=END), id="list+window"),
    pytest.param(
        lambda c: c.list_bookings(status=["upcoming", "recurring", "past", "cancelled", "unconfirmed"]),
        id="list+every_status",
    ),
    pytest.param(
        lambda c: c.list_bookings(
            attendee_email="ana@example.com",
            event_type_id=123,
            after_start=START,
            before_end=END,
            status=["upcoming"],
            take=250,
            skip=500,
        ),
        id="list+all",
    ),
    pytest.param(lambda c: c.get_booking("abc"), id="get"),
    pytest.param(lambda c: c.reschedule_booking("abc", START), id="reschedule"),
    pytest.param(lambda c: c.reschedule_booking("abc", START, reason="client asked"), id="reschedule+reason"),
    pytest.param(lambda c: c.cancel_booking("abc", "client asked"), id="cancel"),
]


async def record(call: Call) -> list[httpx2.Request]:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return spec_answer(request)

    async with CalcomClient(API_KEY, "https://cal.test", transport=httpx2.MockTransport(handler)) as client:
        await call(client)
    return sent


def check(request: httpx2.Request, **changes: Any) -> None:
    """validate_request on a recorded request, optionally with query/headers/body replaced."""
    params = request.url.params
    assert len(params.multi_items()) == len(params), f"repeated query parameter in {request.url}"
    parts: dict[str, Any] = {
        "query": dict(params),
        "headers": dict(request.headers),
        "body": json.loads(request.content) if request.content else None,
    }
    parts.update(changes)
    validate_request(request.method, request.url.path, **parts)


@pytest.mark.parametrize("call", CALLS)
async def test_every_request_the_client_can_send_matches_the_spec(call: Call) -> None:
    sent = await record(call)
    assert len(sent) == 1
    check(sent[0])


async def recorded(call: Call) -> httpx2.Request:
    (request,) = await record(call)
    return request


async def test_the_contract_check_rejects_a_wrong_or_missing_version_header() -> None:
    create = await recorded(lambda c: c.create_booking(BOOKING))
    headers = dict(create.headers)
    with pytest.raises(AssertionError, match=r"cal-api-version is '2024-09-04', the spec requires \('2024-08-13',\)"):
        check(create, headers={**headers, "cal-api-version": "2024-09-04"})
    del headers["cal-api-version"]
    with pytest.raises(AssertionError, match="required header 'cal-api-version' is missing"):
        check(create, headers=headers)

    me = await recorded(lambda c: c.me())
    with pytest.raises(AssertionError, match="declares none"):
        check(me, headers={**me.headers, "cal-api-version": "2024-08-13"})


async def test_the_contract_check_rejects_an_unknown_body_field() -> None:
    create = await recorded(lambda c: c.create_booking(BOOKING))
    body = json.loads(create.content)
    with pytest.raises(AssertionError, match="'notes' was unexpected"):
        check(create, body={**body, "notes": "first visit"})
    with pytest.raises(AssertionError, match="'mail' was unexpected"):
        check(create, body={**body, "attendee": {**body["attendee"], "mail": "x@example.com"}})

    cancel = await recorded(lambda c: c.cancel_booking("abc", "client asked"))
    with pytest.raises(AssertionError, match="'reason' was unexpected"):
        check(cancel, body={"reason": "client asked"})


async def test_the_contract_check_rejects_a_missing_required_field() -> None:
    create = await recorded(lambda c: c.create_booking(BOOKING))
    body = json.loads(create.content)
    attendee = {k: v for k, v in body["attendee"].items() if k != "timeZone"}
    with pytest.raises(AssertionError, match="'timeZone' is a required property"):
        check(create, body={**body, "attendee": attendee})
    with pytest.raises(AssertionError, match="'start' is a required property"):
        check(create, body={k: v for k, v in body.items() if k != "start"})

    reschedule = await recorded(lambda c: c.reschedule_booking("abc", START))
    with pytest.raises(AssertionError, match="the request body is required"):
        check(reschedule, body=None)


async def test_the_contract_check_rejects_unknown_missing_and_invalid_query_parameters() -> None:
    slots = await recorded(lambda c: c.slots(123, START, END))
    query = dict(slots.url.params)
    with pytest.raises(AssertionError, match=r"unknown query parameter\(s\) \['startTime'\]"):
        check(slots, query={**query, "startTime": query["start"]})
    with pytest.raises(AssertionError, match="required query parameter 'end' is missing"):
        check(slots, query={k: v for k, v in query.items() if k != "end"})

    listing = await recorded(lambda c: c.list_bookings())
    with pytest.raises(AssertionError, match="'done' is not one of"):
        check(listing, query={**listing.url.params, "status": "upcoming,done"})
    with pytest.raises(AssertionError, match="unknown query parameter"):
        check(listing, query={**listing.url.params, "teamIds": "1"})


def test_the_contract_check_knows_no_made_up_routes() -> None:
    with pytest.raises(AssertionError, match="no such operation"):
        validate_request("DELETE", "/v2/bookings/abc", query={}, headers={}, body=None)


def test_the_response_check_still_rejects_what_the_pinned_exceptions_do_not_cover() -> None:
    with pytest.raises(AssertionError, match="'done' is not one of"):
        validate_response(
            "GET",
            "/v2/bookings/{bookingUid}",
            200,
            {"status": "success", "data": booking_json(status="done")},
        )
    with pytest.raises(AssertionError, match="is not of type 'object'"):
        validate_response("GET", "/v2/slots", 200, {"status": "success", "data": {"2050-09-05": ["09:00"]}})
    with pytest.raises(AssertionError, match="declares only"):
        validate_response("POST", "/v2/bookings", 200, {"status": "success", "data": booking_json()})
    with pytest.raises(AssertionError, match="'uid' is a required property"):
        data = {k: v for k, v in booking_json().items() if k != "uid"}
        validate_response("POST", "/v2/bookings", 201, {"status": "success", "data": data})


@pytest.mark.parametrize(
    "body",
    [
        {"statusCode": 400, "message": "Cancellation reason is required when you are the host"},
        {
            "status": "error",
            "timestamp": "2050-09-01T10:00:00.000Z",
            "path": "/v2/bookings/abc/cancel",
            "error": {"code": "NotFoundException", "message": "not found", "details": {"statusCode": 404}},
        },
    ],
    ids=["plain", "envelope"],
)
def test_the_response_check_accepts_both_real_error_shapes(body: dict[str, Any]) -> None:
    validate_response("POST", "/v2/bookings/{bookingUid}/cancel", 400 if "statusCode" in body else 404, body)
