"""The use cases against the real sandbox over loopback HTTP, with a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.service import AppointmentService
from appt_tools.errors import (
    AppError,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    LockedField,
    NotConfigured,
    NotFound,
    SlotUnavailable,
)
from appt_tools.models import AppointmentStatus, SearchQuery
from appt_tools.store import Store
from helpers import BUSINESS_ENV, HOST_TZ, Raw, booking_args, next_weekday


async def _first_slot(service: AppointmentService, offset: int = 0, **kwargs: Any) -> str:
    found = await Raw(service).find_slots(day=next_weekday().isoformat(), **kwargs)
    assert found.slots and not found.later
    return found.slots[offset].start.isoformat()


async def _counts(service: AppointmentService, sandbox: Any) -> tuple[int, int]:
    page = await service.store.search(SearchQuery(page_size=100), now=datetime.now(UTC))
    return page.total, len(sandbox.state.bookings)


async def test_find_slots_on_a_weekday_lists_times_in_working_hours(service):
    found = await Raw(service).find_slots(day=next_weekday().isoformat())
    assert not found.later
    assert found.timezone == HOST_TZ
    local_hours = {s.start.astimezone(found.slots[0].start.tzinfo).hour for s in found.slots}
    assert found.slots[0].start.utcoffset() is not None
    for slot in found.slots:
        local = slot.start.astimezone(ZoneInfo(HOST_TZ))
        assert 9 <= local.hour < 17
        assert slot.end - slot.start == timedelta(minutes=found.duration_minutes)
    assert local_hours


async def test_find_slots_on_a_weekend_offers_the_next_free_times(service):
    day = next_weekday()
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    found = await Raw(service).find_slots(day=saturday.isoformat())
    assert found.later
    assert found.slots
    assert all(s.start.date() > saturday for s in found.slots)


async def test_booking_records_the_call_and_books_in_calcom(service, sandbox):
    start = await _first_slot(service)
    booked = await Raw(service).book(**booking_args(start))
    assert booked.status is AppointmentStatus.ACTIVE
    assert booked.booking_uid in sandbox.state.bookings
    assert booked.meeting_url and booked.meeting_url.startswith("https://")
    stored = await service.store.get_appointment(booked.id)
    assert stored is not None
    assert (stored.to_number, stored.from_number, stored.call_type) == (
        "+14155550100",
        "+14155550123",
        "inbound",
    )
    assert stored.business_name == "Acme Dental"
    assert [h.action for h in await service.history(booked.id)] == ["created", "booked"]


async def test_booking_a_taken_slot_offers_the_nearest_free_slots_and_books_nothing(service, sandbox):
    start = await _first_slot(service, offset=2)
    await Raw(service).book(**booking_args(start))
    live, in_calcom = await _counts(service, sandbox)
    with pytest.raises(SlotUnavailable) as err:
        await Raw(service).book(**booking_args(start, attendee_email="bob@example.com", from_number="+14155550124"))
    assert err.value.code == "slot_unavailable"
    assert 1 <= len(err.value.alternatives) <= 3
    assert all(a.start.isoformat() != start for a in err.value.alternatives)
    # Cal.com was asked straight away and refused: nothing booked there, and our record of the attempt
    # says failed and why (left out of search_appointments by default).
    assert len(sandbox.state.bookings) == in_calcom
    page = await service.store.search(SearchQuery(page_size=100), now=datetime.now(UTC))
    attempt = next(a for a in page.items if a.attendee_email == "bob@example.com")
    assert attempt.status is AppointmentStatus.FAILED and attempt.booking_uid is None
    assert "Cal.com refused the time" in (attempt.last_error or "")
    assert page.total == live + 1


async def test_concurrent_bookings_of_one_slot_book_exactly_once(service, sandbox):
    start = await _first_slot(service, offset=1)
    outcomes = await asyncio.gather(
        *(
            Raw(service).book(
                **booking_args(start, attendee_email=f"caller{i}@example.com", from_number=f"+1415555015{i}")
            )
            for i in range(5)
        ),
        return_exceptions=True,
    )
    booked = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(booked) == 1
    assert all(isinstance(o, SlotUnavailable) for o in refused), refused
    live = await service.store.search(SearchQuery(statuses=(AppointmentStatus.ACTIVE,)), now=datetime.now(UTC))
    assert live.total == 1
    in_calcom = [b for b in sandbox.state.bookings.values() if getattr(b, "status", None) == "accepted"]
    assert len(in_calcom) == 1


async def test_an_event_type_that_needs_confirmation_stays_pending(service, sandbox):
    pending_type = next(t for t in await service.list_event_types() if t.requires_confirmation)
    start = await _first_slot(service, event_type_id=pending_type.id)
    booked = await Raw(service).book(**booking_args(start, event_type_id=pending_type.id))
    assert booked.status is AppointmentStatus.PENDING
    assert booked.booking_uid is not None


async def test_reschedule_keeps_the_id_and_tracks_every_uid(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _first_slot(service)))
    new_start = await _first_slot(service, offset=4)
    moved = await Raw(service).reschedule(booked.id, new_start, reason="Running late")
    assert moved.id == booked.id
    assert moved.booking_uid != booked.booking_uid
    assert moved.previous_booking_uids == (booked.booking_uid,)
    assert moved.status is AppointmentStatus.RESCHEDULED
    assert (moved.to_number, moved.from_number, moved.call_type) == (
        booked.to_number,
        booked.from_number,
        "inbound",
    )
    assert moved.start.isoformat() == datetime.fromisoformat(new_start).astimezone(UTC).isoformat()
    old = sandbox.state.bookings[booked.booking_uid]
    assert old.status == "cancelled"
    assert old.rescheduled_to_uid == moved.booking_uid
    history = await service.history(booked.id)
    assert history[-1].action == "rescheduled"
    assert (history[-1].from_booking_uid, history[-1].to_booking_uid) == (
        booked.booking_uid,
        moved.booking_uid,
    )
    by_old_uid = await service.get(booked.booking_uid or "")
    assert by_old_uid.id == booked.id


async def test_cancel_is_permanent_and_searchable(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _first_slot(service)))
    cancelled = await Raw(service).cancel(booked.id)
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.cancellation_reason
    assert sandbox.state.bookings[booked.booking_uid].status == "cancelled"
    found = await Raw(service).search(query="ruiz", status="cancelled")
    assert [a.id for a in found.items] == [booked.id]
    with pytest.raises(Conflict) as twice:
        await Raw(service).cancel(booked.id)
    assert twice.value.code == "already_cancelled"
    with pytest.raises(Conflict) as moved:
        await Raw(service).reschedule(booked.id, await _first_slot(service, offset=3))
    assert moved.value.code == "not_reschedulable"


async def test_update_changes_our_fields_and_refuses_locked_ones(service):
    booked = await Raw(service).book(**booking_args(await _first_slot(service)))
    changed = await Raw(service).update(booked.id, {"title": "Deep cleaning", "label": "vip"})
    assert (changed.title, changed.label) == ("Deep cleaning", "vip")
    assert (await service.history(booked.id))[-1].action == "updated"
    for field in ("to_number", "from_number", "call_type", "booking_uid"):
        with pytest.raises(LockedField) as err:
            await Raw(service).update(booked.id, {field: "x"})
        assert err.value.field == field
    assert (await service.get(booked.id)).to_number == booked.to_number


async def test_search_shows_passed_appointments_as_completed(service, db_url, sandbox):
    booked = await Raw(service).book(**booking_args(await _first_slot(service)))
    later = AppointmentService(service.store, None, service.settings, clock=lambda: booked.end + timedelta(hours=1))
    done = await Raw(later).search(status="completed")
    assert [a.id for a in done.items] == [booked.id]
    assert done.items[0].effective_status(booked.end + timedelta(hours=1)) is AppointmentStatus.COMPLETED
    assert (await Raw(later).search(status="active")).total == 0


BAD_INPUTS: list[tuple[str, Callable[[AppointmentService, str], Awaitable[object]], str, str]] = [
    (
        "malformed e-mail",
        lambda s, t: Raw(s).book(**booking_args(t, attendee_email="ana@")),
        "invalid_argument",
        "attendee_email",
    ),
    (
        "to number not E.164",
        lambda s, t: Raw(s).book(**booking_args(t, to_number="415-555-0100")),
        "invalid_argument",
        "to_number",
    ),
    (
        "from number not E.164",
        lambda s, t: Raw(s).book(**booking_args(t, from_number="0123")),
        "invalid_argument",
        "from_number",
    ),
    (
        "unknown time zone",
        lambda s, t: Raw(s).book(**booking_args(t, timezone="Mars/Olympus")),
        "invalid_argument",
        "timezone",
    ),
    (
        "start with no offset and no zone",
        lambda s, t: Raw(s).book(**booking_args(t[:19])),
        "invalid_argument",
        "start",
    ),
    (
        "start in the past",
        lambda s, t: Raw(s).book(**booking_args("2020-01-06T15:00:00Z")),
        "invalid_argument",
        "start",
    ),
    (
        "unknown call type",
        lambda s, t: Raw(s).book(**booking_args(t, call_type="sms")),
        "invalid_argument",
        "call_type",
    ),
    (
        "unknown event type",
        lambda s, t: Raw(s).book(**booking_args(t, event_type_id=999999)),
        "invalid_argument",
        "event_type_id",
    ),
    ("unknown appointment id", lambda s, t: Raw(s).cancel("apt_doesnotexist"), "appointment_not_found", ""),
    ("page size 7", lambda s, t: Raw(s).search(page_size=7), "invalid_argument", "page_size"),
    ("unknown status", lambda s, t: Raw(s).search(status="done"), "invalid_argument", "status"),
    (
        "changing a locked field",
        lambda s, t: Raw(s).update("apt_any", {"call_type": "web"}),
        "locked_field",
        "call_type",
    ),
]


@pytest.mark.parametrize(("case", "call", "code", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
async def test_bad_input_gets_a_specific_error_and_changes_nothing(service, sandbox, case, call, code, field):
    start = await _first_slot(service)
    before = await _counts(service, sandbox)
    with pytest.raises(AppError) as err:
        await call(service, start)
    assert err.value.code == code, err.value.message
    if field:
        assert isinstance(err.value, InvalidArgument) and err.value.field == field
    assert err.value.message
    assert await _counts(service, sandbox) == before


async def test_unknown_appointment_is_not_found(service):
    with pytest.raises(NotFound):
        await service.get("apt_nope")


async def test_without_calcom_booking_tools_say_how_to_configure(db_url):
    async with Store.from_url(db_url) as store:
        service = AppointmentService(store, None, resolve({}, BUSINESS_ENV))
        with pytest.raises(NotConfigured) as err:
            await Raw(service).find_slots(day=next_weekday().isoformat())
        assert "APPT_TOOLS_CALCOM_API_KEY" in err.value.message


def _failing_transport(sandbox: Any, fail: Callable[[httpx2.Request], httpx2.Response | None]) -> httpx2.MockTransport:
    """Forwards to the real sandbox, except where `fail` answers (or raises) first."""
    upstream = httpx2.AsyncClient()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        answer = fail(request)
        if answer is not None:
            return answer
        response = await upstream.send(request)
        await response.aread()
        return httpx2.Response(response.status_code, headers=response.headers, content=response.content)

    transport = httpx2.MockTransport(handler)
    transport.upstream = upstream  # type: ignore[attr-defined]
    return transport


async def _service_with(sandbox: Any, store: Store, transport: httpx2.MockTransport) -> AppointmentService:
    client = CalcomClient(sandbox.api_key, sandbox.base_url, transport=transport)
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    return AppointmentService(store, client, resolve({}, env))


async def test_a_calcom_refusal_leaves_a_failed_record_not_an_active_one(service, sandbox):
    def refuse(request: httpx2.Request) -> httpx2.Response | None:
        if request.method == "POST" and request.url.path == "/v2/bookings":
            return httpx2.Response(500, json={"statusCode": 500, "message": "Internal server error"})
        return None

    transport = _failing_transport(sandbox, refuse)
    failing = await _service_with(sandbox, service.store, transport)
    start = await _first_slot(service)
    with pytest.raises(CalcomUnavailable):
        await Raw(failing).book(**booking_args(start))
    pending = await service.store.search(SearchQuery(statuses=(AppointmentStatus.PENDING,)), now=datetime.now(UTC))
    assert pending.total == 1
    record = pending.items[0]
    assert record.booking_uid is None
    assert record.last_error and "unknown" in record.last_error
    assert len(sandbox.state.bookings) == 0
    await failing.calcom.aclose()
    await transport.upstream.aclose()  # type: ignore[attr-defined]


async def test_a_booking_made_before_a_timeout_is_found_not_booked_twice(service, sandbox):
    async def noop() -> None:
        return None

    calls: list[str] = []

    def lose_the_answer(request: httpx2.Request) -> httpx2.Response | None:
        calls.append(f"{request.method} {request.url.path}")
        return None

    transport = _failing_transport(sandbox, lose_the_answer)
    original = transport.handle_async_request

    async def drop_after_booking(request: httpx2.Request) -> httpx2.Response:
        response = await original(request)
        if request.method == "POST" and request.url.path == "/v2/bookings":
            raise httpx2.ReadTimeout("timed out", request=request)
        return response

    transport.handle_async_request = drop_after_booking  # type: ignore[method-assign]
    failing = await _service_with(sandbox, service.store, transport)
    booked = await Raw(failing).book(**booking_args(await _first_slot(service)))
    assert booked.status is AppointmentStatus.ACTIVE
    assert booked.booking_uid in sandbox.state.bookings
    assert len(sandbox.state.bookings) == 1
    await failing.calcom.aclose()
    await transport.upstream.aclose()  # type: ignore[attr-defined]


def _around_next_dst_change() -> tuple[date, date]:
    """The last weekday before and the first weekday after the host zone's next DST change."""
    tz = ZoneInfo(HOST_TZ)
    day = next_weekday()
    offset = datetime.combine(day, time(12), tzinfo=tz).utcoffset()
    while datetime.combine(day + timedelta(days=1), time(12), tzinfo=tz).utcoffset() == offset:
        day += timedelta(days=1)
    before, after = day, day + timedelta(days=1)
    while before.weekday() >= 5:
        before -= timedelta(days=1)
    while after.weekday() >= 5:
        after += timedelta(days=1)
    return before, after


