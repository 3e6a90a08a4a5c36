"""The caller's-path writes to a SQLite file in plain SQL (`store/_direct.py`) leave exactly the rows, and
give back exactly the answers, that the store's SQLAlchemy path does for the same writes."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from appt_tools.errors import BookingUidOwned
from appt_tools.models import AppointmentStatus, HistoryEntry, Hold
from appt_tools.store import Store
from appt_tools.store import store as store_module
from test_store import NOW, new_appointment

KOLKATA = ZoneInfo("Asia/Kolkata")
TABLES = ("appointments", "appointment_history", "booking_uids", "holds", "settings", "idempotency_keys")


def _hold(n: int, start: datetime, expires_at: datetime) -> Hold:
    return Hold(
        id=f"hold-{n}",
        event_type_id=7,
        start=start,
        end=start + timedelta(minutes=30),
        expires_at=expires_at,
        timezone="America/New_York",
        reservation_uid=f"res-{n}" if n % 2 else None,
        created_at=NOW,
    )


async def _writes(store: Store) -> list[Any]:
    """One of every write `_direct` does, with the awkward values: what each returned (or raised)."""
    answers: list[Any] = []

    async def answer(write: Awaitable[Any]) -> None:
        try:
            answers.append(await write)
        except (BookingUidOwned, KeyError, ValueError) as exc:
            answers.append((type(exc).__name__, str(exc)))

    start = datetime(2030, 2, 1, 9, 0, tzinfo=KOLKATA)
    await store.claim_key("book:k1", "hash", now=NOW, stale_after=timedelta(minutes=2))
    first = await store.add_appointment(
        new_appointment(start=start, end=start + timedelta(minutes=30), answers={"topic": "Crown", "teeth": ["1"]}),
        now=NOW,
        idempotency_key="book:k1",
    )
    second = await store.add_appointment(
        new_appointment(
            attendee_email=None,
            attendee_phone="+14155550123",
            language="es",
            start=start + timedelta(hours=2),
            end=start + timedelta(hours=3),
        ),
        now=NOW,
    )
    answers += [first, second]
    moved = start + timedelta(days=1)
    for changes, history in (
        ({"booking_uid": "uid-a", "status": AppointmentStatus.ACTIVE, "meeting_url": "https://meet.test/a"}, None),
        (
            {"booking_uid": "uid-b", "start": moved, "end": moved + timedelta(minutes=30), "status": "rescheduled"},
            HistoryEntry(at=NOW, action="rescheduled", detail="moved", from_start=start, to_start=moved),
        ),
        ({"answers": {"topic": "Filling", "urgent": True}, "attendee_email": None, "host_name": None}, None),
        ({}, HistoryEntry(at=NOW, action="updated", detail="nothing changed")),
        ({"booking_uid": "uid-a"}, None),  # back to an earlier uid: not a new one
        ({"status": "cancelled", "cancellation_reason": "Caller asked", "last_error": None}, None),
    ):
        await answer(store.update_appointment(first.id, changes, now=NOW, history=history))
    await answer(store.update_appointment(second.id, {"booking_uid": "uid-b"}, now=NOW))  # another's
    await answer(store.update_appointment("apt_missing", {"label": "x"}, now=NOW))
    await answer(store.update_appointment(second.id, {"status": "bogus"}, now=NOW))
    for holder, at in (("one", NOW), ("two", NOW), ("two", NOW + timedelta(minutes=3)), ("one", NOW)):
        await answer(store.lease_appointment("change:x", holder, first.id, now=at, ttl=timedelta(minutes=2)))
    await answer(store.take_lease("job", "one", now=NOW, ttl=timedelta(minutes=1)))
    await answer(store.take_lease("job", "two", now=NOW, ttl=timedelta(minutes=1)))
    for n, (offset, expires) in enumerate([(0, 60), (10, 60), (60, -60), (90, 60), (60, 60)]):
        hold = _hold(n, NOW + timedelta(days=2, minutes=offset), NOW + timedelta(seconds=expires))
        await answer(store.add_hold(hold, now=NOW))
    return answers


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as connection:
        return {t: sorted(connection.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


async def test_direct_writes_leave_what_the_sqlalchemy_path_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for way in ("direct", "sqlalchemy"):
        ids = (f"apt_{n:012d}" for n in itertools.count())
        monkeypatch.setattr(store_module, "new_appointment_id", ids.__next__)
        path = tmp_path / f"{way}.db"
        async with Store.from_url(f"sqlite+aiosqlite:///{path}") as store:
            assert store._pool.direct is not None
            if way == "sqlalchemy":
                store._pool.direct = None
            answers = await _writes(store)
        results[way] = (answers, _rows(path))
    (direct_answers, direct_rows), (orm_answers, orm_rows) = results["direct"], results["sqlalchemy"]
    assert direct_answers == orm_answers
    for answer in direct_answers:  # every time given back is aware UTC, on both paths
        for value in vars(answer).values() if hasattr(answer, "__dict__") else ():
            assert not isinstance(value, datetime) or value.tzinfo is UTC
    assert direct_rows == orm_rows
    refused = {a[0] for a in direct_answers if isinstance(a, tuple) and isinstance(a[0], str)}
    assert refused == {"BookingUidOwned", "KeyError", "ValueError"}
    assert [a[0] for a in direct_answers if isinstance(a, tuple) and isinstance(a[0], bool)] == [
        True,
        False,
        True,
        False,
    ]
    # holds: one overlapping a live hold is refused; one over an expired hold is not (it is swept away)
    assert [a is None for a in direct_answers[-5:]] == [False, True, False, False, False]
    assert direct_rows["booking_uids"] and direct_rows["holds"] and direct_rows["idempotency_keys"]


async def test_a_direct_write_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    async with Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as store:
        appointment = await store.add_appointment(new_appointment(), now=NOW)
        with sqlite3.connect(tmp_path / "a.db") as connection:
            connection.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON appointment_history "
                "WHEN NEW.detail = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )
        from sqlalchemy.exc import DBAPIError

        with pytest.raises(DBAPIError, match="boom"):
            await store.update_appointment(
                appointment.id,
                {"booking_uid": "uid-never", "status": "active"},
                now=NOW,
                history=HistoryEntry(at=NOW, action="booked", detail="boom"),
            )
        assert await store.get_appointment(appointment.id) == appointment
        assert await store.get_by_booking_uid("uid-never") is None
