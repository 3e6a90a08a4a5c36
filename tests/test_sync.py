"""The store and Cal.com agree: reconciliation and webhooks repair what changed or was lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.reconcile import Reconciler
from appt_tools.core.service import AppointmentService
from appt_tools.errors import CalcomUnavailable
from appt_tools.models import AppointmentStatus, SearchQuery
from appt_tools.store import Store
from helpers import BUSINESS_ENV, Flaky, Raw, booking_args, next_weekday

BOOKINGS = {"cal-api-version": "2024-08-13"}


async def _slot(service: AppointmentService, offset: int = 0) -> str:
    return (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[offset].start.isoformat()


def _window(service: AppointmentService) -> tuple[datetime, datetime]:
    now = service.now()
    return now - timedelta(days=1), now + timedelta(days=30)


@asynccontextmanager
async def _calcom(sandbox: Any) -> AsyncIterator[httpx2.AsyncClient]:
    """Someone acting in Cal.com itself, with the owner's key."""
    headers = {"Authorization": f"Bearer {sandbox.api_key}", **BOOKINGS}
    async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=headers) as http:
        yield http


async def _lost_answer(service: AppointmentService, sandbox: Any, store: Store, *, reached: bool) -> str:
    flaky = Flaky()
    flaky.fail("POST", "/v2/bookings", httpx2.ReadTimeout("lost"), after=reached)
    flaky.fail("GET", "/v2/bookings", httpx2.ReadTimeout("lost"), times=None)
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with CalcomClient(sandbox.api_key, sandbox.base_url, transport=flaky) as client:
        unlucky = AppointmentService(store, client, resolve({}, env))
        with pytest.raises(CalcomUnavailable):
            await Raw(unlucky).book(**booking_args(await _slot(service)))
    page = await store.search(SearchQuery(), now=datetime.now(UTC))
    return page.items[0].id


async def test_an_unknown_outcome_that_cal_com_booked_becomes_active(service, sandbox):
    appointment_id = await _lost_answer(service, sandbox, service.store, reached=True)
    report = await Reconciler.of(service).reconcile(*_window(service))
    fixed = await service.get(appointment_id)
    assert fixed.status is AppointmentStatus.ACTIVE and fixed.booking_uid in sandbox.state.bookings
    assert fixed.last_error is None
    assert len(report.repaired) == 1
    assert (await service.history(appointment_id))[-1].action == "synced"


async def test_an_unknown_outcome_that_cal_com_never_booked_becomes_failed(service, sandbox):
    appointment_id = await _lost_answer(service, sandbox, service.store, reached=False)
    await Reconciler.of(service).reconcile(*_window(service))
    fixed = await service.get(appointment_id)
    assert fixed.status is AppointmentStatus.FAILED and fixed.booking_uid is None
    assert sandbox.state.bookings == {}


