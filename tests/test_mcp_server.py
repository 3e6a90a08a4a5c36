"""The MCP surface through a real in-memory client session over the real sandbox and SQLite."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.client import Client

from appt_tools.surfaces.mcp_server import build_server
from helpers import booking_args, next_weekday

TOOLS = {
    "find_slots",
    "book_appointment",
    "hold_slot",
    "release_hold",
    "reschedule",
    "cancel",
    "search_appointments",
    "get_appointment",
    "update_appointment",
    "list_event_types",
}


async def _ok(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["say"]
    return result.structured_content


async def _error(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    return json.loads(text[text.index("{") :])


async def test_the_tools_are_listed_with_descriptions_schemas_and_honest_annotations(service):
    async with Client(build_server(service)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None and "say" in tool.output_schema["properties"]
        assert tool.annotations is not None
    assert tools["find_slots"].annotations.read_only_hint is True
    assert tools["search_appointments"].annotations.read_only_hint is True
    assert tools["book_appointment"].annotations.read_only_hint is False
    assert tools["cancel"].annotations.destructive_hint is True
    assert tools["reschedule"].annotations.destructive_hint is True
    props = tools["book_appointment"].input_schema["properties"]
    for name in (
        "start",
        "title",
        "attendee_name",
        "attendee_email",
        "to_number",
        "from_number",
        "call_type",
        "description",
        "label",
        "business_name",
        "event_type_id",
        "timezone",
    ):
        assert name in props


async def test_a_whole_conversation_books_moves_and_cancels(service, sandbox):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day})
        assert slots["slots"][0]["spoken"].count(" at ") == 1
        booked = await _ok(client, "book_appointment", booking_args(slots["slots"][0]["start"]))
        appointment = booked["appointment"]
        assert appointment["status"] == "active"
        assert appointment["to_number"] == "+14155550100"
        assert appointment["call_type"] == "inbound"

        found = await _ok(client, "search_appointments", {"query": "RUIZ"})
        assert found["total"] == 1 and found["items"][0]["id"] == appointment["id"]

        moved = await _ok(
            client,
            "reschedule",
            {"appointment_id": appointment["id"], "new_start": slots["slots"][3]["start"]},
        )
        assert moved["appointment"]["id"] == appointment["id"]
        assert moved["appointment"]["previous_booking_uids"] == [appointment["booking_uid"]]

        cancelled = await _ok(client, "cancel", {"appointment_id": appointment["id"]})
        assert cancelled["appointment"]["status"] == "cancelled"
        got = await _ok(client, "get_appointment", {"appointment_id": appointment["id"]})
        assert [h["action"] for h in got["history"]] == ["created", "booked", "rescheduled", "cancelled"]

    to_attendee = [m.kind for m in sandbox.state.outbox if m.to == "ana.ruiz@example.com"]
    assert to_attendee == ["scheduled", "rescheduled", "cancelled"]


async def test_a_taken_slot_is_an_error_with_alternatives(service):
    day = next_weekday().isoformat()
    async with Client(build_server(service)) as client:
        slots = await _ok(client, "find_slots", {"date": day})
        start = slots["slots"][0]["start"]
        await _ok(client, "book_appointment", booking_args(start))
        error = await _error(
            client,
            "book_appointment",
            booking_args(start, attendee_email="bob@example.com", from_number="+14155550124"),
        )
    assert error["code"] == "slot_unavailable"
    assert error["retryable"] is False
    assert error["alternatives"] and all(a["start"] != start for a in error["alternatives"])
    assert not re.search(r"\d{4}-\d{2}-\d{2}|http|apt_", error["say"])


async def test_an_unknown_argument_is_refused_with_the_valid_ones(service):
    async with Client(build_server(service)) as client:
        error = await _error(client, "search_appointments", {"qurey": "ruiz"})
    assert error["code"] == "invalid_argument"
    assert error["field"] == "qurey"
    assert "query" in error["message"]


async def test_a_number_sent_as_a_string_is_not_coerced(service):
    async with Client(build_server(service)) as client:
        error = await _error(client, "search_appointments", {"page_size": "25"})
    assert error["code"] == "invalid_argument"
    assert error["field"] == "page_size"


async def test_changing_a_locked_field_through_the_tool_is_refused(service):
    async with Client(build_server(service)) as client:
        error = await _error(client, "update_appointment", {"appointment_id": "apt_x", "to_number": "+14155550199"})
    assert error["code"] == "locked_field"


async def test_page_size_seven_is_refused(service):
    async with Client(build_server(service)) as client:
        error = await _error(client, "search_appointments", {"page_size": 7})
    assert error["code"] == "invalid_argument" and error["field"] == "page_size"


async def test_missing_required_argument_names_it(service):
    async with Client(build_server(service)) as client:
        error = await _error(client, "cancel", {})
    assert error["code"] == "invalid_argument"
    assert error["field"] == "appointment_id"


async def test_api_key_never_appears_in_results_or_errors(service, sandbox):
    day = next_weekday().isoformat()
    seen = []
    async with Client(build_server(service)) as client:
        for name, args in [
            ("find_slots", {"date": day}),
            ("list_event_types", {"refresh": True}),
            ("book_appointment", booking_args("2020-01-01T10:00:00Z")),
            ("cancel", {"appointment_id": "apt_missing"}),
        ]:
            result = await client.call_tool(name, args)
            seen.append(result.model_dump_json())
    assert all(sandbox.api_key not in text for text in seen)


async def test_without_a_key_booking_tools_explain_how_to_configure_and_search_still_works(db_url):
    from appt_tools.runtime import open_service

    async with open_service(database_url=db_url, environ={}) as service:
        assert service.settings.calcom_api_key is None
        async with Client(build_server(service)) as client:
            for name, args in [("find_slots", {}), ("book_appointment", booking_args("2099-01-05T15:00:00Z"))]:
                error = await _error(client, name, args)
                assert error["code"] == "calcom_not_configured"
                assert "APPT_TOOLS_CALCOM_API_KEY" in error["message"]
            found = await _ok(client, "search_appointments", {})
            assert found["total"] == 0
