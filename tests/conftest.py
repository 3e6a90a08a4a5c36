"""Shared fixtures: the real Cal.com sandbox over loopback HTTP, a service on a real SQLite file, and
PostgreSQL databases for the store tests when a server is reachable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings
from sqlalchemy.engine import URL, make_url

from appt_tools.core.service import AppointmentService
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.store import Store
from appt_tools.store.tables import Base
from calcom_sandbox import RunningSandbox, SandboxState, run_sandbox
from helpers import BUSINESS_ENV, HOST_TZ

# Property tests (Hypothesis): under CI the same examples every run (derandomized, no example database),
# so a failure there is repeatable; elsewhere random, remembering failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as running:
        yield running


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'appointments.db'}"


@pytest.fixture
async def service(sandbox: RunningSandbox, db_url: str) -> AsyncIterator[AppointmentService]:
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with open_service(database_url=db_url, environ=env, calcom=target) as svc:
        yield svc


# --- PostgreSQL ---------------------------------------------------------------------------------
# Store tests run on SQLite and, when a server answers, on PostgreSQL too, in a database this session
# creates (random name; dropped at the end) with synchronous_commit off: only durability across a
# server crash is traded, and the tests commit often. It is migrated once; each test starts from it
# emptied (rows deleted, triggers and functions a test added dropped): a fresh database or schema per
# test would cost ~0.5 s of PostgreSQL DDL each, a minute per run. `postgres_schema_url` gives an
# empty schema of its own to the few tests that need one (migrations).
# With APPT_TOOLS_TEST_POSTGRES_URL set (CI sets it), an unreachable server fails the run.

POSTGRES_ENV = "APPT_TOOLS_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_POSTGRES_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


# What migration 0006 makes and `empty` deletes with the rest: the default tenant, as on a new database.
_DEFAULT_TENANT = "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'default', 'Default', now())"


@dataclass(frozen=True)
class PostgresDatabase:
    url: URL

    def schema_url(self, schema: str = "public") -> str:
        """The database, working in `schema` alone (and in `extensions`, where pg_trgm is)."""
        url = self.url.update_query_dict({"search_path": f"{schema}, extensions"})
        return url.render_as_string(hide_password=False)

    async def execute(self, *statements: str) -> None:
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    async def empty(self) -> None:
        """Delete every row, and drop the triggers and functions a test added, in one transaction."""
        deletes = "; ".join(f'DELETE FROM "{table.name}"' for table in reversed(Base.metadata.sorted_tables))
        await self.execute(
            f"""DO $$ DECLARE item record; BEGIN
                FOR item IN SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND NOT t.tgisinternal LOOP
                    EXECUTE format('DROP TRIGGER %I ON %I', item.tgname, item.relname);
                END LOOP;
                FOR item IN SELECT p.oid::regprocedure AS name FROM pg_proc p
                    JOIN pg_namespace n ON n.oid = p.pronamespace
                    LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
                    WHERE n.nspname = 'public' AND d.objid IS NULL LOOP
                    EXECUTE format('DROP FUNCTION %s', item.name);
                END LOOP;
            END $$; {deletes}; {_DEFAULT_TENANT}"""
        )


async def _create_database(server: PostgresDatabase, name: str) -> PostgresDatabase:
    await server.execute(f'CREATE DATABASE "{name}"', f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    database = PostgresDatabase(server.url.set(database=name))
    await database.execute("CREATE SCHEMA extensions", "CREATE EXTENSION pg_trgm SCHEMA extensions")
    async with Store.from_url(database.schema_url()):
        pass  # opening a store upgrades its database
    return database


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """A database of this session's own at the newest revision (skips, or fails in CI, without a server)."""
    configured = os.environ.get(POSTGRES_ENV)
    server = PostgresDatabase(make_url(configured or DEFAULT_POSTGRES_URL))
    name = f"appt_test_{secrets.token_hex(6)}"
    try:
        database = asyncio.run(_create_database(server, name))
    except _POSTGRES_ERRORS as error:
        asyncio.run(_drop_quietly(server, name))
        reason = f"no PostgreSQL at {server.url.render_as_string()}: {type(error).__name__}: {error}"
        if configured:
            pytest.fail(f"{reason} ({POSTGRES_ENV} is set, so the PostgreSQL tests must run)")
        pytest.skip(f"{reason} (set {POSTGRES_ENV} to a reachable server to run these)")
    try:
        yield database
    finally:
        asyncio.run(server.execute(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _drop_quietly(server: PostgresDatabase, name: str) -> None:
    with contextlib.suppress(*_POSTGRES_ERRORS):
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url(postgres_database: PostgresDatabase) -> str:
    """A URL to an empty PostgreSQL database at the newest schema."""
    await postgres_database.empty()
    return postgres_database.schema_url()


@pytest.fixture
async def postgres_schema_url(postgres_database: PostgresDatabase) -> AsyncIterator[str]:
    """A URL to an empty schema with nothing in it, not even the schema's version: dropped afterwards."""
    schema = f"appt_schema_{secrets.token_hex(6)}"
    await postgres_database.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield postgres_database.schema_url(schema)
    finally:
        await postgres_database.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'appt.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per backend: a SQLite file, and PostgreSQL (see `postgres_url`)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'appt.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
