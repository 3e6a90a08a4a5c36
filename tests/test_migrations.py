"""The schema's migrations, on SQLite and PostgreSQL: an empty database, a database the old
`create_all` made (with rows), repeated and concurrent upgrades, `appt-tools db upgrade`."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from appt_tools.models import SearchQuery
from appt_tools.store import Store, schema
from appt_tools.store.tables import Base
from appt_tools.surfaces.cli import main

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)

# What `Base.metadata.create_all` made before there were migrations (SQLite's DDL; on PostgreSQL the
# same with TIMESTAMP and SERIAL), the oldest release first: it had no idempotency keys yet.
_ID = "{serial}"
OLD_TABLES = [
    """CREATE TABLE appointments (
        id VARCHAR(32) NOT NULL, booking_uid VARCHAR(255), title TEXT NOT NULL, description TEXT NOT NULL,
        label VARCHAR(255) NOT NULL, attendee_name VARCHAR(255) NOT NULL, attendee_email VARCHAR(320) NOT NULL,
        business_name VARCHAR(255) NOT NULL, to_number VARCHAR(32) NOT NULL, from_number VARCHAR(32) NOT NULL,
        call_type VARCHAR(16) NOT NULL, event_type_id INTEGER NOT NULL, start_at {datetime} NOT NULL,
        end_at {datetime} NOT NULL, timezone VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, meeting_url TEXT,
        location TEXT, cancellation_reason TEXT, last_error TEXT, created_at {datetime} NOT NULL,
        updated_at {datetime} NOT NULL,
        CONSTRAINT pk_appointments PRIMARY KEY (id),
        CONSTRAINT ck_appointments_status CHECK (status IN ('pending', 'active', 'rescheduled', 'cancelled', 'failed')),
        CONSTRAINT ck_appointments_call_type CHECK (call_type IN ('inbound', 'outbound', 'web')))""",
    *(
        f"CREATE INDEX ix_appointments_{'_'.join(columns)} ON appointments ({', '.join(columns)})"
        for columns in (
            ["attendee_email"],
            ["attendee_name"],
            ["business_name"],
            ["call_type"],
            ["created_at"],
            ["end_at"],
            ["label"],
            ["start_at"],
            ["status", "end_at"],
            ["title"],
            ["updated_at"],
        )
    ),
    "CREATE UNIQUE INDEX ix_appointments_booking_uid ON appointments (booking_uid)",
    """CREATE TABLE event_types (
        id INTEGER NOT NULL, title TEXT NOT NULL, slug VARCHAR(255) NOT NULL, length_minutes INTEGER NOT NULL,
        length_options JSON NOT NULL, description TEXT NOT NULL, location_type VARCHAR(64),
        location_integration VARCHAR(64), location_address TEXT, requires_confirmation BOOLEAN NOT NULL,
        hidden BOOLEAN NOT NULL, synced_at {datetime} NOT NULL, CONSTRAINT pk_event_types PRIMARY KEY (id))""",
    """CREATE TABLE settings ("key" VARCHAR(255) NOT NULL, value TEXT NOT NULL,
        CONSTRAINT pk_settings PRIMARY KEY ("key"))""",
    f"""CREATE TABLE appointment_history (
        id {_ID} NOT NULL, appointment_id VARCHAR(32) NOT NULL, at {{datetime}} NOT NULL, action VARCHAR(16) NOT NULL,
        detail TEXT NOT NULL, from_start {{datetime}}, to_start {{datetime}}, from_booking_uid VARCHAR(255),
        to_booking_uid VARCHAR(255), CONSTRAINT pk_appointment_history PRIMARY KEY (id),
        CONSTRAINT fk_appointment_history_appointment_id_appointments FOREIGN KEY(appointment_id)
            REFERENCES appointments (id) ON DELETE CASCADE)""",
    "CREATE INDEX ix_appointment_history_appointment_id ON appointment_history (appointment_id)",
    f"""CREATE TABLE booking_uids (
        id {_ID} NOT NULL, appointment_id VARCHAR(32) NOT NULL, uid VARCHAR(255) NOT NULL,
        created_at {{datetime}} NOT NULL, CONSTRAINT pk_booking_uids PRIMARY KEY (id),
        CONSTRAINT fk_booking_uids_appointment_id_appointments FOREIGN KEY(appointment_id)
            REFERENCES appointments (id) ON DELETE CASCADE,
        CONSTRAINT uq_booking_uids_uid UNIQUE (uid))""",
    "CREATE INDEX ix_booking_uids_appointment_id ON booking_uids (appointment_id)",
]
# What the release that brought idempotency keys added (create_all added the table; the index it
# made only on a new database).
NEWER_TABLES = [
    """CREATE UNIQUE INDEX uq_appointments_in_flight_start ON appointments (start_at)
        WHERE status = 'pending' AND booking_uid IS NULL""",
    """CREATE TABLE idempotency_keys (
        "key" VARCHAR(320) NOT NULL, request_hash VARCHAR(64) NOT NULL, appointment_id VARCHAR(32),
        done BOOLEAN NOT NULL, error JSON, created_at {datetime} NOT NULL, updated_at {datetime} NOT NULL,
        CONSTRAINT pk_idempotency_keys PRIMARY KEY ("key"),
        CONSTRAINT fk_idempotency_keys_appointment_id_appointments FOREIGN KEY(appointment_id)
            REFERENCES appointments (id) ON DELETE SET NULL)""",
]
TYPES = {
    "sqlite": {"datetime": "DATETIME", "serial": "INTEGER"},
    "postgresql": {"datetime": "TIMESTAMP WITHOUT TIME ZONE", "serial": "SERIAL"},
}
OLD_ROW = (
    "INSERT INTO appointments (id, booking_uid, title, description, label, attendee_name, attendee_email, "
    "business_name, to_number, from_number, call_type, event_type_id, start_at, end_at, timezone, status, "
    "created_at, updated_at) VALUES ('apt_oldoldoldold', 'uid-old', 'Walrus tusk check', '', 'VIP', 'Old Timer', "
    "'old@example.com', 'Acme', '+15550000001', '+15550000002', 'inbound', 7, '2030-01-20 09:00:00', "
    "'2030-01-20 09:30:00', 'UTC', 'active', '2030-01-01 00:00:00', '2030-01-01 00:00:00')"
)
# SQLAlchemy cannot reflect SQLite's expression indexes (it says so, and Alembic skips comparing them).
_REFLECTION_GAPS = [
    "Skipped unsupported reflection of expression-based index",
    "autogenerate skipping metadata-specified expression-based index",
]


@pytest.fixture
def reflection_gaps() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _REFLECTION_GAPS:
            warnings.filterwarnings("ignore", message=message)
        yield


def _diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts=schema.compare_options(connection))
    return list(compare_metadata(context, Base.metadata))


def _objects(connection: Connection) -> list[tuple[Any, ...]]:
    """Every table, index, trigger and column of the schema, as the database describes them."""
    if connection.dialect.name == "sqlite":
        return [
            tuple(row) for row in connection.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY 2")
        ]
    statement = (
        "SELECT c.relname, c.relkind, pg_get_indexdef(c.oid), a.attname, format_type(a.atttypid, a.atttypmod), "
        "a.attcollation::regcollation FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped "
        "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1, 4"
    )
    return [tuple(row) for row in connection.exec_driver_sql(statement)]


async def _run(url: str, *statements: str) -> None:
    """`statements` on a database not migrated (nor touched) by a store."""
    store = Store.from_url(url)
    try:
        async with store.engine.begin() as connection:
            types = TYPES[connection.dialect.name]
            for statement in statements:
                await connection.exec_driver_sql(statement.format(**types))
    finally:
        await store.aclose()


async def _inspect(store: Store) -> tuple[str | None, list[Any], list[tuple[Any, ...]]]:
    async with store.engine.connect() as connection:
        revision = await connection.run_sync(schema.current)
        diffs = await connection.run_sync(_diffs)
        objects = await connection.run_sync(_objects)
    return revision, diffs, objects


@pytest.mark.usefixtures("reflection_gaps")
async def test_an_empty_database_is_migrated_to_exactly_the_metadata(empty_url: str) -> None:
    async with Store.from_url(empty_url) as store:
        revision, diffs, _ = await _inspect(store)
        async with store.engine.connect() as connection:
            backend = connection.dialect.name
            if backend == "sqlite":  # not reflected, so not compared: checked here
                indexes = await connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                assert "(tenant_id, lower(label), call_type," in dict(indexes.all())["ix_appointments_label_filter"]
        async with store.engine.begin() as connection:  # the comparison does notice a difference
            await connection.exec_driver_sql("DROP INDEX ix_appointments_status")
            noticed = await connection.run_sync(_diffs)

    assert revision == schema.head()
    assert diffs == []
    assert [(kind, index.name) for kind, index in noticed] == [("add_index", "ix_appointments_status")]


@pytest.mark.usefixtures("reflection_gaps")
async def test_upgrading_again_changes_nothing(empty_url: str) -> None:
    async with Store.from_url(empty_url) as store:
        before = await _inspect(store)
        await store.create_schema()
        await store.create_schema()
        after = await _inspect(store)

    assert after == before


@pytest.mark.usefixtures("reflection_gaps")
@pytest.mark.parametrize("release", ["first", "with idempotency keys"])
async def test_a_database_the_old_create_all_made_is_adopted_with_its_rows(empty_url: str, release: str) -> None:
    await _run(empty_url, *OLD_TABLES, *(NEWER_TABLES if release != "first" else []), OLD_ROW)

    async with Store.from_url(empty_url) as store:
        revision, diffs, _ = await _inspect(store)
        old = await store.get_appointment("apt_oldoldoldold")
        found = await store.search(SearchQuery(text="TUSK"), now=NOW)
        claim = await store.claim_key("k", "h", now=NOW, stale_after=timedelta(minutes=1))

    assert revision == schema.head()
    assert diffs == []
    assert old is not None
    assert (old.title, old.booking_uid, old.start) == (
        "Walrus tusk check",
        "uid-old",
        datetime(2030, 1, 20, 9, tzinfo=UTC),
    )
    assert [item.id for item in found.items] == [old.id]
    assert claim.mine


@pytest.mark.usefixtures("reflection_gaps")
async def test_downgrading_to_the_first_revision_and_back_restores_the_schema(empty_url: str) -> None:
    async with Store.from_url(empty_url) as store:
        before = await _inspect(store)
        async with store.engine.begin() as connection:
            await connection.run_sync(schema.downgrade, "0001")
        async with store.engine.connect() as connection:
            assert await connection.run_sync(schema.current) == "0001"
        await store.create_schema()
        after = await _inspect(store)

    assert after == before


async def test_stores_opening_an_empty_database_at_once_migrate_it_once(empty_url: str) -> None:
    stores = [Store.from_url(empty_url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.create_schema() for store in stores))
        async with stores[0].engine.connect() as connection:
            assert await connection.run_sync(schema.current) == schema.head()
            versions = await connection.execute(text("SELECT count(*) FROM alembic_version"))
            assert versions.scalar_one() == 1
    finally:
        for store in stores:
            await store.aclose()


async def test_many_stores_opening_new_sqlite_files_at_once_never_find_them_locked(tmp_path: Path) -> None:
    # The first connections to a new file race to switch it to WAL; SQLite answers the losers "database is
    # locked" at once (no busy_timeout), which failed about one round in thirty of this before it was handled.
    for round_ in range(40):
        url = f"sqlite+aiosqlite:///{tmp_path / f'appt{round_}.db'}"
        stores = [Store.from_url(url) for _ in range(8)]
        try:
            await asyncio.gather(*(store.create_schema() for store in stores))
        finally:
            for store in stores:
                await store.aclose()


async def test_without_the_fts5_table_sqlite_search_still_finds_substrings(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'appt.db'}"
    async with Store.from_url(url) as store:
        # As on a SQLite without FTS5's trigram tokenizer (before 3.34), where 0002 makes no FTS5 table.
        async with store.engine.begin() as connection:
            for trigger in ("insert", "delete", "update"):
                await connection.exec_driver_sql(f"DROP TRIGGER appointments_search_{trigger}")
            await connection.exec_driver_sql("DROP TABLE appointments_search")
        await _run(url, OLD_ROW)

    async with Store.from_url(url) as store:
        found = await store.search(SearchQuery(text="tusk check"), now=NOW)

    assert [item.id for item in found.items] == ["apt_oldoldoldold"]


def test_db_upgrade_migrates_the_configured_database_and_says_to_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPT_TOOLS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'appt.db'}")

    assert main(["db", "upgrade"]) == 0
    first = capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    again = capsys.readouterr().err

    assert (
        f"from no revision (a new database, or one made before migrations) to schema revision {schema.head()}" in first
    )
    assert f"already at schema revision {schema.head()}" in again
