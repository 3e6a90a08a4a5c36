"""Declarative tables of the local store, on SQLite or PostgreSQL. The migrations in
`appt_tools.migrations` create exactly this schema (a test compares them).

Datetimes are stored as timezone-naive UTC (`UTCDateTime`) and come back aware (UTC). Text that is
sorted compares by code point on both backends: SQLite's default, and collation "C" on PostgreSQL.
A status is stored as its value (VARCHAR, checked by the table's own CHECK constraint) and comes back
an `AppointmentStatus`. The rows answer to the domain models' field names where the columns' differ
(`start`, `end`), so that a model is built from a row by pydantic (`from_attributes`) with no mapping
written out.

Search objects outside this metadata, created by migration 0002: on SQLite the FTS5 table
`appointments_search` (trigram, over `SEARCH_COLUMNS`) and the triggers that keep it in sync; on
PostgreSQL the `pg_trgm` extension used by `ix_appointments_search_document_trgm`. PostgreSQL only
(migration 0006_search_document): the column `search_document` and its trigram index (`SEARCH_DOCUMENT`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, synonym
from sqlalchemy.types import TypeDecorator, TypeEngine

from appt_tools.models import AppointmentStatus

# `completed` is derived (see `Appointment.effective_status`), never stored.
STORED_STATUSES = tuple(status.value for status in AppointmentStatus if status is not AppointmentStatus.COMPLETED)
_CALL_TYPES = ("inbound", "outbound", "web")
IN_FLIGHT = "status = 'pending' AND booking_uid IS NULL"


# Free-text search looks in these columns (substring, case-insensitive).
SEARCH_COLUMNS = ("title", "attendee_name", "attendee_email", "business_name", "label", "to_number", "from_number")
# Sort keys: each has an index (key, id, status), so a page in that order is an index range
# scan that also checks the common status filter without reading rows.
SORT_COLUMNS = (
    "start_at",
    "end_at",
    "created_at",
    "updated_at",
    "title",
    "attendee_name",
    "attendee_email",
    "business_name",
    "label",
    "call_type",
    "host_name",
)
LABEL_INDEX = "ix_appointments_label_filter"
UNBOOKED_INDEX = "ix_appointments_unbooked_status_end_at"
TRIGRAM_INDEX = "ix_appointments_search_document_trgm"
POSTGRESQL_ONLY_INDEXES = frozenset({TRIGRAM_INDEX})
POSTGRESQL_ONLY_COLUMNS = frozenset({"search_document"})
# PostgreSQL's free text: one document per row, the searched columns joined by a character no search
# text holds (a text with it is looked for column by column), lower-cased as collation "C" does
# (ASCII letters only). Queries must spell it exactly so, for the planner to match the index.
TEXT_SEPARATOR = "\x1f"


def _document(columns: tuple[str, ...]) -> str:
    # Spelled as PostgreSQL prints it back (casts aside), so that Alembic compares it as equal.
    joined = columns[0]
    for name in columns[1:]:
        joined = f"(({joined} || chr(31)) || {name})"
    return f'lower({joined} COLLATE "C")'


TEXT_DOCUMENT = _document(SEARCH_COLUMNS)


def _sortable(length: int | None = None) -> TypeEngine[str]:
    """A string that sorts by code point on every backend, as SQLite compares by default."""
    base = String(length) if length else Text()
    return base.with_variant(String(length, collation="C") if length else Text(collation="C"), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetime in Python, naive UTC in the database. Naive input is refused."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (a timezone is required)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class NoneAsEmpty(TypeDecorator[str]):
    """An optional text kept as '' for None: the column stays NOT NULL, so sorting and the search
    document (a concatenation, which NULL would blank on PostgreSQL) treat "none" like any string."""

    impl = String(320)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[str]:
        return dialect.type_descriptor(_sortable(320))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str:
        return "" if value is None else value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value or None


# The value in the database ('pending'), not the member's name; VARCHAR(16) as the migrations make it,
# checked by the table's CHECK constraint (which leaves out `completed`) rather than one of the type's.
# On PostgreSQL the column has collation "C" (migration 0002), which `Enum` cannot declare: the
# statements are the same either way (no COLLATE is written in them), Alembic does not compare
# collations, and statuses are lower-case ASCII, which every collation sorts alike.
_STATUS = Enum(
    AppointmentStatus,
    native_enum=False,
    create_constraint=False,
    length=16,
    values_callable=lambda statuses: [status.value for status in statuses],
)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


# The tenant a store opened the way it always was (`Store(engine)`) acts for: a single-business
# deployment's, made by migration 0006 with everything that was there before tenants.
DEFAULT_TENANT_ID = 1
DEFAULT_TENANT_SLUG = "default"


class TenantRow(Base):
    """A business served by this deployment. `removed_at`: removed, its data kept (see `TenantAdmin.remove`)."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TenantNumberRow(Base):
    """A phone number (E.164) a tenant answers on: each number belongs to one tenant at most."""

    __tablename__ = "tenant_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