async def test_slots_follow_working_hours_across_a_dst_change(service):
    before, after = _around_next_dst_change()
    first = []
    for day in (before, after):
        found = await Raw(service).find_slots(day=day.isoformat())
        assert not found.later, day
        local = found.slots[0].start.astimezone(ZoneInfo(HOST_TZ))
        assert (local.date(), local.hour, local.minute) == (day, 9, 0)
        first.append(found.slots[0].start.astimezone(UTC).hour)
    assert abs(first[0] - first[1]) == 1  # 09:00 local is 13:00Z in summer time and 14:00Z in winter time


async def test_a_booking_across_a_dst_change_keeps_its_local_time(service):
    _, after = _around_next_dst_change()
    found = await Raw(service).find_slots(day=after.isoformat(), timezone=HOST_TZ)
    naive_local = found.slots[0].start.astimezone(ZoneInfo(HOST_TZ)).replace(tzinfo=None).isoformat()
    booked = await Raw(service).book(**booking_args(naive_local, timezone=HOST_TZ))
    assert booked.start == found.slots[0].start.astimezone(UTC)


async def test_search_finds_a_phone_number_however_it_is_typed(service):
    booked = await Raw(service).book(**booking_args(await _first_slot(service)))
    for typed in ("+14155550123", "(415) 555-0123", "415.555.0123", "+1 415 555 0123", "0100"):
        found = await Raw(service).search(query=typed)
        assert [a.id for a in found.items] == [booked.id], typed
    assert (await Raw(service).search(query="555-9999")).total == 0


