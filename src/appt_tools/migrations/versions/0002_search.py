"""Search that stays fast at a million appointments.

- An index (key, id, status) per sort key replaces the one-column ones: a page in any order is a
  range of one index, with `id` breaking ties and the common status filter checked in the index.
  And `status` alone: the narrowest, for counting a status or the whole table.
- (status, end_at, booking_uid), and (status, end_at) over unbooked rows only: effective statuses
  (`completed` is derived from the end time) become index ranges. `lower(label)` and the other
  filters after it, for a label filter.
- Free text: on SQLite an FTS5 table with the trigram tokenizer (substrings, case-insensitive) over
  the searched columns, kept in step by triggers; on PostgreSQL one GIN index with pg_trgm's
  operator classes, which ILIKE '%…%' uses.
- On PostgreSQL, sorted text columns compare by code point (collation "C"), as SQLite's do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCHED = ("title", "attendee_name", "attendee_email", "business_name", "label", "to_number", "from_number")
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
)
OLD_INDEXES = (
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
# Column -> length (None: TEXT) of the columns PostgreSQL is to sort by code point.
CODE_POINT_ORDER = {
    "id": 32,
    "title": None,
    "label": 255,
    "attendee_name": 255,
    "attendee_email": 320,
    "business_name": 255,
    "call_type": 16,
    "status": 16,
}
UNBOOKED = "booking_uid IS NULL"
FTS = "appointments_search"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, _columns in OLD_INDEXES:
        op.drop_index(name, table_name="appointments", if_exists=True)
    if postgresql:
        for column, length in CODE_POINT_ORDER.items():
            op.alter_column("appointments", column, type_=_text(length, "C"), existing_type=_text(length))
    for column in SORTED:
        op.create_index(f"ix_appointments_{column}_id_status", "appointments", [column, "id", "status"])
    op.create_index("ix_appointments_status_id", "appointments", ["status", "id"])
    op.create_index("ix_appointments_status", "appointments", ["status"])
    op.create_index("ix_appointments_status_end_at_booking_uid", "appointments", ["status", "end_at", "booking_uid"])
    op.create_index(
        "ix_appointments_unbooked_status_end_at",
        "appointments",
        ["status", "end_at"],
        sqlite_where=sa.text(UNBOOKED),
        postgresql_where=sa.text(UNBOOKED),
    )
    op.create_index(
        "ix_appointments_label_filter",
        "appointments",
        [sa.text("lower(label)"), "call_type", "start_at", "status", "end_at", "booking_uid"],
    )
    if postgresql:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_appointments_search_trgm",
            "appointments",
            list(SEARCHED),
            postgresql_using="gin",
            postgresql_ops=dict.fromkeys(SEARCHED, "gin_trgm_ops"),
        )
    elif _has_fts5_trigram():
        _create_fts()


def _text(length: int | None, collation: str | None = None) -> sa.types.TypeEngine[str]:
    return sa.String(length, collation=collation) if length else sa.Text(collation=collation)


def _has_fts5_trigram() -> bool:
    """FTS5's trigram tokenizer came with SQLite 3.34. Without it, search scans (correct, slower)."""
    bind = op.get_bind()
    version = tuple(int(part) for part in bind.exec_driver_sql("SELECT sqlite_version()").scalar_one().split("."))
    options = {row[0] for row in bind.exec_driver_sql("PRAGMA compile_options")}
    return version >= (3, 34) and "ENABLE_FTS5" in options


def _create_fts() -> None:
    """The FTS5 index over the searched columns, filled from the rows already there and kept in step by
    triggers. It holds `lower()` of each value and is case-sensitive itself, so case folds exactly as
    SQLite's LIKE and PostgreSQL's ILIKE under collation "C" fold it: ASCII letters only.

    Contentless (it stores no text); its rowids are the appointments' rowids, which never change here:
    the store never deletes an appointment, and SQLite's VACUUM keeps the rowids of a table it copies.
    """
    columns = ", ".join(SEARCHED)
    new = ", ".join(f"lower(new.{c})" for c in SEARCHED)
    old = ", ".join(f"lower(old.{c})" for c in SEARCHED)
    forget = f"INSERT INTO {FTS} ({FTS}, rowid, {columns}) VALUES ('delete', old.rowid, {old});"
    remember = f"INSERT INTO {FTS} (rowid, {columns}) VALUES (new.rowid, {new});"
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5({columns}, content='', "
        "tokenize='trigram case_sensitive 1', columnsize=0)"
    )
    op.execute(f"CREATE TRIGGER {FTS}_insert AFTER INSERT ON appointments BEGIN {remember} END")
    op.execute(f"CREATE TRIGGER {FTS}_delete AFTER DELETE ON appointments BEGIN {forget} END")
    op.execute(f"CREATE TRIGGER {FTS}_update AFTER UPDATE OF {columns} ON appointments BEGIN {forget} {remember} END")
    lowered = ", ".join(f"lower({c})" for c in SEARCHED)
    op.execute(f"INSERT INTO {FTS} (rowid, {columns}) SELECT rowid, {lowered} FROM appointments")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.drop_index("ix_appointments_search_trgm", table_name="appointments")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    for name in (
        "ix_appointments_label_filter",
        "ix_appointments_unbooked_status_end_at",
        "ix_appointments_status_end_at_booking_uid",
        "ix_appointments_status_id",
        "ix_appointments_status",
        *(f"ix_appointments_{column}_id_status" for column in SORTED),
    ):
        op.drop_index(name, table_name="appointments")
    if postgresql:
        for column, length in CODE_POINT_ORDER.items():
            op.alter_column("appointments", column, type_=_text(length), existing_type=_text(length, "C"))
    for name, columns in OLD_INDEXES:
        op.create_index(name, "appointments", columns)
