"""Callers without e-mail, and times held while a caller decides (issue 12).

- `appointments.attendee_phone`: the caller's own number when it is not the call's (a web call, a
  callback number). "No e-mail" stays '' in `attendee_email` (NOT NULL: it is sorted and searched).
- `event_types.email_required`: whether the event type's booking form requires an e-mail; until the
  next sync every event type keeps Cal.com's default, required.
- `holds`: a time held for one call (`hold_slot`), shared by every process on the database.

Revision ID: 0004_caller
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_caller"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite 3.35+), not a batch copy, which would lose the expression indexes.
    op.add_column("appointments", sa.Column("attendee_phone", sa.String(length=32), nullable=True))
    op.add_column("event_types", sa.Column("email_required", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table(
        "holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_type_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("reservation_uid", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
    )
    op.create_index("ix_holds_expires_at", "holds", ["expires_at"])
    op.create_index("ix_holds_start_at_end_at", "holds", ["start_at", "end_at"])


def downgrade() -> None:
    op.drop_table("holds")
    op.drop_column("event_types", "email_required")
    op.drop_column("appointments", "attendee_phone")
