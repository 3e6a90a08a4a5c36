"""The Cal.com API v2 sandbox over real loopback HTTP, checked against Cal.com's own OpenAPI document.

The clock is frozen at Monday 2030-10-28 12:00Z (08:00 in New York, still on summer time), so every
test sees the same calendar whatever today's date is. New York leaves summer time on Sunday
2030-11-03: 09:00 local is 13:00Z before and 14:00Z after.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from calcom_sandbox import RunningSandbox, SandboxState, run_sandbox
from calcom_spec import validate_response

NOW = datetime(2030, 10, 28, 12, 0, tzinfo=UTC)
TUE_0900 = "2030-10-29T13:00:00Z"  # 09:00 in New York (EDT)
TUE_0930 = "2030-10-29T13:30:00Z"
TUE_1000 = "2030-10-29T14:00:00Z"
MON_0900 = "2030-11-04T14:00:00Z"  # 09:00 in New York (EST)

BOOKINGS = {"cal-api-version": "2024-08-13"}
SLOTS = {"cal-api-version": "2024-09-04"}
EVENT_TYPES = {"cal-api-version": "2024-06-14"}

CONSULTATION, QUICK_CALL, DEMO, VISIT, INTRO, FLEXIBLE = 1001, 1002, 1003, 1004, 1005, 1006
MSG_TAKEN = "User either already has booking at this time or is not available"
BASE58_UID = re.compile(r"[1-9a-km-zA-HJ-NP-Z]{22}")


class Clock:
    """A frozen clock that a test can move forward."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@asynccontextmanager
async def opened(state: SandboxState | None = None) -> AsyncIterator[tuple[RunningSandbox, httpx2.AsyncClient]]:
    """A sandbox on a frozen clock and a client that sends its API key."""
    world = state if state is not None else SandboxState(now=Clock(NOW))
    async with run_sandbox(world) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.api_key}"}
        async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=auth, timeout=10) as client:
            yield sandbox, client


def success(response: httpx2.Response, method: str, template: str, status: int = 200) -> Any:
    """The `data` of a success, after checking the status, the spec and the request id."""
    assert response.status_code == status, response.text
    body = response.json()
    validate_response(method, template, status, body)
    assert body["status"] == "success"
    assert response.headers["X-Request-Id"]
    return body["data"]


def refused(response: httpx2.Response, status: int, code: str) -> str:
    """The message of a v2 envelope error, after checking its shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["timestamp"] and body["path"].startswith("/v2/")
    assert body["error"]["code"] == code
    details = body["error"]["details"]
    # A 429's details is the throttler's string itself (NOTES §12.11); others are Nest's response body.
    assert (details if status == 429 else details["message"]) == body["error"]["message"]
    assert response.headers["X-Request-Id"]
    return str(body["error"]["message"])


def plain_error(response: httpx2.Response, status: int) -> str:
    """The message of Cal.com's plain Nest error body, which carries nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "message"} and body["statusCode"] == status
    return str(body["message"])


def booking_body(start: str, event_type_id: int = CONSULTATION, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "start": start,
        "eventTypeId": event_type_id,
        "attendee": {"name": "Ana Ruiz", "email": "ana@example.com", "timeZone": "Europe/Madrid"},
    }
    body.update(overrides)
    return body


async def book(client: httpx2.AsyncClient, start: str, event_type_id: int = CONSULTATION, **overrides: Any) -> Any:
    response = await client.post("/v2/bookings", json=booking_body(start, event_type_id, **overrides), headers=BOOKINGS)
    return success(response, "POST", "/v2/bookings", 201)


