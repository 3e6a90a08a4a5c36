"""The event loop's own reads of a SQLite file (`store/_glance.py`) answer exactly as the store's
SQLAlchemy path does, never wait, and step aside when they cannot answer at once."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appt_tools.models import Hold
from appt_tools.store import Store, _glance
from test_store import NOW, add

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'glance.db'}") as opened:
        yield opened


def _hold(n: int, start: datetime, minutes: int, expires_at: datetime) -> Hold:
    return Hold(
        id=f"hold-{n}",
        event_type_id=7,
        start=start,
        end=start + timedelta(minutes=minutes),
        expires_at=expires_at,
        timezone="UTC",
        created_at=NOW,
    )


async def _fill(store: Store, rng: random.Random) -> dict[int, list[str]]:
    """Holds live and expired, bookings in flight, settled and cancelled, odd microseconds, and the same
    kinds of rows for another tenant, whose rows a glance must never see: each tenant's appointment ids."""
    owner_ids: dict[int, list[str]] = {}
    other = store.for_tenant((await store.tenants.add("other", "Other Dental", now=NOW)).id)
    for n, owner in enumerate([store] * 30 + [other] * 10):
        start = NOW + timedelta(minutes=rng.randrange(0, 3 * 24 * 60), microseconds=rng.randrange(1_000_000))
        minutes = rng.choice([15, 30, 60, 90])
        if n % 3 == 0:
            expires = NOW + timedelta(seconds=rng.choice([-30, 30, 300]))
            await owner.add_hold(_hold(n, start, minutes, expires), now=NOW - timedelta(minutes=5))
        else:
            changes = [None, {"booking_uid": f"uid-{n}", "status": "active"}, {"status": "cancelled"}][n % 3]
            answers = {"topic": "Crown", "urgent": True, "teeth": ["12", "13"]} if n % 4 == 0 else {}
            added = await add(
                owner,
                changes,
                start=start,
                end=start + timedelta(minutes=minutes),
                attendee_email=None if n % 5 == 0 else f"caller{n}@example.com",
                attendee_phone="+14155550123" if n % 5 == 0 else None,
                answers=answers,
            )
            if n % 7 == 1:  # moved twice: earlier booking uids
                for later in ("b", "c"):
                    await owner.update_appointment(added.id, {"booking_uid": f"uid-{n}-{later}"}, now=NOW)
            owner_ids.setdefault(owner.tenant_id, []).append(added.id)
    await store.slots_changed("test")
    await other.slots_changed("test")
    await other.slots_changed("test")
    return owner_ids


async def test_a_glance_reads_what_the_sqlalchemy_path_reads(store: Store) -> None:
    rng = random.Random(15)
    await _fill(store, rng)
    glance = store._pool.glance
    assert glance is not None
    for _ in range(60):
        lo = NOW + timedelta(minutes=rng.randrange(-60, 3 * 24 * 60))
        hi = lo + timedelta(minutes=rng.choice([1, 30, 24 * 60]))
        now = NOW + timedelta(seconds=rng.choice([0, 60, 600]))
        hold_id = f"hold-{rng.randrange(0, 42)}"  # some made, some not (every third row is a hold)
        glanced = await store.busy(lo, hi, now=now, changes=True)
        glanced_holds = (await store.live_holds(lo, hi, now=now), await store.get_hold(hold_id))
        store._pool.glance = None  # the worker thread's SQLAlchemy path
        try:
            read = await store.busy(lo, hi, now=now, changes=True)
            read_holds = (await store.live_holds(lo, hi, now=now), await store.get_hold(hold_id))
            counted = await store.slot_changes()
        finally:
            store._pool.glance = glance
        assert glanced == read
        assert glanced_holds == read_holds
        assert glanced.changes == counted == await store.slot_changes() == 1
        assert all(t.tzinfo is UTC for pair in glanced.times for t in pair)
    assert any((await store.busy(NOW, NOW + timedelta(days=4), now=NOW)).times)  # the rows were seen at all
    assert await store.live_holds(NOW, NOW + timedelta(days=4), now=NOW)
    assert await store.get_hold("hold-3") is not None


async def test_an_appointment_glanced_is_the_one_sqlalchemy_reads(store: Store) -> None:
    owner_ids = await _fill(store, random.Random(16))
    glance = store._pool.glance
    ids = [i for ids in owner_ids.values() for i in ids]
    assert len(ids) > 20
    glanced = [await store.get_appointment(i) for i in [*ids, "apt_none"]]
    starts = [a.start for a in glanced if a is not None]
    live = [await store.live_at(start) for start in starts]
    store._pool.glance = None
    try:
        assert glanced == [await store.get_appointment(i) for i in [*ids, "apt_none"]]
        assert [sorted(found, key=lambda a: a.id) for found in live] == [
            sorted(await store.live_at(start), key=lambda a: a.id) for start in starts
        ]
    finally:
        store._pool.glance = glance
    mine = [a for a in glanced if a is not None]
    assert len(mine) == len(owner_ids[store.tenant_id])  # another tenant's appointment is not found
    assert any(a.previous_booking_uids for a in mine) and any(a.answers for a in mine)
    assert any(a.attendee_email is None for a in mine) and any(live)


async def test_a_glance_steps_aside_when_it_cannot_answer_at_once(store: Store, tmp_path: Path) -> None:
    await store.slots_changed("test")
    glance = store._pool.glance
    assert glance is not None
    assert glance.changes(store.tenant_id) == 1
    # In use by another thread: the store reads through its worker thread instead of waiting.
    with glance._lock:
        assert glance.changes(store.tenant_id) is None
        assert glance.hold(store.tenant_id, "hold-1") is _glance.MISSING
        assert await store.slot_changes() == 1
        assert await store.get_hold("hold-1") is None
        assert (await store.busy(NOW, NOW + timedelta(hours=1), now=NOW, changes=True)).changes == 1
    # SQLite refuses the read (here: not a database at all): None, and the next glance starts afresh.
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    broken = _glance.Glance(str(tmp_path / "garbage.db"))
    assert broken.changes(store.tenant_id) is None
    assert broken.busy(store.tenant_id, NOW, NOW, now=NOW, longest=timedelta(days=1), changes=True) is None
    broken.close()
    assert glance.changes(store.tenant_id) == 1


async def test_no_glance_off_a_file(tmp_path: Path) -> None:
    async with Store.from_url("sqlite+aiosqlite:///:memory:") as memory:
        assert memory._pool.glance is None
        assert await memory.slot_changes() == 0


async def test_a_glance_reads_an_appointment_and_its_uids_in_two_statements(store: Store) -> None:
    start = NOW + timedelta(days=5)
    booked = []
    for n in range(3):
        appointment = await add(store, {"booking_uid": f"uid-{n}-a", "status": "active"}, start=start)
        booked.append(await store.update_appointment(appointment.id, {"booking_uid": f"uid-{n}-b"}, now=NOW))
    glance = store._pool.glance
    assert glance is not None
    sent: list[str] = []
    connection = glance._connect()
    assert connection is not None
    connection.set_trace_callback(sent.append)
    try:
        assert await store.get_appointment(booked[0].id) == booked[0]
        assert [s.split()[0] for s in sent] == ["BEGIN", "SELECT", "SELECT", "COMMIT"]
        sent.clear()
        assert sorted(await store.live_at(start), key=lambda a: a.id) == sorted(booked, key=lambda a: a.id)
        assert [s.split()[0] for s in sent] == ["BEGIN", "SELECT", "SELECT", "COMMIT"]
    finally:
        connection.set_trace_callback(None)
    assert booked[0].previous_booking_uids == ("uid-0-a",)
