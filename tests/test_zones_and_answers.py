"""Issue 12, items 3, 4 and 5 as a model meets them: through a real MCP client session, time zones of
a place only, every wrong argument in one answer, `now` in every result and error."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp.client import Client

from appt_tools import config, validation
from appt_tools.errors import InvalidArgument
from appt_tools.surfaces.mcp_server import INSTRUCTIONS, build_server
from helpers import next_weekday


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("EST", "America/New_York"),
        ("MST", "America/Phoenix"),
        ("HST", "Pacific/Honolulu"),
        ("EST5EDT", "America/New_York"),
        ("posixrules", "America/New_York"),
        ("Factory", "America/New_York"),
        ("-05:00", "America/New_York"),
        ("UTC+5", "America/New_York"),
        ("Etc/GMT+5", "America/New_York"),
        ("Central", "America/Chicago"),
        ("Japan", "Asia/Tokyo"),
    ],
)
def test_zones_without_a_places_rules_are_refused_with_what_to_use(name: str, suggested: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.zone_name("timezone", name)
    assert err.value.field == "timezone" and suggested in err.value.message
    # The same rule for the business's setting.
    with pytest.raises(InvalidArgument):
        config.parse_setting("timezone", name)


def test_est_names_the_daylight_saving_it_lacks() -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.zone_name("timezone", "EST")
    assert "'EST' has no daylight saving; for US Eastern time use America/New_York" in err.value.message


@pytest.mark.parametrize(
    ("spoken", "zone"),
    [
        ("Eastern", "America/New_York"),
        ("pacific time", "America/Los_Angeles"),
        ("Central European", "Europe/Berlin"),
        ("america/new_york", "America/New_York"),
        ("US/Eastern", "US/Eastern"),
        ("UTC", "UTC"),
    ],
)
def test_names_that_mean_one_set_of_rules_are_taken(spoken: str, zone: str) -> None:
    assert validation.zone_name("timezone", spoken) == zone
    assert config.resolve({"timezone": spoken}, {}).timezone == zone


def test_new_york_in_july_is_on_daylight_time() -> None:
    july = validation.instant("start", "2027-07-13T09:00:00", validation.zone_name("timezone", "America/New_York"))
    assert july.utcoffset() is not None and july.utcoffset().total_seconds() == -4 * 3600  # type: ignore[union-attr]


async def _call(client: Client, name: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    result = await client.call_tool(name, args)
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        return True, json.loads(text[text.index("{") :])
    assert result.structured_content is not None
    return False, result.structured_content


async def test_over_mcp_every_answer_has_now_and_a_refusal_lists_every_problem(service) -> None:
    assert "`now`" in INSTRUCTIONS and "next Tuesday" in INSTRUCTIONS
    async with Client(build_server(service)) as client:
        failed, empty = await _call(client, "book_appointment", {})
        assert failed and empty["code"] == "invalid_argument"
        # In the tool's order; attendee_email is optional when the call gives the caller's number.
        assert [e["field"] for e in empty["errors"]] == [
            "attendee_name", "to_number", "from_number", "call_type", "start"
        ]  # fmt: skip
        assert empty["field"] == "attendee_name" and empty["now"]["timezone"] == service.timezone

        failed, est = await _call(client, "find_slots", {"timezone": "EST", "date": "someday", "duration_minutes": 3})
        assert failed and {e["field"] for e in est["errors"]} == {"timezone", "date", "duration_minutes"}
        assert [e["field"] for e in est["errors"]] == ["date", "timezone", "duration_minutes"]  # the tool's order
        assert "America/New_York" in est["errors"][1]["message"]

        day = next_weekday(3)
        for name, args in [
            ("find_slots", {"date": day.isoformat(), "timezone": "America/New_York"}),
            ("find_slots", {"date": "today"}),
            ("search_appointments", {}),
            ("list_event_types", {}),
        ]:
            failed, result = await _call(client, name, args)
            assert not failed, result
            now = datetime.fromisoformat(result["now"]["iso"])
            assert now.tzinfo is not None
            assert now.utcoffset() == datetime.now(ZoneInfo(service.timezone)).utcoffset()
            assert abs((now - datetime.now(ZoneInfo(service.timezone))).total_seconds()) < 120