async def slot_starts(client: httpx2.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v2/slots", params=params, headers=SLOTS)
    data = success(response, "GET", "/v2/slots")
    return [slot["start"] for day in data.values() for slot in day]


# --- routing, auth, rate limits -------------------------------------------------------------------


async def test_me_answers_the_host_with_or_without_a_version_header() -> None:
    async with opened() as (sandbox, client):
        for headers in ({}, BOOKINGS, {"cal-api-version": "2099-01-01"}):
            me = success(await client.get("/v2/me", headers=headers), "GET", "/v2/me")
            assert me["username"] == "host" and me["timeZone"] == "America/New_York"
            assert me["id"] == sandbox.state.host.id


@pytest.mark.parametrize(
    ("path", "right"),
    [("/v2/slots", SLOTS), ("/v2/bookings", BOOKINGS), ("/v2/event-types", EVENT_TYPES)],
)
async def test_each_family_answers_only_its_own_api_version(path: str, right: dict[str, str]) -> None:
    async with opened() as (_, client):
        params = {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29"} if path == "/v2/slots" else {}
        assert (await client.get(path, params=params, headers=right)).status_code == 200
        for wrong in ({}, {"cal-api-version": "2024-04-15"}, {"cal-api-version": "2099-01-01"}, BOOKINGS, SLOTS):
            if wrong == right:
                continue
            response = await client.get(path, params=params, headers=wrong)
            message = refused(response, 404, "NotFoundException")
            assert message.startswith(f"Cannot GET {path}")


async def test_an_unknown_path_or_method_is_nests_cannot_get_404() -> None:
    async with opened() as (_, client):
        assert refused(await client.get("/v2/nothing"), 404, "NotFoundException") == "Cannot GET /v2/nothing"
        response = await client.delete("/v2/me")
        assert refused(response, 404, "NotFoundException") == "Cannot DELETE /v2/me"


async def test_auth_only_routes_without_a_key_are_a_401_envelope() -> None:
    async with opened() as (sandbox, _), httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
        for response in (
            await anonymous.get("/v2/me"),
            await anonymous.get("/v2/bookings", headers=BOOKINGS),
        ):
            assert refused(response, 401, "UnauthorizedException").startswith(
                "ApiAuthStrategy - No authentication method provided"
            )
        # Slots need no key at all.
        params = {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29"}
        assert (await anonymous.get("/v2/slots", params=params, headers=SLOTS)).status_code == 200


async def test_an_unknown_api_key_is_refused_by_the_throttler_guard_on_every_route() -> None:
    async with opened() as (sandbox, _):
        wrong = {"Authorization": "Bearer cal_live_not_the_key"}
        async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=wrong) as client:
            params = {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29"}
            for response in (
                await client.get("/v2/me"),
                await client.get("/v2/slots", params=params, headers=SLOTS),
            ):
                assert refused(response, 401, "UnauthorizedException") == "CustomThrottlerGuard - Invalid API Key"


async def test_rate_limit_headers_count_down_and_the_request_over_the_limit_is_blocked_a_minute() -> None:
    clock = Clock(NOW)
    async with opened(SandboxState(now=clock, rate_limit=3)) as (_, client):
        remaining = []
        for _ in range(3):
            response = await client.get("/v2/me")
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit-Default"] == "3"
            assert response.headers["X-RateLimit-Reset-Default"] == "60"
            assert "Retry-After" not in response.headers
            remaining.append(response.headers["X-RateLimit-Remaining-Default"])
        assert remaining == ["2", "1", "0"]

        over = await client.get("/v2/me")
        message = refused(over, 429, "ThrottlerException")
        assert message == "CustomThrottlerGuard - Too many requests. Please try again later."
        assert over.headers["X-RateLimit-Remaining-Default"] == "0"

        clock.advance(seconds=59)  # the window is over, the block is not
        blocked = await client.get("/v2/me")
        assert blocked.status_code == 429
        assert blocked.headers["X-RateLimit-Reset-Default"] == "1"
        clock.advance(seconds=2)
        again = await client.get("/v2/me")
        assert again.status_code == 200
        assert again.headers["X-RateLimit-Remaining-Default"] == "2"


async def test_an_unexpected_failure_is_a_plain_500() -> None:
    async def explode() -> None:
        raise RuntimeError("disk on fire")

    state = SandboxState(now=Clock(NOW))
    state.before_insert = explode
    async with opened(state) as (_, client):
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS)
        assert plain_error(response, 500) == "Internal server error"


async def test_run_sandbox_reports_its_real_port_and_stops_listening_on_exit() -> None:
    async with run_sandbox() as sandbox:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.base_url)
        assert not sandbox.base_url.endswith(":0")
        assert sandbox.api_key.startswith("cal_sandbox_")
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as client:
            info = (await client.get("/_sandbox/info")).json()["data"]
    assert info["apiKey"] == sandbox.api_key
    assert info["defaultEventTypeId"] == CONSULTATION
    assert {t["slug"]: t["id"] for t in info["eventTypes"]}["intro-call"] == INTRO
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as client:
            await client.get("/_sandbox/info")


# --- event types ----------------------------------------------------------------------------------


async def test_event_types_for_the_host_carry_cal_coms_field_names() -> None:
    async with opened() as (sandbox, client):
        response = await client.get("/v2/event-types", params={"username": "host"}, headers=EVENT_TYPES)
        types = _event_types_data(response)
        by_slug = {t["slug"]: t for t in types}
        assert [t["id"] for t in types] == [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008]
        assert by_slug["consultation"]["lengthInMinutes"] == 30
        assert by_slug["consultation"]["locations"] == [{"type": "integration", "integration": "cal-video"}]
        assert by_slug["quick-call"]["locations"][0]["integration"] == "zoom"
        assert by_slug["product-demo"]["beforeEventBuffer"] == by_slug["product-demo"]["afterEventBuffer"] == 10
        assert by_slug["in-person-visit"]["locations"][0]["type"] == "address"
        assert by_slug["intro-call"]["confirmationPolicy"] == {
            "type": "always",
            "blockUnconfirmedBookingsInBooker": False,
        }
        assert by_slug["consultation"]["confirmationPolicy"] == {"disabled": True}
        assert not any("requiresConfirmation" in t for t in types)
        assert by_slug["flexible-session"]["lengthInMinutesOptions"] == [15, 30, 60]
        assert "lengthInMinutesOptions" not in by_slug["consultation"]
        assert by_slug["consultation"]["users"][0]["username"] == "host"
        assert all(t["ownerId"] == sandbox.state.host.id for t in types)
        assert sandbox.state.event_type_id("product-demo") == DEMO

        one = await client.get(
            "/v2/event-types", params={"username": "host", "eventSlug": "quick-call"}, headers=EVENT_TYPES
        )
        assert [t["id"] for t in _event_types_data(one)] == [QUICK_CALL]
        other = await client.get("/v2/event-types", params={"username": "someone"}, headers=EVENT_TYPES)
        assert _event_types_data(other) == []


async def test_event_types_without_username_are_the_callers_own_unless_the_old_behaviour_is_chosen() -> None:
    async with opened() as (sandbox, client):
        mine = _event_types_data(await client.get("/v2/event-types", headers=EVENT_TYPES))
        assert len(mine) == len(sandbox.state.event_types)
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            assert _event_types_data(await anonymous.get("/v2/event-types", headers=EVENT_TYPES)) == []
    async with opened(SandboxState(now=Clock(NOW), event_types_need_username=True)) as (_, client):
        assert _event_types_data(await client.get("/v2/event-types", headers=EVENT_TYPES)) == []


DEFAULT_FIELD_SLUGS = frozenset({"name", "email", "title", "notes", "guests", "rescheduleReason"})


def _event_types_data(response: httpx2.Response) -> list[dict[str, Any]]:
    """`data`, after checking the status and the whole body against the spec, booking fields included."""
    assert response.status_code == 200, response.text
    body = response.json()
    validate_response("GET", "/v2/event-types", 200, body)
    for event_type in body["data"]:
        fields = event_type["bookingFields"]
        assert [f["slug"] for f in fields][:2] == ["name", "email"]
        assert all(isinstance(f["required"], bool) for f in fields)
        assert all(f["isDefault"] is (f["slug"] in DEFAULT_FIELD_SLUGS) for f in fields)
    return list(body["data"])


async def test_a_booking_field_whose_is_default_is_not_a_boolean_fails_the_spec() -> None:
    async with opened() as (_, client):
        body = (await client.get("/v2/event-types", params={"username": "host"}, headers=EVENT_TYPES)).json()
    validate_response("GET", "/v2/event-types", 200, body)
    notes = next(f for f in body["data"][0]["bookingFields"] if f["slug"] == "notes")
    notes["isDefault"] = "yes"
    with pytest.raises(AssertionError, match="isDefault"):
        validate_response("GET", "/v2/event-types", 200, body)


# --- slots ----------------------------------------------------------------------------------------


async def test_slots_are_keyed_by_local_date_with_the_zones_offset_or_z_without_a_zone() -> None:
    async with opened() as (_, client):
        params: dict[str, Any] = {"eventTypeId": CONSULTATION, "start": "2030-10-29", "end": "2030-10-29"}
        local = success(
            await client.get("/v2/slots", params={**params, "timeZone": "Europe/Madrid"}, headers=SLOTS),
            "GET",
            "/v2/slots",
        )
        assert list(local) == ["2030-10-29"]
        assert local["2030-10-29"][0] == {"start": "2030-10-29T14:00:00.000+01:00"}
        utc = success(await client.get("/v2/slots", params=params, headers=SLOTS), "GET", "/v2/slots")
        assert utc["2030-10-29"][0] == {"start": "2030-10-29T13:00:00.000Z"}
        assert utc["2030-10-29"][-1] == {"start": "2030-10-29T20:30:00.000Z"}  # 16:30, the last to end by 17:00
        assert len(utc["2030-10-29"]) == 16


async def test_slots_follow_working_hours_and_skip_the_weekend() -> None:
    async with opened() as (_, client):
        starts = await slot_starts(
            client,
            eventTypeId=CONSULTATION,
            start="2030-11-01",
            end="2030-11-04T23:00:00Z",
            timeZone="America/New_York",
        )
        days = sorted({s[:10] for s in starts})
        assert days == ["2030-11-01", "2030-11-04"]
        assert all("T09:00" <= s[10:16] <= "T16:30" for s in starts)


async def test_the_same_local_hours_move_in_utc_across_the_end_of_summer_time() -> None:
    async with opened() as (_, client):
        friday = await slot_starts(client, eventTypeId=CONSULTATION, start="2030-11-01", end="2030-11-01")
        monday = await slot_starts(client, eventTypeId=CONSULTATION, start="2030-11-04", end="2030-11-04")
        assert friday[0] == "2030-11-01T13:00:00.000Z"
        assert monday[0] == "2030-11-04T14:00:00.000Z"
        zoned = await slot_starts(
            client, eventTypeId=CONSULTATION, start="2030-11-01", end="2030-11-04", timeZone="America/New_York"
        )
        assert "2030-11-01T09:00:00.000-04:00" in zoned and "2030-11-04T09:00:00.000-05:00" in zoned


async def test_slots_start_after_the_minimum_notice_and_never_in_the_past() -> None:
    clock = Clock(NOW)  # Monday 08:00 in New York
    async with opened(SandboxState(now=clock)) as (_, client):
        today = {"start": "2030-10-28", "end": "2030-10-28", "timeZone": "America/New_York"}
        consult = await slot_starts(client, eventTypeId=CONSULTATION, **today)
        assert consult[0] == "2030-10-28T09:00:00.000-04:00"  # 60 minutes of notice
        visit = await slot_starts(client, eventTypeId=VISIT, **today)
        assert visit[0] == "2030-10-28T12:00:00.000-04:00"  # 4 hours of notice, on its 45-minute grid
        clock.advance(hours=6, minutes=10)  # 14:10 local
        later = await slot_starts(client, eventTypeId=CONSULTATION, **today)
        assert later[0] == "2030-10-28T15:30:00.000-04:00"
        clock.advance(hours=3)  # 17:10 local: nothing left today
        assert await slot_starts(client, eventTypeId=CONSULTATION, **today) == []


async def test_booked_times_and_their_buffers_are_not_offered() -> None:
    async with opened() as (_, client):
        await book(client, TUE_1000, DEMO)  # 10:00-11:00 local, busy 09:50-11:10 with its buffers
        day = {"start": "2030-10-29", "end": "2030-10-29", "timeZone": "America/New_York"}
        consult = [s[11:16] for s in await slot_starts(client, eventTypeId=CONSULTATION, **day)]
        assert consult[:3] == ["09:00", "11:30", "12:00"]
        demos = [s[11:16] for s in await slot_starts(client, eventTypeId=DEMO, **day)]
        assert demos[:2] == ["12:00", "13:00"]  # 09:00 and 11:00 would touch the buffers


async def test_range_format_and_duration_pick_the_length_of_a_multi_length_type() -> None:
    async with opened() as (_, client):
        params: dict[str, Any] = {
            "eventTypeId": FLEXIBLE,
            "start": "2030-10-29",
            "end": "2030-10-29",
            "format": "range",
        }
        for duration, first_end, count in ((None, "13:30", 16), (60, "14:00", 8), (15, "13:15", 32)):
            query = params if duration is None else {**params, "duration": duration}
            data = success(await client.get("/v2/slots", params=query, headers=SLOTS), "GET", "/v2/slots")
            day = data["2030-10-29"]
            assert day[0] == {"start": "2030-10-29T13:00:00.000Z", "end": f"2030-10-29T{first_end}:00.000Z"}
            assert len(day) == count
        # Cal.com uses `duration || length` unchecked (NOTES §12.13): 45 minutes is not an option, yet answered.
        data = success(
            await client.get("/v2/slots", params={**params, "duration": 45}, headers=SLOTS), "GET", "/v2/slots"
        )
        assert data["2030-10-29"][0] == {"start": "2030-10-29T13:00:00.000Z", "end": "2030-10-29T13:45:00.000Z"}


async def test_slots_look_up_an_event_type_by_slug_and_username() -> None:
    async with opened() as (_, client):
        by_slug = await slot_starts(
            client, eventTypeSlug="quick-call", username="host", start="2030-10-29", end="2030-10-29"
        )
        assert len(by_slug) == 32  # 15-minute grid over eight hours
        nobody = await client.get(
            "/v2/slots",
            params={"eventTypeSlug": "quick-call", "username": "nobody", "start": "2030-10-29", "end": "2030-10-29"},
            headers=SLOTS,
        )
        assert refused(nobody, 404, "NotFoundException") == "User with username nobody not found"
        missing = await client.get(
            "/v2/slots", params={"eventTypeId": 9, "start": "2030-10-29", "end": "2030-10-29"}, headers=SLOTS
        )
        assert refused(missing, 404, "NotFoundException") == "Event Type not found"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"eventTypeId": "1001", "username": "host", "start": "2030-10-29", "end": "2030-10-29"},
            "username property is wrong,property username should not exist ",
        ),
        (
            {"eventTypeId": "1001", "startTime": "2030-10-29", "start": "2030-10-29", "end": "2030-10-29"},
            "startTime property is wrong,property startTime should not exist ",
        ),
        (
            {"eventTypeId": "1001", "start": "2030-10-29"},
            "end property is wrong,end must be a valid ISO 8601 date string ",
        ),
        (
            {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29", "timeZone": "Mars/Base"},
            "timeZone property is wrong,timeZone must be a valid IANA time-zone ",
        ),
        (
            {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29", "format": "list"},
            "format property is wrong,slotFormat must be either 'range' or 'time' ",
        ),
    ],
)
async def test_slots_refuse_unknown_or_mixed_parameters_with_a_flat_400(params: dict[str, str], message: str) -> None:
    async with opened() as (_, client):
        response = await client.get("/v2/slots", params=params, headers=SLOTS)
        assert refused(response, 400, "BadRequestException") == message


