"""Search at a million appointments, again (issue 15, item 5).

- PostgreSQL: the free-text document (every searched column, joined by chr(31), lower-cased as collation
  "C" does) is a stored generated column, `search_document`, with the trigram index on it instead of on
  the expression: a candidate row is checked by reading its document, not by computing it, and the
  planner, knowing that check is cheap, reads a common word's rows in order up to the bound a count
  needs instead of gathering every match from the index first.
- The phone filter (the called or the calling number equals the one asked for): an index on each number.
- `ix_appointments_status_id` goes: sorting by status sorts by the status shown (a booked live
  appointment that has ended is "completed"), which no index holds, and no query's plan used it on
  either backend (the narrower `ix_appointments_status` serves a status filter).

Revision ID: 0006_search_document
Revises: 0006_tenants
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_search_document"
down_revision = "0006_tenants"
branch_labels = None
depends_on = None

DOCUMENT = (
    "lower(((((((((((((title || chr(31)) || attendee_name) || chr(31)) || attendee_email) || chr(31)) "
    '|| business_name) || chr(31)) || label) || chr(31)) || to_number) || chr(31)) || from_number) COLLATE "C")'
)
OLD_TRIGRAM_INDEX = "ix_appointments_text_trgm"
TRIGRAM_INDEX = "ix_appointments_search_document_trgm"
STATUS_ID_INDEX = "ix_appointments_status_id"
# Led by the tenant, as every index of the store's queries (migration 0006_tenants).
PHONE_INDEXES = {"ix_appointments_to_number": "to_number", "ix_appointments_from_number": "from_number"}


def upgrade() -> None:
    # Plain CREATE and DROP INDEX on SQLite (no table copy: the search triggers stay).
    op.drop_index(STATUS_ID_INDEX, table_name="appointments")
    for name, column in PHONE_INDEXES.items():
        op.create_index(name, "appointments", ["tenant_id", column])
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("appointments", sa.Column("search_document", sa.Text(), sa.Computed(DOCUMENT, persisted=True)))
        op.create_index(
            TRIGRAM_INDEX, "appointments", [sa.text("search_document gin_trgm_ops")], postgresql_using="gin"
        )
        op.drop_index(OLD_TRIGRAM_INDEX, table_name="appointments")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            OLD_TRIGRAM_INDEX, "appointments", [sa.text(DOCUMENT + " gin_trgm_ops")], postgresql_using="gin"
        )
        op.drop_index(TRIGRAM_INDEX, table_name="appointments")
        op.drop_column("appointments", "search_document")
    for name in PHONE_INDEXES:
        op.drop_index(name, table_name="appointments")
    op.create_index(STATUS_ID_INDEX, "appointments", ["tenant_id", "status", "id"])
