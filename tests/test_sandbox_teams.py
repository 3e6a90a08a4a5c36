"""The sandbox's team (NOTES §12.14): the account's user, Dr. Lee and Dr. Patel in "Riverside Clinic", with a
round-robin check-up (any of the three) and a collective case review (Dr. Lee and Dr. Patel together).

Dr. Lee works 08:00-14:00 New York and has a standing Monday 09:00-10:00; Dr. Patel works 11:00-17:00
Chicago (12:00-18:00 New York) with a standing Wednesday 11:00-12:00 (12:00-13:00 New York); the account's
user works 09:00-17:00 New York. The clock is frozen on Monday 2030-10-28 08:00 New York (EDT).
"""

from __future__ import annotations

from typing import Any

from calcom_sandbox.records import COLLECTIVE_ID, ROUND_ROBIN_ID, TEAM_ID
from test_sandbox import BOOKINGS, CONSULTATION, EVENT_TYPES, book, opened, refused, slot_starts, success

TEAM_TYPES = "/v2/teams/{teamId}/event-types"
TUE = "2030-10-29"
WED = "2030-10-30"


def ny(day: str, hour: int, minute: int = 0) -> str:
    """`day` at `hour`:`minute` New York (EDT, UTC-4), as Cal.com's UTC string."""
    return f"{day}T{hour + 4:02d}:{minute:02d}:00.000Z"


def host_names(booking: dict[str, Any]) -> list[str]:
    return [host["name"] for host in booking["hosts"]]


async def test_the_users_teams_and_their_event_types_are_listed_with_hosts_and_scheduling_type() -> None:
    """apps/api/v2/src/modules/teams/teams/controllers/teams.controller.ts (GET /v2/teams: the user's
    teams) and modules/teams/event-types/controllers/teams-event-types.controller.ts, whose output
    (organizations/event-types/services/output.service.ts) has `teamId`, `hosts`, `schedulingType`."""
    async with opened() as (_, client):
        teams = success(await client.get("/v2/teams"), "GET", "/v2/teams")
        assert [(t["id"], t["slug"], t["name"]) for t in teams] == [(TEAM_ID, "riverside-clinic", "Riverside Clinic")]
        types = success(await client.get(f"/v2/teams/{TEAM_ID}/event-types"), "GET", TEAM_TYPES)
        summary = [
            (et["id"], et["slug"], et["schedulingType"], et["teamId"], [h["name"] for h in et["hosts"]]) for et in types
        ]
        assert summary == [
            (ROUND_ROBIN_ID, "check-up", "roundRobin", TEAM_ID, ["Dr. Lee", "Dr. Patel", "Sandbox Host"]),
            (COLLECTIVE_ID, "case-review", "collective", TEAM_ID, ["Dr. Lee", "Dr. Patel"]),
        ]
        assert types[0]["team"]["slug"] == "riverside-clinic" and types[0]["ownerId"] is None
        one = success(
            await client.get(f"/v2/teams/{TEAM_ID}/event-types", params={"eventSlug": "case-review"}), "GET", TEAM_TYPES
        )
        assert [et["id"] for et in one] == [COLLECTIVE_ID]
        # The user's own list stays personal: team event types are listed per team.
        own = success(await client.get("/v2/event-types", headers=EVENT_TYPES), "GET", "/v2/event-types")
        assert ROUND_ROBIN_ID not in [et["id"] for et in own]
        unknown = await client.get("/v2/teams/999/event-types")
        assert refused(unknown, 404, "NotFoundException") == "Team with id=999 not found"


async def test_round_robin_slots_are_free_when_any_host_is_and_collective_only_when_all_are() -> None:
    """packages/trpc/server/routers/viewer/slots/util.ts with getUserAvailability.ts: per-host availability
    from each member's own schedule, united for round robin, intersected for collective."""
    async with opened() as (_, client):
        rr = await slot_starts(client, eventTypeId=ROUND_ROBIN_ID, start=TUE, end=TUE, timeZone="America/New_York")
        # Dr. Lee from 08:00, Dr. Patel until 18:00: the union of the three days' hours.
        assert rr[0] == "2030-10-29T08:00:00.000-04:00" and rr[-1] == "2030-10-29T17:30:00.000-04:00"
        assert len(rr) == 20
        both = await slot_starts(client, eventTypeId=COLLECTIVE_ID, start=TUE, end=TUE)
        assert both == [ny(TUE, 12), ny(TUE, 13)]  # only where Dr. Lee's and Dr. Patel's hours overlap
        # Dr. Patel's standing Wednesday 11:00-12:00 Chicago takes the collective's noon.
        assert await slot_starts(client, eventTypeId=COLLECTIVE_ID, start=WED, end=WED) == [ny(WED, 13)]
        by_slug = await slot_starts(
            client, teamSlug="riverside-clinic", eventTypeSlug="case-review", start=TUE, end=TUE
        )
        assert by_slug == both