class TenantScoped:
    """A row that belongs to one tenant. The store's sessions add `tenant_id = <the store's tenant>` to
    every statement that reads, changes or deletes such rows, and set it on every row they insert
    (`store._scope`); on PostgreSQL row-level security enforces the same (migration 0006). No foreign
    key to `tenants`: a removed tenant's rows stay (until purged) and the appointments table is never
    copied on SQLite (its search index is keyed on rowids)."""

    tenant_id: Mapped[int] = mapped_column(Integer)


class AppointmentRow(TenantScoped, Base):
    __tablename__ = "appointments"

    id: Mapped[str] = mapped_column(_sortable(32), primary_key=True)
    booking_uid: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(_sortable())
    description: Mapped[str] = mapped_column(Text, default="")
    label: Mapped[str] = mapped_column(_sortable(255), default="")
    attendee_name: Mapped[str] = mapped_column(_sortable(255))
    attendee_email: Mapped[str | None] = mapped_column(NoneAsEmpty(), nullable=False)
    attendee_phone: Mapped[str | None] = mapped_column(String(32))
    business_name: Mapped[str] = mapped_column(_sortable(255), default="")
    to_number: Mapped[str] = mapped_column(String(32))
    from_number: Mapped[str] = mapped_column(String(32))
    call_type: Mapped[str] = mapped_column(_sortable(16))
    event_type_id: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[AppointmentStatus] = mapped_column(_STATUS)
    meeting_url: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    # The host(s) Cal.com assigned (a team event type's member), their names and e-mails as Cal.com gave them.
    host_name: Mapped[str | None] = mapped_column(NoneAsEmpty(), nullable=False, server_default="")
    host_email: Mapped[str | None] = mapped_column(Text)
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The caller's answers to the event type's questions (slug → answer), as sent to Cal.com.
    answers: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    language: Mapped[str | None] = mapped_column(String(16))
    # The domain model's names for the columns named otherwise.
    start: Mapped[datetime] = synonym("start_at")
    end: Mapped[datetime] = synonym("end_at")

    __table_args__ = (
        CheckConstraint(_in("status", STORED_STATUSES), name="status"),
        CheckConstraint(_in("call_type", _CALL_TYPES), name="call_type"),
        # Unique per tenant, but NULL (not yet booked) may repeat: both SQLite and PostgreSQL allow that.
        Index(None, "tenant_id", "booking_uid", unique=True),
        # At most one booking in flight (recorded, Cal.com not yet answered) per start, across every
        # process sharing the database: a concurrent second attempt waits instead of racing Cal.com.
        # Confirmed bookings are not constrained here; Cal.com is the authority on those.
        Index(
            "uq_appointments_in_flight_start",
            "tenant_id",
            "start_at",
            unique=True,
            sqlite_where=text(IN_FLIGHT),
            postgresql_where=text(IN_FLIGHT),
        ),
        # Every index of the store's queries starts with the tenant: one tenant's rows are one range of
        # it (their names are those from before tenants, which the search's index hints use).
        # Sort keys (see SORT_COLUMNS). Sorting by status sorts by the status shown, which no index holds.
        *(Index(f"ix_appointments_{column}_id_status", "tenant_id", column, "id", "status") for column in SORT_COLUMNS),
        # The phone filter: the called or the calling number, each looked up on its own index.
        Index("ix_appointments_to_number", "tenant_id", "to_number"),
        Index("ix_appointments_from_number", "tenant_id", "from_number"),
        # The narrowest index: counting a whole status, or the whole table, reads the fewest pages.
        Index("ix_appointments_status", "tenant_id", "status"),
        # Effective status: `completed` and the open statuses are ranges of (status, end_at) once
        # `booking_uid` is known, here without reading the row...
        Index("ix_appointments_status_end_at_booking_uid", "tenant_id", "status", "end_at", "booking_uid"),
        # ...and the few unbooked rows, which never complete, in an index of their own.
        Index(
            UNBOOKED_INDEX,
            "tenant_id",
            "status",
            "end_at",
            sqlite_where=text("booking_uid IS NULL"),
            postgresql_where=text("booking_uid IS NULL"),
        ),
        # The label filter is exact but case-insensitive; with it, the other filters are checked in
        # the index too (call type, dates, effective status), so a filtered count reads no rows, and
        # the matches sorted by start or by attendee name are gathered without reading rows either
        # (`label` itself too: PostgreSQL reads rows for an expression unless its columns are there).
        Index(
            LABEL_INDEX,
            "tenant_id",
            text("lower(label)"),
            "call_type",
            "start_at",
            "status",
            "end_at",
            "booking_uid",
            "attendee_name",
            "id",
            "label",
        ),
    )