async def test_a_booking_cancelled_in_cal_com_is_cancelled_here_with_the_reason(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    async with _calcom(sandbox) as http:
        answer = await http.post(f"/v2/bookings/{booked.booking_uid}/cancel", json={"cancellationReason": "Host ill"})
        assert answer.status_code == 200, answer.text
    report = await Reconciler.of(service).reconcile(*_window(service))
    fixed = await service.get(booked.id)
    assert fixed.status is AppointmentStatus.CANCELLED
    assert fixed.cancellation_reason == "Host ill"
    assert "cancelled in Cal.com" in (await service.history(booked.id))[-1].detail
    assert report.repaired


async def test_a_booking_rescheduled_in_cal_com_keeps_its_id_with_the_new_uid_and_time(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    new_start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[5].start
    async with _calcom(sandbox) as http:
        body = {"start": new_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        answer = await http.post(f"/v2/bookings/{booked.booking_uid}/reschedule", json=body)
        assert answer.status_code == 201, answer.text
        new_uid = answer.json()["data"]["uid"]
    await Reconciler.of(service).reconcile(*_window(service))
    fixed = await service.get(booked.id)
    assert (fixed.booking_uid, fixed.start, fixed.status) == (new_uid, new_start, AppointmentStatus.RESCHEDULED)
    assert fixed.previous_booking_uids == (booked.booking_uid,)
    last = (await service.history(booked.id))[-1]
    assert (last.action, last.from_booking_uid, last.to_booking_uid) == ("rescheduled", booked.booking_uid, new_uid)


async def test_reconciling_twice_repairs_nothing_the_second_time(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    async with _calcom(sandbox) as http:
        await http.post(f"/v2/bookings/{booked.booking_uid}/cancel", json={"cancellationReason": "x"})
    reconciler = Reconciler.of(service)
    assert (await reconciler.reconcile(*_window(service))).repaired
    again = await Reconciler.of(service).reconcile(*_window(service))
    assert again.repaired == [] and again.unresolved == []


async def test_an_agreeing_store_is_left_alone(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    report = await Reconciler.of(service).reconcile(*_window(service))
    assert report.checked == 1 and report.repaired == []
    assert len(await service.history(booked.id)) == 2


def _webhook(trigger: str, **payload: object) -> dict[str, object]:
    return {"triggerEvent": trigger, "createdAt": datetime.now(UTC).isoformat(), "payload": payload}


async def test_webhooks_in_any_order_and_redelivered_converge_on_the_truth(service, sandbox):
    booked = await Raw(service).book(**booking_args(await _slot(service)))
    new_start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[6].start
    async with _calcom(sandbox) as http:
        moved = await http.post(
            f"/v2/bookings/{booked.booking_uid}/reschedule",
            json={"start": new_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
        new_uid = moved.json()["data"]["uid"]
        await http.post(f"/v2/bookings/{new_uid}/cancel", json={"cancellationReason": "Changed plans"})
    rescheduled = _webhook("BOOKING_RESCHEDULED", uid=new_uid, rescheduleUid=booked.booking_uid)
    cancelled = _webhook("BOOKING_CANCELLED", uid=new_uid, cancellationReason="Changed plans")
    reconciler = Reconciler.of(service)
    for body in (cancelled, rescheduled, rescheduled, cancelled):  # out of order, then redelivered
        await reconciler.apply_webhook(body)
    fixed = await service.get(booked.id)
    assert fixed.status is AppointmentStatus.CANCELLED
    assert fixed.booking_uid == new_uid
    actions = [h.action for h in await service.history(booked.id)]
    assert actions.count("rescheduled") == 1 and actions.count("cancelled") == 1


async def test_a_webhook_about_someone_elses_booking_changes_nothing(service, sandbox):
    report = await Reconciler.of(service).apply_webhook(_webhook("BOOKING_CREATED", uid="not-ours"))
    assert report.checked == 0
    report = await Reconciler.of(service).apply_webhook({"triggerEvent": "MEETING_ENDED", "payload": {}})
    assert report.checked == 0


async def test_a_running_server_reconciles_on_its_own(service, sandbox):
    import asyncio

    from appt_tools.core.reconcile import reconciling

    booked = await Raw(service).book(**booking_args(await _slot(service)))
    async with _calcom(sandbox) as http:
        await http.post(f"/v2/bookings/{booked.booking_uid}/cancel", json={"cancellationReason": "Closed"})
    async with reconciling(service, every_minutes=0.002), asyncio.timeout(10):  # every 0.12 s
        while (await service.get(booked.id)).status is not AppointmentStatus.CANCELLED:  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.05)
    assert (await service.get(booked.id)).cancellation_reason == "Closed"


async def test_a_booking_the_host_confirms_in_cal_com_becomes_active(service, sandbox):
    intro = next(t for t in await service.list_event_types() if t.requires_confirmation)
    start = (await Raw(service).find_slots(day=next_weekday().isoformat(), event_type_id=intro.id)).slots[0]
    booked = await Raw(service).book(**booking_args(start.start.isoformat(), event_type_id=intro.id))
    assert booked.status is AppointmentStatus.PENDING
    async with _calcom(sandbox) as http:
        answer = await http.post(f"/v2/bookings/{booked.booking_uid}/confirm")
        assert answer.status_code == 200, answer.text
    await Reconciler.of(service).reconcile(*_window(service))
    assert (await service.get(booked.id)).status is AppointmentStatus.ACTIVE


async def test_of_several_servers_on_one_database_one_reconciles_each_period(service, monkeypatch):
    import asyncio
    import time

    from appt_tools.core.reconcile import SyncReport, reconciling

    runs: list[float] = []

    async def counted(self: Reconciler, start: Any, end: Any) -> SyncReport:
        runs.append(time.monotonic())
        return SyncReport()

    monkeypatch.setattr(Reconciler, "reconcile", counted)
    every_minutes = 0.005  # 0.3 s
    started = time.monotonic()
    async with reconciling(service, every_minutes):
        await asyncio.sleep(0.15)  # the second server starts half a period later
        async with reconciling(service, every_minutes):
            await asyncio.sleep(1.8)
    periods = (time.monotonic() - started) / (every_minutes * 60)
    # Each server alone would reconcile once a period; together, without the lease, twice as often.
    assert 3 <= len(runs) <= int(periods) + 1
