"""A glance at a SQLite file from the event loop's own thread: the small reads a caller waits for (the
busy times of a window, the calendar's change counter, holds, an appointment by id and those live at a
start), in plain SQL on a stdlib connection of its own, with no worker-thread hop.

Written by hand, not through SQLAlchemy, because of what it costs on the hot path: building the busy
times' three statements, looking them up in the compiled cache, a session and its result rows cost about
470 µs of interpreter time, and the worker-thread hop that keeps them off the event loop about 1 ms more
under load; the same indexed statements on the driver take about 20 µs in all, less than the hop alone
(bench: `find_slots` warm). Only short reads bounded by an index belong here: anything that may scan
stays in `Store._query`'s worker thread. The statements are those of `Store.busy`, `slot_changes`,
`get_hold`, `live_holds`, `get_appointment` and `live_at`, tenant filter included (they are not ORM
statements, which `_scope` filters); every column is read through SQLAlchemy's own conversion for its
type; tests/test_glance.py checks that both paths read the same rows.

A glance never waits: the connection's busy timeout is 0, and a read SQLite cannot give at once (a WAL
recovery, a lock held by a checkpoint), or a connection in use by another thread, yields None (MISSING
where None is an answer): the caller then reads through `Store._query` as before.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from appt_tools.models import Appointment, AppointmentStatus, BusyTimes, Hold
from appt_tools.store import _shared
from appt_tools.store.tables import IN_FLIGHT, POSTGRESQL_ONLY_COLUMNS, AppointmentRow, UTCDateTime

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Missing(enum.Enum):
    """A glance that could not be had, where None is an answer (no such row)."""

    MISSING = enum.auto()


MISSING = Missing.MISSING

DIALECT = SQLiteDialect_pysqlite()
# SQLAlchemy's own conversions for the columns' type, so a glance binds and reads times exactly as the ORM does.
_TO_DB: Callable[[Any], Any] = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT) or (lambda value: value)
_FROM_DB: Callable[[Any], Any] = UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None) or (
    lambda value: value
)

_BUSY = f"""
SELECT start_at, end_at FROM holds
 WHERE tenant_id = :tenant AND expires_at > :now AND start_at < :hi AND end_at > :lo
UNION ALL
SELECT start_at, end_at FROM appointments
 WHERE tenant_id = :tenant AND {IN_FLIGHT} AND start_at < :hi AND start_at >= :since AND end_at > :lo
"""
_CHANGES = "SELECT value FROM settings WHERE tenant_id = :tenant AND key = :key"
# An appointment's columns, each read through SQLAlchemy's own result conversion for its type (times,
# the status enum, JSON answers, '' kept for None), and the model field each one fills (`Appointment`'s
# fields are the row's attribute names, or synonyms of them: `start` is `start_at`).
_APPOINTMENT_COLUMNS = [c for c in AppointmentRow.__table__.columns if c.name not in POSTGRESQL_ONLY_COLUMNS]
_APPOINTMENT_READ = [
    (c.name, c.type.dialect_impl(DIALECT).result_processor(DIALECT, None)) for c in _APPOINTMENT_COLUMNS
]
_MAPPER = inspect(AppointmentRow)
FIELD_COLUMNS = {
    **{attr.key: attr.columns[0].name for attr in _MAPPER.column_attrs},
    **{syn.key: _MAPPER.column_attrs[syn.name].columns[0].name for syn in _MAPPER.synonyms},
}
_FIELDS = [(field, FIELD_COLUMNS[field]) for field in Appointment.model_fields if field in FIELD_COLUMNS]
_APPOINTMENT_SELECT = "SELECT " + ", ".join(c.name for c in _APPOINTMENT_COLUMNS) + " FROM appointments"
_LIVE_STATUSES = ", ".join(
    f"'{s.value}'" for s in (AppointmentStatus.PENDING, AppointmentStatus.ACTIVE, AppointmentStatus.RESCHEDULED)
)
_LIVE_AT = f"start_at = ? AND status IN ({_LIVE_STATUSES})"
_UIDS = """
SELECT appointment_id, uid FROM booking_uids WHERE tenant_id = ? AND appointment_id IN ({marks})
 ORDER BY created_at, id
"""
_HOLD_COLUMNS = "id, event_type_id, start_at, end_at, expires_at, timezone, reservation_uid, created_at"
_HOLD = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE tenant_id = :tenant AND id = :id"
_LIVE_HOLDS = f"""
SELECT {_HOLD_COLUMNS} FROM holds
 WHERE tenant_id = :tenant AND expires_at > :now AND start_at < :hi AND end_at > :lo
 ORDER BY start_at