# PostgreSQL's free-text search: LIKE '%…%' on the stored TEXT_DOCUMENT through trigrams (pg_trgm). A
# generated column, so that checking a candidate row reads the document instead of computing it (and the
# planner, knowing a LIKE on it is cheap, reads rows in order and stops at the bound a count needs rather
# than gathering every match of a common word from the index). Not mapped: the ORM never reads or writes
# it, and SQLite, whose FTS5 table holds the same text, does not have it.
SEARCH_DOCUMENT = Column("search_document", Text, Computed(TEXT_DOCUMENT, persisted=True))
Base.metadata.tables[AppointmentRow.__tablename__].append_column(SEARCH_DOCUMENT)
Index(
    TRIGRAM_INDEX, SEARCH_DOCUMENT, postgresql_using="gin", postgresql_ops={"search_document": "gin_trgm_ops"}
).ddl_if(dialect="postgresql")


class BookingUidRow(TenantScoped, Base):
    """Every Cal.com booking uid an appointment has had, the current one included (unique per tenant)."""

    __tablename__ = "booking_uids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("tenant_id", "uid"),)


class HistoryRow(TenantScoped, Base):
    __tablename__ = "appointment_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    from_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    to_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    from_booking_uid: Mapped[str | None] = mapped_column(String(255))
    to_booking_uid: Mapped[str | None] = mapped_column(String(255))


class EventTypeRow(TenantScoped, Base):
    """A Cal.com event type as last synced. `id` is Cal.com's id (unique per tenant: two tenants may
    share a Cal.com account)."""

    __tablename__ = "event_types"

    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(String(255))
    length_minutes: Mapped[int] = mapped_column(Integer)
    length_options: Mapped[list[int]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    location_type: Mapped[str | None] = mapped_column(String(64))
    location_integration: Mapped[str | None] = mapped_column(String(64))
    location_address: Mapped[str | None] = mapped_column(Text)
    requires_confirmation: Mapped[bool] = mapped_column(default=False)
    hidden: Mapped[bool] = mapped_column(default=False)
    email_required: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Each custom booking question: {slug, label, type, required, options}.
    questions: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    # A team's event type: the team and how it picks hosts (ROUND_ROBIN, COLLECTIVE, MANAGED).
    team_id: Mapped[int | None] = mapped_column(Integer)
    team_name: Mapped[str | None] = mapped_column(Text)
    scheduling_type: Mapped[str | None] = mapped_column(String(16))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettingRow(TenantScoped, Base):
    """A tenant's stored setting (`config.Settings`' keys) or one of the server's own rows for it."""

    __tablename__ = "settings"

    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IdempotencyRow(TenantScoped, Base):
    """A caller's idempotency key (scoped by tool and tenant) and what it produced."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[str | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HoldRow(TenantScoped, Base):
    """A time held for one call while the caller decides (`hold_slot`), shared by every process on the
    database. A row past `expires_at` holds nothing; it is deleted by the next hold or booking that
    meets it."""

    __tablename__ = "holds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_type_id: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    # Cal.com's reservation (POST /v2/slots/reservations), when it made one: released with the hold.
    reservation_uid: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start: Mapped[datetime] = synonym("start_at")
    end: Mapped[datetime] = synonym("end_at")

    __table_args__ = (Index(None, "tenant_id", "start_at", "end_at"), Index(None, "tenant_id", "expires_at"))
