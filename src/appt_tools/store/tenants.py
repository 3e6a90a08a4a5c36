"""`TenantAdmin`: the businesses a deployment serves and the phone numbers each answers on.

The operator's path: its sessions act for every tenant (`_scope.ALL_TENANTS`; on PostgreSQL the
transaction says so to the row-level security policies). It reads and writes the `tenants` and
`tenant_numbers` tables, which are not scoped, and, to purge a tenant, that tenant's rows of every
scoped table, naming the tenant itself.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from appt_tools import validation
from appt_tools.errors import Conflict, InvalidArgument, NotFound
from appt_tools.models import Tenant
from appt_tools.store import _locks, _scope
from appt_tools.store._engine import BEGIN_MODE_OPTION, IMMEDIATE
from appt_tools.store.tables import (
    DEFAULT_TENANT_ID,
    AppointmentRow,
    BookingUidRow,
    EventTypeRow,
    HistoryRow,
    HoldRow,
    IdempotencyRow,
    SettingRow,
    TenantNumberRow,
    TenantRow,
    TenantScoped,
)

T = TypeVar("T")
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_NAME = 200
# Purged children first: history, uids and keys refer to appointments.
_SCOPED: tuple[type[TenantScoped], ...] = (
    HistoryRow,
    BookingUidRow,
    IdempotencyRow,
    HoldRow,
    EventTypeRow,
    SettingRow,
    AppointmentRow,
)


def parse_slug(slug: str) -> str:
    """A tenant's slug: 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'."""
    if not SLUG.fullmatch(slug):
        raise InvalidArgument(
            "slug",
            f"{slug!r} is not a valid tenant slug; use 1 to 63 lower-case letters, digits and '-' "
            "(not first or last), e.g. 'acme-dental'.",
        )
    return slug


def parse_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidArgument("name", f"a tenant's display name is 1 to {MAX_NAME} characters, e.g. 'Acme Dental'.")
    return name


def parse_numbers(numbers: Iterable[str]) -> list[str]:
    """E.164 numbers (InvalidArgument naming the first bad one), sorted, without repeats."""
    return sorted({validation.phone_e164("numbers", number) for number in numbers})


class TenantAdmin:
    """Add, list, find, rename, renumber and remove tenants. Errors: InvalidArgument (slug, name or a
    number malformed), Conflict (slug taken, number already another tenant's), NotFound (no such tenant)."""

    def __init__(self, engine: AsyncEngine, file_writer: Engine | None) -> None:
        operator = _scope.bind(engine, _scope.ALL_TENANTS)
        self._read = _scope.sessions(operator, _scope.ALL_TENANTS)
        self._write = _scope.sessions(operator.execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE}), _scope.ALL_TENANTS)
        self._write_file = (
            None
            if file_writer is None
            else _scope.sync_sessions(
                file_writer.execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE, _scope.TENANT: _scope.ALL_TENANTS}),
                _scope.ALL_TENANTS,
            )
        )

    async def _transact(self, work: Callable[[Session], T]) -> T:
        if self._write_file is not None:
            return await asyncio.to_thread(self._in_thread, work)
        async with self._write() as session, session.begin():
            return await session.run_sync(work)

    def _in_thread(self, work: Callable[[Session], T]) -> T:
        assert self._write_file is not None
        with self._write_file() as session, session.begin():
            return work(session)

    async def _reading(self, work: Callable[[Session], T]) -> T:
        async with self._read() as session, session.begin():
            return await session.run_sync(work)

    async def add(self, slug: str, name: str, *, numbers: Sequence[str] = (), now: datetime) -> Tenant:
        """A new tenant, answering on `numbers`."""
        slug, name, wanted = parse_slug(slug), parse_name(name), parse_numbers(numbers)

        def work(session: Session) -> Tenant:
            _locks.hold(session, "tenants")
            existing = session.scalar(select(TenantRow).where(TenantRow.slug == slug))
            if existing is not None:
                removed = (
                    " (a removed tenant, its data kept: purge it to reuse the slug)" if existing.removed_at else ""
                )
                raise Conflict(f"slug: {slug!r} is already the slug of a tenant{removed}; choose another.")
            row = TenantRow(slug=slug, name=name, created_at=now.astimezone(UTC))
            session.add(row)
            session.flush()
            _number(session, row, wanted)
            return _tenant(row, wanted)

        return await self._guarded(work)

    async def list(self, *, include_removed: bool = False) -> list[Tenant]:
        """Every tenant, by slug (removed ones only if asked)."""

        def work(session: Session) -> list[Tenant]:
            statement = select(TenantRow).order_by(TenantRow.slug)
            if not include_removed:
                statement = statement.where(TenantRow.removed_at.is_(None))
            rows = list(session.scalars(statement))
            numbers = _numbers(session, [row.id for row in rows])
            return [_tenant(row, numbers.get(row.id, [])) for row in rows]

        return await self._reading(work)

    async def get(self, slug: str, *, include_removed: bool = False) -> Tenant | None:
        """The tenant `slug` (None if there is none, or it was removed and `include_removed` is False)."""
        return await self._reading(lambda session: _found(session, TenantRow.slug == slug, include_removed))

    async def get_by_id(self, tenant_id: int) -> Tenant | None:
        """The tenant with id `tenant_id`, removed or not."""
        return await self._reading(lambda session: _found(session, TenantRow.id == tenant_id, True))

    async def by_number(self, number: str) -> Tenant | None:
        """The tenant answering on `number` (E.164: InvalidArgument otherwise), or None."""
        (number,) = parse_numbers([number])
        owner = select(TenantNumberRow.tenant_id).where(TenantNumberRow.number == number).scalar_subquery()
        return await self._reading(lambda session: _found(session, TenantRow.id == owner, False))

    async def stored_settings(self, keys: Sequence[str]) -> dict[int, dict[str, str]]:
        """These stored settings of every tenant, in one read: {tenant id: {key: raw value}} (a tenant
        with none of them is left out). The runtime's directory of keys and secrets is made from it."""

        def work(session: Session) -> dict[int, dict[str, str]]:
            found: dict[int, dict[str, str]] = {}
            statement = select(SettingRow.tenant_id, SettingRow.key, SettingRow.value).where(SettingRow.key.in_(keys))
            for tenant_id, key, value in session.execute(statement):
                found.setdefault(tenant_id, {})[key] = value
            return found

        return await self._reading(work)

    async def set_name(self, slug: str, name: str) -> Tenant:
        name = parse_name(name)

        def work(session: Session) -> Tenant:
            row = _require(session, slug)
            row.name = name
            return _tenant(row, _numbers(session, [row.id]).get(row.id, []))

        return await self._guarded(work)

    async def set_numbers(self, slug: str, numbers: Sequence[str]) -> Tenant:
        """Make `numbers` exactly the tenant's numbers (Conflict if one is another tenant's)."""
        wanted = parse_numbers(numbers)

        def work(session: Session) -> Tenant:
            row = _require(session, slug)
            session.execute(delete(TenantNumberRow).where(TenantNumberRow.tenant_id == row.id))
            _number(session, row, wanted)
            return _tenant(row, wanted)

        return await self._guarded(work)

    async def remove(self, slug: str, *, now: datetime, purge: bool = False) -> None:
        """Remove the tenant: it no longer answers on its numbers (they are freed) nor is listed, and its
        data stays (`get(slug, include_removed=True)` still finds it). `purge`: delete it and every row
        of its data for good (a removed tenant can be purged later). The default tenant cannot be removed."""

        def work(session: Session) -> None:
            row = session.scalar(select(TenantRow).where(TenantRow.slug == slug).with_for_update())
            if row is None or (row.removed_at is not None and not purge):
                raise NotFound(f"There is no tenant {slug!r}.")
            if row.id == DEFAULT_TENANT_ID:
                raise InvalidArgument(
                    "slug", f"{slug!r} is the default tenant (it serves every call that names none); it stays."
                )
            session.execute(delete(TenantNumberRow).where(TenantNumberRow.tenant_id == row.id))
            if not purge:
                row.removed_at = now.astimezone(UTC)
                return
            for table in _SCOPED:
                session.execute(delete(table).where(table.tenant_id == row.id))
            session.delete(row)

        await self._transact(work)

    async def _guarded(self, work: Callable[[Session], T]) -> T:
        """`work` in a write transaction; a unique clash that raced past its checks is a Conflict."""
        try:
            return await self._transact(work)
        except IntegrityError:
            raise Conflict("Another change to the tenants was made at the same moment; try again.") from None