async def test_a_midnight_end_widens_to_the_end_of_that_utc_day() -> None:
    async with opened() as (_, client):
        starts = await slot_starts(
            client, eventTypeId=CONSULTATION, start="2030-10-29T00:00:00Z", end="2030-10-29T00:00:00Z"
        )
        assert starts[0] == "2030-10-29T13:00:00.000Z" and starts[-1] == "2030-10-29T20:30:00.000Z"
        narrow = await slot_starts(client, eventTypeId=CONSULTATION, start=TUE_0900, end="2030-10-29T14:00:00Z")
        assert narrow == ["2030-10-29T13:00:00.000Z", "2030-10-29T13:30:00.000Z", "2030-10-29T14:00:00.000Z"]


async def test_slots_for_a_reschedule_offer_the_bookings_own_time() -> None:
    async with opened() as (_, client):
        booking = await book(client, TUE_0900)
        day = {"eventTypeId": CONSULTATION, "start": "2030-10-29", "end": "2030-10-29"}
        assert "2030-10-29T13:00:00.000Z" not in await slot_starts(client, **day)
        own = await slot_starts(client, **day, bookingUidToReschedule=booking["uid"])
        assert own[0] == "2030-10-29T13:00:00.000Z"


# --- creating bookings ----------------------------------------------------------------------------


