"""Every `say`, for every tool and every error, is one line a TTS engine can read as is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from mcp.client import Client

from appt_tools.errors import AppError, CalcomUnavailable, Conflict, InvalidArgument, NotConfigured, SlotUnavailable
from appt_tools.models import SearchPage, Slot
from appt_tools.speech import say
from appt_tools.speech.results import SearchResult
from appt_tools.surfaces.mcp_server import build_server
from helpers import booking_args, next_weekday

HOSTILE = {"title": "**VIP** see https://evil.example/x apt_123", "attendee_name": "Ana [Ruiz](http://x) `rm`"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Booked for 2026-11-24T15:00:00-05:00.", "ISO"),
        ("Join at https://app.cal.com/video/abc.", "URL"),
        ("Your id is apt_3kq9x2mz7w1b.", "id"),
        ("Your booking 6ZAiKegKmjvxk1NFz6V98X is set.", "id"),
        ("You're **booked**.", "markdown"),
        ("x" * 201, "characters"),
        ("two\nlines", "one line"),
    ],
)
def test_the_rules_catch_what_a_voice_must_not_read(text, problem):
    assert any(problem in p for p in say.problems(text))


def test_a_long_sentence_is_cut_at_a_word_within_the_limit():
    cut = say.sentence("word " * 100)
    assert len(cut) <= 200 and cut.endswith("…") and "  " not in cut


def test_times_are_said_in_words_in_the_business_zone():
    slot = Slot(start=datetime(2026, 11, 24, 20, tzinfo=UTC), end=datetime(2026, 11, 24, 20, 30, tzinfo=UTC))
    taken = SlotUnavailable("taken", [slot], taken=True)
    assert say.error(taken, "America/New_York") == (
        "That time was just taken. I can offer Tuesday, November 24 at 3 PM instead."
    )


def test_a_count_that_stopped_at_its_bound_is_said_and_paged_as_a_lower_bound():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    assert say.search(1000, None, "UTC", now, exact=False) == "I found more than 1,000 matching appointments."
    assert say.search(2500, None, "UTC", now) == "I found 2,500 matching appointments."
    past_the_count = SearchResult.of(
        SearchPage(items=(), total=1000, page=101, page_size=10, total_exact=False), "UTC", now
    )
    assert (past_the_count.total_exact, past_the_count.total_pages, past_the_count.has_more) == (False, 100, False)
    exact = SearchResult.of(SearchPage(items=(), total=25, page=2, page_size=10), "UTC", now)
    assert (exact.total_exact, exact.total_pages, exact.has_more) == (True, 3, True)


@pytest.mark.parametrize(
    "error",
    [
        SlotUnavailable("x", taken=False),
        InvalidArgument("attendee_email", "bad"),
        InvalidArgument("some_field", "bad"),
        Conflict("x", code="already_cancelled"),
        Conflict("x", code="not_reschedulable"),
        NotConfigured("x"),
        CalcomUnavailable("x"),
        AppError("x", code="something_new"),
    ],
)
def test_every_error_has_a_speakable_say(error):
    text = say.error(error, "America/New_York")
    assert say.problems(text) == [], text


async def _says(client: Client, name: str, args: dict[str, Any], collected: list[str]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    text = result.content[0].text if result.is_error else ""  # type: ignore[union-attr]
    data = json.loads(text) if result.is_error else result.structured_content or {}
    collected.append(data["say"])
    return data


async def test_every_tool_says_something_speakable_in_success_and_in_error(service):
    said: list[str] = []
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _says(client, "find_slots", {"date": day}, said)
        await _says(client, "find_slots", {"date": "2099-12-26"}, said)
        start = slots["slots"][0]["start"]
        booked = await _says(client, "book_appointment", booking_args(start, **HOSTILE), said)
        appointment_id = booked["appointment"]["id"]
        await _says(client, "book_appointment", booking_args(start, attendee_email="bob@example.com"), said)
        await _says(client, "book_appointment", booking_args(start, attendee_email="not-an-email"), said)
        await _says(client, "book_appointment", booking_args(start, to_number="555"), said)
        await _says(client, "search_appointments", {"query": "ruiz"}, said)
        await _says(client, "search_appointments", {"query": "nobody"}, said)
        await _says(client, "search_appointments", {"page_size": 7}, said)
        await _says(client, "get_appointment", {"appointment_id": appointment_id}, said)
        await _says(client, "get_appointment", {"appointment_id": "apt_missing"}, said)
        await _says(client, "update_appointment", {"appointment_id": appointment_id, "label": "vip"}, said)
        await _says(client, "update_appointment", {"appointment_id": appointment_id, "call_type": "web"}, said)
        await _says(client, "list_event_types", {}, said)
        await _says(
            client, "reschedule", {"appointment_id": appointment_id, "new_start": slots["slots"][2]["start"]}, said
        )
        await _says(client, "cancel", {"appointment_id": appointment_id}, said)
        await _says(client, "cancel", {"appointment_id": appointment_id}, said)
        await _says(
            client, "reschedule", {"appointment_id": appointment_id, "new_start": slots["slots"][3]["start"]}, said
        )
        await _says(client, "no_such_tool", {}, said)
    assert len(said) == 19
    for text in said:
        assert say.problems(text) == [], text


def _appointment(status: str, location: str | None) -> Any:
    from appt_tools.models import Appointment, AppointmentStatus

    at = datetime(2030, 11, 26, 20, tzinfo=UTC)
    return Appointment(
        id="apt_x",
        booking_uid="uid",
        status=AppointmentStatus(status),
        title="t",
        attendee_name="Ana",
        attendee_email="ana@example.com",
        to_number="+14155550100",
        from_number="+14155550123",
        call_type="inbound",
        event_type_id=1,
        start=at,
        end=at,
        timezone="America/New_York",
        location=location,
        created_at=at,
        updated_at=at,
    )


def test_booked_says_where_a_phone_call_an_address_or_a_link_to_come():
    from appt_tools.models import EventType

    tz = "America/New_York"
    phone = EventType(id=1, title="Call", slug="c", length_minutes=20, location_type="attendeePhone")
    visit = EventType(id=1, title="Visit", slug="v", length_minutes=45, location_type="address")
    video = EventType(id=1, title="Video", slug="v", length_minutes=30, location_type="integration")
    said = {
        "phone": say.booked(_appointment("active", "+14155550123"), tz, event_type=phone),
        "visit": say.booked(_appointment("active", "350 Fifth Avenue, New York"), tz, event_type=visit),
        "pending video": say.booked(_appointment("pending", None), tz, event_type=video),
        "pending phone": say.booked(_appointment("pending", "+14155550123"), tz, event_type=phone),
        "odd address": say.booked(_appointment("active", "Suite #4 <b>"), tz, event_type=visit),
    }
    assert said["phone"] == (
        "You're booked for Tuesday, November 26 at 3 PM; they will call you at +1 415-555-0123. "
        "A confirmation is on its way to your e-mail."
    )
    assert "at 350 Fifth Avenue, New York." in said["visit"]
    assert "meeting link comes once it's confirmed" in said["pending video"]
    assert "once the host confirms it" in said["pending phone"] and "+1 415-555-0123" in said["pending phone"]
    assert "Suite" not in said["odd address"]  # what cannot be read aloud as it is is left out
    assert all(not say.problems(text) for text in said.values())


def test_a_missing_answer_says_the_businesss_question():
    asked = InvalidArgument("answers.topic", "needs an answer", ask="What would you like to discuss?")
    assert say.error(asked, "UTC") == "What would you like to discuss?"
    unreadable = InvalidArgument("answers.site", "needs an answer", ask="See https://x.example/form")
    assert say.error(unreadable, "UTC") == "I need one more detail for this booking."
