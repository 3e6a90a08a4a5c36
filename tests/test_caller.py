"""Issue 12 for phone calls: a caller without e-mail, a corrected repeat, and a time held while the
caller decides, through real MCP client sessions, the real sandbox and a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp.client import Client

from appt_tools.core.service import AppointmentService
from appt_tools.core.slot_cache import SlotCache
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.surfaces.mcp_server import build_server
from calcom_sandbox import Fault, RunningSandbox, SandboxState, run_sandbox
from helpers import BUSINESS_ENV, HOST_TZ, booking_args, next_weekday


class Clock:
    """The real time plus an offset a test moves forward; shared by the sandbox and the services."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, minutes: int) -> None:
        self.offset += timedelta(minutes=minutes)


async def _ok(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _error(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert result.is_error, result.structured_content
    text = result.content[0].text  # type: ignore[union-attr]
    return json.loads(text[text.index("{") :])


def _without(args: dict[str, object], *names: str) -> dict[str, object]:
    return {k: v for k, v in args.items() if k not in names}


# --- callers without e-mail ----------------------------------------------------------------------


async def test_a_caller_without_e_mail_books_the_default_event_type_with_their_number(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day})
        booked = await _ok(
            client, "book_appointment", _without(booking_args(slots["slots"][0]["start"]), "attendee_email")
        )
        found = await _ok(client, "search_appointments", {"query": "ruiz"})

    appointment = booked["appointment"]
    assert (appointment["status"], appointment["attendee_email"], appointment["attendee_phone"]) == (
        "active",
        None,
        "+14155550123",
    )
    assert "e-mail" not in booked["say"] and booked["say"].startswith("You're booked for")
    in_calcom = sandbox.state.booking(appointment["booking_uid"]).attendee
    assert in_calcom.phone_number == "+14155550123" and in_calcom.email.endswith("@sms.cal.com")
    assert [m.to for m in sandbox.state.outbox] == ["host@example.com"]  # nothing e-mailed to the caller
    assert [a["id"] for a in found["items"]] == [appointment["id"]]


async def test_an_event_type_that_requires_e_mail_asks_for_it_and_books_nothing(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    quick = sandbox.state.event_type_id("quick-call")
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": quick})
        args = _without(booking_args(slots["slots"][0]["start"], event_type_id=quick), "attendee_email")
        error = await _error(client, "book_appointment", args)
        found = await _ok(client, "search_appointments", {"status": ["pending", "active", "failed"]})

    assert (error["code"], error["field"]) == ("invalid_argument", "attendee_email")
    assert "Quick call" in error["message"] and "Ask the caller" in error["message"]
    assert sandbox.state.bookings == {} and found["total"] == 0


async def test_a_web_call_books_with_the_attendee_phone_given_and_without_one_asks_for_an_e_mail(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        start = (await _ok(client, "find_slots", {"date": day}))["slots"][0]["start"]
        web = _without(booking_args(start, call_type="web"), "attendee_email")
        missing = await _error(client, "book_appointment", web)
        booked = await _ok(client, "book_appointment", {**web, "attendee_phone": "+14155550177"})

    assert (missing["code"], missing["field"]) == ("invalid_argument", "attendee_email")
    assert booked["appointment"]["attendee_phone"] == "+14155550177"
    assert sandbox.state.booking(booked["appointment"]["booking_uid"]).attendee.phone_number == "+14155550177"


# --- corrected repeats ---------------------------------------------------------------------------


async def test_a_repeat_with_a_corrected_name_and_e_mail_corrects_the_booking_and_says_so(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        start = (await _ok(client, "find_slots", {"date": day}))["slots"][0]["start"]
        first = await _ok(client, "book_appointment", _without(booking_args(start), "title"))
        corrected = await _ok(
            client,
            "book_appointment",
            _without(booking_args(start, attendee_name="Ana Ruíz", attendee_email="ana.ruiz@example.org"), "title"),
        )
        plain = await _ok(
            client,
            "book_appointment",
            _without(booking_args(start, attendee_name="Ana Ruíz", attendee_email="ana.ruiz@example.org"), "title"),
        )
        got = await _ok(client, "get_appointment", {"appointment_id": first["appointment"]["id"]})

    after = corrected["appointment"]
    assert after["id"] == first["appointment"]["id"] == plain["appointment"]["id"]
    assert (after["attendee_name"], after["attendee_email"], after["title"]) == (
        "Ana Ruíz",
        "ana.ruiz@example.org",
        "Consultation with Ana Ruíz",
    )
    assert corrected["say"].startswith("I've corrected your name and your e-mail on your booking for")
    assert plain["say"].startswith("You're booked for")
    updates = [h for h in got["history"] if h["action"] == "updated"]
    assert len(updates) == 1 and "'Ana Ruiz' → 'Ana Ruíz'" in updates[0]["detail"]
    assert len(sandbox.state.bookings) == 1


# --- holds ---------------------------------------------------------------------------------------


@asynccontextmanager
async def _two_processes(
    tmp_path: Path, clock: Clock
) -> AsyncIterator[tuple[RunningSandbox, AppointmentService, AppointmentService]]:
    """One sandbox and two services on one database file, as two server processes would be."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(run_sandbox(SandboxState(host_time_zone=HOST_TZ, now=clock)))
        env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
        target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
        one = await stack.enter_async_context(open_service(database_url=url, environ=env, calcom=target, clock=clock))
        two = await stack.enter_async_context(open_service(database_url=url, environ=env, calcom=target, clock=clock))
        for service in (one, two):  # every clock moves with the test's, the slot cache's (60 s) too
            service.slots.cache = SlotCache(clock=lambda: clock().timestamp())
        holder = await stack.enter_async_context(Client(build_server(one)))
        other = await stack.enter_async_context(Client(build_server(two)))
        yield sandbox, holder, other


async def test_a_held_time_is_hidden_from_another_session_refused_to_it_and_booked_by_the_holder(
    tmp_path: Path,
) -> None:
    clock = Clock()
    day = next_weekday().isoformat()
    async with _two_processes(tmp_path, clock) as (sandbox, holder, other):
        start = (await _ok(holder, "find_slots", {"date": day}))["slots"][0]["start"]
        hold = await _ok(holder, "hold_slot", {"start": start})
        seen = await _ok(other, "find_slots", {"date": day})
        refused = await _error(
            other,
            "book_appointment",
            booking_args(start, attendee_email="bob@example.com", from_number="+14155550124"),
        )
        held_twice = await _error(other, "hold_slot", {"start": start})
        reserved = list(sandbox.state.reservations.values())
        booked = await _ok(
            holder, "book_appointment", {**_without(booking_args(start), "start"), "hold_id": hold["hold_id"]}
        )
        used = await _error(holder, "release_hold", {"hold_id": hold["hold_id"]})

    assert hold["hold_id"].startswith("hold_") and hold["start"] == start
    assert datetime.fromisoformat(hold["expires_at"]) - clock() > timedelta(minutes=4)
    assert start not in [s["start"] for s in seen["slots"]] and seen["slots"]
    assert refused["code"] == "slot_unavailable" and refused["alternatives"]
    assert start not in [a["start"] for a in refused["alternatives"]]
    assert held_twice["code"] == "slot_unavailable"
    assert [r.start for r in reserved] == [datetime.fromisoformat(start).astimezone(UTC)]  # Cal.com's page hides it
    assert (booked["appointment"]["status"], booked["appointment"]["start"]) == ("active", start)
    assert (used["code"], used["field"]) == ("invalid_argument", "hold_id")  # booking ended the hold
    # The reservation is left to lapse (it hides a time that is booked now): the booking was one request.
    assert [r.start for r in sandbox.state.reservations.values()] == [datetime.fromisoformat(start).astimezone(UTC)]


async def test_an_expired_or_released_hold_frees_the_time_for_everyone(tmp_path: Path) -> None:
    clock = Clock()
    day = next_weekday().isoformat()
    async with _two_processes(tmp_path, clock) as (_, holder, other):
        first, second = (await _ok(holder, "find_slots", {"date": day}))["slots"][:2]
        await _ok(holder, "hold_slot", {"start": first["start"]})
        hold = await _ok(holder, "hold_slot", {"start": second["start"]})
        released = await _ok(holder, "release_hold", {"hold_id": hold["hold_id"]})
        after_release = [s["start"] for s in (await _ok(other, "find_slots", {"date": day}))["slots"]]
        clock.advance(minutes=6)
        after_expiry = [s["start"] for s in (await _ok(other, "find_slots", {"date": day}))["slots"]]
        booked = await _ok(
            other,
            "book_appointment",
            booking_args(first["start"], attendee_email="bob@example.com", from_number="+14155550124"),
        )

    assert released["say"].startswith("I've let go of")
    assert second["start"] in after_release and first["start"] not in after_release
    assert first["start"] in after_expiry
    assert booked["appointment"]["status"] == "active"


async def test_a_hold_stands_on_the_shared_database_alone_when_cal_com_cannot_reserve(tmp_path: Path) -> None:
    clock = Clock()
    day = next_weekday().isoformat()
    async with _two_processes(tmp_path, clock) as (sandbox, holder, other):
        sandbox.state.faults.add(Fault("status", "POST /v2/slots/reservations", status=503))
        start = (await _ok(holder, "find_slots", {"date": day}))["slots"][0]["start"]
        await _ok(holder, "hold_slot", {"start": start})
        seen = [s["start"] for s in (await _ok(other, "find_slots", {"date": day}))["slots"]]
        refused = await _error(
            other,
            "book_appointment",
            booking_args(start, attendee_email="bob@example.com", from_number="+14155550124"),
        )

    assert sandbox.state.reservations == {}
    assert start not in seen
    assert refused["code"] == "slot_unavailable" and start not in [a["start"] for a in refused["alternatives"]]
