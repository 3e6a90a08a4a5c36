"""Warm find_slots costs no Cal.com round trip; any change clears the cache; it never decides a booking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.service import AppointmentService
from appt_tools.core.slot_cache import SlotCache
from appt_tools.errors import SlotUnavailable
from appt_tools.models import Slot
from helpers import BUSINESS_ENV, Flaky, Raw, booking_args, next_weekday

T0 = datetime(2030, 1, 7, 14, tzinfo=UTC)


def _slots(*hours: int) -> list[Slot]:
    return [Slot(start=T0.replace(hour=h), end=T0.replace(hour=h, minute=30)) for h in hours]


def test_a_fresh_entry_answers_any_window_inside_it_and_expires():
    now = [0.0]
    cache = SlotCache(ttl=60, clock=lambda: now[0])
    cache.put(1, None, T0.replace(hour=0), T0.replace(hour=23), _slots(14, 15, 16))
    assert cache.get(1, None, T0.replace(hour=15), T0.replace(hour=16)) == _slots(15)
    assert cache.get(1, None, T0.replace(hour=0), T0 + timedelta(days=1)) is None  # not covered
    assert cache.get(2, None, T0.replace(hour=15), T0.replace(hour=16)) is None  # another event type
    assert cache.get(1, 60, T0.replace(hour=15), T0.replace(hour=16)) is None  # another duration
    assert cache.covering(1, None, T0.replace(hour=15)) == _slots(14, 15, 16)
    now[0] = 61
    assert cache.get(1, None, T0.replace(hour=15), T0.replace(hour=16)) is None


def test_clear_forgets_everything_and_the_size_is_bounded():
    cache = SlotCache(max_entries=3)
    for day in range(5):
        lo = T0 + timedelta(days=day)
        cache.put(1, None, lo, lo + timedelta(hours=8), _slots(14))
    assert cache.get(1, None, T0, T0 + timedelta(hours=8)) is None  # the oldest went first
    assert cache.get(1, None, T0 + timedelta(days=4), T0 + timedelta(days=4, hours=8)) is not None
    cache.clear()
    assert cache.covering(1, None, T0 + timedelta(days=4)) is None


@asynccontextmanager
async def _counted(sandbox: Any, store: Any) -> AsyncIterator[tuple[AppointmentService, Flaky]]:
    counter = Flaky()  # no failure rules: it only records what reaches Cal.com
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with CalcomClient(sandbox.api_key, sandbox.base_url, transport=counter) as client:
        service = AppointmentService(store, client, resolve({}, env))
        await service.refresh_event_types()
        yield service, counter


async def test_repeated_look_ups_cost_no_round_trip_and_a_booking_costs_exactly_one(service, sandbox):
    async with _counted(sandbox, service.store) as (counted, calls):
        day = next_weekday().isoformat()
        first = await Raw(counted).find_slots(day=day)
        calls.seen.clear()
        again = await Raw(counted).find_slots(day=day)
        assert calls.seen == []
        assert again.slots == first.slots
        await Raw(counted).book(**booking_args(first.slots[0].start.isoformat()))
        assert calls.seen == ["POST /v2/bookings"]  # the slot check came from the cache
        calls.seen.clear()
        after = await Raw(counted).find_slots(day=day)
        assert calls.seen == ["GET /v2/slots"]  # the booking cleared the cache
        assert first.slots[0] not in after.slots


async def test_a_stale_cache_never_decides_cal_com_refuses_and_fresh_alternatives_are_offered(service, sandbox):
    async with _counted(sandbox, service.store) as (counted, _):
        day = next_weekday().isoformat()
        seen = await Raw(counted).find_slots(day=day)  # cached in `counted`
        taken = seen.slots[1].start.isoformat()
        await Raw(service).book(
            **booking_args(taken, attendee_email="other@example.com", from_number="+14155550124")
        )  # another process
        with pytest.raises(SlotUnavailable) as err:
            await Raw(counted).book(**booking_args(taken))
        assert err.value.taken and err.value.alternatives
        assert all(a.start.isoformat() != taken for a in err.value.alternatives)


async def test_a_slot_freed_elsewhere_is_looked_up_afresh_not_refused_from_the_cache(service, sandbox):
    day = next_weekday().isoformat()
    start = (await Raw(service).find_slots(day=day)).slots[2].start.isoformat()
    other = await Raw(service).book(**booking_args(start, attendee_email="other@example.com"))
    async with _counted(sandbox, service.store) as (counted, calls):
        await Raw(counted).find_slots(day=day)  # cached without that slot
        await Raw(service).cancel(other.id)  # freed by another process
        calls.seen.clear()
        booked = await Raw(counted).book(**booking_args(start))
        assert booked.booking_uid is not None
        assert calls.seen == ["POST /v2/bookings"]  # straight to Cal.com, which decides
