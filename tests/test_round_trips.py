"""One Cal.com round trip per change, cold or warm: a booking, a move and a cancel each send one request,
and free slots are looked up only after Cal.com refuses a time, to offer the nearest ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.service import AppointmentService
from appt_tools.errors import SlotUnavailable
from appt_tools.models import AppointmentStatus
from helpers import BUSINESS_ENV, Flaky, Raw, booking_args, next_weekday


@asynccontextmanager
async def _cold(sandbox: Any, store: Any) -> AsyncIterator[tuple[AppointmentService, Flaky]]:
    """A service that has synced its event types and looked at no slots: what a caller meets first."""
    counter = Flaky()  # no failure rules: it only records what reaches Cal.com
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with CalcomClient(sandbox.api_key, sandbox.base_url, transport=counter) as client:
        service = AppointmentService(store, client, resolve({}, env))
        await service.refresh_event_types()
        counter.seen.clear()
        yield service, counter


async def _free_starts(service: AppointmentService) -> list[str]:
    return [s.start.isoformat() for s in (await Raw(service).find_slots(day=next_weekday().isoformat())).slots]


async def test_book_reschedule_and_cancel_each_cost_one_request_on_a_cold_server(service, sandbox):
    first, second = (await _free_starts(service))[1:3]
    async with _cold(sandbox, service.store) as (cold, calls):
        booked = await Raw(cold).book(**booking_args(first))
        assert calls.seen == ["POST /v2/bookings"]
        calls.seen.clear()
        moved = await Raw(cold).reschedule(booked.id, second)
        assert calls.seen == [f"POST /v2/bookings/{booked.booking_uid}/reschedule"]
        calls.seen.clear()
        await Raw(cold).cancel(moved.id)
        assert calls.seen == [f"POST /v2/bookings/{moved.booking_uid}/cancel"]
    assert booked.status is AppointmentStatus.ACTIVE and moved.start.isoformat() == second


async def test_a_booking_after_find_slots_still_costs_one_request(service, sandbox):
    async with _cold(sandbox, service.store) as (cold, calls):
        start = (await _free_starts(cold))[0]
        calls.seen.clear()
        await Raw(cold).book(**booking_args(start))
        assert calls.seen == ["POST /v2/bookings"]


async def test_a_refused_time_is_looked_up_only_after_cal_com_refuses_and_comes_with_alternatives(service, sandbox):
    start = (await _free_starts(service))[3]
    await Raw(service).book(**booking_args(start, attendee_email="first@example.com", from_number="+14155550124"))
    async with _cold(sandbox, service.store) as (cold, calls):
        with pytest.raises(SlotUnavailable) as refused:
            await Raw(cold).book(**booking_args(start))
        assert calls.seen == ["POST /v2/bookings", "GET /v2/slots"]
    assert refused.value.alternatives and all(a.start.isoformat() != start for a in refused.value.alternatives)
    # This process never saw the time free, and Cal.com's refusal does not say whether it was taken a
    # moment ago or never free: no "just taken".
    assert not refused.value.taken and "is not a free time" in refused.value.message


async def test_a_time_seen_free_a_moment_ago_and_refused_is_called_just_taken(service, sandbox):
    async with _cold(sandbox, service.store) as (cold, _):
        start = (await _free_starts(cold))[4]
        await Raw(service).book(  # another process takes it after this one looked
            **booking_args(start, attendee_email="quick@example.com", from_number="+14155550124")
        )
        with pytest.raises(SlotUnavailable) as refused:
            await Raw(cold).book(**booking_args(start))
    assert refused.value.taken and "was just taken" in refused.value.message


async def test_a_start_cal_com_will_not_take_at_all_is_not_free_never_just_taken(service, sandbox):
    start = datetime.fromisoformat((await _free_starts(service))[0]) + timedelta(minutes=7)
    async with _cold(sandbox, service.store) as (cold, calls):
        with pytest.raises(SlotUnavailable) as refused:
            await Raw(cold).book(**booking_args(start.isoformat()))
        assert calls.seen == ["POST /v2/bookings", "GET /v2/slots"]
    assert not refused.value.taken and refused.value.alternatives


async def test_a_change_right_after_another_takes_the_lease_at_once(service, sandbox):
    """The lease a change gives back after answering (`Store.after_answer`) is handed straight to the next
    change of this process, which does not poll for it (a caller chaining a move and a cancel)."""
    first, second = (await _free_starts(service))[1:3]
    booked = await Raw(service).book(**booking_args(first))
    refused: list[str] = []
    lease_appointment = service.store.lease_appointment

    async def counted(name: str, holder: str, appointment_id: str, **kwargs: Any) -> tuple[bool, Any]:
        taken, current = await lease_appointment(name, holder, appointment_id, **kwargs)
        if not taken:
            refused.append(name)
        return taken, current

    service.store.lease_appointment = counted  # type: ignore[method-assign]
    await Raw(service).reschedule(appointment_id=booked.id, new_start=second)
    cancelled = await Raw(service).cancel(appointment_id=booked.id)
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert refused == []
