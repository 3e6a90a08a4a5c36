"""Team event types and the host Cal.com assigned (issue 11, item 7).

- `event_types.team_id`, `team_name`, `scheduling_type`: a team's event type (ROUND_ROBIN, COLLECTIVE,
  MANAGED); NULL for the user's own.
- `appointments.host_name`, `host_email`: who meets the caller, as Cal.com assigned it. "No host known"
  is '' in `host_name` (NOT NULL: it is sorted, like `attendee_email`), with an index (host_name, id,
  status) as every sort key has.

Revision ID: 0005_teams
Revises: 0004_questions
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_teams"
down_revision = "0004_questions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default (no table copy: SQLite keeps the search triggers).
    postgresql = op.get_bind().dialect.name == "postgresql"
    host_type = sa.String(length=320, collation="C") if postgresql else sa.String(length=320)
    op.add_column("appointments", sa.Column("host_name", host_type, nullable=False, server_default=""))
    op.add_column("appointments", sa.Column("host_email", sa.Text(), nullable=True))
    op.create_index("ix_appointments_host_name_id_status", "appointments", ["host_name", "id", "status"])
    op.add_column("event_types", sa.Column("team_id", sa.Integer(), nullable=True))
    op.add_column("event_types", sa.Column("team_name", sa.Text(), nullable=True))
    op.add_column("event_types", sa.Column("scheduling_type", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("event_types", "scheduling_type")
    op.drop_column("event_types", "team_name")
    op.drop_column("event_types", "team_id")
    op.drop_index("ix_appointments_host_name_id_status", table_name="appointments")
    op.drop_column("appointments", "host_email")
    op.drop_column("appointments", "host_name")
