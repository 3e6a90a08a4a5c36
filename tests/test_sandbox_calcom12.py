"""The sandbox against NOTES §12: Cal.com's behaviour as its own source has it (upstream `dd7b64771`).

Each test names the §12 item and the Cal.com file (under calcom/cal.com) the behaviour comes from.
Items covered elsewhere: §12.6 (test_sandbox.py `test_a_booking_comes_back_as_a_full_booking_output`),
§12.8 (`test_event_types_for_the_host_carry_cal_coms_field_names`), §12.11 (`refused`'s 429 check in
`test_rate_limit_headers_count_down_and_the_request_over_the_limit_is_blocked_a_minute`), §12.12 cancel
payload (test_sandbox_webhooks.py `test_a_cancellation_is_delivered_with_its_reason_and_who_cancelled`),
§12.13 slot durations (`test_range_format_and_duration_pick_the_length_of_a_multi_length_type`).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import httpx2

from calcom_sandbox import SandboxState
from calcom_sandbox.records import BookingField
from test_sandbox import (
    BOOKINGS,
    CONSULTATION,
    EVENT_TYPES,
    INTRO,
    NOW,
    TUE_0900,
    TUE_0930,
    TUE_1000,
    Clock,
    book,
    booking_body,
    opened,
    plain_error,
    refused,
    slot_starts,
    success,
)
from test_sandbox_webhooks import wired

RESCHEDULE = "/v2/bookings/{bookingUid}/reschedule"
CANCEL = "/v2/bookings/{bookingUid}/cancel"


def _already_cancelled(uid: str) -> str:
    return (
        f"Can't cancel booking with uid={uid} because it has been cancelled already. "
        "Please provide uid of a booking that is not cancelled."
    )


def _with_event_type(state: SandboxState, slug: str, **changes: object) -> int:
    """Replace one default event type with a changed copy; its id."""
    for i, et in enumerate(state.event_types):
        if et.slug == slug:
            state.event_types[i] = dataclasses.replace(et, **changes)  # type: ignore[arg-type]
            return et.id
    raise KeyError(slug)


# --- §12.1 cancelling what is already cancelled --------------------------------------------------


async def test_cancelling_a_cancelled_booking_is_a_400_envelope_naming_the_uid() -> None:
    """§12.1, apps/api/v2/src/ee/bookings/2024-08-13/services/input.service.ts `createCancelBookingRequest`
    (PR #22128): the v2 envelope, not handleCancelBooking.ts's old plain text."""
    async with opened() as (_, client):
        booking = await book(client, TUE_0900)
        url = f"/v2/bookings/{booking['uid']}/cancel"
        success(await client.post(url, json={"cancellationReason": "Ill"}, headers=BOOKINGS), "POST", CANCEL)
        twice = await client.post(url, json={"cancellationReason": "Ill"}, headers=BOOKINGS)
        assert refused(twice, 400, "BadRequestException") == _already_cancelled(booking["uid"])


async def test_cancelling_the_old_uid_of_a_rescheduled_booking_points_nowhere_but_the_old_one_says_where_it_went() -> (
    None
):
    """§12.1, input.service.ts: the old uid of a rescheduled booking is cancelled, so it gets the same 400;
    GET of the old uid carries `rescheduledToUid`, the live booking."""
    async with opened() as (_, client):
        old = await book(client, TUE_0900)
        moved = await client.post(f"/v2/bookings/{old['uid']}/reschedule", json={"start": TUE_1000}, headers=BOOKINGS)
        new = success(moved, "POST", RESCHEDULE, 201)
        again = await client.post(
            f"/v2/bookings/{old['uid']}/cancel", json={"cancellationReason": "x"}, headers=BOOKINGS
        )
        assert refused(again, 400, "BadRequestException") == _already_cancelled(old["uid"])
        fetched = success(
            await client.get(f"/v2/bookings/{old['uid']}", headers=BOOKINGS), "GET", "/v2/bookings/{bookingUid}"
        )
        assert (fetched["status"], fetched["rescheduledToUid"]) == ("cancelled", new["uid"])


# --- §12.2 required booking fields ---------------------------------------------------------------


async def test_a_required_question_without_an_answer_is_refused_and_with_one_is_booked() -> None:
    """§12.2, apps/api/v2/src/ee/bookings/2024-08-13/services/bookings.service.ts
    `hasRequiredBookingFieldsResponses`; the field is listed in GET /v2/event-types' `bookingFields`.

    Read without the contract check: the published document types a custom field's `isDefault` as an
    object ("always false"), and Cal.com sends `false`."""
    state = SandboxState(now=Clock(NOW))
    topic = BookingField("topic", "textarea", "What would you like to discuss?", required=True)
    consultation = _with_event_type(state, "consultation", booking_fields=(topic,))
    async with opened(state) as (_, client):
        types = (await client.get("/v2/event-types", headers=EVENT_TYPES)).json()["data"]
        fields = next(t for t in types if t["id"] == consultation)["bookingFields"]
        assert fields[-1] == {
            "isDefault": False,
            "type": "textarea",
            "slug": "topic",
            "label": "What would you like to discuss?",
            "required": True,
            "hidden": False,
            "placeholder": "",
        }
        missing = await client.post("/v2/bookings", json=booking_body(TUE_0900, consultation), headers=BOOKINGS)
        assert refused(missing, 400, "BadRequestException") == "Missing required booking field response: topic"
        answered = await book(client, TUE_0900, consultation, bookingFieldsResponses={"topic": "My tax return"})
        assert answered["bookingFieldsResponses"]["topic"] == "My tax return"


async def test_a_required_phone_field_needs_the_attendees_phone_number() -> None:
    """§12.2, bookings.service.ts `hasRequiredBookingFieldsResponses` (issue #21010): "Missing attendee phone
    number…"; with a phone field shown, the number itself is checked (§12.9)."""
    state = SandboxState(now=Clock(NOW))
    phone = BookingField("attendeePhoneNumber", "phone", "Phone number", required=True)
    consultation = _with_event_type(state, "consultation", booking_fields=(phone,))
    async with opened(state) as (_, client):
        missing = await client.post("/v2/bookings", json=booking_body(TUE_0900, consultation), headers=BOOKINGS)
        assert refused(missing, 400, "BadRequestException").startswith("Missing attendee phone number")
        attendee = {"name": "Ana", "email": "ana@example.com", "timeZone": "UTC", "phoneNumber": "+1 555"}
        bad = await client.post(
            "/v2/bookings", json=booking_body(TUE_0900, consultation, attendee=attendee), headers=BOOKINGS
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_REQUEST"
        attendee["phoneNumber"] = "+12125550123"
        booked = await book(client, TUE_0900, consultation, attendee=attendee)
        assert booked["attendees"][0]["phoneNumber"] == "+12125550123"


# --- §12.3 pending bookings ----------------------------------------------------------------------


async def test_a_pending_booking_blocks_its_slot_only_when_the_policy_says_so() -> None:
    """§12.3, packages/features/bookings/repositories/BookingRepository.ts
    `_findAllExistingBookingsForEventTypeBetween`: PENDING is busy only with `requiresConfirmationWillBlockSlot`."""
    async with opened() as (_, client):
        await book(client, TUE_0900, INTRO)
        assert "2030-10-29T13:00:00.000Z" in await slot_starts(
            client, eventTypeId=INTRO, start="2030-10-29", end="2030-10-29"
        )
    state = SandboxState(now=Clock(NOW))
    _with_event_type(state, "intro-call", block_unconfirmed=True)
    async with opened(state) as (_, client):
        await book(client, TUE_0900, INTRO)
        assert "2030-10-29T13:00:00.000Z" not in await slot_starts(
            client, eventTypeId=INTRO, start="2030-10-29", end="2030-10-29"
        )
        types = success(await client.get("/v2/event-types", headers=EVENT_TYPES), "GET", "/v2/event-types")
        policy = next(t for t in types if t["id"] == INTRO)["confirmationPolicy"]
        assert policy == {"type": "always", "blockUnconfirmedBookingsInBooker": True}


async def test_an_identical_repeat_of_a_pending_request_returns_the_existing_booking() -> None:
    """§12.3, packages/features/bookings/lib/service/RegularBookingService.ts
    `getValidBookingFromEventTypeForAttendee`: same attendee, start and event type: the pending booking, 201."""
    async with opened() as (sandbox, client):
        first = await book(client, TUE_0900, INTRO)
        again = await book(client, TUE_0900, INTRO)
        assert (again["uid"], again["status"]) == (first["uid"], "pending")
        assert len(sandbox.state.bookings) == 1


# --- §12.4 location of a pending booking ---------------------------------------------------------


async def test_a_pending_booking_has_the_internal_location_id_until_it_is_confirmed() -> None:
    """§12.4, handleNewBooking (video meetings are created on confirmation, confirm.handler.ts): until then
    `location` is "integrations:daily" and there is no URL."""
    async with opened() as (_, client):
        pending = await book(client, TUE_0900, INTRO)
        assert pending["location"] == pending["meetingUrl"] == "integrations:daily"
        confirmed = await client.post(f"/v2/bookings/{pending['uid']}/confirm", headers=BOOKINGS)
        data = success(confirmed, "POST", "/v2/bookings/{bookingUid}/confirm")
        assert data["status"] == "accepted" and data["location"].startswith("https://app.cal.com/video/")


# --- §12.5 host-key reschedule ------------------------------------------------------------------


async def test_the_hosts_own_key_reschedules_a_needs_confirmation_booking_straight_to_accepted() -> None:
    """§12.5, packages/features/bookings/lib/handleNewBooking/getRequiresConfirmationFlags.ts
    (`isUserReschedulingOwner`) with bookings.service.ts `rescheduleBooking` (`userId ?? authUser.id`)."""
    async with wired() as (sandbox, client, receiver):
        pending = await book(client, TUE_0900, INTRO)
        moved = await client.post(
            f"/v2/bookings/{pending['uid']}/reschedule", json={"start": TUE_0930}, headers=BOOKINGS
        )
        new = success(moved, "POST", RESCHEDULE, 201)
        assert new["status"] == "accepted"
        await sandbox.state.webhooks_settled()
        assert [b["triggerEvent"] for b in receiver.bodies()] == ["BOOKING_REQUESTED", "BOOKING_RESCHEDULED"]


# --- §12.7 403s that are not the key ------------------------------------------------------------


async def test_a_blocked_attendee_email_is_a_plain_403() -> None:
    """§12.7, packages/features/bookings/lib/handleNewBooking/checkIfBookerEmailIsBlocked.ts (from
    RegularBookingService.ts): HttpError 403, so Cal.com's plain body."""
    state = SandboxState(now=Clock(NOW))
    state.blocked_emails.add("ana@example.com")
    async with opened(state) as (sandbox, client):
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS)
        assert plain_error(response, 403) == "Cannot use this email to create the booking."
        assert sandbox.state.bookings == {}


async def test_an_attendee_cannot_reschedule_within_the_minimum_reschedule_notice_but_the_host_can() -> None:
    """§12.7, packages/features/bookings/lib/handleNewBooking/validateRescheduleRestrictions.ts (PR #25575):
    a 403 for non-organizers only."""
    clock = Clock(NOW)
    state = SandboxState(now=clock)
    consultation = _with_event_type(state, "consultation", minimum_reschedule_notice=48 * 60)
    async with opened(state) as (sandbox, client):
        booking = await book(client, TUE_0900, consultation)
        url = f"/v2/bookings/{booking['uid']}/reschedule"
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            refused_ = await anonymous.post(url, json={"start": TUE_1000}, headers=BOOKINGS)
        assert (
            plain_error(refused_, 403)
            == "Rescheduling is not allowed within the minimum notice period before the event"
        )
        by_host = await client.post(url, json={"start": TUE_1000}, headers=BOOKINGS)
        assert success(by_host, "POST", RESCHEDULE, 201)["status"] == "accepted"


async def test_an_event_type_that_requires_authentication_refuses_an_anonymous_booking() -> None:
    """§12.7, apps/api/v2/src/ee/bookings/2024-08-13/services/bookings.service.ts
    `checkBookingRequiresAuthentication`: no credentials is a 401; the owner's key books."""
    state = SandboxState(now=Clock(NOW))
    consultation = _with_event_type(state, "consultation", requires_authentication=True)
    async with opened(state) as (sandbox, client):
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            response = await anonymous.post("/v2/bookings", json=booking_body(TUE_0900, consultation), headers=BOOKINGS)
        message = refused(response, 401, "UnauthorizedException")
        assert message == "This event type requires authentication. Please provide valid credentials."
        assert (await book(client, TUE_0900, consultation))["status"] == "accepted"


# --- §12.9, §12.10 attendee contact ------------------------------------------------------------


async def test_an_invalid_attendee_email_fails_in_the_responses_schema_not_the_dto() -> None:
    """§12.9, packages/features/bookings/lib/getBookingResponsesSchema.ts: 400, code BAD_REQUEST."""
    async with opened() as (_, client):
        attendee = {"name": "A", "email": "not-an-email", "timeZone": "UTC"}
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900, attendee=attendee), headers=BOOKINGS)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("BAD_REQUEST", "responses - {email}email_validation_error, ")


