"""Cancelling an appointment whose booking Cal.com already changed (NOTES §12.1), through the sandbox: the
caller is told the truth and the store ends agreeing with Cal.com."""

from __future__ import annotations

from datetime import datetime

from appt_tools.core.service import AppointmentService
from appt_tools.models import AppointmentStatus
from calcom_sandbox import RunningSandbox
from helpers import Raw, booking_args, next_weekday


async def _slot(service: AppointmentService, offset: int) -> str:
    found = await Raw(service).find_slots(day=next_weekday().isoformat())
    return found.slots[offset].start.isoformat()


async def test_cancelling_what_the_host_already_cancelled_in_cal_com_is_done_and_says_so(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    booked = await Raw(service).book(**booking_args(await _slot(service, 0)))
    assert booked.booking_uid is not None
    sandbox.state.cancel_booking(booked.booking_uid, reason="Host is ill", by_host=True)

    cancelled = await Raw(service).cancel(booked.id)

    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.booking_uid == booked.booking_uid
    last = (await service.history(booked.id))[-1]
    assert last.action == "cancelled" and "Cal.com already had it cancelled" in last.detail


async def test_cancelling_a_booking_moved_in_cal_com_cancels_the_live_booking_and_records_the_move(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    booked = await Raw(service).book(**booking_args(await _slot(service, 0)))
    assert booked.booking_uid is not None
    later = datetime.fromisoformat(await _slot(service, 4))
    moved = await sandbox.state.reschedule_booking(
        booked.booking_uid, later, reason="Host moved it", rescheduled_by=None, by_host=True
    )

    cancelled = await Raw(service).cancel(booked.id)

    assert sandbox.state.bookings[moved.uid].status == "cancelled"
    assert (cancelled.status, cancelled.booking_uid, cancelled.start) == (AppointmentStatus.CANCELLED, moved.uid, later)
    history = await service.history(booked.id)
    assert [h.action for h in history[-2:]] == ["rescheduled", "cancelled"]
    assert (history[-2].from_booking_uid, history[-2].to_booking_uid) == (booked.booking_uid, moved.uid)
    assert history[-1].from_booking_uid == moved.uid and "already had it" not in history[-1].detail


async def test_a_booking_moved_and_then_cancelled_in_cal_com_ends_cancelled_at_its_last_uid(
    service: AppointmentService, sandbox: RunningSandbox
) -> None:
    booked = await Raw(service).book(**booking_args(await _slot(service, 0)))
    assert booked.booking_uid is not None
    later = datetime.fromisoformat(await _slot(service, 4))
    moved = await sandbox.state.reschedule_booking(
        booked.booking_uid, later, reason=None, rescheduled_by=None, by_host=True
    )
    sandbox.state.cancel_booking(moved.uid, reason="Host is away", by_host=True)

    cancelled = await Raw(service).cancel(booked.id)

    assert (cancelled.status, cancelled.booking_uid) == (AppointmentStatus.CANCELLED, moved.uid)
    last = (await service.history(booked.id))[-1]
    assert last.action == "cancelled" and "Cal.com already had it cancelled" in last.detail
    assert all(b.status == "cancelled" for b in sandbox.state.bookings.values())
