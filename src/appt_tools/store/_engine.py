"""Engine creation and SQLite connection setup (WAL, foreign keys, busy timeout, real transactions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 5000

# Execution option read by the SQLite "begin" hook: writers take the write lock up front
# (BEGIN IMMEDIATE) so a read-modify-write never fails half way on a stale snapshot.
BEGIN_MODE_OPTION = "appt_tools_sqlite_begin"
IMMEDIATE = "immediate"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; for a SQLite file, its parent directories are created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    return create_async_engine(parsed)


def prepare_engine(engine: AsyncEngine) -> None:
    """Install the SQLite connection hooks once per engine; other backends need nothing."""
    if engine.dialect.name != "sqlite":
        return
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "connect", _on_sqlite_connect):
        event.listen(sync_engine, "connect", _on_sqlite_connect)
    if not event.contains(sync_engine, "begin", _on_sqlite_begin):
        event.listen(sync_engine, "begin", _on_sqlite_begin)


def _on_sqlite_connect(dbapi_connection: Any, _connection_record: Any) -> None:
    # The driver's own implicit BEGIN (only before DML) is switched off; `_on_sqlite_begin`
    # emits BEGIN when SQLAlchemy starts a transaction, so reads and writes share it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(BEGIN_MODE_OPTION)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == IMMEDIATE else "BEGIN")