async def test_a_phone_is_not_checked_when_the_event_type_shows_no_phone_field() -> None:
    """§12.9, packages/platform/types/bookings/2024-08-13/inputs/create-booking.input.ts: `@Validate(fn)` is a
    no-op, so only a visible phone booking field checks the number."""
    async with opened() as (_, client):
        attendee = {"name": "A", "email": "a@example.com", "timeZone": "UTC", "phoneNumber": "12"}
        booked = await book(client, TUE_0900, attendee=attendee)
        assert booked["attendees"][0]["phoneNumber"] == "12"


async def test_an_attendee_without_email_or_phone_is_refused_on_its_own_property() -> None:
    """§12.10, create-booking.input.ts: "Attendee must have at least one contact method…" on the property
    "attendee email or phone"."""
    async with opened() as (_, client):
        attendee = {"name": "A", "timeZone": "UTC"}
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900, attendee=attendee), headers=BOOKINGS)
        assert refused(response, 400, "BadRequestException") == (
            "attendee email or phone property is wrong,"
            "Attendee must have at least one contact method (email or phone number) "
        )


# --- §12.12 webhooks ----------------------------------------------------------------------------


async def test_every_delivery_carries_the_webhook_version_header() -> None:
    """§12.12, packages/features/webhooks/lib/sendPayload.ts: `X-Cal-Webhook-Version: 2021-10-20`."""
    async with wired() as (sandbox, client, receiver):
        await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        [received] = receiver.received
        assert received.headers["x-cal-webhook-version"] == "2021-10-20"


