"""Tenants: many businesses in one database (issue 16).

- `tenants` (id, slug, name, created_at, removed_at) and `tenant_numbers` (an E.164 number → its one
  tenant). The tenant `default` (id 1) is made here and gets every row already there.
- `tenant_id` on every table of a business's data: appointments, booking_uids, appointment_history,
  event_types, settings, idempotency_keys, holds. Uniqueness becomes per tenant where two businesses
  may legitimately collide: booking uids, the one booking in flight per start, event type ids (two
  tenants may share a Cal.com account), setting keys and idempotency keys (primary keys (tenant_id, …)).
- Every index the store's queries use starts with `tenant_id` (names unchanged: the search's index
  hints name them). Indexes are remade in place: the appointments table is never copied on SQLite (its
  search index is keyed on rowids); the small tables whose keys change are rebuilt in batch mode.
- PostgreSQL: row-level security on every scoped table, `ENABLE` and `FORCE` (the table owner too), one
  policy admitting the rows of the tenant the transaction names (`app.tenant_id`) or every row when it
  says it acts for all (`app.all_tenants` = 'on', the operator's path: tenant administration and
  migrations). The store sets one or the other at the start of each transaction (`store._scope`).
  Superusers and roles with BYPASSRLS are not subject to it: run the server as an ordinary role.
- `tenant_id` columns get DEFAULT 1 only for the copy (dropped on PostgreSQL; SQLite cannot drop a
  default without copying the table, and the store always writes the column).

Downgrade refuses while any tenant other than `default` exists or owns rows (their data would merge).

Revision ID: 0006_tenants
Revises: 0005_teams
Create Date: 2026-12-05
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0006_tenants"
down_revision = "0005_teams"
branch_labels = None
depends_on = None

DEFAULT_TENANT = 1
SCOPED = (
    "appointments",
    "booking_uids",
    "appointment_history",
    "event_types",
    "settings",
    "idempotency_keys",
    "holds",
)
# Tables whose primary key gains tenant_id: (primary key name, the key's other columns).
NEW_KEYS = {
    "event_types": ("pk_event_types", ["id"]),
    "settings": ("pk_settings", ["key"]),
    "idempotency_keys": ("pk_idempotency_keys", ["key"]),
}
SORTED = (
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
IN_FLIGHT = "status = 'pending' AND booking_uid IS NULL"
UNBOOKED = "booking_uid IS NULL"
LABEL_COLUMNS = ["call_type", "start_at", "status", "end_at", "booking_uid", "attendee_name", "id", "label"]
POLICY = "tenant_isolation"
# The rows of the tenant the transaction names, or all of them for the operator; WITH CHECK is the same.
POLICY_CONDITION = (
    "tenant_id = nullif(current_setting('app.tenant_id', true), '')::integer "
    "OR current_setting('app.all_tenants', true) = 'on'"
)


def _appointment_indexes(tenant: list[str]) -> list[tuple[str, Sequence[str | sa.TextClause], Mapping[str, Any]]]:
    """The appointments table's indexes: (name, columns, options), each led by `tenant` ([] before 0006)."""
    where: dict[str, Any] = {"sqlite_where": sa.text(IN_FLIGHT), "postgresql_where": sa.text(IN_FLIGHT)}
    unbooked: dict[str, Any] = {"sqlite_where": sa.text(UNBOOKED), "postgresql_where": sa.text(UNBOOKED)}
    columns: list[tuple[str, Sequence[str | sa.TextClause], Mapping[str, Any]]] = [
        ("uq_appointments_in_flight_start", ["start_at"], {"unique": True, **where}),
        *((f"ix_appointments_{column}_id_status", [column, "id", "status"], {}) for column in SORTED),
        ("ix_appointments_status_id", ["status", "id"], {}),
        ("ix_appointments_status", ["status"], {}),
        ("ix_appointments_status_end_at_booking_uid", ["status", "end_at", "booking_uid"], {}),
        ("ix_appointments_unbooked_status_end_at", ["status", "end_at"], unbooked),
        ("ix_appointments_label_filter", [sa.text("lower(label)"), *LABEL_COLUMNS], {}),
    ]
    return [(name, [*tenant, *names], options) for name, names, options in columns]


def _holds_indexes(tenant: list[str]) -> list[tuple[str, list[str]]]:
    prefix = "tenant_id_" if tenant else ""
    return [
        (f"ix_holds_{prefix}expires_at", [*tenant, "expires_at"]),
        (f"ix_holds_{prefix}start_at_end_at", [*tenant, "start_at", "end_at"]),
    ]