async def test_round_robin_assigns_a_free_host_least_recently_booked_first() -> None:
    """packages/features/bookings/lib/getLuckyUser.ts (`leastRecentlyBookedUser`): among the free hosts,
    one never booked for this event type comes first (in host order), then the least recently booked;
    the booking output's `hosts` names the one assigned (ee/bookings/2024-08-13/services/output.service.ts)."""
    async with opened() as (_, client):
        first = await book(client, ny(TUE, 9), ROUND_ROBIN_ID)
        assert host_names(first) == ["Dr. Lee"]
        assert first["title"] == "Check-up between Dr. Lee and Ana Ruiz"
        assert first["hosts"][0]["email"] == "lee@clinic.example.com"
        assert host_names(await book(client, ny(TUE, 13), ROUND_ROBIN_ID)) == ["Dr. Patel"]
        assert host_names(await book(client, ny(TUE, 13, 30), ROUND_ROBIN_ID)) == ["Sandbox Host"]
        # At 15:00 Dr. Lee has gone home; of Dr. Patel and the host, Dr. Patel was booked less recently.
        assert host_names(await book(client, ny(TUE, 15), ROUND_ROBIN_ID)) == ["Dr. Patel"]
        # By slug, as Cal.com also takes it.
        body = {
            "start": ny(TUE, 10),
            "eventTypeSlug": "check-up",
            "teamSlug": "riverside-clinic",
            "attendee": _attendee(),
        }
        by_slug = success(await client.post("/v2/bookings", json=body, headers=BOOKINGS), "POST", "/v2/bookings", 201)
        assert by_slug["eventTypeId"] == ROUND_ROBIN_ID and host_names(by_slug) == ["Dr. Lee"]  # before the host


async def test_a_taken_team_time_gets_cal_coms_team_message_and_blocks_the_assigned_host_elsewhere() -> None:
    """ee/bookings/2024-08-13/services/errors.service.ts: the team wording of "no available users"; a
    host's team booking is busy time for their own event types too."""
    async with opened() as (_, client):
        names = [host_names(await book(client, ny(TUE, 12), ROUND_ROBIN_ID)) for _ in range(3)]
        assert names == [["Dr. Lee"], ["Dr. Patel"], ["Sandbox Host"]]
        full = await client.post(
            "/v2/bookings",
            json={"start": ny(TUE, 12), "eventTypeId": ROUND_ROBIN_ID, "attendee": _attendee()},
            headers=BOOKINGS,
        )
        message = "One of the hosts either already has booking at this time or is not available"
        assert refused(full, 400, "BadRequestException") == message
        own = await slot_starts(client, eventTypeId=CONSULTATION, start=TUE, end=TUE)
        assert ny(TUE, 12) not in own and ny(TUE, 11, 30) in own
        assert await slot_starts(client, eventTypeId=COLLECTIVE_ID, start=TUE, end=TUE) == [ny(TUE, 13)]


async def test_a_collective_booking_names_every_host_and_the_standing_appointment_is_respected() -> None:
    async with opened() as (_, client):
        both = await book(client, ny(TUE, 12), COLLECTIVE_ID)
        assert host_names(both) == ["Dr. Lee", "Dr. Patel"]
        taken = await client.post(
            "/v2/bookings",
            json={"start": ny(WED, 12), "eventTypeId": COLLECTIVE_ID, "attendee": _attendee()},
            headers=BOOKINGS,
        )
        assert refused(taken, 400, "BadRequestException").startswith("One of the hosts")
        listed = success(
            await client.get("/v2/bookings", params={"teamsIds": str(TEAM_ID)}, headers=BOOKINGS), "GET", "/v2/bookings"
        )
        assert [b["uid"] for b in listed] == [both["uid"]]


async def test_a_round_robin_reschedule_keeps_its_host_while_that_host_is_free() -> None:
    async with opened() as (_, client):
        booked = await book(client, ny(TUE, 9), ROUND_ROBIN_ID)
        moved = await client.post(
            f"/v2/bookings/{booked['uid']}/reschedule", json={"start": ny(TUE, 10)}, headers=BOOKINGS
        )
        assert host_names(success(moved, "POST", "/v2/bookings/{bookingUid}/reschedule", 201)) == ["Dr. Lee"]


def _attendee() -> dict[str, str]:
    return {"name": "Bo Li", "email": "bo@example.com", "timeZone": "America/New_York"}
