"""Real Cal.com accounts as they are (issue 11): event types with required questions, phone-call and
in-person meetings, pending bookings the host confirms or declines, and the invite's language. Through a
real MCP client session over the real sandbox (loopback HTTP) and a SQLite file."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from mcp.client import Client

from appt_tools.core import questions
from appt_tools.errors import Conflict, InvalidArgument
from appt_tools.models import EventType, Question
from appt_tools.speech import say
from appt_tools.surfaces.mcp_server import build_server
from helpers import booking_args, next_weekday

STRATEGY, PHONE_CALL, INTRO_CALL, VISIT = 1007, 1008, 1005, 1004


async def _ok(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _error(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    return json.loads(text[text.index("{") :])


async def test_a_conversation_sees_the_questions_then_books_with_answers(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": STRATEGY})
        assert slots["questions"] == [
            {
                "slug": "topic",
                "label": "What would you like to discuss?",
                "type": "textarea",
                "required": True,
                "options": None,
            },
            {
                "slug": "first-visit",
                "label": "Is this your first session with us?",
                "type": "boolean",
                "required": False,
                "options": None,
            },
        ]
        start = slots["slots"][0]["start"]

        missing = await _error(client, "book_appointment", booking_args(start, event_type_id=STRATEGY))
        assert (missing["code"], missing["field"]) == ("invalid_argument", "answers.topic")
        assert "Ask the caller: What would you like to discuss?" in missing["message"]
        assert missing["say"] == "What would you like to discuss?"
        assert sandbox.state.bookings == {}
        assert (await _ok(client, "search_appointments", {"status": ["pending", "failed"]}))["total"] == 0

        answers = {"topic": "Moving my pension", "first-visit": True}
        booked = await _ok(client, "book_appointment", booking_args(start, event_type_id=STRATEGY, answers=answers))
        appointment = booked["appointment"]
        assert appointment["status"] == "active"
        assert appointment["answers"] == answers

        got = await _ok(client, "get_appointment", {"appointment_id": appointment["id"]})
        assert got["appointment"]["answers"] == answers

    (booking,) = sandbox.state.bookings.values()
    assert booking.responses["topic"] == "Moving my pension"
    assert booking.responses["first-visit"] is True


async def test_a_phone_call_event_type_is_booked_with_the_callers_number_and_said_so(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        types = await _ok(client, "list_event_types", {})
        phone_call = next(t for t in types["event_types"] if t["id"] == PHONE_CALL)
        assert phone_call["location"] == "phone call"
        assert [q["slug"] for q in phone_call["questions"]] == ["service"]  # the phone field is the caller's number

        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": PHONE_CALL})
        (service_question,) = slots["questions"]
        assert service_question["options"] == ["Billing", "Repairs", "New installation"]
        start = slots["slots"][0]["start"]

        wrong = await _error(
            client, "book_appointment", booking_args(start, event_type_id=PHONE_CALL, answers={"service": "Plumbing"})
        )
        assert wrong["field"] == "answers.service"
        assert "'Billing', 'Repairs', 'New installation'" in wrong["message"]
        assert sandbox.state.bookings == {}

        booked = await _ok(
            client, "book_appointment", booking_args(start, event_type_id=PHONE_CALL, answers={"service": "repairs"})
        )
    appointment = booked["appointment"]
    assert appointment["answers"] == {"service": "Repairs"}
    assert appointment["location"] == "+14155550123"
    assert appointment["meeting_url"] is None
    assert "they will call you at +1 415-555-0123" in booked["say"]
    assert not say.problems(booked["say"])
    (booking,) = sandbox.state.bookings.values()
    assert (booking.venue.type, booking.venue.phone) == ("attendeePhone", "+14155550123")
    assert booking.location == "+14155550123"


async def test_an_in_person_visit_says_the_address(service):
    day = next_weekday(after_days=3).isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": VISIT})
        booked = await _ok(client, "book_appointment", booking_args(slots["slots"][0]["start"], event_type_id=VISIT))
    assert "at 350 Fifth Avenue, New York, NY 10118" in booked["say"]
    assert booked["appointment"]["location"] == "350 Fifth Avenue, New York, NY 10118"


async def test_a_pending_booking_has_no_link_until_the_host_confirms_it(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": INTRO_CALL})
        booked = await _ok(
            client, "book_appointment", booking_args(slots["slots"][0]["start"], event_type_id=INTRO_CALL)
        )
    pending = booked["appointment"]
    assert pending["status"] == "pending"
    (booking,) = sandbox.state.bookings.values()
    assert booking.location == "integrations:daily"  # what Cal.com has until it is confirmed (NOTES §12.4)
    assert (pending["meeting_url"], pending["location"]) == (None, None)
    assert "link comes once it's confirmed" in booked["say"]

    confirmed = await service.confirm(pending["id"])
    assert confirmed.status.value == "active"
    assert confirmed.meeting_url == f"https://app.cal.com/video/{booking.uid}"
    assert sandbox.state.bookings[booking.uid].status == "accepted"
    history = await service.history(pending["id"])
    assert history[-1].action == "confirmed"
    assert [m.kind for m in sandbox.state.outbox if m.to == "ana.ruiz@example.com"][-1] == "scheduled"

    with pytest.raises(Conflict) as again:
        await service.confirm(pending["id"])
    assert again.value.code == "not_pending"


async def test_the_host_declines_a_pending_booking_and_the_store_follows(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": INTRO_CALL})
        booked = await _ok(
            client, "book_appointment", booking_args(slots["slots"][0]["start"], event_type_id=INTRO_CALL)
        )
    declined = await service.decline(booked["appointment"]["id"], "Fully booked that week.")
    (booking,) = sandbox.state.bookings.values()
    assert booking.status == "rejected"
    assert declined.status.value == "cancelled"
    assert declined.cancellation_reason == "Fully booked that week."
    assert (await service.history(declined.id))[-1].action == "declined"


async def test_a_booking_settled_in_cal_com_already_is_recorded_as_cal_com_has_it(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": INTRO_CALL})
        booked = await _ok(
            client, "book_appointment", booking_args(slots["slots"][0]["start"], event_type_id=INTRO_CALL)
        )
    (booking,) = sandbox.state.bookings.values()
    sandbox.state.confirm_booking(booking.uid)  # the host used Cal.com's own page

    confirmed = await service.confirm(booked["appointment"]["id"])
    assert confirmed.status.value == "active"
    assert "already" in (await service.history(confirmed.id))[-1].detail
    with pytest.raises(Conflict) as refused:
        await service.decline(confirmed.id)
    assert refused.value.code == "not_pending"


async def test_reschedule_checks_and_keeps_new_answers(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": STRATEGY})
        start, later = slots["slots"][0]["start"], slots["slots"][2]["start"]
        booked = await _ok(
            client, "book_appointment", booking_args(start, event_type_id=STRATEGY, answers={"topic": "Pension"})
        )
        appointment_id = booked["appointment"]["id"]
        bad = await _error(
            client, "reschedule", {"appointment_id": appointment_id, "new_start": later, "answers": {"colour": "red"}}
        )
        assert bad["field"] == "answers.colour" and "topic (What would you like to discuss?)" in bad["message"]
        assert len(sandbox.state.bookings) == 1  # refused before Cal.com was asked

        moved = await _ok(
            client,
            "reschedule",
            {"appointment_id": appointment_id, "new_start": later, "answers": {"first-visit": "no"}},
        )
    assert moved["appointment"]["answers"] == {"topic": "Pension", "first-visit": False}
    assert len(sandbox.state.bookings) == 2


async def test_the_invite_language_is_the_bookings_own_else_the_settings(service, sandbox):
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": next_weekday().isoformat()})
        first, second = slots["slots"][0]["start"], slots["slots"][2]["start"]
        await _ok(client, "book_appointment", booking_args(first, language="pt_br"))
        await _ok(client, "book_appointment", booking_args(second, attendee_email="bo@example.com"))
        wrong = await _error(client, "book_appointment", booking_args(first, language="klingon"))
    assert wrong["field"] == "language" and "'pt-BR'" in wrong["message"]
    languages = sorted(b.attendee.language for b in sandbox.state.bookings.values())
    assert languages == ["en", "pt-BR"]


# --- the answers themselves -------------------------------------------------------------------------


def _event_type(*asked: Question) -> EventType:
    return EventType(id=1, title="Survey", slug="survey", length_minutes=30, questions=asked)


def test_answers_take_each_questions_form():
    event_type = _event_type(
        Question(slug="guests", label="How many people?", type="number"),
        Question(slug="areas", label="Which rooms?", type="checkbox", options=("Kitchen", "Bath")),
        Question(slug="ok", label="Agree?", type="boolean", required=True),
    )
    checked = questions.check(event_type, {"guests": "3", "areas": ["kitchen", "BATH"], "ok": "yes"})
    assert checked == {"guests": 3.0, "areas": ["Kitchen", "Bath"], "ok": True}
    for answers, field in (
        ({"guests": "three", "ok": True}, "answers.guests"),
        ({"guests": "inf", "ok": True}, "answers.guests"),
        ({"areas": ["Garage"], "ok": True}, "answers.areas"),
        ({"ok": "maybe"}, "answers.ok"),
        ({}, "answers.ok"),
        ({"ok": True, "name": "Ana"}, "answers.name"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            questions.check(event_type, answers)
        assert refused.value.field == field, answers


async def test_the_link_is_picked_up_when_the_host_confirms_in_cal_com(service, sandbox):
    """The host confirms on Cal.com's own page: BOOKING_CREATED (NOTES §8) and reconciliation bring the
    meeting link in; before that the appointment has none."""
    from appt_tools.core.reconcile import Reconciler

    state = sandbox.state
    state.webhooks.create(
        state.host.id,
        subscriber_url="http://127.0.0.1:9/webhooks/calcom",
        active=True,
        triggers=["BOOKING_CREATED", "BOOKING_REQUESTED"],
        secret="s3cret",
        payload_template=None,
    )
    state.webhook_hold = True
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": next_weekday().isoformat(), "event_type_id": INTRO_CALL})
        first, second = slots["slots"][0]["start"], slots["slots"][2]["start"]
        by_webhook = (await _ok(client, "book_appointment", booking_args(first, event_type_id=INTRO_CALL)))[
            "appointment"
        ]
        by_reconcile = (
            await _ok(
                client,
                "book_appointment",
                booking_args(second, event_type_id=INTRO_CALL, attendee_email="b@example.com"),
            )
        )["appointment"]
    for made in (by_webhook, by_reconcile):
        state.confirm_booking(made["booking_uid"])

    created = next(
        d for d in state.deliveries if d.trigger == "BOOKING_CREATED" and by_webhook["booking_uid"].encode() in d.body
    )
    await Reconciler.of(service).apply_webhook(json.loads(created.body))
    confirmed = await service.get(by_webhook["id"])
    assert confirmed.status.value == "active"
    assert confirmed.meeting_url == f"https://app.cal.com/video/{by_webhook['booking_uid']}"

    assert (await service.get(by_reconcile["id"])).meeting_url is None
    now = service.now()
    await Reconciler.of(service).reconcile(now, now + timedelta(days=30))
    reconciled = await service.get(by_reconcile["id"])
    assert (reconciled.status.value, reconciled.meeting_url) == (
        "active",
        f"https://app.cal.com/video/{by_reconcile['booking_uid']}",
    )


async def test_malformed_answers_are_refused_naming_the_field_and_nothing_is_booked(service, sandbox):
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": next_weekday().isoformat(), "event_type_id": STRATEGY})
        start = slots["slots"][0]["start"]
        for answers, field in (
            ({"topic": ["a", "b"]}, "answers.topic"),
            ({"topic": "x" * 1001}, "answers.topic"),
            ({"topic": "ok", "first-visit": "perhaps"}, "answers.first-visit"),
            ({"x" * 101: "y"}, "answers"),
            ({" ": "y"}, "answers"),
            ({"topic": "   "}, "answers.topic"),
        ):
            error = await _error(
                client, "book_appointment", booking_args(start, event_type_id=STRATEGY, answers=answers)
            )
            assert (error["code"], error["field"]) == ("invalid_argument", field), answers
        for answers in ("topic: pension", {"topic": {"nested": 1}}, {str(i): "a" for i in range(51)}):
            result = await client.call_tool(
                "book_appointment", booking_args(start, event_type_id=STRATEGY, answers=answers)
            )
            assert result.is_error, answers  # the argument's type, refused by the tool's schema
    assert sandbox.state.bookings == {}


def test_every_wrong_or_missing_answer_is_named_at_once():
    event_type = _event_type(
        Question(slug="topic", label="What would you like to discuss?", type="text", required=True),
        Question(slug="service", label="Which service?", type="radio", required=True, options=("Billing", "Repairs")),
        Question(slug="ok", label="Agree?", type="boolean"),
    )
    with pytest.raises(InvalidArgument) as refused:
        questions.check(event_type, {"service": "Plumbing", "ok": "maybe", "colour": "red"})
    fields = [e["field"] for e in refused.value.errors]
    assert fields == ["answers.service", "answers.ok", "answers.colour", "answers.topic"]
    with pytest.raises(InvalidArgument) as blank:
        questions.check(event_type, {"topic": "   ", "service": "billing"})
    assert blank.value.field == "answers.topic" and blank.value.ask == "What would you like to discuss?"
