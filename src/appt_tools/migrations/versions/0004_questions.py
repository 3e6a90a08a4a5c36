"""Event types' booking questions, and each appointment's answers and invite language (issue 11).

- `event_types.questions`: the custom booking fields synced from Cal.com (JSON list).
- `appointments.answers`: the caller's answers, slug → answer, as sent to Cal.com (JSON object).
- `appointments.language`: the attendee's language for Cal.com's e-mails (NULL: the setting's default).

Revision ID: 0004_questions
Revises: 0004_caller
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_questions"
down_revision = "0004_caller"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default (no table copy: SQLite keeps the search triggers).
    op.add_column("event_types", sa.Column("questions", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("appointments", sa.Column("answers", sa.JSON(), nullable=False, server_default="{}"))
    op.add_column("appointments", sa.Column("language", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "language")
    op.drop_column("appointments", "answers")
    op.drop_column("event_types", "questions")
