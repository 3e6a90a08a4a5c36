"""Direct writes to a SQLite file: the write transactions on a caller's path (a hold, a booking's intent,
an appointment's change, a change's lease and its fresh read) in plain SQL, on a pooled connection of the
file writer, in the worker thread `Store._transact` would use.

Written by hand, not through SQLAlchemy's ORM, for what the unit of work costs on this path: loading the
row as an object, flushing its changes and the history row, and the tenant hooks made a booking's intent
2.5 ms in its worker thread (3.8 ms when the process had been idle a moment, as between a caller's
turns), against a durable commit of 0.25–0.4 ms; by hand it is about 1 ms with the commit (1.4 ms after
an idle moment). Bench: the conversation's warm writes. Each
function does exactly what the `Store` method of the same name does on PostgreSQL, tenant filter and
`tenant_id` written out (these are not ORM statements, which `_scope` filters and stamps); SQLAlchemy's
own conversion of each column's type is used both ways (`_glance`), and tests/test_direct.py runs the same
writes through both paths and compares every row they leave.

BEGIN IMMEDIATE takes the write lock first, as `Store._transact` does; a lock not had within the busy
timeout is `StoreBusy`, and the driver's other errors are raised as SQLAlchemy raises them (`IntegrityError`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from appt_tools.errors import BookingUidOwned
from appt_tools.models import Appointment, HistoryEntry, Hold
from appt_tools.store._engine import store_busy
from appt_tools.store._glance import DIALECT, FIELD_COLUMNS, read_appointments
from appt_tools.store._times import utc
from appt_tools.store.tables import AppointmentRow, BookingUidRow, HistoryRow, HoldRow, IdempotencyRow, SettingRow

T = TypeVar("T")


def _writer(table: Table) -> Callable[[str, Any], Any]:
    """Each column's conversion to what the database stores (SQLAlchemy's bind processing for its type)."""
    processors = {c.name: c.type.dialect_impl(DIALECT).bind_processor(DIALECT) for c in table.columns}

    def convert(column: str, value: Any) -> Any:
        processor = processors[column]
        return value if processor is None else processor(value)

    return convert


_TABLES: dict[str, Table] = {
    row.__tablename__: row.__table__  # type: ignore[misc]
    for row in (AppointmentRow, BookingUidRow, HistoryRow, HoldRow, IdempotencyRow, SettingRow)
}
_CONVERT = {name: _writer(table) for name, table in _TABLES.items()}


def _insert(connection: sqlite3.Connection, table: str, values: Mapping[str, Any]) -> None:
    convert = _CONVERT[table]
    columns = list(values)
    marks = ", ".join("?" * len(columns))
    connection.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        [convert(column, values[column]) for column in columns],
    )


class Direct:
    """Write transactions on the SQLite file `engine` opens (its pooled connections, same set-up)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one BEGIN IMMEDIATE transaction: committed if it returns, rolled back if it raises."""
        proxy = self._engine.raw_connection()
        try:
            connection: sqlite3.Connection = proxy.driver_connection  # type: ignore[assignment]
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            if "database is locked" in str(exc):
                raise store_busy() from exc
            # As SQLAlchemy raises the driver's errors everywhere else in the store (IntegrityError, ...).
            raise DBAPIError.instance(None, None, exc, sqlite3.Error, hide_parameters=True) from exc
        finally:
            proxy.close()


def add_appointment(
    connection: sqlite3.Connection,
    tenant_id: int,
    appointment: Appointment,
    history: HistoryEntry,
    idempotency_key: str | None,
) -> None:
    """`Store.add_appointment`'s work: the row, its 'created' history entry, and the key's link to it.
    IntegrityError: another booking for that start is in flight (the unique in-flight index)."""
    values = appointment.model_dump(exclude={"previous_booking_uids"})
    _insert(
        connection,
        "appointments",
        {"tenant_id": tenant_id, **{FIELD_COLUMNS[field]: value for field, value in values.items()}},
    )
    _add_history(connection, tenant_id, appointment.id, history)
    if idempotency_key is not None:
        connection.execute(
            "UPDATE idempotency_keys SET appointment_id = ?, updated_at = ? WHERE tenant_id = ? AND key = ?",
            (
                appointment.id,
                _CONVERT["idempotency_keys"]("updated_at", appointment.created_at),
                tenant_id,
                idempotency_key,
            ),
        )


def update_appointment(
    connection: sqlite3.Connection,
    tenant_id: int,
    appointment_id: str,
    changes: Mapping[str, object],
    *,
    now: datetime,
    history: HistoryEntry | None,
) -> Appointment:
    """`Store.update_appointment`'s work (its arguments already checked)."""
    current = get_appointment(connection, tenant_id, appointment_id)
    if current is None:
        raise KeyError(appointment_id)
    uids = _uids(connection, tenant_id, appointment_id)
    merged = merge(current, changes)
    new_uid = merged.booking_uid
    if "booking_uid" in changes and new_uid is not None and new_uid not in uids:
        owner = connection.execute(
            "SELECT appointment_id FROM booking_uids WHERE tenant_id = ? AND uid = ?", (tenant_id, new_uid)
        ).fetchone()
        if owner is not None:
            raise BookingUidOwned(new_uid, owner[0])
        _insert(
            connection,
            "booking_uids",
            {"tenant_id": tenant_id, "appointment_id": appointment_id, "uid": new_uid, "created_at": now},
        )
        uids.append(new_uid)
    updated = {field: _utc(getattr(merged, field), field) for field in changes}
    if changes:
        updated["updated_at"] = now
        convert = _CONVERT["appointments"]
        columns = [FIELD_COLUMNS[field] for field in updated]
        connection.execute(
            f"UPDATE appointments SET {', '.join(f'{c} = ?' for c in columns)} WHERE tenant_id = ? AND id = ?",
            [*(convert(c, v) for c, v in zip(columns, updated.values(), strict=True)), tenant_id, appointment_id],
        )
    if history is not None:
        _add_history(connection, tenant_id, appointment_id, history)
    previous = tuple(uid for uid in uids if uid != merged.booking_uid)
    return merged.model_copy(update={**updated, "previous_booking_uids": previous})


