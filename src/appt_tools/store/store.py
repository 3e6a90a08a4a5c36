"""`Store`: the local record of appointments, their history, synced event types and settings.

One session (and one transaction) per operation. Every datetime in is aware (ValueError if
naive); every datetime out is aware UTC. Only domain models of `appt_tools.models` come out, built
from the rows by pydantic (`from_attributes`: the rows answer to the models' field names, see `tables`).

An appointment's booking uids are read with column queries (in the row's own statement, or in one
statement for a whole page of rows), not through an ORM relationship: loading each uid as an object
costs about 10 µs more (a page of 100 booked appointments loaded in 3.2 ms instead of 2.3).

On a SQLite file the operations a caller waits for skip SQLAlchemy: small reads are glanced from the
event loop's own connection (`_glance`) and the caller's-path writes run in plain SQL (`_direct`); each
method says which. Their answers and rows are the ORM path's (tests/test_glance.py, test_direct.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TypeVar

from sqlalchemy import delete, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from appt_tools.errors import BookingUidOwned, SlotHeld
from appt_tools.models import (
    Appointment,
    AppointmentStatus,
    BusyTimes,
    Claim,
    EventType,
    HistoryEntry,
    Hold,
    IdempotencyRecord,
    NewAppointment,
    SearchPage,
    SearchQuery,
)
from appt_tools.store import _direct, _finder, _glance, _locks, _scope, _search, _shared, schema
from appt_tools.store._engine import (
    BEGIN_MODE_OPTION,
    IMMEDIATE,
    create_engine,
    prepare_engine,
    sqlite_file_engine,
    store_busy,
)
from appt_tools.store._times import utc, utc_or_none
from appt_tools.store.tables import (
    DEFAULT_TENANT_ID,
    AppointmentRow,
    BookingUidRow,
    EventTypeRow,
    HistoryRow,
    HoldRow,
    IdempotencyRow,
    SettingRow,
)
from appt_tools.store.tenants import TenantAdmin

APPOINTMENT_ID_PREFIX = "apt_"
# Rows of the settings table that are the server's own, not a person's settings (`config.resolve` reads
# only the keys it knows).
INTERNAL_PREFIX = "internal."
LEASE_PREFIX = INTERNAL_PREFIX + "lease."
ENDED_SESSION_PREFIX = INTERNAL_PREFIX + "session_ended."
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
T = TypeVar("T")
IN_FLIGHT_RETRIES = 2
MAX_MEETING = timedelta(days=1)  # no appointment is longer (validation.window bounds a slot search more tightly)
# How long `after_answer` lets a caller's answer go out before its write: run at once, the write's thread
# competes with the answer's serialising and sending for the interpreter, and the caller waits about 2 ms
# more (bench --only conversation).
AFTER_ANSWER_SECONDS = 0.02
logger = logging.getLogger(__name__)
# The fields `update_appointment` may change: all but the identity, the uid history and the timestamps.
CHANGEABLE_FIELDS = frozenset(Appointment.model_fields) - {"id", "previous_booking_uids", "created_at", "updated_at"}


@dataclasses.dataclass
class _Pool:
    """What every tenant's store on one engine shares."""

    engine: AsyncEngine
    file_writer: Engine | None
    fts: bool | None = None  # whether SQLite's FTS5 table exists, once known
    stores: dict[int, Store] = dataclasses.field(default_factory=dict)
    admin: TenantAdmin | None = None
    # `after_answer`'s writes still to do: each with its key and the event that starts it at once.
    pending: dict[asyncio.Task[None], tuple[str, asyncio.Event]] = dataclasses.field(default_factory=dict)
    feed: _shared.ChangeFeed | None = None  # one LISTEN connection for every tenant (PostgreSQL)
    glance: _glance.Glance | None = None  # the event loop's own reads of a SQLite file (`_glance`)
    direct: _direct.Direct | None = None  # the caller's-path writes to a SQLite file in plain SQL (`_direct`)


def new_appointment_id() -> str:
    """'apt_' + 12 url-safe random characters (72 random bits)."""
    return APPOINTMENT_ID_PREFIX + secrets.token_urlsafe(9)