async def test_a_webhook_may_subscribe_to_delegation_credential_errors() -> None:
    """§12.12, packages/platform/libraries (WebhookTriggerEvents): DELEGATION_CREDENTIAL_ERROR is a trigger."""
    async with opened() as (_, client):
        body = {
            "subscriberUrl": "https://example.com/hook",
            "active": True,
            "triggers": ["DELEGATION_CREDENTIAL_ERROR"],
        }
        created = await client.post("/v2/webhooks", json=body)
        assert created.status_code == 201 and created.json()["data"]["triggers"] == ["DELEGATION_CREDENTIAL_ERROR"]


# --- §12.13 smaller differences -----------------------------------------------------------------


async def test_a_rejected_booking_can_still_be_cancelled() -> None:
    """§12.13, input.service.ts `createCancelBookingRequest` refuses only CANCELLED; handleCancelBooking.ts
    goes on for REJECTED."""
    async with opened() as (_, client):
        pending = await book(client, TUE_0900, INTRO)
        declined = await client.post(f"/v2/bookings/{pending['uid']}/decline", json={}, headers=BOOKINGS)
        assert declined.status_code == 200
        cancel = await client.post(
            f"/v2/bookings/{pending['uid']}/cancel", json={"cancellationReason": "tidy up"}, headers=BOOKINGS
        )
        assert success(cancel, "POST", CANCEL)["status"] == "cancelled"