async def test_a_booking_comes_back_as_a_full_booking_output() -> None:
    async with opened() as (sandbox, client):
        booking = await book(
            client,
            TUE_0900,
            guests=["bob@example.com"],
            metadata={"crmId": "42"},
            bookingFieldsResponses={"notes": "first visit"},
        )
        assert BASE58_UID.fullmatch(booking["uid"])
        assert booking["title"] == "Consultation between Sandbox Host and Ana Ruiz"
        assert booking["status"] == "accepted"
        assert (booking["start"], booking["end"], booking["duration"]) == (
            "2030-10-29T13:00:00.000Z",
            "2030-10-29T13:30:00.000Z",
            30,
        )
        assert booking["eventTypeId"] == CONSULTATION
        assert booking["eventType"] == {"id": CONSULTATION, "slug": "consultation"}
        assert booking["hosts"][0]["username"] == "host"
        assert booking["attendees"][0] == {
            "name": "Ana Ruiz",
            "email": "ana@example.com",
            "timeZone": "Europe/Madrid",
            "language": "en",
            "absent": False,
        }
        assert booking["guests"] == ["bob@example.com"]
        assert booking["metadata"] == {"crmId": "42"}
        assert booking["description"] == "first visit"
        assert booking["bookingFieldsResponses"]["notes"] == "first visit"
        assert booking["createdAt"] == booking["updatedAt"] == "2030-10-28T12:00:00.000Z"
        assert booking["icsUid"] and booking["absentHost"] is False
        assert booking["cancellationReason"] == booking["cancelledByEmail"] == ""
        stored = sandbox.state.bookings[booking["uid"]]
        assert stored.status == "accepted" and stored.id == booking["id"]

        fetched = await client.get(f"/v2/bookings/{booking['uid']}", headers=BOOKINGS)
        assert success(fetched, "GET", "/v2/bookings/{bookingUid}") == booking