"""


class Glance:
    """One read-only connection to the SQLite file at `path`, opened on first use."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def busy(
        self, tenant_id: int, lo: datetime, hi: datetime, *, now: datetime, longest: timedelta, changes: bool
    ) -> BusyTimes | None:
        """`Store.busy`'s answer (its arguments already UTC), or None when it cannot be had at once."""
        params = {"tenant": tenant_id, "now": _TO_DB(now), "hi": _TO_DB(hi), "lo": _TO_DB(lo)}
        params["since"] = _TO_DB(lo - longest)

        def read(connection: sqlite3.Connection) -> BusyTimes:
            rows = connection.execute(_BUSY, params).fetchall()
            times = tuple(sorted((_FROM_DB(start), _FROM_DB(end)) for start, end in rows))
            return BusyTimes(times, _counter(connection, tenant_id) if changes else None)

        return self._read(read)

    def changes(self, tenant_id: int) -> int | None:
        """`Store.slot_changes`'s answer, or None when it cannot be had at once."""
        return self._read(lambda connection: _counter(connection, tenant_id))

    def appointment(self, tenant_id: int, appointment_id: str) -> Appointment | Missing | None:
        """`Store.get_appointment`'s answer, or MISSING when it cannot be had at once."""
        found = self._read(lambda connection: read_appointments(connection, tenant_id, "id = ?", (appointment_id,)))
        return MISSING if found is None else (found[0] if found else None)

    def live_at(self, tenant_id: int, start: datetime) -> list[Appointment] | None:
        """`Store.live_at`'s answer (`start` already UTC), or None when it cannot be had at once."""
        return self._read(lambda connection: read_appointments(connection, tenant_id, _LIVE_AT, (_TO_DB(start),)))

    def hold(self, tenant_id: int, hold_id: str) -> Hold | Missing | None:
        """`Store.get_hold`'s answer, or MISSING when it cannot be had at once."""
        params = {"tenant": tenant_id, "id": hold_id}
        found = self._read(lambda connection: [_hold(row) for row in connection.execute(_HOLD, params)])
        return MISSING if found is None else (found[0] if found else None)

    def live_holds(self, tenant_id: int, lo: datetime, hi: datetime, *, now: datetime) -> list[Hold] | None:
        """`Store.live_holds`'s answer (its arguments already UTC), or None when it cannot be had at once."""
        params = {"tenant": tenant_id, "now": _TO_DB(now), "hi": _TO_DB(hi), "lo": _TO_DB(lo)}
        return self._read(lambda connection: [_hold(row) for row in connection.execute(_LIVE_HOLDS, params)])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T | None:
        if not self._lock.acquire(blocking=False):  # another thread is glancing: read the usual way
            return None
        try:
            connection = self._connect()
            if connection is None:
                return None
            connection.execute("BEGIN")  # one snapshot for every statement of the read
            found = work(connection)
            connection.execute("COMMIT")
            return found
        except sqlite3.Error as exc:
            logger.debug("store: glance not had at once (%s); reading in a worker thread", exc)
            self._drop()  # whatever state it was left in, the next glance starts on a new connection
            return None
        finally:
            self._lock.release()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is None and not self._closed:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA query_only=1")
            self._connection = connection
        return self._connection


def read_appointments(
    connection: sqlite3.Connection, tenant_id: int, where: str, params: tuple[Any, ...]
) -> list[Appointment]:
    """The tenant's appointments matching `where` (SQL on the appointments table, `?` for `params`), each
    with its earlier booking uids read in one more statement for them all (as `store._appointments`
    makes them)."""
    rows = connection.execute(f"{_APPOINTMENT_SELECT} WHERE tenant_id = ? AND {where}", (tenant_id, *params))
    found = []
    for row in rows.fetchall():
        values = {
            name: value if convert is None else convert(value)
            for (name, convert), value in zip(_APPOINTMENT_READ, row, strict=True)
        }
        found.append(Appointment.model_validate({field: values[column] for field, column in _FIELDS}))
    if not found:
        return found
    marks = ", ".join("?" * len(found))
    uids: dict[str, list[str]] = {}
    statement = _UIDS.format(marks=marks)
    for appointment_id, uid in connection.execute(statement, (tenant_id, *(a.id for a in found))):
        uids.setdefault(appointment_id, []).append(uid)
    return [_with_previous(a, uids.get(a.id, ())) for a in found]


def appointments_in_order(connection: sqlite3.Connection, tenant_id: int, ids: Sequence[str]) -> list[Appointment]:
    """The tenant's appointments `ids`, in that order (a search's page, picked by its planner)."""
    if not ids:
        return []
    found = read_appointments(connection, tenant_id, f"id IN ({', '.join('?' * len(ids))})", tuple(ids))
    by_id = {appointment.id: appointment for appointment in found}
    return [by_id[appointment_id] for appointment_id in ids]


def _with_previous(appointment: Appointment, uids: Iterable[str]) -> Appointment:
    previous = tuple(uid for uid in uids if uid != appointment.booking_uid)
    return appointment.model_copy(update={"previous_booking_uids": previous}) if previous else appointment


def _hold(row: tuple[Any, ...]) -> Hold:
    hold_id, event_type_id, start, end, expires_at, timezone, reservation_uid, created_at = row
    return Hold(
        id=hold_id,
        event_type_id=event_type_id,
        start=_FROM_DB(start),
        end=_FROM_DB(end),
        expires_at=_FROM_DB(expires_at),
        timezone=timezone,
        reservation_uid=reservation_uid,
        created_at=_FROM_DB(created_at),
    )


def _counter(connection: sqlite3.Connection, tenant_id: int) -> int:
    row = connection.execute(_CHANGES, {"tenant": tenant_id, "key": _shared.CHANGES_KEY}).fetchone()
    return int(row[0]) if row is not None else 0
