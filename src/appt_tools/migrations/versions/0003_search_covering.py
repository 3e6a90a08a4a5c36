"""Search at a million appointments, continued.

- The label filter's index also holds `attendee_name`, `id` and `label` (PostgreSQL answers from an
  index alone only when the columns of its expressions are in it too): matches of a label filter
  (with call type, dates and effective status, all in the index) are counted, gathered and sorted by
  start or attendee name without reading a row.
- PostgreSQL: one trigram index on a lower-cased document of every searched column, joined by
  chr(31), instead of one over each column: a text is one LIKE per row and one index scan, not seven
  ILIKEs and seven scans OR-ed together. Queries spell the document exactly as this index does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEARCHED = ("title", "attendee_name", "attendee_email", "business_name", "label", "to_number", "from_number")
LABEL_INDEX = "ix_appointments_label_filter"
LABEL_COLUMNS = ["call_type", "start_at", "status", "end_at", "booking_uid"]
COVERED = ["attendee_name", "id", "label"]
OLD_TRIGRAM_INDEX = "ix_appointments_search_trgm"
TRIGRAM_INDEX = "ix_appointments_text_trgm"
DOCUMENT = (
    "lower(((((((((((((title || chr(31)) || attendee_name) || chr(31)) || attendee_email) || chr(31)) "
    '|| business_name) || chr(31)) || label) || chr(31)) || to_number) || chr(31)) || from_number) COLLATE "C")'
)


def upgrade() -> None:
    op.drop_index(LABEL_INDEX, table_name="appointments")
    op.create_index(LABEL_INDEX, "appointments", [sa.text("lower(label)"), *LABEL_COLUMNS, *COVERED])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(TRIGRAM_INDEX, "appointments", [sa.text(DOCUMENT + " gin_trgm_ops")], postgresql_using="gin")
        op.drop_index(OLD_TRIGRAM_INDEX, table_name="appointments")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            OLD_TRIGRAM_INDEX,
            "appointments",
            list(SEARCHED),
            postgresql_using="gin",
            postgresql_ops=dict.fromkeys(SEARCHED, "gin_trgm_ops"),
        )
        op.drop_index(TRIGRAM_INDEX, table_name="appointments")
    op.drop_index(LABEL_INDEX, table_name="appointments")
    op.create_index(LABEL_INDEX, "appointments", [sa.text("lower(label)"), *LABEL_COLUMNS])