@pytest.mark.parametrize(
    ("event_type_id", "start", "link"),
    [
        (CONSULTATION, TUE_0900, r"https://app\.cal\.com/video/{uid}"),
        (QUICK_CALL, TUE_0900, r"https://zoom\.us/j/\d{{11}}"),
        (DEMO, TUE_1000, r"https://meet\.google\.com/[a-z]{{3}}-[a-z]{{4}}-[a-z]{{3}}"),
        (VISIT, "2030-10-29T13:45:00Z", r"350 Fifth Avenue, New York, NY 10118"),
    ],
)
async def test_each_location_gets_its_kind_of_meeting_url(event_type_id: int, start: str, link: str) -> None:
    async with opened() as (_, client):
        booking = await book(client, start, event_type_id)
        assert re.fullmatch(link.format(uid=booking["uid"]), booking["location"])
        assert booking["meetingUrl"] == booking["location"]


async def test_a_booking_by_slug_and_username_and_a_chosen_length() -> None:
    async with opened() as (_, client):
        body = booking_body(TUE_0900, eventTypeSlug="flexible-session", username="host", lengthInMinutes=60)
        del body["eventTypeId"]
        response = await client.post("/v2/bookings", json=body, headers=BOOKINGS)
        booking = success(response, "POST", "/v2/bookings", 201)
        assert (booking["eventTypeId"], booking["duration"], booking["end"]) == (
            FLEXIBLE,
            60,
            "2030-10-29T14:00:00.000Z",
        )


async def test_a_phone_only_attendee_gets_cal_coms_faux_address_and_no_email() -> None:
    async with opened() as (sandbox, client):
        attendee = {"name": "Phone Only", "phoneNumber": "+14155550100", "timeZone": "America/New_York"}
        booking = await book(client, TUE_0900, attendee=attendee)
        assert booking["attendees"][0]["email"] == "14155550100@sms.cal.com"
        assert booking["attendees"][0]["phoneNumber"] == "+14155550100"
        assert [m.to for m in sandbox.state.outbox] == ["host@example.com"]


async def test_a_type_that_needs_confirmation_books_pending_without_blocking_the_slot() -> None:
    """BookingRepository.ts `_findAllExistingBookingsForEventTypeBetween` (NOTES §12.3): a pending booking is
    busy time only when the event type's policy blocks unconfirmed bookings; the intro call's does not."""
    async with opened() as (_, client):
        booking = await book(client, TUE_0900, INTRO)
        assert booking["status"] == "pending"
        other = await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS)
        assert success(other, "POST", "/v2/bookings", 201)["status"] == "accepted"


async def test_a_taken_or_overlapping_slot_is_a_400_envelope() -> None:
    async with opened() as (_, client):
        await book(client, TUE_0900)
        await book(client, "2030-10-29T15:00:00Z")  # 11:00 local
        bo = {"name": "Bo", "email": "bo@example.com", "timeZone": "UTC"}
        for start, event_type_id in (
            (TUE_0900, CONSULTATION),  # the same time
            ("2030-10-29T13:15:00Z", QUICK_CALL),  # inside it
            (TUE_1000, DEMO),  # 10:00-11:00 is free, but not with the demo's 10-minute buffer after it
        ):
            body = booking_body(start, event_type_id, attendee=bo)
            response = await client.post("/v2/bookings", json=body, headers=BOOKINGS)
            assert refused(response, 400, "BadRequestException") == MSG_TAKEN


async def test_two_creates_that_both_passed_the_availability_check_race_to_a_plain_409() -> None:
    state = SandboxState(now=Clock(NOW))
    barrier = asyncio.Barrier(2)

    async def both_checked() -> None:
        async with asyncio.timeout(5):
            await barrier.wait()

    state.before_insert = both_checked
    async with opened(state) as (sandbox, client):
        first, second = await asyncio.gather(
            client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS),
            client.post(
                "/v2/bookings",
                json=booking_body(TUE_0900, attendee={"name": "Bo", "email": "bo@example.com", "timeZone": "UTC"}),
                headers=BOOKINGS,
            ),
        )
        statuses = sorted((first.status_code, second.status_code))
        assert statuses == [201, 409]
        lost = first if first.status_code == 409 else second
        assert plain_error(lost, 409) == "booking_conflict_error"
        assert len(sandbox.state.bookings) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": "x"}, "title property is wrong,property title should not exist "),
        ({"end": TUE_0930}, "end property is wrong,property end should not exist "),
        ({"start": "tomorrow"}, "start property is wrong,start must be a valid ISO 8601 date string "),
        (
            {"attendee": {"name": "A", "timeZone": "UTC"}},
            "attendee email or phone property is wrong,"
            "Attendee must have at least one contact method (email or phone number) ",
        ),
        (
            {"attendee": {"name": "A", "email": "a@example.com", "timeZone": "Mars/Base"}},
            "attendee property is wrong, timeZone property is wrong,timeZone must be a valid IANA time-zone ",
        ),
        (
            {"attendee": {"email": "a@example.com", "timeZone": "UTC"}},
            "attendee property is wrong, name property is wrong,name must be a string ",
        ),
        (
            {"attendee": {"name": "A", "email": "a@example.com", "timeZone": "UTC", "phone": "1"}},
            "attendee property is wrong, phone property is wrong,property phone should not exist ",
        ),
        ({"eventTypeId": "1001"}, "eventTypeId property is wrong,eventTypeId must be an integer number "),
        (
            {"metadata": {"k" * 41: "v"}},
            "metadata property is wrong,Metadata must have at most 50 keys, each key up to 40 characters, "
            "and string values up to 500 characters. ",
        ),
    ],
)
async def test_a_create_body_cal_com_would_refuse_is_a_flat_400(change: dict[str, Any], message: str) -> None:
    async with opened() as (sandbox, client):
        response = await client.post("/v2/bookings", json={**booking_body(TUE_0900), **change}, headers=BOOKINGS)
        assert refused(response, 400, "BadRequestException") == message
        assert sandbox.state.bookings == {}


