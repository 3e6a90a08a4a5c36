"""The schema's version: Alembic migrations (`appt_tools.migrations`) run on a connection we hold.

Alembic (and Mako, and Pygments through it) is imported only when a migration must run: every start
reads the database's revision with one plain query (`current`) and compares it with `HEAD`, a
constant that a test keeps equal to the migration scripts' head.

`upgrade` runs inside the caller's transaction, after taking the database's schema lock (SQLite: the
caller's BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so processes starting
together upgrade once and the others find the work done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from appt_tools.store.tables import POSTGRESQL_ONLY_COLUMNS, POSTGRESQL_ONLY_INDEXES, Base

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

SCRIPT_LOCATION = "appt_tools:migrations"
# The newest revision in `appt_tools/migrations/versions`: bump it with every new revision (a test
# compares it with the scripts' head, so it cannot drift).
HEAD = "0006_search_document"
# Alembic's default version table (we never configure another).
VERSION_TABLE = "alembic_version"
# Objects the migrations make that the metadata cannot describe: the SQLite FTS5 table and the
# shadow tables FTS5 keeps for it.
SEARCH_TABLE = "appointments_search"
_ADVISORY_LOCK = 0x6170_7074  # "appt"
# Alembic installs `alembic.op` and `alembic.context` as process-wide proxies: one run at a time.
_one_run = threading.Lock()


@cache
def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision (`HEAD`: no need to read the migration scripts, or to import Alembic)."""
    return HEAD


def script_head() -> str:
    """The newest revision according to the migration scripts themselves (imports Alembic)."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {', '.join(heads)}")
    return heads[0]


def current(connection: Connection) -> str | None:
    """The database's revision; None when it has never been migrated (empty, or made by `create_all`).

    What Alembic's `MigrationContext.get_current_revision` answers, read with one plain query (and a
    look for the table first, so that on PostgreSQL a missing table does not abort the transaction)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    if len(versions) > 1:
        raise RuntimeError(f"the database is at {len(versions)} schema revisions at once: {', '.join(versions)}")
    return versions[0] if versions else None


def include_name(name: str | None, type_: str, _parents: Mapping[str, str | None]) -> bool:
    """For autogenerate: leave out what lives outside the metadata (the FTS5 table and its shadows)."""
    return not (type_ == "table" and name is not None and name.startswith(SEARCH_TABLE))


def include_object_for(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """For autogenerate: leave out the metadata's indexes and columns that exist on other backends only."""
    elsewhere = {"index": POSTGRESQL_ONLY_INDEXES, "column": POSTGRESQL_ONLY_COLUMNS}

    def include_object(_obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
        return dialect == "postgresql" or name not in elsewhere.get(type_, ())

    return include_object


def compare_options(connection: Connection) -> dict[str, Any]:
    """How autogenerate compares a database with the metadata (new revisions; the schema test)."""
    return {
        "target_metadata": Base.metadata,
        "include_name": include_name,
        "include_object": include_object_for(connection.dialect.name),
        "compare_type": True,
    }


def configure_context(configure: Callable[..., None], connection: Connection) -> None:
    """Configure a migration context (`context.configure` of an EnvironmentContext or of env.py)."""
    # render_as_batch: SQLite cannot ALTER most things; new revisions rebuild tables in batch mode.
    configure(connection=connection, render_as_batch=True, **compare_options(connection))


def lock(connection: Connection) -> None:
    """Serialize schema changes across processes for the rest of the transaction, which acts for every
    tenant (PostgreSQL's row-level security admits all rows to a migration: see migration 0006)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
        connection.exec_driver_sql("SELECT set_config('app.all_tenants', 'on', true)")


def upgrade(connection: Connection, revision: str = "head") -> str | None:
    """Migrate up to `revision` in the connection's open transaction; returns the revision now current."""
    target = script_head() if revision == "head" else revision
    return _migrate(connection, target, lambda script, current: script._upgrade_revs(target, current))


def downgrade(connection: Connection, revision: str) -> str | None:
    """Migrate down to `revision` ("base": nothing) in the connection's open transaction."""
    return _migrate(connection, revision, lambda script, current: script._downgrade_revs(revision, current))


def _migrate(connection: Connection, target: str, plan: Callable[[ScriptDirectory, Any], Iterable[Any]]) -> str | None:
    lock(connection)
    if current(connection) == target:
        return target
    from alembic.runtime.environment import EnvironmentContext

    script = _script()

    def steps(rev: Any, _context: MigrationContext) -> Iterable[Any]:
        return plan(script, rev)

    with _one_run, EnvironmentContext(_config(), script, fn=steps, destination_rev=target) as context:
        configure_context(context.configure, connection)
        with context.begin_transaction():
            context.run_migrations()
    return current(connection)