def _require(session: Session, slug: str) -> TenantRow:
    row = session.scalar(select(TenantRow).where(TenantRow.slug == slug, TenantRow.removed_at.is_(None)))
    if row is None:
        raise NotFound(f"There is no tenant {slug!r}; `appt-tools tenants list` shows them.")
    return row


def _number(session: Session, tenant: TenantRow, numbers: Sequence[str]) -> None:
    """Give `numbers` to `tenant`; Conflict if one belongs to another tenant."""
    if not numbers:
        return
    _locks.hold(session, "tenant_numbers")
    owners = session.execute(
        select(TenantNumberRow.number, TenantRow.slug)
        .join(TenantRow, TenantRow.id == TenantNumberRow.tenant_id)
        .where(TenantNumberRow.number.in_(numbers), TenantNumberRow.tenant_id != tenant.id)
    ).first()
    if owners is not None:
        number, owner = owners
        raise Conflict(f"numbers: {number} already belongs to tenant {owner!r}; remove it there first.")
    session.add_all(TenantNumberRow(number=number, tenant_id=tenant.id) for number in numbers)
    session.flush()


def _numbers(session: Session, tenant_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if tenant_ids:
        statement = (
            select(TenantNumberRow.tenant_id, TenantNumberRow.number)
            .where(TenantNumberRow.tenant_id.in_(tenant_ids))
            .order_by(TenantNumberRow.number)
        )
        for tenant_id, number in session.execute(statement):
            found.setdefault(tenant_id, []).append(number)
    return found


def _found(session: Session, condition: ColumnElement[bool], include_removed: bool) -> Tenant | None:
    statement = select(TenantRow).where(condition)
    if not include_removed:
        statement = statement.where(TenantRow.removed_at.is_(None))
    row = session.scalar(statement)
    return None if row is None else _tenant(row, _numbers(session, [row.id]).get(row.id, []))


def _tenant(row: TenantRow, numbers: Sequence[str]) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        numbers=tuple(numbers),
        created_at=row.created_at,
        removed_at=row.removed_at,
    )