async def test_no_event_type_named_is_a_400_and_an_unknown_one_a_404() -> None:
    async with opened() as (_, client):
        body = booking_body(TUE_0900)
        del body["eventTypeId"]
        message = refused(await client.post("/v2/bookings", json=body, headers=BOOKINGS), 400, "BadRequestException")
        assert "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided" in message
        unknown = await client.post("/v2/bookings", json=booking_body(TUE_0900, 42), headers=BOOKINGS)
        assert refused(unknown, 404, "NotFoundException") == "Event type with id 42 not found."


async def test_length_in_minutes_is_only_for_multi_length_types_and_must_be_one_of_them() -> None:
    async with opened() as (_, client):
        single = await client.post("/v2/bookings", json=booking_body(TUE_0900, lengthInMinutes=30), headers=BOOKINGS)
        assert refused(single, 400, "BadRequestException").startswith("Can't specify 'lengthInMinutes'")
        odd = await client.post(
            "/v2/bookings", json=booking_body(TUE_0900, FLEXIBLE, lengthInMinutes=45), headers=BOOKINGS
        )
        assert "not one of the possible lengths" in refused(odd, 400, "BadRequestException")


async def test_a_location_must_be_one_of_the_event_types_and_defaults_to_its_first() -> None:
    async with opened() as (_, client):
        zoom = {"type": "integration", "integration": "zoom"}
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900, location=zoom), headers=BOOKINGS)
        assert "is not one of the locations" in refused(response, 400, "BadRequestException")
        video = {"type": "integration", "integration": "cal-video"}
        booking = await book(client, TUE_0900, location=video)
        assert booking["location"].startswith("https://app.cal.com/video/")


@pytest.mark.parametrize(
    ("start", "event_type_id", "message"),
    [
        ("2030-10-28T11:00:00Z", CONSULTATION, "Attempting to book a meeting in the past."),
        ("2030-10-28T12:30:00Z", CONSULTATION, "too soon"),  # 08:30 local, inside the hour of notice
        ("2030-10-28T15:00:00Z", VISIT, "too soon"),  # 11:00 local, inside the four hours of notice
        ("2030-10-29T13:10:00Z", CONSULTATION, "too soon"),  # 09:10 is not on the slot grid
        ("2030-10-29T12:00:00Z", CONSULTATION, MSG_TAKEN),  # 08:00 local, before working hours
        ("2030-10-29T20:45:00Z", CONSULTATION, MSG_TAKEN),  # would end at 17:15 local
        ("2030-11-02T14:00:00Z", CONSULTATION, MSG_TAKEN),  # Saturday
    ],
)
async def test_a_start_cal_com_would_not_offer_is_refused(start: str, event_type_id: int, message: str) -> None:
    async with opened() as (_, client):
        response = await client.post("/v2/bookings", json=booking_body(start, event_type_id), headers=BOOKINGS)
        assert message in refused(response, 400, "BadRequestException")


# --- reschedule and cancel ------------------------------------------------------------------------


async def test_reschedule_books_a_new_uid_and_cancels_the_old_one() -> None:
    async with opened() as (_, client):
        old = await book(client, TUE_0900)
        response = await client.post(
            f"/v2/bookings/{old['uid']}/reschedule",
            json={"start": TUE_0930, "reschedulingReason": "Running late"},  # overlaps its own old time
            headers=BOOKINGS,
        )
        new = success(response, "POST", "/v2/bookings/{bookingUid}/reschedule", 201)
        assert new["uid"] != old["uid"] and new["id"] != old["id"]
        assert (new["start"], new["status"]) == ("2030-10-29T13:30:00.000Z", "accepted")
        assert new["rescheduledFromUid"] == old["uid"]
        assert new["reschedulingReason"] == "Running late"
        assert new["attendees"] == old["attendees"]

        gone = success(
            await client.get(f"/v2/bookings/{old['uid']}", headers=BOOKINGS), "GET", "/v2/bookings/{bookingUid}"
        )
        assert gone["status"] == "cancelled" and gone["rescheduledToUid"] == new["uid"]

        again = await client.post(f"/v2/bookings/{old['uid']}/reschedule", json={"start": TUE_1000}, headers=BOOKINGS)
        assert refused(again, 400, "BadRequestException") == (
            f"Can't reschedule booking with uid={old['uid']} because it has been cancelled and rescheduled "
            f"already to booking with uid={new['uid']}. You probably want to reschedule {new['uid']} instead by "
            "passing it within the request URL."
        )
        assert "2030-10-29T13:00:00.000Z" in await slot_starts(
            client, eventTypeId=CONSULTATION, start="2030-10-29", end="2030-10-29"
        )


