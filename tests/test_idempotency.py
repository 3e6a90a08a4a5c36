"""Retries never book twice: idempotency keys, identical repeats, concurrent callers, lost answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp.client import Client

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.reconcile import Reconciler
from appt_tools.core.service import AppointmentService
from appt_tools.errors import CalcomUnavailable, InvalidArgument, SlotUnavailable
from appt_tools.models import AppointmentStatus, NewAppointment, SearchQuery
from appt_tools.store import Store
from appt_tools.surfaces.mcp_server import build_server
from helpers import BUSINESS_ENV, Flaky, Raw, booking_args, next_weekday


async def _slot(service: AppointmentService, offset: int = 0) -> str:
    found = await Raw(service).find_slots(day=next_weekday().isoformat())
    return found.slots[offset].start.isoformat()


def _live_in_calcom(sandbox: Any) -> list[Any]:
    return [b for b in sandbox.state.bookings.values() if b.status in ("accepted", "pending")]


@asynccontextmanager
async def _through(sandbox: Any, store: Store, transport: Flaky) -> AsyncIterator[AppointmentService]:
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with CalcomClient(sandbox.api_key, sandbox.base_url, transport=transport) as client:
        yield AppointmentService(store, client, resolve({}, env))


async def test_the_same_key_twice_returns_the_first_booking(service, sandbox):
    args = booking_args(await _slot(service), idempotency_key="call-1-book")
    first = await Raw(service).book(**args)
    again = await Raw(service).book(**args)
    assert again.id == first.id and again.booking_uid == first.booking_uid
    assert len(_live_in_calcom(sandbox)) == 1


async def test_the_same_key_in_flight_at_once_books_once(service, sandbox):
    args = booking_args(await _slot(service), idempotency_key="call-2-book")
    results = await asyncio.gather(*(Raw(service).book(**args) for _ in range(5)))
    assert len({r.id for r in results}) == 1
    assert len(_live_in_calcom(sandbox)) == 1


async def test_a_key_reused_for_a_different_request_is_refused(service, sandbox):
    await Raw(service).book(**booking_args(await _slot(service), idempotency_key="call-3"))
    with pytest.raises(InvalidArgument) as err:
        await Raw(service).book(**booking_args(await _slot(service, 2), idempotency_key="call-3"))
    assert err.value.field == "idempotency_key"
    assert len(_live_in_calcom(sandbox)) == 1


async def test_a_repeat_of_a_refused_call_gets_the_same_refusal(service, sandbox):
    taken = await _slot(service)
    await Raw(service).book(**booking_args(taken))
    args = booking_args(taken, attendee_email="bob@example.com", from_number="+14155550124", idempotency_key="call-4")
    with pytest.raises(SlotUnavailable) as first:
        await Raw(service).book(**args)
    with pytest.raises(SlotUnavailable) as replayed:
        await Raw(service).book(**args)
    assert len(_live_in_calcom(sandbox)) == 1
    # Exactly the first answer: the same message, and the alternatives it offers (not an empty list).
    assert first.value.alternatives
    assert (replayed.value.message, replayed.value.alternatives, replayed.value.taken) == (
        first.value.message,
        first.value.alternatives,
        first.value.taken,
    )


async def test_a_lost_answer_then_a_retry_with_the_key_finds_the_booking_instead_of_booking_again(service, sandbox):
    flaky = Flaky()
    flaky.fail("POST", "/v2/bookings", httpx2.ReadTimeout("lost"), after=True)  # Cal.com booked; answer lost
    flaky.fail("GET", "/v2/bookings", httpx2.ReadTimeout("lost"), times=None)  # and the look-up fails too
    args = booking_args(await _slot(service), idempotency_key="call-5-book")
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable):
            await Raw(unlucky).book(**args)
    unknown = (await service.store.search(SearchQuery(), now=datetime.now(UTC))).items[0]
    assert unknown.status is AppointmentStatus.PENDING and unknown.booking_uid is None and unknown.last_error
    assert len(_live_in_calcom(sandbox)) == 1

    retried = await Raw(service).book(**args)
    assert retried.id == unknown.id
    assert retried.status is AppointmentStatus.ACTIVE
    assert len(_live_in_calcom(sandbox)) == 1


async def test_a_request_that_never_reached_calcom_is_booked_on_retry_exactly_once(service, sandbox):
    flaky = Flaky()
    flaky.fail("POST", "/v2/bookings", httpx2.ReadTimeout("lost"))  # never reached Cal.com
    flaky.fail("GET", "/v2/bookings", httpx2.ReadTimeout("lost"), times=None)
    args = booking_args(await _slot(service), idempotency_key="call-6-book")
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable):
            await Raw(unlucky).book(**args)
    assert _live_in_calcom(sandbox) == []
    retried = await Raw(service).book(**args)
    assert retried.status is AppointmentStatus.ACTIVE
    assert len(_live_in_calcom(sandbox)) == 1
    assert (await Raw(service).search()).total == 1


async def test_a_repeat_without_a_key_after_a_lost_answer_finds_the_first_booking(service, sandbox):
    flaky = Flaky()
    flaky.fail("POST", "/v2/bookings", httpx2.ReadTimeout("lost"), after=True)
    flaky.fail("GET", "/v2/bookings", httpx2.ReadTimeout("lost"), times=None)
    args = booking_args(await _slot(service))
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable):
            await Raw(unlucky).book(**args)
    retried = await Raw(service).book(**args)
    assert retried.status is AppointmentStatus.ACTIVE
    assert len(_live_in_calcom(sandbox)) == 1
    assert (await Raw(service).search()).total == 1


async def test_identical_calls_at_once_without_a_key_book_once_and_all_hear_the_same(service, sandbox):
    args = booking_args(await _slot(service, 1))
    results = await asyncio.gather(*(Raw(service).book(**args) for _ in range(4)), return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert len({r.id for r in results}) == 1  # type: ignore[union-attr]
    assert len(_live_in_calcom(sandbox)) == 1


async def test_two_services_on_one_database_book_a_contested_slot_once(service, sandbox, db_url):
    start = await _slot(service, 3)
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with Store.from_url(db_url) as second_store, CalcomClient(sandbox.api_key, sandbox.base_url) as client:
        other = AppointmentService(second_store, client, resolve({}, env))
        calls = [
            Raw(service if i % 2 else other).book(
                **booking_args(start, attendee_email=f"caller{i}@example.com", from_number=f"+1415555015{i}")
            )
            for i in range(6)
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    booked = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(booked) == 1
    assert all(isinstance(o, SlotUnavailable) for o in outcomes if isinstance(o, BaseException)), outcomes
    live = await service.store.search(
        SearchQuery(statuses=(AppointmentStatus.ACTIVE, AppointmentStatus.PENDING)), now=datetime.now(UTC)
    )
    assert live.total == 1
    assert len(_live_in_calcom(sandbox)) == 1


async def test_reschedule_and_cancel_with_a_key_happen_once(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    target = await _slot(service, 5)
    moved = await Raw(service).reschedule(booked.id, target, idempotency_key="call-9-move")
    again = await Raw(service).reschedule(booked.id, target, idempotency_key="call-9-move")
    assert again.booking_uid == moved.booking_uid
    assert len(sandbox.state.bookings) == 2  # the original (now cancelled) and the moved one

    cancelled = await Raw(service).cancel(booked.id, idempotency_key="call-9-cancel")
    repeat = await Raw(service).cancel(booked.id, idempotency_key="call-9-cancel")
    assert cancelled.status is repeat.status is AppointmentStatus.CANCELLED
    assert len(_live_in_calcom(sandbox)) == 0


async def test_a_request_that_could_not_be_sent_says_nothing_was_booked_and_a_retry_books_it(service, sandbox):
    flaky = Flaky()
    flaky.fail("POST", "/v2/bookings", httpx2.ConnectError("refused"), times=None)
    args = booking_args(await _slot(service), idempotency_key="call-10-book")
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable) as err:
            await Raw(unlucky).book(**args)
    assert err.value.retryable and not err.value.outcome_unknown
    assert "nothing was booked" in err.value.message
    failed = await Raw(service).search(status="failed")
    assert failed.total == 1 and failed.items[0].booking_uid is None
    retried = await Raw(service).book(**args)
    assert retried.status is AppointmentStatus.ACTIVE
    assert len(_live_in_calcom(sandbox)) == 1


async def test_a_cancel_whose_answer_was_lost_is_read_as_cal_com_has_it(service, sandbox):
    """Soak finding: Cal.com cancelled, its answer was lost, and get_appointment still said active."""
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    flaky = Flaky()
    flaky.fail("POST", f"/v2/bookings/{booked.booking_uid}/cancel", httpx2.ReadTimeout("lost"), after=True, times=None)
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable) as lost:
            await Raw(unlucky).cancel(booked.id)
    assert lost.value.outcome_unknown and "Do not tell the caller it is cancelled" in lost.value.message
    assert sandbox.state.bookings[booked.booking_uid].status == "cancelled"
    stored = await service.get(booked.id)
    assert stored.status is AppointmentStatus.ACTIVE and stored.last_error  # unknown, and marked so

    async with Client(build_server(service)) as client:
        answer = await client.call_tool("get_appointment", {"appointment_id": booked.id})
    assert answer.structured_content is not None
    assert answer.structured_content["appointment"]["status"] == "cancelled"  # as Cal.com has it


async def test_a_retried_reschedule_to_another_time_follows_the_move_its_lost_answer_made(service, sandbox):
    """Soak finding: a reschedule's answer was lost after Cal.com moved the booking; the retry, to another
    time, went to the old (cancelled) uid and got a 502. It now moves the live booking."""
    slots = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots
    booked = await Raw(service).book(**booking_args(slots[0].start.isoformat()))
    flaky = Flaky()
    flaky.fail("POST", f"/v2/bookings/{booked.booking_uid}/reschedule", httpx2.ReadTimeout("lost"), after=True)
    flaky.fail("GET", "/v2/bookings/", httpx2.ReadTimeout("lost"), times=None)  # the look-up fails too
    async with _through(sandbox, service.store, flaky) as unlucky:
        with pytest.raises(CalcomUnavailable):
            await Raw(unlucky).reschedule(booked.id, slots[2].start.isoformat())
    moved = await Raw(service).reschedule(booked.id, slots[4].start.isoformat())
    assert moved.start == slots[4].start and moved.status is AppointmentStatus.RESCHEDULED
    live = [b for b in _live_in_calcom(sandbox)]
    assert [b.uid for b in live] == [moved.booking_uid]
    actions = [h.action for h in await service.history(booked.id)]
    assert actions.count("rescheduled") == 2  # the lost move, recorded, then the new one


async def test_a_second_record_answered_with_the_first_records_booking_joins_it(service, sandbox, monkeypatch):
    """Soak finding (10 minutes, 8 tracebacks): Cal.com answered a second record of the same request with the
    booking the first record already holds (an identical pending repeat returns the existing booking,
    NOTES §12.3), and recording it failed with "booking_uid … already belongs to appointment …"."""
    first = await Raw(service).book(**booking_args(await _slot(service)))
    existing = await service.calcom.get_booking(first.booking_uid or "")
    again = NewAppointment.model_validate(first.model_dump(include=set(NewAppointment.model_fields)))
    second = await service.store.add_appointment(again, now=datetime.now(UTC))

    async def answers_with_the_first(request: Any) -> Any:
        return existing

    monkeypatch.setattr(service.calcom, "create_booking", answers_with_the_first)
    event_type = await service.event_type(first.event_type_id)
    length = int((first.end - first.start).total_seconds() // 60)
    joined = await service._booker.settle(second, event_type, length)
    assert joined.id == first.id and joined.booking_uid == first.booking_uid
    failed = await service.get(second.id)
    assert failed.status is AppointmentStatus.FAILED and first.id in (failed.last_error or "")


async def test_reconciling_a_second_record_of_a_booked_request_marks_it_failed(service, sandbox):
    """The same soak run: reconciliation found the first record's booking for the second, unanswered record
    of the same request and crashed on the booking uid's uniqueness."""
    first = await Raw(service).book(**booking_args(await _slot(service)))
    again = NewAppointment.model_validate(first.model_dump(include=set(NewAppointment.model_fields)))
    second = await service.store.add_appointment(again, now=datetime.now(UTC))
    await service.store.update_appointment(second.id, {"last_error": "answer lost"}, now=datetime.now(UTC))
    report = await Reconciler.of(service).reconcile(first.start - timedelta(days=1), first.start + timedelta(days=1))
    assert any(second.id in line for line in report.repaired)
    assert (await service.get(second.id)).status is AppointmentStatus.FAILED
    assert (await service.get(first.id)).booking_uid == first.booking_uid
