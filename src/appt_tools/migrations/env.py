"""Alembic's entry point, for the `alembic` command line (new revisions, manual upgrades).

The application does not come through here: `appt_tools.store.schema.upgrade` runs the same
migrations on a connection it already holds.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from appt_tools import config
from appt_tools.store import schema
from appt_tools.store._engine import create_engine, prepare_engine


def _run(connection: Connection) -> None:
    schema.configure_context(context.configure, connection)
    with context.begin_transaction():
        schema.lock(connection)
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or config.database_url())
    prepare_engine(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: the migrations inspect the database")
asyncio.run(_run_online())