async def test_reschedule_refuses_a_cancelled_booking_a_taken_time_and_unknown_fields() -> None:
    async with opened() as (_, client):
        keep = await book(client, TUE_0900)
        move = await book(client, TUE_1000, attendee={"name": "Bo", "email": "bo@example.com", "timeZone": "UTC"})
        taken = await client.post(f"/v2/bookings/{move['uid']}/reschedule", json={"start": TUE_0900}, headers=BOOKINGS)
        assert refused(taken, 400, "BadRequestException") == MSG_TAKEN
        stray = await client.post(
            f"/v2/bookings/{move['uid']}/reschedule", json={"start": TUE_0930, "end": TUE_1000}, headers=BOOKINGS
        )
        assert refused(stray, 400, "BadRequestException") == "end property is wrong,property end should not exist "
        await client.post(f"/v2/bookings/{keep['uid']}/cancel", json={"cancellationReason": "no"}, headers=BOOKINGS)
        cancelled = await client.post(
            f"/v2/bookings/{keep['uid']}/reschedule", json={"start": TUE_0930}, headers=BOOKINGS
        )
        assert refused(cancelled, 400, "BadRequestException") == (
            f"Can't reschedule booking with uid={keep['uid']} because it has been cancelled. Please provide uid "
            "of a booking that is not cancelled."
        )
        missing = await client.post("/v2/bookings/nope/reschedule", json={"start": TUE_0930}, headers=BOOKINGS)
        assert refused(missing, 404, "NotFoundException") == "Booking with uid=nope was not found in the database"


async def test_the_host_must_give_a_reason_to_cancel_and_cannot_cancel_twice() -> None:
    async with opened() as (sandbox, client):
        booking = await book(client, TUE_0900)
        url = f"/v2/bookings/{booking['uid']}/cancel"
        no_reason = await client.post(url, json={}, headers=BOOKINGS)
        assert plain_error(no_reason, 400) == "Cancellation reason is required when you are the host"
        blank = await client.post(url, json={"cancellationReason": "  "}, headers=BOOKINGS)
        assert plain_error(blank, 400) == "Cancellation reason is required when you are the host"

        done = await client.post(url, json={"cancellationReason": "Client asked"}, headers=BOOKINGS)
        cancelled = success(done, "POST", "/v2/bookings/{bookingUid}/cancel")
        assert cancelled["status"] == "cancelled"
        assert cancelled["cancellationReason"] == "Client asked"
        assert cancelled["cancelledByEmail"] == sandbox.state.host.email

        twice = await client.post(url, json={"cancellationReason": "Again"}, headers=BOOKINGS)
        assert refused(twice, 400, "BadRequestException") == (
            f"Can't cancel booking with uid={booking['uid']} because it has been cancelled already. "
            "Please provide uid of a booking that is not cancelled."
        )
        stray = await client.post(url, json={"reason": "x"}, headers=BOOKINGS)
        assert (
            refused(stray, 400, "BadRequestException") == "reason property is wrong,property reason should not exist "
        )
        # The slot is free again.
        assert (await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS)).status_code == 201


async def test_a_booking_that_has_ended_cannot_be_cancelled() -> None:
    clock = Clock(NOW)
    async with opened(SandboxState(now=clock)) as (_, client):
        booking = await book(client, TUE_0900)
        clock.advance(days=2)
        response = await client.post(
            f"/v2/bookings/{booking['uid']}/cancel", json={"cancellationReason": "Late"}, headers=BOOKINGS
        )
        assert plain_error(response, 400) == "Cannot cancel a booking that has already ended"


async def test_a_reschedule_needs_confirmation_again_unless_the_host_makes_it() -> None:
    """getRequiresConfirmationFlags.ts `isUserReschedulingOwner` (NOTES §12.5): without the host's key the
    new booking is pending again; `rescheduledBy` naming the host makes the owner the rescheduler."""
    async with opened() as (sandbox, client):
        request = await book(client, TUE_0900, INTRO)
        url = f"/v2/bookings/{request['uid']}/reschedule"
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            attempt = await anonymous.post(url, json={"start": TUE_0930}, headers=BOOKINGS)
        by_attendee = success(
            attempt,
            "POST",
            "/v2/bookings/{bookingUid}/reschedule",
            201,
        )
        assert by_attendee["status"] == "pending"
        by_host = success(
            await client.post(
                f"/v2/bookings/{by_attendee['uid']}/reschedule",
                json={"start": TUE_1000, "rescheduledBy": "host@example.com"},
                headers=BOOKINGS,
            ),
            "POST",
            "/v2/bookings/{bookingUid}/reschedule",
            201,
        )
        assert by_host["status"] == "accepted"
        assert by_host["rescheduledByEmail"] == "host@example.com"


async def test_an_attendee_without_the_key_may_cancel_without_a_reason() -> None:
    async with opened() as (sandbox, client):
        booking = await book(client, TUE_0900)
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            response = await anonymous.post(f"/v2/bookings/{booking['uid']}/cancel", headers=BOOKINGS)
        cancelled = success(response, "POST", "/v2/bookings/{bookingUid}/cancel")
        assert cancelled["status"] == "cancelled" and cancelled["cancelledByEmail"] == ""


async def test_an_unknown_booking_uid_is_a_404_envelope() -> None:
    async with opened() as (_, client):
        response = await client.get("/v2/bookings/doesNotExist", headers=BOOKINGS)
        message = refused(response, 404, "NotFoundException")
        assert message == "Booking with uid=doesNotExist was not found in the database"
        assert response.json()["path"] == "/v2/bookings/doesNotExist"


# --- listing --------------------------------------------------------------------------------------


