"""The schema as `metadata.create_all` made it before there were migrations.

Every CREATE is IF NOT EXISTS: a database made by that `create_all` has no `alembic_version`, so it
comes through here too, keeps what it has and gains what it lacked (a release older than the
idempotency keys had neither that table nor the in-flight index).

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

IN_FLIGHT = "status = 'pending' AND booking_uid IS NULL"
# (name, columns) of the appointments table's plain indexes.
APPOINTMENT_INDEXES = (
    ("ix_appointments_attendee_email", ["attendee_email"]),
    ("ix_appointments_attendee_name", ["attendee_name"]),
    ("ix_appointments_business_name", ["business_name"]),
    ("ix_appointments_call_type", ["call_type"]),
    ("ix_appointments_created_at", ["created_at"]),
    ("ix_appointments_end_at", ["end_at"]),
    ("ix_appointments_label", ["label"]),
    ("ix_appointments_start_at", ["start_at"]),
    ("ix_appointments_status_end_at", ["status", "end_at"]),
    ("ix_appointments_title", ["title"]),
    ("ix_appointments_updated_at", ["updated_at"]),
)


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("booking_uid", sa.String(length=255), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("attendee_name", sa.String(length=255), nullable=False),
        sa.Column("attendee_email", sa.String(length=320), nullable=False),
        sa.Column("business_name", sa.String(length=255), nullable=False),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("from_number", sa.String(length=32), nullable=False),
        sa.Column("call_type", sa.String(length=16), nullable=False),
        sa.Column("event_type_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("meeting_url", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'rescheduled', 'cancelled', 'failed')", name=op.f("ck_appointments_status")
        ),
        sa.CheckConstraint("call_type IN ('inbound', 'outbound', 'web')", name=op.f("ck_appointments_call_type")),
        sa.PrimaryKeyConstraint("id", name="pk_appointments"),
        if_not_exists=True,
    )
    for name, columns in APPOINTMENT_INDEXES:
        op.create_index(name, "appointments", columns, if_not_exists=True)
    op.create_index("ix_appointments_booking_uid", "appointments", ["booking_uid"], unique=True, if_not_exists=True)
    op.create_index(
        "uq_appointments_in_flight_start",
        "appointments",
        ["start_at"],
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
        if_not_exists=True,
    )
    op.create_table(
        "event_types",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("length_minutes", sa.Integer(), nullable=False),
        sa.Column("length_options", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location_type", sa.String(length=64), nullable=True),
        sa.Column("location_integration", sa.String(length=64), nullable=True),
        sa.Column("location_address", sa.Text(), nullable=True),
        sa.Column("requires_confirmation", sa.Boolean(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_types"),
        if_not_exists=True,
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
        if_not_exists=True,
    )
    op.create_table(
        "appointment_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("appointment_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("from_start", sa.DateTime(), nullable=True),
        sa.Column("to_start", sa.DateTime(), nullable=True),
        sa.Column("from_booking_uid", sa.String(length=255), nullable=True),
        sa.Column("to_booking_uid", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_appointment_history_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_appointment_history"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_appointment_history_appointment_id", "appointment_history", ["appointment_id"], if_not_exists=True
    )
    op.create_table(
        "booking_uids",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("appointment_id", sa.String(length=32), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_booking_uids_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_booking_uids"),
        sa.UniqueConstraint("uid", name="uq_booking_uids_uid"),
        if_not_exists=True,
    )
    op.create_index("ix_booking_uids_appointment_id", "booking_uids", ["appointment_id"], if_not_exists=True)
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("appointment_id", sa.String(length=32), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_idempotency_keys_appointment_id_appointments",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "booking_uids", "appointment_history", "settings", "event_types", "appointments"):
        op.drop_table(table)
