"""A SQLite file locked by other writers past the busy timeout: the call hears a retryable `store_busy`
(503 over HTTP) with a next step, never an internal error, and nothing is half-written."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from appt_tools.errors import StoreBusy
from appt_tools.models import NewAppointment
from appt_tools.store import Store, _engine
from appt_tools.surfaces.statuses import http_status


def _new() -> NewAppointment:
    start = datetime(2030, 1, 7, 15, tzinfo=UTC)
    return NewAppointment(
        title="Check-up with Ana",
        attendee_name="Ana Ruiz",
        attendee_email="ana@example.com",
        business_name="Acme Dental",
        to_number="+14155550100",
        from_number="+14155550123",
        call_type="inbound",
        event_type_id=1,
        start=start,
        end=start + timedelta(minutes=30),
        timezone="America/New_York",
    )


async def test_a_write_locked_out_past_the_busy_timeout_is_store_busy_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "busy.db"
    async with Store.from_url(f"sqlite+aiosqlite:///{path}") as store:
        await store.create_schema()
        other = sqlite3.connect(path, isolation_level=None)  # another process's writer, holding the lock
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreBusy) as busy:
                await store.add_appointment(_new(), now=datetime.now(UTC))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert busy.value.retryable and busy.value.code == "store_busy"
        assert "try again" in busy.value.message
        assert http_status(busy.value) == 503
        assert await store.live_at(_new().start) == []  # nothing half-written
        assert (await store.add_appointment(_new(), now=datetime.now(UTC))).id  # free again: it goes through


async def test_a_booking_cal_com_made_is_still_linked_when_the_database_was_busy_a_moment(
    service, sandbox, monkeypatch
):
    from helpers import Raw, booking_args, next_weekday

    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    real = service.store.update_appointment
    busy = {"left": 2}

    async def update(appointment_id, changes, **kwargs):  # type: ignore[no-untyped-def]
        if "booking_uid" in changes and busy["left"]:
            busy["left"] -= 1
            raise StoreBusy("locked")
        return await real(appointment_id, changes, **kwargs)

    monkeypatch.setattr(service.store, "update_appointment", update)
    booked = await Raw(service).book(**booking_args(start))
    assert busy["left"] == 0 and booked.booking_uid in {b.uid for b in sandbox.state.bookings.values()}
    assert (await service.store.get_appointment(booked.id)).booking_uid == booked.booking_uid  # type: ignore[union-attr]