async def test_cancelling_an_unknown_uid_says_not_found() -> None:
    """§12.13, input.service.ts `createCancelBookingRequest`: "Booking with uid=<uid> not found"."""
    async with opened() as (_, client):
        response = await client.post("/v2/bookings/nope/cancel", json={"cancellationReason": "x"}, headers=BOOKINGS)
        assert refused(response, 404, "NotFoundException") == "Booking with uid=nope not found"


async def test_instant_false_is_an_unknown_key_of_a_regular_booking() -> None:
    """§12.13, create-booking.input.ts: `instant` belongs to the instant-booking input only."""
    async with opened() as (_, client):
        response = await client.post("/v2/bookings", json=booking_body(TUE_0900, instant=False), headers=BOOKINGS)
        assert (
            refused(response, 400, "BadRequestException")
            == "instant property is wrong,property instant should not exist "
        )


async def test_the_minimum_reschedule_notice_does_not_apply_outside_its_window() -> None:
    """§12.7 boundary, validateRescheduleRestrictions.ts `isWithinMinimumRescheduleNotice`: before the window
    an attendee may reschedule."""
    clock = Clock(NOW - timedelta(days=3))
    state = SandboxState(now=clock)
    consultation = _with_event_type(state, "consultation", minimum_reschedule_notice=60)
    async with opened(state) as (sandbox, client):
        booking = await book(client, TUE_0900, consultation)
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            moved = await anonymous.post(
                f"/v2/bookings/{booking['uid']}/reschedule", json={"start": TUE_1000}, headers=BOOKINGS
            )
        assert success(moved, "POST", RESCHEDULE, 201)["status"] == "accepted"