async def test_a_retried_identical_booking_returns_the_first_and_books_nothing_new(service, sandbox):
    args = booking_args(await _first_slot(service))
    first = await Raw(service).book(**args)
    again = await Raw(service).book(**args)
    assert again.id == first.id and again.booking_uid == first.booking_uid
    assert len(sandbox.state.bookings) == 1
    assert (await Raw(service).search()).total == 1
    other_caller = await Raw(service).find_slots(day=next_weekday().isoformat())
    assert all(s.start != first.start for s in other_caller.slots)


async def test_event_types_come_from_memory_and_follow_another_processs_sync(service, monkeypatch):
    import appt_tools.core.catalog as service_module

    first = await service.list_event_types()
    reads = 0
    read = service.store.list_event_types

    async def counted() -> Any:
        nonlocal reads
        reads += 1
        return await read()

    monkeypatch.setattr(service.store, "list_event_types", counted)
    for _ in range(5):
        assert await service.list_event_types() == first
    await Raw(service).find_slots(day=next_weekday().isoformat())
    assert reads == 0  # every call above was answered from memory

    # Another process (same database) syncs a different list: seen once the memory is stale.
    renamed = [t.model_copy(update={"title": f"{t.title} (new)"}) for t in first]
    await service.store.replace_event_types(renamed, now=datetime.now(UTC))
    assert await service.list_event_types() == first
    monkeypatch.setattr(service_module, "EVENT_TYPES_TTL_SECONDS", 0.0)
    assert sorted(t.title for t in await service.list_event_types()) == sorted(t.title for t in renamed)
    assert reads == 1
