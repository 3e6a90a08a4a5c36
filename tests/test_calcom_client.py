"""CalcomClient against canned Cal.com answers through an injected httpx2.MockTransport, and (at the end)
against the sandbox for the answers NOTES §12 corrects."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.errors import (
    CalcomAlreadyCancelled,
    CalcomAuthError,
    CalcomBookingRestricted,
    CalcomEmailBlocked,
    CalcomError,
    CalcomForbidden,
    CalcomNotFound,
    CalcomRateLimited,
    CalcomRejected,
    CalcomRescheduleTooLate,
    CalcomSlotTaken,
    CalcomUnavailable,
)
from appt_tools.models import BookingRequest, RateLimit, Slot
from calcom_sandbox import RunningSandbox

API_KEY = "cal_live_0123456789abcdef"
MADRID = ZoneInfo("Europe/Madrid")
START = datetime(2050, 9, 5, 7, 0, tzinfo=UTC)

Handler = Callable[[httpx2.Request], httpx2.Response]
ATTENDEE: dict[str, Any] = {
    "attendee_name": "Ana Ruiz",
    "attendee_email": "ana@example.com",
    "attendee_time_zone": "Europe/Madrid",
}


# --- wire examples (shaped like NOTES §3; test_calcom_contract checks them against the spec) ----


def booking_json(**overrides: Any) -> dict[str, Any]:
    booking: dict[str, Any] = {
        "id": 1194,
        "uid": "qKcFyCSn9qfuj1Ba435EXE",
        "title": "30 min between Host and Ana Ruiz",
        "description": "",
        "hosts": [{"id": 7, "name": "Host", "email": "host@example.com", "username": "host", "timeZone": "UTC"}],
        "status": "accepted",
        "start": "2050-09-05T07:00:00.000Z",
        "end": "2050-09-05T07:30:00.000Z",
        "duration": 30,
        "eventTypeId": 123,
        "eventType": {"id": 123, "slug": "30min"},
        "location": "https://app.cal.com/video/qKcFyCSn9qfuj1Ba435EXE",
        "meetingUrl": "https://app.cal.com/video/qKcFyCSn9qfuj1Ba435EXE",
        "absentHost": False,
        "createdAt": "2050-09-01T10:00:00.000Z",
        "updatedAt": "2050-09-01T10:00:00.000Z",
        "icsUid": "ics-1194",
        "attendees": [{"name": "Ana Ruiz", "email": "ana@example.com", "timeZone": "Europe/Madrid", "absent": False}],
        "bookingFieldsResponses": {"name": "Ana Ruiz", "email": "ana@example.com"},
        "metadata": {},
    }
    booking.update(overrides)
    return booking


def event_type_json(**overrides: Any) -> dict[str, Any]:
    event_type: dict[str, Any] = {
        "id": 123,
        "lengthInMinutes": 30,
        "title": "Teeth cleaning",
        "slug": "cleaning",
        "description": "A cleaning",
        "locations": [{"type": "integration", "integration": "cal-video"}],
        "bookingFields": [],
        "disableGuests": False,
        "recurrence": None,
        "metadata": {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": False,
        "forwardParamsSuccessRedirect": None,
        "successRedirectUrl": None,
        "isInstantEvent": False,
        "scheduleId": None,
        "hidden": False,
        "bookingRequiresAuthentication": False,
        "ownerId": 7,
        "users": [{"id": 7, "name": "Host", "username": "host", "avatarUrl": None}],
    }
    event_type.update(overrides)
    return event_type


def me_json() -> dict[str, Any]:
    return {
        "id": 7,
        "username": "host",
        "email": "host@example.com",
        "timeFormat": 24,
        "defaultScheduleId": 3,
        "weekStart": "Monday",
        "timeZone": "Europe/Madrid",
        "organizationId": None,
    }


def pagination_json(total: int, returned: int) -> dict[str, Any]:
    return {
        "totalItems": total,
        "remainingItems": max(total - returned, 0),
        "returnedItems": returned,
        "itemsPerPage": 100,
        "currentPage": 1,
        "totalPages": 1,
        "hasNextPage": total > returned,
        "hasPreviousPage": False,
    }


def success(data: object, status: int = 200, **extra: Any) -> httpx2.Response:
    return httpx2.Response(status, json={"status": "success", "data": data, **extra})


def envelope_error(status: int, code: str, message: str, **headers: str) -> httpx2.Response:
    body = {
        "status": "error",
        "timestamp": "2050-09-01T10:00:00.000Z",
        "path": "/v2/bookings",
        "error": {"code": code, "message": message, "details": {"message": message, "statusCode": status}},
    }
    return httpx2.Response(status, json=body, headers=headers)


def plain_error(status: int, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"statusCode": status, "message": message})


# --- harness -----------------------------------------------------------------------------------


class Recorder:
    """A transport handler that answers with canned responses in order and keeps every request."""

    def __init__(self, *answers: httpx2.Response | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    @property
    def last(self) -> httpx2.Request:
        return self.requests[-1]


async def no_wait(seconds: float) -> None:
    """Back-off and pacing waits cost nothing here; test_calcom_resilience measures them."""


def client_for(recorder: Recorder) -> CalcomClient:
    return CalcomClient(API_KEY, "https://cal.test", transport=httpx2.MockTransport(recorder), sleep=no_wait)


def body_of(request: httpx2.Request) -> Any:
    return json.loads(request.content)


# --- requests ----------------------------------------------------------------------------------


async def test_every_request_carries_the_bearer_key_and_the_version_of_its_endpoint_family() -> None:
    recorder = Recorder(
        success(me_json()),
        success([event_type_json()]),
        success({}),
        success(booking_json(), 201),
        success([], pagination=pagination_json(0, 0)),
        success(booking_json()),
        success(booking_json(), 201),
        success(booking_json(status="cancelled")),
        success(me_json()),
    )
    async with client_for(recorder) as client:
        await client.me()
        await client.event_types("host")
        await client.slots(123, START, START + timedelta(days=1))
        await client.create_booking(BookingRequest(start=START, event_type_id=123, **ATTENDEE))
        await client.list_bookings()
        await client.get_booking("abc")
        await client.reschedule_booking("abc", START)
        await client.cancel_booking("abc", "client asked")
        await client.me()  # the version of the previous call must not stick

    sent = [(r.method, r.url.path, r.headers.get("cal-api-version")) for r in recorder.requests]
    assert sent == [
        ("GET", "/v2/me", None),
        ("GET", "/v2/event-types", "2024-06-14"),
        ("GET", "/v2/slots", "2024-09-04"),
        ("POST", "/v2/bookings", "2024-08-13"),
        ("GET", "/v2/bookings", "2024-08-13"),
        ("GET", "/v2/bookings/abc", "2024-08-13"),
        ("POST", "/v2/bookings/abc/reschedule", "2024-08-13"),
        ("POST", "/v2/bookings/abc/cancel", "2024-08-13"),
        ("GET", "/v2/me", None),
    ]
    assert {r.headers["authorization"] for r in recorder.requests} == {f"Bearer {API_KEY}"}
    assert {r.url.host for r in recorder.requests} == {"cal.test"}


async def test_me_maps_the_key_owners_profile() -> None:
    recorder = Recorder(success({**me_json(), "organization": {"id": 1, "isPlatform": False}}))
    async with client_for(recorder) as client:
        profile = await client.me()
    assert (profile.id, profile.username, profile.email, profile.time_zone) == (
        7,
        "host",
        "host@example.com",
        "Europe/Madrid",
    )
    assert recorder.last.content == b""


async def test_event_types_are_asked_for_by_username_and_keep_length_location_and_confirmation() -> None:
    recorder = Recorder(
        success(
            [
                event_type_json(lengthInMinutesOptions=[30, 60], requiresConfirmation=True, newField={"x": 1}),
                event_type_json(
                    id=124,
                    slug="visit",
                    description=None,
                    locations=[{"type": "address", "address": "1 Main St", "public": True}],
                    hidden=True,
                ),
                event_type_json(id=125, slug="none", locations=[]),
                event_type_json(
                    id=126, confirmationPolicy={"type": "always", "blockUnconfirmedBookingsInBooker": True}
                ),
                event_type_json(id=127, confirmationPolicy={"disabled": True}),
                # The policy is what Cal.com means (NOTES §12.8); a stray `requiresConfirmation` does not override it.
                event_type_json(id=128, requiresConfirmation=True, confirmationPolicy={"disabled": True}),
            ]
        )
    )
    async with client_for(recorder) as client:
        video, visit, bare, policy, no_policy, stray = await client.event_types("host")

    assert dict(recorder.last.url.params) == {"username": "host"}
    assert (video.id, video.title, video.slug, video.length_minutes) == (
        123,
        "Teeth cleaning",
        "cleaning",
        30,
    )
    assert video.length_options == (30, 60)
    assert (video.location_type, video.location_integration, video.location_address) == (
        "integration",
        "cal-video",
        None,
    )
    assert video.requires_confirmation is True
    assert (visit.location_type, visit.location_integration, visit.location_address) == (
        "address",
        None,
        "1 Main St",
    )
    assert (visit.description, visit.hidden, visit.requires_confirmation) == ("", True, False)
    assert (bare.location_type, bare.length_options) == (None, ())
    assert (policy.requires_confirmation, no_policy.requires_confirmation) == (True, False)
    assert stray.requires_confirmation is False


async def test_slots_are_asked_for_in_utc_range_format_and_come_back_in_utc_sorted() -> None:
    recorder = Recorder(
        success(
            {
                "2050-09-06": [{"start": "2050-09-06T09:00:00.000+02:00", "end": "2050-09-06T09:30:00.000+02:00"}],
                "2050-09-05": [
                    {"start": "2050-09-05T10:00:00.000+02:00", "end": "2050-09-05T10:30:00.000+02:00"},
                    {
                        "start": "2050-09-05T09:00:00.000+02:00",
                        "end": "2050-09-05T09:30:00.000+02:00",
                        "seatsRemaining": 2,
                    },
                ],
            }
        )
    )
    async with client_for(recorder) as client:
        found = await client.slots(
            123, datetime(2050, 9, 5, 0, 0, tzinfo=MADRID), datetime(2050, 9, 7, 0, 0, tzinfo=MADRID)
        )

    assert dict(recorder.last.url.params) == {
        "eventTypeId": "123",
        "start": "2050-09-04T22:00:00Z",
        "end": "2050-09-06T22:00:00Z",
        "format": "range",
    }
    assert found == [
        Slot(start=datetime(2050, 9, 5, 7, tzinfo=UTC), end=datetime(2050, 9, 5, 7, 30, tzinfo=UTC)),
        Slot(start=datetime(2050, 9, 5, 8, tzinfo=UTC), end=datetime(2050, 9, 5, 8, 30, tzinfo=UTC)),
        Slot(start=datetime(2050, 9, 6, 7, tzinfo=UTC), end=datetime(2050, 9, 6, 7, 30, tzinfo=UTC)),
    ]
    assert all(slot.start.utcoffset() == timedelta(0) for slot in found)


async def test_slots_pass_time_zone_duration_and_the_booking_being_rescheduled() -> None:
    recorder = Recorder(success({}))
    async with client_for(recorder) as client:
        found = await client.slots(
            123,
            START,
            START + timedelta(hours=8),
            time_zone="Europe/Madrid",
            duration_minutes=60,
            booking_uid_to_reschedule="old-uid",
        )
    assert found == []
    assert dict(recorder.last.url.params) == {
        "eventTypeId": "123",
        "start": "2050-09-05T07:00:00Z",
        "end": "2050-09-05T15:00:00Z",
        "format": "range",
        "timeZone": "Europe/Madrid",
        "duration": "60",
        "bookingUidToReschedule": "old-uid",
    }


async def test_a_slot_without_end_lasts_the_requested_duration() -> None:
    recorder = Recorder(success({"2050-09-05": [{"start": "2050-09-05T07:00:00.000Z"}]}))
    async with client_for(recorder) as client:
        found = await client.slots(123, START, START + timedelta(days=1), duration_minutes=45)
    assert found == [Slot(start=START, end=START + timedelta(minutes=45))]


async def test_a_slot_without_end_and_no_duration_is_reported_as_an_unreadable_answer() -> None:
    recorder = Recorder(success({"2050-09-05": [{"start": "2050-09-05T07:00:00.000Z"}]}))
    async with client_for(recorder) as client:
        with pytest.raises(CalcomUnavailable, match="no end"):
            await client.slots(123, START, START + timedelta(days=1))


async def test_slots_outside_the_requested_range_are_dropped() -> None:
    # Cal.com widens a midnight `end` to 23:59:59 of that day (NOTES §3.1).
    recorder = Recorder(
        success(
            {
                "2050-09-05": [{"start": "2050-09-05T06:30:00.000Z", "end": "2050-09-05T07:00:00.000Z"}],
                "2050-09-06": [
                    {"start": "2050-09-05T23:30:00.000Z", "end": "2050-09-06T00:00:00.000Z"},
                    {"start": "2050-09-06T00:00:00.000Z", "end": "2050-09-06T00:30:00.000Z"},
                ],
            }
        )
    )
    async with client_for(recorder) as client:
        found = await client.slots(123, START, datetime(2050, 9, 6, tzinfo=UTC))
    assert [slot.start for slot in found] == [datetime(2050, 9, 5, 23, 30, tzinfo=UTC)]


NAIVE = datetime(2050, 9, 5, 7, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.slots(123, NAIVE, START),
        lambda c: c.slots(123, START, NAIVE),
        lambda c: c.create_booking(BookingRequest(start=NAIVE, event_type_id=123, **ATTENDEE)),
        lambda c: c.list_bookings(after_start=NAIVE),
        lambda c: c.list_bookings(before_end=NAIVE),
        lambda c: c.reschedule_booking("abc", NAIVE),
    ],
    ids=["slots start", "slots end", "create", "after_start", "before_end", "reschedule"],
)
async def test_a_naive_datetime_is_refused_before_anything_is_sent(
    call: Callable[[CalcomClient], Any],
) -> None:
    recorder = Recorder(success({}))
    async with client_for(recorder) as client:
        with pytest.raises(ValueError, match="timezone-aware"):
            await call(client)
    assert recorder.requests == []


async def test_create_booking_sends_the_attendee_and_a_utc_start() -> None:
    recorder = Recorder(success(booking_json(), 201))
    request = BookingRequest(start=datetime(2050, 9, 5, 9, 0, tzinfo=MADRID), event_type_id=123, **ATTENDEE)
    async with client_for(recorder) as client:
        booking = await client.create_booking(request)

    assert body_of(recorder.last) == {
        "start": "2050-09-05T07:00:00Z",
        "eventTypeId": 123,
        "attendee": {"name": "Ana Ruiz", "email": "ana@example.com", "timeZone": "Europe/Madrid"},
    }
    assert recorder.last.headers["content-type"] == "application/json"
    assert booking.uid == "qKcFyCSn9qfuj1Ba435EXE"
    assert (booking.id, booking.status, booking.event_type_id) == (1194, "accepted", 123)
    assert (booking.start, booking.end) == (START, START + timedelta(minutes=30))
    assert (booking.attendee_name, booking.attendee_email) == ("Ana Ruiz", "ana@example.com")
    assert booking.title == "30 min between Host and Ana Ruiz"


async def test_create_booking_sends_phone_length_and_metadata_when_given() -> None:
    recorder = Recorder(success(booking_json(), 201))
    request = BookingRequest(
        start=START,
        event_type_id=123,
        attendee_phone="+34600111222",
        length_minutes=60,
        metadata={"appointmentId": "apt_1"},
        **ATTENDEE,
    )
    async with client_for(recorder) as client:
        await client.create_booking(request)
    sent = body_of(recorder.last)
    assert sent["attendee"]["phoneNumber"] == "+34600111222"
    assert (sent["lengthInMinutes"], sent["metadata"]) == (60, {"appointmentId": "apt_1"})


MEET = "https://meet.google.com/abc-defg-hij"


@pytest.mark.parametrize(
    ("location", "meeting_url", "expected_url", "expected_location"),
    [
        pytest.param(MEET, MEET, MEET, None, id="web link"),
        pytest.param(
            "integrations:google:meet",
            "integrations:google:meet",
            None,
            None,
            id="internal id",
        ),
        pytest.param("1 Main St, Springfield", None, None, "1 Main St, Springfield", id="address"),
        pytest.param("", None, None, None, id="empty"),
    ],
)
async def test_a_booking_has_a_meeting_url_only_when_cal_com_gives_a_web_link(
    location: str, meeting_url: str | None, expected_url: str | None, expected_location: str | None
) -> None:
    wire = booking_json(location=location, meetingUrl=meeting_url)
    if meeting_url is None:
        del wire["meetingUrl"]
    async with client_for(Recorder(success(wire))) as client:
        booking = await client.get_booking("abc")
    assert (booking.meeting_url, booking.location) == (expected_url, expected_location)


@pytest.mark.parametrize("status", ["accepted", "pending", "cancelled", "rejected", "awaiting_host"])
async def test_every_cal_com_booking_status_is_understood(status: str) -> None:
    async with client_for(Recorder(success(booking_json(status=status)))) as client:
        assert (await client.get_booking("abc")).status == status


async def test_list_bookings_sends_every_filter_and_reads_the_total() -> None:
    recorder = Recorder(
        success([booking_json(), booking_json(uid="second", eventTypeId=None)], pagination=pagination_json(7, 2))
    )
    async with client_for(recorder) as client:
        page = await client.list_bookings(
            attendee_email="ana+test@example.com",
            event_type_id=123,
            after_start=datetime(2050, 9, 5, 9, 0, tzinfo=MADRID),
            before_end=datetime(2050, 9, 30, tzinfo=UTC),
            status=["upcoming", "unconfirmed"],
            take=2,
            skip=4,
        )
    assert dict(recorder.last.url.params) == {
        "attendeeEmail": "ana+test@example.com",
        "eventTypeId": "123",
        "afterStart": "2050-09-05T07:00:00Z",
        "beforeEnd": "2050-09-30T00:00:00Z",
        "status": "upcoming,unconfirmed",
        "take": "2",
        "skip": "4",
    }
    assert b"attendeeEmail=ana%2Btest%40example.com" in recorder.last.url.raw_path  # a raw "+" would read as " "
    assert page.total == 7
    assert [b.uid for b in page.bookings] == ["qKcFyCSn9qfuj1Ba435EXE", "second"]
    assert page.bookings[1].event_type_id == 123  # read from eventType.id when eventTypeId is absent


async def test_list_bookings_asks_for_the_first_hundred_by_default() -> None:
    recorder = Recorder(success([], pagination=pagination_json(0, 0)))
    async with client_for(recorder) as client:
        page = await client.list_bookings()
    assert dict(recorder.last.url.params) == {"take": "100", "skip": "0"}
    assert (page.bookings, page.total) == ((), 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"status": ["upcoming", "done"]}, {"take": 0}, {"take": 251}, {"skip": -1}],
    ids=["unknown status", "take 0", "take 251", "negative skip"],
)
async def test_list_bookings_refuses_filters_cal_com_would_reject(kwargs: dict[str, Any]) -> None:
    recorder = Recorder(success([], pagination=pagination_json(0, 0)))
    async with client_for(recorder) as client:
        with pytest.raises(ValueError):
            await client.list_bookings(**kwargs)
    assert recorder.requests == []


async def test_get_booking_escapes_the_uid_into_one_path_segment() -> None:
    recorder = Recorder(success(booking_json()))
    async with client_for(recorder) as client:
        await client.get_booking("a/b c")
    assert recorder.last.url.raw_path == b"/v2/bookings/a%2Fb%20c"


async def test_an_empty_uid_is_refused() -> None:
    async with client_for(Recorder(success(booking_json()))) as client:
        with pytest.raises(ValueError):
            await client.get_booking("")


async def test_a_recurring_series_uid_gives_its_first_occurrence() -> None:
    series = [booking_json(uid="first", recurringBookingUid="series"), booking_json(uid="second")]
    async with client_for(Recorder(success(series))) as client:
        assert (await client.get_booking("series")).uid == "first"


async def test_reschedule_sends_the_new_utc_start_and_returns_the_new_booking_linked_to_the_old() -> None:
    new = booking_json(uid="new-uid", start="2050-09-06T07:00:00.000Z", end="2050-09-06T07:30:00.000Z")
    recorder = Recorder(success({**new, "rescheduledFromUid": "old-uid"}, 201), success(new, 201))
    async with client_for(recorder) as client:
        moved = await client.reschedule_booking(
            "old-uid", datetime(2050, 9, 6, 9, 0, tzinfo=MADRID), reason="client asked"
        )
        moved_without_link = await client.reschedule_booking("old-uid", START + timedelta(days=1))

    assert recorder.requests[0].url.path == "/v2/bookings/old-uid/reschedule"
    assert body_of(recorder.requests[0]) == {
        "start": "2050-09-06T07:00:00Z",
        "reschedulingReason": "client asked",
    }
    assert body_of(recorder.requests[1]) == {"start": "2050-09-06T07:00:00Z"}
    for booking in (moved, moved_without_link):
        assert (booking.uid, booking.rescheduled_from_uid) == ("new-uid", "old-uid")
        assert booking.start == datetime(2050, 9, 6, 7, tzinfo=UTC)


async def test_cancel_sends_the_reason_and_returns_the_cancelled_booking() -> None:
    cancelled = booking_json(status="cancelled", cancellationReason="client asked", cancelledByEmail="h@x.com")
    recorder = Recorder(success(cancelled))
    async with client_for(recorder) as client:
        booking = await client.cancel_booking("abc", "client asked")
    assert recorder.last.url.path == "/v2/bookings/abc/cancel"
    assert body_of(recorder.last) == {"cancellationReason": "client asked"}
    assert (booking.status, booking.cancellation_reason) == ("cancelled", "client asked")


async def test_an_old_booking_shows_where_it_was_rescheduled_to() -> None:
    old = booking_json(status="cancelled", rescheduledToUid="new-uid")
    async with client_for(Recorder(success(old))) as client:
        assert (await client.get_booking("abc")).rescheduled_to_uid == "new-uid"


# --- errors ------------------------------------------------------------------------------------

HOST_BUSY = "User either already has booking at this time or is not available"
TEAM_BUSY = "One of the hosts either already has booking at this time or is not available"
# NOTES §12.1 (input.service.ts, PR #22128) and §12.7 (bookings.service.ts `checkBookingRequiresAuthentication`).
ALREADY_CANCELLED_V2 = (
    "Can't cancel booking with uid=abc because it has been cancelled already. Please provide uid of a booking "
    "that is not cancelled."
)
NOT_AUTHORIZED_TO_BOOK = (
    "You are not authorized to book this event type. You must be the event type owner, a host, a team "
    "admin/owner, or an organization admin/owner."
)
VALIDATION_PIPE = httpx2.Response(
    400,
    json={
        "status": "error",
        "timestamp": "2050-09-01T10:00:00.000Z",
        "path": "/v2/bookings",
        "error": {
            "code": "BadRequestException",
            "message": "Bad Request Exception",
            "details": {
                "errors": [
                    {
                        "property": "attendee",
                        "children": [{"property": "email", "constraints": {"isEmail": "email must be an email"}}],
                    }
                ]
            },
        },
    },
)
NEST_LIST = httpx2.Response(
    400, json={"statusCode": 400, "message": ["start must be a date", "x is bad"], "error": "Bad Request"}
)


@pytest.mark.parametrize(
    ("answer", "error", "status", "cal_com_said"),
    [
        pytest.param(
            envelope_error(400, "BadRequestException", HOST_BUSY),
            CalcomSlotTaken,
            400,
            HOST_BUSY,
            id="400 busy",
        ),
        pytest.param(
            envelope_error(400, "BadRequestException", TEAM_BUSY),
            CalcomSlotTaken,
            400,
            TEAM_BUSY,
            id="400 team busy",
        ),
        pytest.param(
            plain_error(409, "booking_conflict_error"),
            CalcomSlotTaken,
            409,
            "booking_conflict_error",
            id="409 race",
        ),
        pytest.param(
            envelope_error(422, "UnprocessableEntityException", "Can't reserve a slot if the event is already booked."),
            CalcomSlotTaken,
            422,
            "already booked",
            id="422 reservation over a booking",
        ),
        pytest.param(
            envelope_error(
                422,
                "UnprocessableEntityException",
                "This time slot is already reserved by another user. Please choose a different time.",
            ),
            CalcomSlotTaken,
            422,
            "already reserved",
            id="422 reservation over a reservation",
        ),
        pytest.param(
            plain_error(400, "Cancellation reason is required when you are the host"),
            CalcomRejected,
            400,
            "Cancellation reason is required when you are the host",
            id="400 plain reason",
        ),
        pytest.param(
            plain_error(400, "This booking has already been cancelled."),
            CalcomAlreadyCancelled,
            400,
            "already been cancelled",
            id="400 plain twice",
        ),
        pytest.param(
            envelope_error(400, "BadRequestException", ALREADY_CANCELLED_V2),
            CalcomAlreadyCancelled,
            400,
            "because it has been cancelled already",
            id="400 envelope twice",
        ),
        pytest.param(NEST_LIST, CalcomRejected, 400, "start must be a date; x is bad", id="400 plain list"),
        pytest.param(
            VALIDATION_PIPE,
            CalcomRejected,
            400,
            "Bad Request Exception; email must be an email",
            id="400 pipe",
        ),
        pytest.param(
            envelope_error(422, "UnprocessableEntityException", "no hosts"),
            CalcomRejected,
            422,
            "no hosts",
            id="422",
        ),
        pytest.param(
            envelope_error(401, "UnauthorizedException", "CustomThrottlerGuard - Invalid API Key"),
            CalcomAuthError,
            401,
            "Invalid API Key",
            id="401",
        ),
        pytest.param(
            envelope_error(403, "ForbiddenException", "not yours"),
            CalcomForbidden,
            403,
            "the API key itself works",
            id="403 other",
        ),
        pytest.param(
            plain_error(403, "Cannot use this email to create the booking."),
            CalcomEmailBlocked,
            403,
            "ask the caller for another one",
            id="403 blocked e-mail",
        ),
        pytest.param(
            envelope_error(403, "ForbiddenException", NOT_AUTHORIZED_TO_BOOK),
            CalcomBookingRestricted,
            403,
            "owner's API key",
            id="403 booking requires authentication",
        ),
        pytest.param(
            plain_error(403, "Rescheduling is not allowed within the minimum notice period before the event"),
            CalcomRescheduleTooLate,
            403,
            "minimum reschedule notice",
            id="403 reschedule notice",
        ),
        pytest.param(
            envelope_error(404, "NotFoundException", "Booking with uid=abc was not found in the database"),
            CalcomNotFound,
            404,
            "uid=abc was not found",
            id="404",
        ),
        pytest.param(
            plain_error(500, "Internal server error"),
            CalcomUnavailable,
            500,
            "Internal server error",
            id="500",
        ),
        pytest.param(
            httpx2.Response(502, text="<html>Bad gateway</html>"),
            CalcomUnavailable,
            502,
            "Bad Gateway",
            id="502 html",
        ),
    ],
)
async def test_each_error_answer_becomes_its_domain_error_with_cal_coms_words(
    answer: httpx2.Response, error: type[CalcomError], status: int, cal_com_said: str
) -> None:
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(CalcomError) as caught:
            await client.create_booking(BookingRequest(start=START, event_type_id=123, **ATTENDEE))
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.status == status
    assert cal_com_said in caught.value.message


async def test_a_rate_limited_answer_says_how_many_seconds_until_the_window_resets() -> None:
    answer = envelope_error(
        429,
        "ThrottlerException",
        "CustomThrottlerGuard - Too many requests. Please try again later.",
        **{
            "X-RateLimit-Limit-Default": "120",
            "X-RateLimit-Remaining-Default": "0",
            "X-RateLimit-Reset-Default": "42",
        },
    )
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(CalcomRateLimited) as caught:
            await client.me()
        assert client.last_rate_limit == RateLimit(limit=120, remaining=0, reset_seconds=42)
    assert (caught.value.retry_after, caught.value.status, caught.value.retryable) == (42, 429, True)


async def test_a_rate_limited_answer_without_headers_has_no_retry_hint() -> None:
    async with client_for(Recorder(envelope_error(429, "ThrottlerException", "Too many"))) as client:
        with pytest.raises(CalcomRateLimited) as caught:
            await client.me()
    assert caught.value.retry_after is None


async def test_the_rate_limit_is_read_from_every_answer_and_kept_when_one_has_none() -> None:
    def limited(remaining: int) -> httpx2.Response:
        headers = {
            "x-ratelimit-limit-default": "120",
            "x-ratelimit-remaining-default": str(remaining),
            "x-ratelimit-reset-default": "60",
        }
        return httpx2.Response(200, json={"status": "success", "data": me_json()}, headers=headers)

    recorder = Recorder(limited(119), limited(118), success(me_json()), plain_error(500, "boom"))
    async with client_for(recorder) as client:
        assert client.last_rate_limit is None
        await client.me()
        assert client.last_rate_limit == RateLimit(limit=120, remaining=119, reset_seconds=60)
        await client.me()
        assert client.last_rate_limit == RateLimit(limit=120, remaining=118, reset_seconds=60)
        await client.me()
        with pytest.raises(CalcomUnavailable):
            await client.me()
        assert client.last_rate_limit == RateLimit(limit=120, remaining=118, reset_seconds=60)


async def test_with_several_named_limits_the_tightest_one_is_reported() -> None:
    headers = {
        "X-RateLimit-Limit-Default": "120",
        "X-RateLimit-Remaining-Default": "100",
        "X-RateLimit-Reset-Default": "30",
        "X-RateLimit-Limit-Burst": "10",
        "X-RateLimit-Remaining-Burst": "2",
        "X-RateLimit-Reset-Burst": "5",
    }
    answer = httpx2.Response(200, json={"status": "success", "data": me_json()}, headers=headers)
    async with client_for(Recorder(answer)) as client:
        await client.me()
        assert client.last_rate_limit == RateLimit(limit=10, remaining=2, reset_seconds=5)


def raising(exc: Exception) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "write_may_have_landed"),
    [
        (httpx2.ConnectTimeout("timed out"), False),
        (httpx2.ReadTimeout("timed out"), True),
        (httpx2.ConnectError("refused"), False),
    ],
    ids=["connect timeout", "read timeout", "connection refused"],
)
async def test_timeouts_and_connection_failures_are_unavailable_and_a_write_that_may_have_landed_says_so(
    exc: Exception, write_may_have_landed: bool
) -> None:
    async with client_for(Recorder(raising(exc))) as client:
        with pytest.raises(CalcomUnavailable) as on_read:
            await client.get_booking("abc")
        with pytest.raises(CalcomUnavailable) as on_write:
            await client.create_booking(BookingRequest(start=START, event_type_id=123, **ATTENDEE))
    assert on_read.value.retryable and on_read.value.status is None
    assert not on_read.value.outcome_unknown
    assert "look it up before retrying" not in on_read.value.message
    # A connection that was never made carried no request, so nothing was booked.
    assert on_write.value.outcome_unknown is write_may_have_landed
    assert on_write.value.retryable is not write_may_have_landed
    assert ("look it up before retrying" in on_write.value.message) is write_may_have_landed


@pytest.mark.parametrize(
    ("answer", "call"),
    [
        pytest.param(httpx2.Response(200, text="<html>maintenance</html>"), "me", id="not json"),
        pytest.param(httpx2.Response(200, json={"status": "error", "data": me_json()}), "me", id="error status"),
        pytest.param(httpx2.Response(200, json=me_json()), "me", id="no envelope"),
        pytest.param(success({"id": 7}), "me", id="profile fields missing"),
        pytest.param(success({"2050-09-05": ["2050-09-05T07:00:00.000Z"]}), "slots", id="slots as strings"),
        pytest.param(success(["2050-09-05T07:00:00.000Z"]), "slots", id="slots as a list"),
        pytest.param(success(booking_json(uid=None)), "get_booking", id="booking without uid"),
        pytest.param(success(booking_json(start="2050-09-05T07:00:00")), "get_booking", id="naive start"),
        pytest.param(success(booking_json(status="done")), "get_booking", id="unknown status"),
        pytest.param(success([]), "get_booking", id="empty series"),
        pytest.param(success([booking_json()]), "list_bookings", id="list without pagination"),
        pytest.param(success({"id": 1}), "event_types", id="event types not a list"),
    ],
)
async def test_an_unreadable_success_answer_is_reported_as_unavailable_not_a_crash(
    answer: httpx2.Response, call: str
) -> None:
    calls: dict[str, Callable[[CalcomClient], Any]] = {
        "me": lambda c: c.me(),
        "slots": lambda c: c.slots(123, START, START + timedelta(days=1)),
        "get_booking": lambda c: c.get_booking("abc"),
        "list_bookings": lambda c: c.list_bookings(),
        "event_types": lambda c: c.event_types("host"),
    }
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(CalcomUnavailable, match="could not read") as caught:
            await calls[call](client)
    assert caught.value.status == 200


async def test_the_api_key_appears_in_no_error_message_and_not_in_the_repr() -> None:
    echoes = Recorder(
        envelope_error(401, "UnauthorizedException", f"ApiAuthStrategy - api key {API_KEY} is not valid"),
        plain_error(400, f"bad key {API_KEY}"),
        plain_error(500, f"crash with Bearer {API_KEY}"),
        raising(httpx2.ConnectError(f"failed for {API_KEY}")),
    )
    messages = []
    async with client_for(echoes) as client:
        assert API_KEY not in repr(client)
        for _ in range(4):
            with pytest.raises(CalcomError) as caught:
                await client.me()
            messages.append(str(caught.value))
            messages.append(repr(caught.value))
    assert all(API_KEY not in message for message in messages), messages
    assert all("[redacted]" in message for message in messages[::2])


async def test_one_shared_transport_serves_every_call_and_is_closed_with_the_client() -> None:
    class ClosingTransport(httpx2.MockTransport):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    recorder = Recorder(success(me_json()))
    transport = ClosingTransport(recorder)
    async with CalcomClient(API_KEY, "https://cal.test/v2/", transport=transport) as client:
        await client.me()
        await client.me()
        assert not transport.closed
    assert transport.closed
    assert [str(r.url) for r in recorder.requests] == ["https://cal.test/v2/me"] * 2


# --- against the sandbox, which follows Cal.com's source (NOTES §12) -------------------------------


async def test_cancelling_twice_in_the_sandbox_is_already_cancelled_in_its_v2_envelope(sandbox: RunningSandbox) -> None:
    request = BookingRequest(
        start=_next_weekday_0900(sandbox), event_type_id=sandbox.state.default_event_type_id, **ATTENDEE
    )
    async with CalcomClient(sandbox.api_key, sandbox.base_url) as client:
        booking = await client.create_booking(request)
        await client.cancel_booking(booking.uid, "Ill")
        with pytest.raises(CalcomAlreadyCancelled) as caught:
            await client.cancel_booking(booking.uid, "Ill")
    assert caught.value.status == 400 and "because it has been cancelled already" in caught.value.message


async def test_a_blocked_attendee_email_in_the_sandbox_is_its_own_error_not_a_refused_key(
    sandbox: RunningSandbox,
) -> None:
    sandbox.state.blocked_emails.add(ATTENDEE["attendee_email"].lower())
    request = BookingRequest(
        start=_next_weekday_0900(sandbox), event_type_id=sandbox.state.default_event_type_id, **ATTENDEE
    )
    async with CalcomClient(sandbox.api_key, sandbox.base_url) as client:
        with pytest.raises(CalcomEmailBlocked) as caught:
            await client.create_booking(request)
    assert caught.value.code == "calcom_email_blocked" and not isinstance(caught.value, CalcomAuthError)
    assert sandbox.state.bookings == {}


def _next_weekday_0900(sandbox: RunningSandbox) -> datetime:
    """09:00 in the host's zone on a weekday at least two days ahead: inside working hours, past the notice."""
    zone = ZoneInfo(sandbox.state.host.time_zone)
    day = (datetime.now(zone) + timedelta(days=2)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=zone).astimezone(UTC)