# --- §12.14 slot reservations ----------------------------------------------------------------------

RESERVATIONS = "/v2/slots/reservations"


async def _reserve(client: httpx2.AsyncClient, start: str) -> httpx2.Response:
    body = {"eventTypeId": CONSULTATION, "slotStart": start}
    return await client.post(RESERVATIONS, json=body, headers={"cal-api-version": "2024-09-04"})


async def test_a_reservation_is_refused_only_over_a_live_booking_or_another_reservation() -> None:
    """§12.14, slots-2024-09-04 slots.service.ts `reserveSlot`: a 422 when an active booking of the event
    type overlaps the time, or (`checkSlotOverlap`) another reservation does; working hours, notice and
    the slot grid are not checked there (a hold must know the time is free: core/holds.py)."""
    async with opened() as (_, client):
        await book(client, TUE_0900)
        booked = await _reserve(client, TUE_0900)
        assert refused(booked, 422, "UnprocessableEntityException") == (
            "Can't reserve a slot if the event is already booked."
        )
        first = await _reserve(client, TUE_1000)
        assert success(first, "POST", RESERVATIONS, 201)["slotStart"].startswith("2030-10-29T14:00:00")
        again = await _reserve(client, TUE_1000)
        assert refused(again, 422, "UnprocessableEntityException").startswith(
            "This time slot is already reserved by another user."
        )
        sunday_night = await _reserve(client, "2030-11-03T06:00:00Z")  # 01:00 in New York: no working hours
        assert sunday_night.status_code == 201, sunday_night.text