class Store:
    """The record of one tenant (`tenant_id`; `DEFAULT_TENANT_ID` when not named, a single-business
    deployment's). Every statement it runs is scoped to that tenant (see `_scope`). `for_tenant` gives
    the store of another tenant on the same engine and pool; `tenants` administers them all."""

    def __init__(self, engine: AsyncEngine, tenant_id: int = DEFAULT_TENANT_ID, *, _pool: _Pool | None = None) -> None:
        if _pool is None:
            prepare_engine(engine)
            # On a SQLite file a write transaction runs whole in a worker thread on the stdlib driver: one
            # thread hop per transaction instead of one per statement (see `_transact`).
            file_writer = sqlite_file_engine(engine, pooled=True)
            glance = None if file_writer is None else _glance.Glance(file_writer.url.database or "")
            direct = None if file_writer is None else _direct.Direct(file_writer)
            _pool = _Pool(engine, file_writer, glance=glance, direct=direct)
        _scope.tenant(tenant_id)
        self._pool = _pool
        self._tenant_id = tenant_id
        self._engine = engine
        scoped = _scope.bind(engine, tenant_id)
        self._read = _scope.sessions(scoped, tenant_id)
        self._writer = scoped.execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE})
        self._write = _scope.sessions(self._writer, tenant_id)
        file_writer = _pool.file_writer
        self._write_file = (
            None
            if file_writer is None
            else _scope.sync_sessions(
                file_writer.execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE, _scope.TENANT: tenant_id}), tenant_id
            )
        )
        # Reads likewise (`_query`): aiosqlite hops threads several times per statement (cursor, execute,
        # fetch, close), the stdlib driver in one worker thread not at all.
        self._read_file = (
            None
            if file_writer is None
            else _scope.sync_sessions(file_writer.execution_options(**{_scope.TENANT: tenant_id}), tenant_id)
        )
        # A search counts, then reads a page: on PostgreSQL both must see one snapshot (SQLite's
        # read transactions always do).
        postgresql = engine.dialect.name == "postgresql"
        reader = scoped.execution_options(isolation_level="REPEATABLE READ") if postgresql else scoped
        self._snapshot = _scope.sessions(reader, tenant_id)
        _pool.stores.setdefault(tenant_id, self)

    @classmethod
    def from_url(cls, url: str, tenant_id: int = DEFAULT_TENANT_ID) -> Store:
        """A store on `url` (e.g. 'sqlite+aiosqlite:///path/appt.db'); schema not yet created."""
        return cls(create_engine(url), tenant_id)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def statement_engines(self) -> tuple[Engine, ...]:
        """Every engine statements run on (the async engine's own, and on a SQLite file the stdlib one that
        `_transact` and `_query` use): for listeners that watch or count statements."""
        own, file_writer = self._engine.sync_engine, self._pool.file_writer
        return (own,) if file_writer is None else (own, file_writer)

    @property
    def tenant_id(self) -> int:
        return self._tenant_id

    def for_tenant(self, tenant_id: int) -> Store:
        """The store of tenant `tenant_id` on this store's engine and pool (made once, then reused).
        Closing any store of the pool closes them all. Whether the tenant exists is `tenants`' business:
        a store of an unknown tenant finds nothing."""
        found = self._pool.stores.get(_scope.tenant(tenant_id))
        return found if found is not None else Store(self._engine, tenant_id, _pool=self._pool)

    @property
    def tenants(self) -> TenantAdmin:
        """Tenant administration, across tenants (the operator's path)."""
        if self._pool.admin is None:
            self._pool.admin = TenantAdmin(self._engine, self._pool.file_writer)
        return self._pool.admin

    async def create_schema(self) -> None:
        """Bring the database to the newest schema (Alembic migrations); a no-op on an up-to-date one.
        A database made by the old `create_all` is adopted: see `appt_tools.migrations`."""
        if await self.schema_revision() == schema.head():
            return
        file_engine = sqlite_file_engine(self._engine)
        if file_engine is None:
            async with _scope.bind(self._engine, _scope.ALL_TENANTS).begin() as connection:
                await connection.run_sync(schema.upgrade)
            return
        try:  # a SQLite file: the migration's statements run in a thread, directly on the file
            await asyncio.to_thread(_upgrade_on, file_engine)
        finally:
            file_engine.dispose()

    async def schema_revision(self) -> str | None:
        """The database's schema revision (None: never migrated: empty, or made by an old release)."""
        async with self._engine.connect() as connection:
            return await connection.run_sync(schema.current)

    def after_answer(self, write: Awaitable[object], what: str, *, key: str) -> None:
        """Run `write` in the background: a write the caller need not wait for (a change's lease given
        back), so its commit is not part of the answer's wait. It runs to the end even if the
        caller hangs up; a failure is logged with `what`; `aclose` waits for those still running. A crash
        loses it, which each caller allows for (a lease lapses on its own). `key` names what
        it writes, for `written`."""
        hurry = asyncio.Event()

        async def logged() -> None:
            try:
                # The answer leaves first (the write's thread would share the interpreter with it), unless
                # a call of this process waits for this very write (`written`).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hurry.wait(), AFTER_ANSWER_SECONDS)
                await write
            except Exception as exc:
                logger.warning("store: %s failed (%s); it lapses on its own", what, exc)

        task = asyncio.get_running_loop().create_task(logged())
        self._pool.pending[task] = (key, hurry)
        task.add_done_callback(lambda done: self._pool.pending.pop(done, None))

    async def written(self, key: str) -> None:
        """Once `after_answer`'s writes of `key` in this process are done (at once when there are none)."""
        waiting = [(task, hurry) for task, (of, hurry) in list(self._pool.pending.items()) if of == key]
        for _, hurry in waiting:
            hurry.set()
        if waiting:
            await asyncio.gather(*(task for task, _ in waiting), return_exceptions=True)

    async def aclose(self) -> None:
        """Close the engine and pool, for every tenant's store on them (after `after_answer`'s writes)."""
        if self._pool.pending:
            await asyncio.gather(*list(self._pool.pending), return_exceptions=True)
        await self._engine.dispose()
        if self._pool.file_writer is not None:
            self._pool.file_writer.dispose()
        if self._pool.glance is not None:
            self._pool.glance.close()

    async def _transact(self, work: Callable[[Session], T]) -> T:
        """`work` in one write transaction (BEGIN IMMEDIATE on SQLite), committed if it returns, rolled
        back if it raises. On a SQLite file it runs whole in a worker thread; elsewhere statement by
        statement on the async driver."""
        if self._write_file is not None:
            return await asyncio.to_thread(self._transact_in_thread, self._write_file, work)
        try:
            async with self._write() as session, session.begin():
                return await session.run_sync(work)
        except PoolTimeout as exc:
            raise store_busy() from exc

    async def _query(self, work: Callable[[Session], T], *, snapshot: bool = False) -> T:
        """`work` in one read transaction. On a SQLite file it runs whole in a worker thread (one thread hop
        per read, as `_transact`); elsewhere on the async driver. `snapshot`: on PostgreSQL, every statement
        sees one snapshot (REPEATABLE READ; SQLite's read transactions always do)."""
        if self._read_file is not None:
            return await asyncio.to_thread(self._transact_in_thread, self._read_file, work)
        try:
            async with (self._snapshot if snapshot else self._read)() as session, session.begin():
                return await session.run_sync(work)
        except PoolTimeout as exc:
            raise store_busy() from exc

    async def _write_directly(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one write transaction on a SQLite file's own connection, in a worker thread (`_direct`)."""
        direct = self._pool.direct
        assert direct is not None
        return await asyncio.to_thread(direct.transact, work)

    @staticmethod
    def _transact_in_thread(make_session: sessionmaker[Session], work: Callable[[Session], T]) -> T:
        with make_session() as session, session.begin():
            return work(session)

    async def __aenter__(self) -> Store:
        await self.create_schema()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- appointments ---------------------------------------------------------------------

    async def add_appointment(
        self, new: NewAppointment, *, now: datetime, idempotency_key: str | None = None
    ) -> Appointment:
        """Record `new` as pending (no booking uid yet), with a 'created' history entry, and link it to
        `idempotency_key` in the same transaction. SlotHeld: another booking for that start is in flight (its
        id; None when bookings for that start kept settling and starting while this one tried)."""
        now = utc(now, "now")
        start, end = utc(new.start, "start"), utc(new.end, "end")
        appointment_id = new_appointment_id()

        def work(session: Session) -> AppointmentRow:
            row = AppointmentRow(
                **new.model_dump(exclude={"start", "end"}),
                id=appointment_id,
                start=start,
                end=end,
                status=AppointmentStatus.PENDING,
                booking_uid=None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            session.add(HistoryRow(appointment_id=row.id, at=now, action="created", to_start=start))
            if idempotency_key is not None:
                claimed = _key_row(session, idempotency_key, for_update=True)
                if claimed is not None:
                    claimed.appointment_id = row.id
                    claimed.updated_at = now
            return row

        async def record() -> Appointment:
            if self._pool.direct is None:
                return _appointment(await self._transact(work), ())
            added = Appointment.model_validate(
                {
                    **new.model_dump(),
                    "id": appointment_id,
                    "start": start,
                    "end": end,
                    "status": AppointmentStatus.PENDING,
                    "booking_uid": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            created = HistoryEntry(at=now, action="created", to_start=start)
            tenant = self._tenant_id
            await self._write_directly(
                lambda connection: _direct.add_appointment(connection, tenant, added, created, idempotency_key)
            )
            return added

        retries = IN_FLIGHT_RETRIES
        while True:
            try:
                return await record()
            except IntegrityError:
                holder = await self._in_flight_at(start)
                if holder is not None:
                    raise SlotHeld(holder) from None
                if retries == 0:
                    raise SlotHeld(None) from None  # held, settled, held again: the caller looks again
                # The booking in flight for that start settled between our insert and the look-up: the
                # start is no longer held, so try again (Cal.com decides whether it is still free).
                retries -= 1

    async def _in_flight_at(self, start: datetime) -> str | None:
        statement = select(AppointmentRow.id).where(
            AppointmentRow.start_at == start,
            AppointmentRow.status == AppointmentStatus.PENDING,
            AppointmentRow.booking_uid.is_(None),
        )
        return await self._query(lambda session: session.scalar(statement))

    async def get_appointment(self, appointment_id: str) -> Appointment | None:
        """The appointment (None: no such id); glanced on a SQLite file."""
        glance = self._pool.glance
        glanced = _glance.MISSING if glance is None else glance.appointment(self._tenant_id, appointment_id)
        if glanced is not _glance.MISSING:
            return glanced

        def work(session: Session) -> Appointment | None:
            loaded = _load(session, appointment_id)
            return None if loaded is None else _appointment(*loaded)

        return await self._query(work)

    async def live_at(self, start: datetime) -> list[Appointment]:
        """Appointments starting at `start` that are booked or being booked (stored status pending, active
        or rescheduled): one lookup on the start index, however large the store (glanced on a SQLite file)."""
        start = utc(start, "start")
        glanced = None if self._pool.glance is None else self._pool.glance.live_at(self._tenant_id, start)
        if glanced is not None:
            return glanced
        statement = select(AppointmentRow).where(
            AppointmentRow.start_at == start,
            AppointmentRow.status.in_(
                (AppointmentStatus.PENDING, AppointmentStatus.ACTIVE, AppointmentStatus.RESCHEDULED)
            ),
        )
        return await self._query(lambda session: _appointments(session, session.scalars(statement)))

    async def get_by_booking_uid(self, uid: str) -> Appointment | None:
        """The appointment whose current, or any earlier, booking uid is `uid`."""
        earlier = select(BookingUidRow.appointment_id).where(BookingUidRow.uid == uid)
        statement = select(AppointmentRow).where(or_(AppointmentRow.booking_uid == uid, AppointmentRow.id.in_(earlier)))
        found = await self._query(lambda session: _appointments(session, session.scalars(statement.limit(1))))
        return found[0] if found else None

    async def update_appointment(
        self,
        appointment_id: str,
        changes: Mapping[str, object],
        *,
        now: datetime,
        history: HistoryEntry | None = None,
    ) -> Appointment:
        """Apply `changes` (Appointment field names) and append `history`, in one transaction.

        ValueError: unknown or unchangeable field, invalid value, naive datetime, or status
        `completed` (derived, never stored); its subclass BookingUidOwned: a booking uid that belongs to
        another appointment. KeyError: no appointment `appointment_id`.
        `updated_at` becomes `now` when `changes` is not empty.
        """
        now = utc(now, "now")
        unknown = sorted(set(changes) - set(CHANGEABLE_FIELDS))
        if unknown:
            raise ValueError(f"cannot change appointment field(s): {', '.join(unknown)}")
        for name in ("start", "end"):
            value = changes.get(name)
            if isinstance(value, datetime):
                utc(value, name)
        if changes.get("status") in (AppointmentStatus.COMPLETED, AppointmentStatus.COMPLETED.value):
            raise ValueError("status: 'completed' is derived, never stored")
        entry_row = None if history is None else _history_row(appointment_id, history)  # checks its times too
        if self._pool.direct is not None:
            tenant = self._tenant_id
            return await self._write_directly(
                lambda connection: _direct.update_appointment(
                    connection, tenant, appointment_id, changes, now=now, history=history
                )
            )

        def work(session: Session) -> Appointment:
            loaded = _load(session, appointment_id, for_update=True)
            if loaded is None:
                raise KeyError(appointment_id)
            row, uids = loaded
            merged = _direct.merge(_appointment(row, uids), changes)

            new_uid = merged.booking_uid
            if "booking_uid" in changes and new_uid is not None and new_uid not in uids:
                _locks.hold(session, f"booking_uid:{new_uid}")
                owner = session.scalar(select(BookingUidRow.appointment_id).where(BookingUidRow.uid == new_uid))
                if owner is not None:
                    raise BookingUidOwned(new_uid, owner)
                session.add(BookingUidRow(appointment_id=row.id, uid=new_uid, created_at=now))
                uids.append(new_uid)

            for field in changes:
                value = getattr(merged, field)
                setattr(row, field, utc(value, field) if isinstance(value, datetime) else value)
            if changes:
                row.updated_at = now
            if entry_row is not None:
                session.add(entry_row)
            session.flush()
            return _appointment(row, uids)

        return await self._transact(work)

    # --- holds ------------------------------------------------------------------------------

    async def add_hold(self, hold: Hold, *, now: datetime) -> Hold | None:
        """Record `hold` unless a live hold (one not expired at `now`) overlaps its time; then None (the
        overlapping one wins). Expired holds are deleted on the way. Atomic across processes."""
        now = utc(now, "now")
        if self._pool.direct is not None:
            tenant = self._tenant_id
            return await self._write_directly(lambda connection: _direct.add_hold(connection, tenant, hold, now))

        def work(session: Session) -> Hold | None:
            _locks.hold(session, "holds")
            session.execute(delete(HoldRow).where(HoldRow.expires_at <= now))
            clash = session.scalar(
                select(HoldRow.id).where(HoldRow.start_at < hold.end, HoldRow.end_at > hold.start).limit(1)
            )
            if clash is not None:
                return None
            session.add(HoldRow(**hold.model_dump()))
            return hold

        return await self._transact(work)

    async def live_holds(self, lo: datetime, hi: datetime, *, now: datetime) -> list[Hold]:
        """Holds not expired at `now` whose time overlaps [lo, hi), by start (glanced on a SQLite file)."""
        lo, hi, now = utc(lo, "lo"), utc(hi, "hi"), utc(now, "now")
        glanced = None if self._pool.glance is None else self._pool.glance.live_holds(self._tenant_id, lo, hi, now=now)
        if glanced is not None:
            return glanced
        statement = (
            select(HoldRow)
            .where(HoldRow.expires_at > now, HoldRow.start_at < hi, HoldRow.end_at > lo)
            .order_by(HoldRow.start_at)
        )
        return await self._query(
            lambda session: [Hold.model_validate(row, from_attributes=True) for row in session.scalars(statement)]
        )

    async def busy(self, lo: datetime, hi: datetime, *, now: datetime, changes: bool = False) -> BusyTimes:
        """The times within [lo, hi) no caller should be offered, as (start, end) by start: live holds, and
        bookings being made right now or whose outcome Cal.com has not confirmed yet (pending, no booking
        uid: once settled, the time is Cal.com's to show). With `changes`, also `slot_changes` in the same
        transaction (a warm answer needs both: one read instead of two). Two or three indexed statements,
        on a SQLite file read from the event loop's own thread (`_glance`: no worker-thread hop)."""
        lo, hi, now = utc(lo, "lo"), utc(hi, "hi"), utc(now, "now")
        glance = self._pool.glance
        if glance is not None:
            glanced = glance.busy(self._tenant_id, lo, hi, now=now, longest=MAX_MEETING, changes=changes)
            if glanced is not None:
                return glanced
        holds = select(HoldRow.start_at, HoldRow.end_at).where(
            HoldRow.expires_at > now, HoldRow.start_at < hi, HoldRow.end_at > lo
        )
        in_flight = select(AppointmentRow.start_at, AppointmentRow.end_at).where(
            AppointmentRow.status == AppointmentStatus.PENDING,
            AppointmentRow.booking_uid.is_(None),
            AppointmentRow.start_at < hi,
            AppointmentRow.start_at >= lo - MAX_MEETING,  # bounded, for the in-flight index
            AppointmentRow.end_at > lo,
        )

        def work(session: Session) -> BusyTimes:
            rows = [*session.execute(holds), *session.execute(in_flight)]
            times = tuple(sorted((start, end) for start, end in rows))
            return BusyTimes(times, _changes(session) if changes else None)

        return await self._query(work)

    async def get_hold(self, hold_id: str) -> Hold | None:
        """The hold, live or expired (None once released, used or swept away); glanced on a SQLite file."""
        glanced = _glance.MISSING if self._pool.glance is None else self._pool.glance.hold(self._tenant_id, hold_id)
        if glanced is not _glance.MISSING:
            return glanced

        def work(session: Session) -> Hold | None:
            row = session.get(HoldRow, hold_id)
            return None if row is None else Hold.model_validate(row, from_attributes=True)

        return await self._query(work)

    async def delete_hold(self, hold_id: str) -> Hold | None:
        """End a hold; the hold it was, or None if there was none."""

        def work(session: Session) -> Hold | None:
            row = session.get(HoldRow, hold_id)
            if row is None:
                return None
            ended = Hold.model_validate(row, from_attributes=True)
            session.delete(row)
            return ended

        return await self._transact(work)

    async def history(self, appointment_id: str) -> list[HistoryEntry]:
        """History of `appointment_id`, oldest first ([] for an unknown id)."""
        statement = (
            select(HistoryRow).where(HistoryRow.appointment_id == appointment_id).order_by(HistoryRow.at, HistoryRow.id)
        )
        return await self._query(
            lambda session: [
                HistoryEntry.model_validate(row, from_attributes=True) for row in session.scalars(statement)
            ]
        )

    async def search(self, query: SearchQuery, *, now: datetime) -> SearchPage:
        """One page of appointments matching `query`; `total` counts the whole filter, exactly up to
        1,000 matches (or the end of the page asked for, when further): with more, `total_exact` is
        False and `total` is that bound ("more than 1,000").

        Statuses filter by effective status at `now`; returned items carry the stored status.
        """
        if query.page < 1:
            raise ValueError(f"page: must be 1 or more, not {query.page}")
        if query.page_size < 1:
            raise ValueError(f"page_size: must be 1 or more, not {query.page_size}")
        now = utc(now, "now")
        utc_or_none(query.start_from, "start_from")
        utc_or_none(query.start_to, "start_to")
        fts = await self._has_fts()

        def work(session: Session) -> tuple[_finder.Found, list[Appointment]]:
            found = _finder.find(session, query, now, fts=fts, ids_only=self._pool.glance is not None)
            if found.ids is None:
                return found, _appointments(session, found.rows)
            # The same transaction, on its own driver connection: plain SQL, no ORM objects (`_glance`).
            driver = session.connection().connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            return found, _glance.appointments_in_order(driver, self._tenant_id, found.ids)

        found, items = await self._query(work, snapshot=True)
        return SearchPage(
            items=tuple(items),
            total=found.total,
            total_exact=found.total_exact,
            page=query.page,
            page_size=query.page_size,
        )

    async def _has_fts(self) -> bool:
        """Whether SQLite's FTS5 search table exists (migration 0002 makes it where SQLite can)."""
        if self._pool.fts is None:
            if self._engine.dialect.name != "sqlite":
                self._pool.fts = False
                return False
            statement = text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :name")
            async with self._engine.connect() as connection:
                found = await connection.scalar(statement, {"name": _search.FTS_TABLE})
            self._pool.fts = bool(found)
        return self._pool.fts

    # --- idempotency keys ----------------------------------------------------------------------

    async def claim_key(self, key: str, request_hash: str, *, now: datetime, stale_after: timedelta) -> Claim:
        """Claim `key` for a request, atomically across processes. `mine` is False when another call
        holds it (done, or in flight and touched within `stale_after`); a stale claim is taken over."""
        now = utc(now, "now")

        def work(session: Session) -> Claim:
            _locks.hold(session, f"idempotency_key:{key}")
            row = _key_row(session, key, for_update=True)
            if row is None:
                row = IdempotencyRow(key=key, request_hash=request_hash, done=False, created_at=now, updated_at=now)
                session.add(row)
                session.flush()
                return Claim(record=_key_from_row(row), mine=True)
            stale = not row.done and row.request_hash == request_hash and utc(row.updated_at, "at") <= now - stale_after
            if stale:
                row.updated_at = now
            return Claim(record=_key_from_row(row), mine=stale)

        return await self._transact(work)

    async def get_key(self, key: str) -> IdempotencyRecord | None:
        def work(session: Session) -> IdempotencyRecord | None:
            row = _key_row(session, key)
            return None if row is None else _key_from_row(row)

        return await self._query(work)

    async def release_key(self, key: str) -> None:
        """Leave `key` unfinished but claimable at once: the outcome is unknown and a repeat must resume."""

        def work(session: Session) -> None:
            row = _key_row(session, key, for_update=True)
            if row is not None and not row.done:
                row.updated_at = _LONG_AGO

        await self._transact(work)

    async def finish_key(
        self,
        key: str,
        *,
        now: datetime,
        appointment_id: str | None = None,
        error: Mapping[str, object] | None = None,
    ) -> None:
        """Record the outcome the key stands for from now on."""
        now = utc(now, "now")

        def work(session: Session) -> None:
            row = _key_row(session, key, for_update=True)
            if row is None:
                raise KeyError(key)
            row.done = True
            row.error = dict(error) if error is not None else None
            if appointment_id is not None:
                row.appointment_id = appointment_id
            row.updated_at = now

        await self._transact(work)

    # --- event types --------------------------------------------------------------------------

    async def replace_event_types(self, event_types: Sequence[EventType], *, now: datetime) -> None:
        """Make the stored event types exactly `event_types` (upsert these, delete the rest)."""
        now = utc(now, "now")
        ids = [event_type.id for event_type in event_types]
        if len(set(ids)) != len(ids):
            raise ValueError("event_types: duplicate ids")

        def work(session: Session) -> None:
            _locks.hold(session, "event_types")
            existing = {row.id: row for row in session.scalars(select(EventTypeRow))}
            for event_type in event_types:
                values = {
                    **event_type.model_dump(),
                    "length_options": list(event_type.length_options),
                    "questions": [q.model_dump(mode="json") for q in event_type.questions],
                    "synced_at": now,
                }
                row = existing.pop(event_type.id, None)
                if row is None:
                    session.add(EventTypeRow(**values))
                else:
                    for name, value in values.items():
                        setattr(row, name, value)
            for stale in existing.values():
                session.delete(stale)

        await self._transact(work)

    async def list_event_types(self) -> list[EventType]:
        """All synced event types, by title (then id)."""
        statement = select(EventTypeRow).order_by(EventTypeRow.title, EventTypeRow.id)
        return await self._query(
            lambda session: [EventType.model_validate(row, from_attributes=True) for row in session.scalars(statement)]
        )

    async def get_event_type(self, event_type_id: int) -> EventType | None:
        def work(session: Session) -> EventType | None:
            row = session.scalar(select(EventTypeRow).where(EventTypeRow.id == event_type_id))
            return None if row is None else EventType.model_validate(row, from_attributes=True)

        return await self._query(work)

    # --- settings ---------------------------------------------------------------------------

    async def get_settings(self) -> dict[str, str]:
        """The stored settings (not the server's own internal rows)."""
        statement = select(SettingRow).where(SettingRow.key.not_like(f"{INTERNAL_PREFIX}%"))
        return await self._query(lambda session: {row.key: row.value for row in session.scalars(statement)})

    async def set_setting(self, key: str, value: str | None) -> None:
        """Set `key` to `value`; `None` deletes it."""

        def work(session: Session) -> None:
            _locks.hold(session, f"setting:{key}")
            row = _setting_row(session, key)
            if value is None:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(SettingRow(key=key, value=value))
            else:
                row.value = value

        await self._transact(work)

    async def setting_once(self, key: str, make: Callable[[], str]) -> str:
        """The value stored under `key`, created by `make()` if there is none, atomically across every
        process sharing the database: all of them get the same value."""

        def work(session: Session) -> str:
            _locks.hold(session, f"setting:{key}")
            row = _setting_row(session, key)
            if row is None:
                row = SettingRow(key=key, value=make())
                session.add(row)
            return row.value

        return await self._transact(work)

    async def end_session(self, session_id: str, *, until: datetime, now: datetime) -> None:
        """Record that the dashboard session `session_id` ended (signed out) and must not be accepted
        again before `until`, when its cookie expires anyway; records already past theirs are dropped."""
        until, now = utc(until, "until"), utc(now, "now")
        key = f"{ENDED_SESSION_PREFIX}{session_id}"
        expired = delete(SettingRow).where(
            SettingRow.key.like(f"{ENDED_SESSION_PREFIX}%"), SettingRow.value < now.isoformat()
        )

        def work(session: Session) -> None:
            _locks.hold(session, f"setting:{key}")
            session.execute(expired)
            if _setting_row(session, key) is None:
                session.add(SettingRow(key=key, value=until.isoformat()))

        await self._transact(work)

    async def session_ended(self, session_id: str) -> bool:
        """Whether `end_session` was called for `session_id` (by any process sharing the database)."""
        key = f"{ENDED_SESSION_PREFIX}{session_id}"
        return await self._query(lambda session: _setting_row(session, key) is not None)

    async def take_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Hold the lease `name` until `now + ttl` if it is free, expired or already `holder`'s; False while
        another holder's is current. Several processes on one database use it to let one of them run a job."""
        now, key, tenant = utc(now, "now"), f"{LEASE_PREFIX}{name}", self._tenant_id
        if self._pool.direct is not None:
            return await self._write_directly(
                lambda connection: _direct.take_lease(connection, tenant, key, holder, now + ttl, now)
            )
        return await self._transact(lambda session: _take_lease(session, key, holder, now + ttl, now=now))

    async def lease_appointment(
        self, name: str, holder: str, appointment_id: str, *, now: datetime, ttl: timedelta
    ) -> tuple[bool, Appointment | None]:
        """`take_lease`, and once taken, appointment `appointment_id` as it is under the lease, read in the
        same transaction: a change's lease and its fresh look at the appointment in one round."""
        now, key, tenant = utc(now, "now"), f"{LEASE_PREFIX}{name}", self._tenant_id
        if self._pool.direct is not None:

            def directly(connection: sqlite3.Connection) -> tuple[bool, Appointment | None]:
                if not _direct.take_lease(connection, tenant, key, holder, now + ttl, now):
                    return False, None
                return True, _direct.get_appointment(connection, tenant, appointment_id)

            return await self._write_directly(directly)

        def work(session: Session) -> tuple[bool, Appointment | None]:
            if not _take_lease(session, key, holder, now + ttl, now=now):
                return False, None
            loaded = _load(session, appointment_id)
            return True, None if loaded is None else _appointment(*loaded)

        return await self._transact(work)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give up the lease `name` if `holder` still holds it (another holder's is left alone)."""
        key = f"{LEASE_PREFIX}{name}"

        def work(session: Session) -> None:
            _locks.hold(session, f"setting:{key}")
            row = _setting_row(session, key)
            if row is not None and row.value.partition(" ")[0] == holder:
                session.delete(row)

        await self._transact(work)

    # --- shared between instances: slot changes and Cal.com budgets (see `_shared`) --------------

    async def slots_changed(self, origin: str) -> int:
        """Count a change of the calendar and tell every instance (`origin`: which one made it)."""
        return await self._transact(lambda session: _shared.bump_changes(session, f"{self._tenant_id}:{origin}"))

    async def slot_changes(self) -> int:
        """How many changes of the calendar have been counted (by every instance): one primary-key read
        (on a SQLite file from the event loop's own thread, as `busy`)."""
        glanced = None if self._pool.glance is None else self._pool.glance.changes(self._tenant_id)
        return glanced if glanced is not None else await self._query(_changes)

    @property
    def pushes_changes(self) -> bool:
        """Whether `follow_slot_changes` can push changes (PostgreSQL), so the counter need not be read."""
        return self._engine.dialect.name == "postgresql"

    async def follow_slot_changes(self, on_change: Callable[[str], None], on_live: Callable[[bool], None]) -> None:
        """Until cancelled, hear every instance's slot changes for this tenant (PostgreSQL; returns at once
        elsewhere). `on_change` gets the origin `slots_changed` was given."""
        mine = f"{self._tenant_id}:"

        def heard(payload: str) -> None:  # other tenants' changes are theirs alone
            if payload.startswith(mine):
                on_change(payload.removeprefix(mine))

        if self._pool.feed is None:
            self._pool.feed = _shared.ChangeFeed(self._engine)
        await self._pool.feed.follow(heard, on_live)

    async def claim_calcom_budget(self, key_id: str, want: int, *, limit: int, window: float) -> tuple[int, int, float]:
        """Claim up to `want` Cal.com requests of the key's shared window: (granted, unclaimed, seconds left)."""
        now = _shared.wall_clock()
        return await self._transact(
            lambda session: _shared.claim_budget(session, key_id, want, limit=limit, window=window, now=now)
        )

    async def recently_cancelled(
        self, *, since: datetime, start_from: datetime, start_to: datetime
    ) -> list[Appointment]:
        """Cancelled appointments with a booking uid, changed at or after `since`, starting in
        [start_from, start_to): what reconciliation re-checks in case Cal.com still holds them live."""
        statement = select(AppointmentRow).where(
            AppointmentRow.status == AppointmentStatus.CANCELLED,
            AppointmentRow.booking_uid.is_not(None),
            AppointmentRow.updated_at >= utc(since, "since"),
            AppointmentRow.start_at >= utc(start_from, "start_from"),
            AppointmentRow.start_at < utc(start_to, "start_to"),
        )
        ordered = statement.order_by(AppointmentRow.start_at, AppointmentRow.id)
        return await self._query(lambda session: _appointments(session, session.scalars(ordered)))


def _upgrade_on(engine: Engine) -> None:
    with engine.execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE}).begin() as connection:
        schema.upgrade(connection)


def _appointment(row: AppointmentRow, uids: Sequence[str]) -> Appointment:
    """`uids`: every booking uid the appointment has had, oldest first (the current one included)."""
    appointment = Appointment.model_validate(row, from_attributes=True)
    previous = tuple(uid for uid in uids if uid != row.booking_uid)
    return appointment.model_copy(update={"previous_booking_uids": previous}) if previous else appointment


def _changes(session: Session) -> int:
    """The calendar's change counter (`_shared.bump_changes`), 0 before the first change."""
    value = session.scalar(select(SettingRow.value).where(SettingRow.key == _shared.CHANGES_KEY))
    return int(value) if value is not None else 0


def _take_lease(session: Session, key: str, holder: str, until: datetime, *, now: datetime) -> bool:
    """`Store.take_lease`'s work: the lease row `key` is `holder`'s until `until`, unless another's is current."""
    _locks.hold(session, f"setting:{key}")
    row = _setting_row(session, key)
    if row is not None:
        owner, _, current_until = row.value.partition(" ")
        if owner != holder and datetime.fromisoformat(current_until) > now:
            return False
    value = f"{holder} {until.isoformat()}"
    if row is None:
        session.add(SettingRow(key=key, value=value))
    else:
        row.value = value
    return True


def _key_row(session: Session, key: str, *, for_update: bool = False) -> IdempotencyRow | None:
    """The store's tenant's idempotency key `key` (the tenant is added by the session: see `_scope`)."""
    statement = select(IdempotencyRow).where(IdempotencyRow.key == key)
    return session.scalar(statement.with_for_update() if for_update else statement)


def _setting_row(session: Session, key: str) -> SettingRow | None:
    return session.scalar(select(SettingRow).where(SettingRow.key == key))


def _key_from_row(row: IdempotencyRow) -> IdempotencyRecord:
    return IdempotencyRecord.model_validate(row, from_attributes=True)


def _history_row(appointment_id: str, entry: HistoryEntry) -> HistoryRow:
    """The row of `entry`; ValueError (before any transaction) if one of its datetimes is naive."""
    for name in ("at", "from_start", "to_start"):
        utc_or_none(getattr(entry, name), f"history.{name}")
    return HistoryRow(appointment_id=appointment_id, **entry.model_dump())


def _load(
    session: Session, appointment_id: str, *, for_update: bool = False
) -> tuple[AppointmentRow, list[str]] | None:
    """An appointment's row and every booking uid it has had (oldest first), in one statement."""
    statement = (
        select(AppointmentRow, BookingUidRow.uid)
        .outerjoin(BookingUidRow, BookingUidRow.appointment_id == AppointmentRow.id)
        .where(AppointmentRow.id == appointment_id)
        .order_by(BookingUidRow.created_at, BookingUidRow.id)
    )
    if for_update:
        statement = statement.with_for_update(of=AppointmentRow)
    found = session.execute(statement).all()
    if not found:
        return None
    return found[0][0], [uid for _, uid in found if uid is not None]


def _appointments(session: Session, rows: Iterable[AppointmentRow]) -> list[Appointment]:
    """The appointments of `rows`, with their booking uids read in one statement."""
    found = list(rows)
    uids = _uids_by_appointment(session, [row.id for row in found])
    return [_appointment(row, uids.get(row.id, ())) for row in found]


def _uids_by_appointment(session: Session, appointment_ids: Iterable[str]) -> dict[str, list[str]]:
    """Every booking uid of each appointment, oldest first."""
    ids = list(appointment_ids)
    if not ids:
        return {}
    statement = (
        select(BookingUidRow.appointment_id, BookingUidRow.uid)
        .where(BookingUidRow.appointment_id.in_(ids))
        .order_by(BookingUidRow.created_at, BookingUidRow.id)
    )
    result: dict[str, list[str]] = {}
    for appointment_id, uid in session.execute(statement):
        result.setdefault(appointment_id, []).append(uid)
    return result
