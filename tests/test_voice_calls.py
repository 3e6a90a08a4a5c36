"""Issue 12 (items 2, 3, 5): real phone calls through each voice platform's real request shape, over
real loopback HTTP on the sandbox and a SQLite file: the call's numbers and direction come from the
platform, `mine` finds the caller's own appointments, every result carries `now`, and a refused call
names every wrong argument at once."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from appt_tools.core.service import AppointmentService
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from dashboard_support import served
from helpers import next_weekday

KEY = "k_live_0123456789abcdefghijKEY1"
BUSINESS = "+14155550100"
CALLER = "+14155550123"
MODEL_ARGS = {"attendee_name": "Ana Ruiz", "attendee_email": "ana.ruiz@example.com"}


def _vapi(
    call_id: str, name: str, arguments: dict[str, Any], *, flat: bool = False, kind: str = "inboundPhoneCall"
) -> dict[str, Any]:
    """A Vapi tool-calls server message as Vapi sends it: the call, the customer and the phone number."""
    item = (
        {"id": call_id, "name": name, "arguments": arguments}
        if flat
        else {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    )
    return {
        "message": {
            "type": "tool-calls",
            "toolCallList": [item],
            "call": {"id": "call-1", "type": kind, "customer": {"number": CALLER}},
            "phoneNumber": {"id": "pn-1", "number": BUSINESS},
            "customer": {"number": CALLER},
        }
    }


async def _vapi_result(client: httpx2.AsyncClient, message: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/vapi/tool-calls", json=message, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    [answer] = response.json()["results"]
    assert "error" not in answer, answer
    result: dict[str, Any] = json.loads(answer["result"])
    return result


async def _first_slot(client: httpx2.AsyncClient) -> str:
    day = next_weekday(3).isoformat()
    found = await client.post("/tools/find_slots", json={"date": day}, headers={"Authorization": f"Bearer {KEY}"})
    assert found.status_code == 200, found.text
    start: str = found.json()["slots"][0]["start"]
    return start


def _settings() -> HttpSettings:
    return HttpSettings(credentials=Credentials((SecretStr(KEY),)))


@pytest.mark.parametrize("flat", [False, True], ids=["nested", "flat"])
async def test_vapi_books_with_the_calls_numbers_when_the_model_gives_none(
    service: AppointmentService, flat: bool
) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        start = await _first_slot(client)
        result = await _vapi_result(client, _vapi("c1", "book_appointment", {"start": start, **MODEL_ARGS}, flat=flat))
        booked = result["appointment"]
        assert (booked["to_number"], booked["from_number"], booked["call_type"]) == (BUSINESS, CALLER, "inbound")
        stored = await service.get(booked["id"])
        assert (stored.to_number, stored.from_number, stored.call_type) == (BUSINESS, CALLER, "inbound")
        assert result["now"]["iso"] and result["now"]["spoken"]

        # "When is my appointment?": one call, no number typed by the model.
        mine = await _vapi_result(client, _vapi("c2", "search_appointments", {"mine": True}, flat=flat))
        assert [a["id"] for a in mine["items"]] == [booked["id"]]


async def test_the_platform_overrules_the_model_and_the_history_keeps_both(service: AppointmentService) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        start = await _first_slot(client)
        wrong = {"to_number": "+14155550199", "from_number": "(415) 555-0123", "call_type": "outbound"}
        result = await _vapi_result(client, _vapi("c1", "book_appointment", {"start": start, **MODEL_ARGS, **wrong}))
        booked = result["appointment"]
        assert (booked["to_number"], booked["from_number"], booked["call_type"]) == (BUSINESS, CALLER, "inbound")
        notes = [h.detail for h in await service.history(booked["id"]) if "call data" in h.detail]
        assert len(notes) == 1
        # The same number in another form is no disagreement; the wrong ones are recorded with the call's.
        assert "+14155550199" in notes[0] and BUSINESS in notes[0] and "'outbound'" in notes[0]
        assert "(415) 555-0123" not in notes[0]


async def test_retell_and_elevenlabs_take_the_numbers_from_the_call(service: AppointmentService) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        bearer = {"Authorization": f"Bearer {KEY}"}
        start = await _first_slot(client)
        retell_call = {
            "call_id": "r1",
            "call_type": "phone_call",
            "direction": "outbound",
            "from_number": BUSINESS,
            "to_number": CALLER,
        }
        response = await client.post(
            "/retell/functions",
            json={"name": "book_appointment", "call": retell_call, "args": {"start": start, **MODEL_ARGS}},
            headers=bearer,
        )
        assert response.status_code == 200, response.text
        booked = response.json()["appointment"]
        assert (booked["to_number"], booked["from_number"], booked["call_type"]) == (CALLER, BUSINESS, "outbound")

        # ElevenLabs: the plain body its webhook tool sends, with the system variables' values.
        other = "+14155550177"
        body = {"mine": True, "caller_id": other, "called_number": BUSINESS, "call_direction": "inbound"}
        found = await client.post("/elevenlabs/tools/search_appointments", json=body, headers=bearer)
        assert found.status_code == 200, found.text
        assert found.json()["total"] == 0 and "now" in found.json()
        body = {"mine": True, "caller_id": "", "called_number": BUSINESS, "call_direction": "outbound"}
        retell_mine = await client.post(
            "/retell/functions",
            json={"name": "search_appointments", "call": retell_call, "args": {"mine": True}},
            headers=bearer,
        )
        assert [a["id"] for a in retell_mine.json()["items"]] == [booked["id"]]
        # Without the secret header, ElevenLabs' route is closed.
        closed = await client.post("/elevenlabs/tools/search_appointments", json=body)
        assert closed.status_code == 401


async def test_a_phone_filter_matches_either_number_in_any_common_form(service: AppointmentService) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        bearer = {"Authorization": f"Bearer {KEY}"}
        start = await _first_slot(client)
        await _vapi_result(client, _vapi("c1", "book_appointment", {"start": start, **MODEL_ARGS}))
        for form in ("(415) 555-0123", "+1 415-555-0123", "415.555.0100"):
            found = await client.post("/tools/search_appointments", json={"phone": form}, headers=bearer)
            assert found.json()["total"] == 1, (form, found.text)
        nobody = await client.post("/tools/search_appointments", json={"phone": "+14155550188"}, headers=bearer)
        assert nobody.json()["total"] == 0
        # Outside a phone call, `mine` has no caller to go by: a clear refusal, not an empty list.
        refused = await client.post("/tools/search_appointments", json={"mine": True}, headers=bearer)
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "mine" and "phone" in refused.json()["error"]["message"]


async def test_a_refused_call_names_every_problem_and_asks_the_caller_nothing_of_ours(
    service: AppointmentService,
) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        bearer = {"Authorization": f"Bearer {KEY}"}
        empty = (await client.post("/tools/book_appointment", json={}, headers=bearer)).json()["error"]
        missing = {e["field"] for e in empty["errors"]}
        # attendee_email is optional when the caller's number is known, which depends on call_type
        assert missing == {"start", "attendee_name", "to_number", "from_number", "call_type"}
        assert empty["field"] == empty["errors"][0]["field"] and "now" in empty

        bad = {
            "start": "next tuesday",
            "attendee_name": "Ana",
            "attendee_email": "ana@",
            "to_number": "555",
            "from_number": "+14155550123",
            "call_type": "inbound",
            "timezone": "EST",
            "colour": "red",
        }
        answer = (await client.post("/tools/book_appointment", json=bad, headers=bearer)).json()["error"]
        every = ["colour", "to_number", "timezone", "start", "attendee_email"]  # in the tool's order
        assert answer["field"] == "colour" and [e["field"] for e in answer["errors"]] == every
        del bad["colour"]
        answer = (await client.post("/tools/book_appointment", json=bad, headers=bearer)).json()["error"]
        assert {e["field"] for e in answer["errors"]} == set(every[1:])
        assert "America/New_York" in next(e["message"] for e in answer["errors"] if e["field"] == "timezone")
        assert answer["say"] == "Could you spell your e-mail address for me again?"

        # Only the business's number is wrong: nothing to ask the caller.
        only_ours = {**bad, "attendee_email": "ana@example.com", "timezone": None, "start": "2026-11-24T15:00:00-05:00"}
        answer = (await client.post("/tools/book_appointment", json=only_ours, headers=bearer)).json()["error"]
        assert answer["field"] == "to_number" and "number" not in answer["say"].lower()

        unknown = (await client.post("/tools/book_a_table", json={}, headers=bearer)).json()["error"]
        assert "try that again" not in unknown["say"]


async def test_find_slots_takes_today_and_tomorrow_and_a_page_past_the_last_says_so(
    service: AppointmentService,
) -> None:
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        bearer = {"Authorization": f"Bearer {KEY}"}
        tomorrow = (await client.post("/tools/find_slots", json={"date": "tomorrow"}, headers=bearer)).json()
        now = datetime.fromisoformat(tomorrow["now"]["iso"])
        assert tomorrow["now"]["spoken"].startswith(f"{now:%A}, {now:%B} {now.day}, ")
        if not tomorrow["requested_window_empty"]:
            assert datetime.fromisoformat(tomorrow["slots"][0]["start"]).toordinal() == now.toordinal() + 1
        wrong = (await client.post("/tools/find_slots", json={"date": "someday"}, headers=bearer)).json()["error"]
        assert "'tomorrow'" in wrong["message"]

        start = await _first_slot(client)
        await _vapi_result(client, _vapi("c1", "book_appointment", {"start": start, **MODEL_ARGS}))
        past = (await client.post("/tools/search_appointments", json={"page": 99}, headers=bearer)).json()
        assert past["items"] == [] and past["total"] == 1
        assert "nothing more" in past["say"] and "I found 1" not in past["say"].split(";")[0]


async def test_elevenlabs_sends_the_answers_as_json_text(service: AppointmentService) -> None:
    """ElevenLabs' webhook schemas have no free-form object, so the exported tool declares `answers` as
    JSON text (schema_formats.elevenlabs_tool); the route reads it back into the object."""
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=15) as client:
        bearer = {"Authorization": f"Bearer {KEY}"}
        day = next_weekday(3).isoformat()
        slots = await client.post("/tools/find_slots", json={"date": day, "event_type_id": 1007}, headers=bearer)
        start = slots.json()["slots"][0]["start"]
        call = {"caller_id": CALLER, "called_number": BUSINESS, "call_direction": "inbound"}
        body = {"start": start, "event_type_id": 1007, **MODEL_ARGS, **call}
        not_json = await client.post(
            "/elevenlabs/tools/book_appointment", json={**body, "answers": "topic is pensions"}, headers=bearer
        )
        assert not_json.status_code == 200 and not_json.json()["error"]["field"] == "answers"
        booked = await client.post(
            "/elevenlabs/tools/book_appointment",
            json={**body, "answers": json.dumps({"topic": "Pensions"})},
            headers=bearer,
        )
        assert booked.status_code == 200, booked.text
        assert booked.json()["appointment"]["answers"] == {"topic": "Pensions"}