@contextmanager
def _batch(table: str) -> Iterator[BatchOperations]:
    """`op.batch_alter_table`: on SQLite it reflects the table and those its foreign keys name, and
    SQLAlchemy warns that it cannot reflect the appointments' expression index (not copied anyway)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table(table) as batch:
            yield batch


def _tenant_column() -> sa.Column[int]:
    return sa.Column("tenant_id", sa.Integer(), nullable=False, server_default=str(DEFAULT_TENANT))


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    tenants = op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_table(
        "tenant_numbers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_tenant_numbers_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("number", name="pk_tenant_numbers"),
    )
    op.create_index("ix_tenant_numbers_tenant_id", "tenant_numbers", ["tenant_id"])
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(tenants, [{"id": DEFAULT_TENANT, "slug": "default", "name": "Default", "created_at": now}])
    if postgresql:  # the explicit id 1 did not advance the serial
        op.execute("SELECT setval(pg_get_serial_sequence('tenants', 'id'), 1)")

    # Plain ADD COLUMN (no copy) where the key stays; batch mode (a copy on SQLite) where it changes.
    for table in ("appointments", "appointment_history", "holds"):
        op.add_column(table, _tenant_column())
    for name, _index_columns, _options in _appointment_indexes([]):
        op.drop_index(name, table_name="appointments")
    op.drop_index("ix_appointments_booking_uid", table_name="appointments")
    for name, index_columns, options in _appointment_indexes(["tenant_id"]):
        op.create_index(name, "appointments", list(index_columns), **options)
    op.create_index("ix_appointments_tenant_id_booking_uid", "appointments", ["tenant_id", "booking_uid"], unique=True)
    for name, _hold_columns in _holds_indexes([]):
        op.drop_index(name, table_name="holds")
    for name, hold_columns in _holds_indexes(["tenant_id"]):
        op.create_index(name, "holds", hold_columns)
    with _batch("booking_uids") as batch:
        batch.add_column(_tenant_column())
        batch.drop_constraint("uq_booking_uids_uid", type_="unique")
        batch.create_unique_constraint("uq_booking_uids_tenant_id_uid", ["tenant_id", "uid"])
    for table, (key, columns) in NEW_KEYS.items():
        with _batch(table) as batch:
            batch.add_column(_tenant_column())
            batch.drop_constraint(key, type_="primary")
            batch.create_primary_key(key, ["tenant_id", *columns])
    if postgresql:
        for table in SCOPED:
            op.alter_column(
                table, "tenant_id", server_default=None, existing_type=sa.Integer(), existing_nullable=False
            )
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({POLICY_CONDITION})")


def downgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    others = bind.exec_driver_sql(f"SELECT count(*) FROM tenants WHERE id <> {DEFAULT_TENANT}").scalar_one()
    owned = sum(
        bind.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE tenant_id <> {DEFAULT_TENANT}").scalar_one()
        for table in SCOPED
    )
    if others or owned:
        raise RuntimeError(
            f"cannot go below 0006_tenants: {others} tenant(s) besides 'default' and {owned} row(s) of theirs "
            "would merge into one business; purge them first (`TenantAdmin.remove(..., purge=True)`)"
        )
    if postgresql:
        for table in SCOPED:
            op.execute(f"DROP POLICY {POLICY} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table, (key, columns) in NEW_KEYS.items():
        with _batch(table) as batch:
            batch.drop_constraint(key, type_="primary")
            batch.create_primary_key(key, columns)
            batch.drop_column("tenant_id")
    with _batch("booking_uids") as batch:
        batch.drop_constraint("uq_booking_uids_tenant_id_uid", type_="unique")
        batch.create_unique_constraint("uq_booking_uids_uid", ["uid"])
        batch.drop_column("tenant_id")
    for name, _hold_columns in _holds_indexes(["tenant_id"]):
        op.drop_index(name, table_name="holds")
    for name, hold_columns in _holds_indexes([]):
        op.create_index(name, "holds", hold_columns)
    op.drop_index("ix_appointments_tenant_id_booking_uid", table_name="appointments")
    for name, _index_columns, _options in _appointment_indexes(["tenant_id"]):
        op.drop_index(name, table_name="appointments")
    op.create_index("ix_appointments_booking_uid", "appointments", ["booking_uid"], unique=True)
    for name, index_columns, options in _appointment_indexes([]):
        op.create_index(name, "appointments", list(index_columns), **options)
    for table in ("holds", "appointment_history", "appointments"):
        op.drop_column(table, "tenant_id")
    op.drop_index("ix_tenant_numbers_tenant_id", table_name="tenant_numbers")
    op.drop_table("tenant_numbers")
    op.drop_table("tenants")