async def test_the_list_filters_exactly_and_paginates() -> None:
    async with opened() as (_, client):
        ana = {"name": "Ana Ruiz", "email": "ana@example.com", "timeZone": "UTC"}
        bo = {"name": "Bo Li", "email": "bo@example.com", "timeZone": "UTC"}
        a1 = await book(client, TUE_0900, attendee=ana)
        b1 = await book(client, TUE_1000, QUICK_CALL, attendee=bo)
        a2 = await book(client, MON_0900, attendee=ana)
        a3 = await book(client, "2030-10-30T13:00:00Z", DEMO, attendee=ana)

        async def listed(**params: Any) -> tuple[list[str], dict[str, Any]]:
            response = await client.get("/v2/bookings", params=params, headers=BOOKINGS)
            assert response.status_code == 200, response.text
            body = response.json()
            validate_response("GET", "/v2/bookings", 200, body)
            return [b["uid"] for b in body["data"]], body["pagination"]

        uids, _ = await listed()
        assert uids == [a1["uid"], b1["uid"], a3["uid"], a2["uid"]]  # ascending by start
        assert (await listed(attendeeEmail="ana@example.com"))[0] == [a1["uid"], a3["uid"], a2["uid"]]
        assert (await listed(attendeeEmail="ana@example"))[0] == []  # exact, not a substring
        assert (await listed(attendeeName="Bo Li"))[0] == [b1["uid"]]
        assert (await listed(bookingUid=a2["uid"]))[0] == [a2["uid"]]
        assert (await listed(eventTypeId=QUICK_CALL))[0] == [b1["uid"]]
        assert (await listed(eventTypeIds=f"{QUICK_CALL},{DEMO}"))[0] == [b1["uid"], a3["uid"]]
        assert (await listed(afterStart="2030-10-30T00:00:00Z"))[0] == [a3["uid"], a2["uid"]]
        assert (await listed(beforeEnd="2030-10-29T23:59:59Z"))[0] == [a1["uid"], b1["uid"]]
        assert (await listed(sortStart="desc"))[0] == [a2["uid"], a3["uid"], b1["uid"], a1["uid"]]

        page, pagination = await listed(take=3, skip=3)
        assert page == [a2["uid"]]
        assert pagination == {
            "totalItems": 4,
            "remainingItems": 0,
            "returnedItems": 1,
            "itemsPerPage": 3,
            "currentPage": 2,
            "totalPages": 2,
            "hasNextPage": False,
            "hasPreviousPage": True,
        }
        first, pagination = await listed(take=2)
        assert first == [a1["uid"], b1["uid"]]
        assert (pagination["remainingItems"], pagination["hasNextPage"], pagination["totalPages"]) == (2, True, 2)


async def test_list_statuses_mean_what_they_mean_in_cal_com() -> None:
    clock = Clock(NOW)
    async with opened(SandboxState(now=clock)) as (_, client):
        done = await book(client, TUE_0900)
        pending = await book(client, TUE_1000, INTRO)
        moved = await book(client, "2030-10-30T13:00:00Z")
        await client.post(f"/v2/bookings/{moved['uid']}/reschedule", json={"start": MON_0900}, headers=BOOKINGS)
        clock.advance(days=1, hours=2)  # Tuesday 10:00 local: the 09:00 booking is over

        async def uids(status: str) -> list[str]:
            response = await client.get("/v2/bookings", params={"status": status}, headers=BOOKINGS)
            return [b["uid"] for b in success(response, "GET", "/v2/bookings")]

        upcoming = await uids("upcoming")
        assert done["uid"] not in upcoming and pending["uid"] in upcoming and len(upcoming) == 2
        assert await uids("past") == [done["uid"]]
        assert await uids("unconfirmed") == [pending["uid"]]
        assert await uids("cancelled") == [moved["uid"]]
        assert await uids("recurring") == []
        assert set(await uids("past,cancelled")) == {done["uid"], moved["uid"]}


async def test_a_bad_list_query_is_the_global_pipes_400() -> None:
    async with opened() as (_, client):
        response = await client.get("/v2/bookings", params={"take": "0", "status": "soon"}, headers=BOOKINGS)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("BadRequestException", "Bad Request Exception")
        errors = error["details"]["errors"]
        assert [e["property"] for e in errors] == ["status", "take"]
        too_many = await client.get("/v2/bookings", params={"take": "251"}, headers=BOOKINGS)
        assert too_many.json()["error"]["details"]["errors"][0]["constraints"] == {
            "max": "take must not be greater than 250"
        }


# --- outbox ---------------------------------------------------------------------------------------


async def test_the_outbox_records_every_email_cal_com_would_send() -> None:
    async with opened() as (sandbox, client):
        booking = await book(client, TUE_0900, guests=["bob@example.com"])
        request = await book(
            client, TUE_1000, INTRO, attendee={"name": "Cy", "email": "cy@example.com", "timeZone": "UTC"}
        )
        moved = success(
            await client.post(f"/v2/bookings/{booking['uid']}/reschedule", json={"start": MON_0900}, headers=BOOKINGS),
            "POST",
            "/v2/bookings/{bookingUid}/reschedule",
            201,
        )
        await client.post(f"/v2/bookings/{moved['uid']}/cancel", json={"cancellationReason": "Ill"}, headers=BOOKINGS)

        async def outbox(**params: str) -> list[tuple[str, str]]:
            data = (await client.get("/_sandbox/outbox", params=params)).json()["data"]
            return [(m["kind"], m["to"]) for m in data]

        everyone = ["ana@example.com", "bob@example.com", "host@example.com"]
        assert await outbox(bookingUid=booking["uid"]) == [("scheduled", to) for to in everyone]
        assert await outbox(bookingUid=request["uid"]) == [
            ("requested", "cy@example.com"),
            ("awaiting_approval", "host@example.com"),
        ]
        assert await outbox(bookingUid=moved["uid"]) == [("rescheduled", to) for to in everyone] + [
            ("cancelled", to) for to in everyone
        ]
        first = (await client.get("/_sandbox/outbox", params={"to": "ana@example.com"})).json()["data"][0]
        assert first["subject"] == (
            "Confirmed: Consultation between Sandbox Host and Ana Ruiz at 14:00 Tuesday, October 29, 2030 "
            "(Europe/Madrid)"
        )
        assert first["at"] == "2030-10-28T12:00:00.000Z"
        assert len(sandbox.state.outbox) == 11
