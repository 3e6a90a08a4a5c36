"""Businesses with several people (issue 11, item 7): the team's event types are synced with their team and
scheduling type, a round robin is booked and the result names the member Cal.com assigned, in the sandbox and
in the store; search filters and sorts by host. Through a real MCP client session over the real sandbox
(loopback HTTP) and a SQLite file.

The sandbox's team (see tests/test_sandbox_teams.py): Dr. Lee 08:00-14:00 New York, Dr. Patel 12:00-18:00
New York, the account's user 09:00-17:00; the round-robin check-up has all three, the collective case review
Dr. Lee and Dr. Patel.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.client import Client

from appt_tools.speech import say
from appt_tools.surfaces.mcp_server import build_server
from calcom_sandbox.records import COLLECTIVE_ID, ROUND_ROBIN_ID
from dashboard_support import browsing
from helpers import Raw, booking_args, next_weekday


async def _ok(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def _at(slots: dict[str, Any], clock: str) -> str:
    """The slot starting at `clock` ('12:00') local time."""
    return next(s["start"] for s in slots["slots"] if f"T{clock}:00" in s["start"])


async def test_a_round_robin_booking_names_the_host_cal_com_assigned_in_the_result_the_sandbox_and_the_store(
    service, sandbox
):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        types = {t["id"]: t for t in (await _ok(client, "list_event_types", {}))["event_types"]}
        assert (types[ROUND_ROBIN_ID]["team"], types[ROUND_ROBIN_ID]["scheduling_type"]) == (
            "Riverside Clinic",
            "ROUND_ROBIN",
        )
        assert types[COLLECTIVE_ID]["scheduling_type"] == "COLLECTIVE"
        assert types[sandbox.state.default_event_type_id]["team"] is None

        slots = await _ok(client, "find_slots", {"date": day, "event_type_id": ROUND_ROBIN_ID})
        # Dr. Lee starts at 8, before anyone else: the team's day is longer than the owner's own.
        assert "T08:00:00" in slots["slots"][0]["start"]
        booked = await _ok(
            client, "book_appointment", booking_args(slots["slots"][0]["start"], event_type_id=ROUND_ROBIN_ID)
        )
        appointment = booked["appointment"]
        assert (appointment["host_name"], appointment["host_email"]) == ("Dr. Lee", "lee@clinic.example.com")
        assert " with Dr. Lee." in booked["say"] and not say.problems(booked["say"])

        # At noon all three are free: Dr. Lee was booked last, so a member never booked comes first.
        noon = await _ok(
            client,
            "book_appointment",
            booking_args(_at(slots, "12:00"), event_type_id=ROUND_ROBIN_ID, attendee_email="bo@example.com"),
        )
        assert noon["appointment"]["host_name"] == "Dr. Patel"

        got = await _ok(client, "get_appointment", {"appointment_id": appointment["id"]})
        assert got["appointment"]["host_name"] == "Dr. Lee"

    by_uid = {b.uid: b for b in sandbox.state.bookings.values()}
    assert by_uid[appointment["booking_uid"]].hosts == (2,)
    assert by_uid[noon["appointment"]["booking_uid"]].hosts == (3,)
    stored = await service.store.get_appointment(appointment["id"])
    assert stored is not None and (stored.host_name, stored.host_email) == ("Dr. Lee", "lee@clinic.example.com")


async def test_a_collective_booking_names_every_host_and_search_filters_and_sorts_by_host(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        both_slots = await _ok(client, "find_slots", {"date": day, "event_type_id": COLLECTIVE_ID})
        # Only where both doctors' hours overlap: 12:00 and 13:00 New York.
        assert all("T12:00" in s["start"] or "T13:00" in s["start"] for s in both_slots["slots"])
        both = await _ok(
            client, "book_appointment", booking_args(both_slots["slots"][-1]["start"], event_type_id=COLLECTIVE_ID)
        )
        assert both["appointment"]["host_name"] == "Dr. Lee and Dr. Patel"
        assert " with Dr. Lee and Dr. Patel" in both["say"]

        rr_slots = await _ok(client, "find_slots", {"date": day, "event_type_id": ROUND_ROBIN_ID})
        lee = await _ok(
            client,
            "book_appointment",
            booking_args(rr_slots["slots"][0]["start"], event_type_id=ROUND_ROBIN_ID, attendee_email="cy@example.com"),
        )
        assert lee["appointment"]["host_name"] == "Dr. Lee"
        own = await _ok(client, "find_slots", {"date": day})
        mine = await _ok(client, "book_appointment", booking_args(own["slots"][-1]["start"], attendee_email="d@e.com"))
        assert mine["appointment"]["host_name"] == "Sandbox Host"
        assert " with " not in mine["say"]  # the owner's own event type: no one else to name

        patel = await _ok(client, "search_appointments", {"host": "PATEL"})
        assert [a["id"] for a in patel["items"]] == [both["appointment"]["id"]]
        by_mail = await _ok(client, "search_appointments", {"host": "lee@clinic"})
        assert {a["id"] for a in by_mail["items"]} == {both["appointment"]["id"], lee["appointment"]["id"]}
        ordered = await _ok(client, "search_appointments", {"sort_by": "host_name", "sort_order": "desc"})
        assert [a["host_name"] for a in ordered["items"]] == ["Sandbox Host", "Dr. Lee and Dr. Patel", "Dr. Lee"]

        too_long = await client.call_tool("search_appointments", {"host": "x" * 600})
        assert too_long.is_error
        text = too_long.content[0].text  # type: ignore[union-attr]
        error = json.loads(text[text.index("{") :])
        assert (error["code"], error["field"]) == ("invalid_argument", "host")


async def test_the_dashboard_table_shows_filters_and_sorts_by_host(service, sandbox):
    day = next_weekday()
    raw = Raw(service)
    team = await raw.find_slots(day=day.isoformat(), event_type_id=ROUND_ROBIN_ID)
    lee = await raw.book(**booking_args(team.slots[0].start.isoformat(), event_type_id=ROUND_ROBIN_ID))
    own = await raw.find_slots(day=day.isoformat())
    mine = await raw.book(**booking_args(own.slots[-1].start.isoformat(), attendee_email="d@e.com"))
    assert (lee.host_name, mine.host_name) == ("Dr. Lee", "Sandbox Host")
    async with browsing(service) as client:
        html = (await client.get("/app/table")).text
        assert '<td data-col="host">Dr. Lee</td>' in html and '<td data-col="host">Sandbox Host</td>' in html
        assert "sort=host_name" in html  # the Host header sorts
        by_host = (await client.get("/app/table", params={"sort": "host_name", "order": "desc"})).text
        assert _rows(by_host) == [mine.id, lee.id]
        only_lee = (await client.get("/app/table", params={"host": "lee"})).text
        assert _rows(only_lee) == [lee.id]
        assert "Clear search" in (await client.get("/app/table", params={"host": "nobody"})).text
        page = (await client.get("/", params={"view": "table", "host": "lee"})).text
        assert 'id="host-filter" value="lee"' in page
        drawer = (await client.get(f"/app/appointments/{lee.id}")).json()["appointment"]
        assert drawer["host_name"] == "Dr. Lee"


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)