def merge(current: Appointment, changes: Mapping[str, object]) -> Appointment:
    """`current` with `changes` applied and checked as a whole (ValueError naming what is wrong)."""
    try:
        return Appointment.model_validate({**current.model_dump(), **changes})
    except ValidationError as error:
        raise ValueError(f"invalid appointment change: {error}") from error


def get_appointment(connection: sqlite3.Connection, tenant_id: int, appointment_id: str) -> Appointment | None:
    found = read_appointments(connection, tenant_id, "id = ?", (appointment_id,))
    return found[0] if found else None


def take_lease(
    connection: sqlite3.Connection, tenant_id: int, key: str, holder: str, until: datetime, now: datetime
) -> bool:
    """`store._take_lease`: the lease row `key` is `holder`'s until `until`, unless another's is current."""
    row = connection.execute("SELECT value FROM settings WHERE tenant_id = ? AND key = ?", (tenant_id, key)).fetchone()
    if row is not None:
        owner, _, current_until = row[0].partition(" ")
        if owner != holder and datetime.fromisoformat(current_until) > now:
            return False
    value = f"{holder} {until.isoformat()}"
    if row is None:
        _insert(connection, "settings", {"tenant_id": tenant_id, "key": key, "value": value})
    else:
        connection.execute("UPDATE settings SET value = ? WHERE tenant_id = ? AND key = ?", (value, tenant_id, key))
    return True


def add_hold(connection: sqlite3.Connection, tenant_id: int, hold: Hold, now: datetime) -> Hold | None:
    """`Store.add_hold`'s work: expired holds swept, None when a live one overlaps, else the hold recorded."""
    convert = _CONVERT["holds"]
    connection.execute(
        "DELETE FROM holds WHERE tenant_id = ? AND expires_at <= ?", (tenant_id, convert("expires_at", now))
    )
    clash = connection.execute(
        "SELECT id FROM holds WHERE tenant_id = ? AND start_at < ? AND end_at > ? LIMIT 1",
        (tenant_id, convert("start_at", hold.end), convert("end_at", hold.start)),
    ).fetchone()
    if clash is not None:
        return None
    values = hold.model_dump()
    _insert(
        connection,
        "holds",
        {"tenant_id": tenant_id, **{_HOLD_COLUMNS.get(field, field): value for field, value in values.items()}},
    )
    return hold


_HOLD_COLUMNS = {"start": "start_at", "end": "end_at"}


def _utc(value: object, name: str) -> object:
    """Times as the store keeps them: aware UTC (ValueError if naive)."""
    return utc(value, name) if isinstance(value, datetime) else value


def _add_history(connection: sqlite3.Connection, tenant_id: int, appointment_id: str, entry: HistoryEntry) -> None:
    _insert(
        connection,
        "appointment_history",
        {"tenant_id": tenant_id, "appointment_id": appointment_id, **entry.model_dump()},
    )


def _uids(connection: sqlite3.Connection, tenant_id: int, appointment_id: str) -> list[str]:
    rows = connection.execute(
        "SELECT uid FROM booking_uids WHERE tenant_id = ? AND appointment_id = ? ORDER BY created_at, id",
        (tenant_id, appointment_id),
    )
    return [uid for (uid,) in rows]
