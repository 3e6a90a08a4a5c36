"""Engine creation and SQLite connection setup (WAL, foreign keys, busy timeout, real transactions).

A PostgreSQL URL may name the schema(s) to use: `postgresql+asyncpg://user@host/db?search_path=appt`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import NullPool, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from appt_tools.errors import StoreBusy
from appt_tools.store import _scope

SQLITE_BUSY_TIMEOUT_MS = 5000
# Pages each connection keeps (SQLite's default is 2 MiB): the upper levels of every index and the
# hot leaves, so that index walks and row lookups at a million appointments rarely reach the OS.
SQLITE_CACHE_KIB = 65536
# ... but at most this much SQLite memory in the whole process, however many connections its pools keep
# (the async reads' and the file writer's, 5 each plus overflow): without it every kept connection's cache
# could grow with the database to SQLITE_CACHE_KIB, several hundred MiB in all on a large file read by
# concurrent callers. Past the limit a connection reuses its own cache's pages instead of adding more.
# It is SQLite's soft heap limit, one setting for the process (every connection sets the same value).
SQLITE_HEAP_LIMIT_KIB = 2 * SQLITE_CACHE_KIB
SEARCH_PATH = "search_path"

# Execution option read by the SQLite "begin" hook: writers take the write lock up front
# (BEGIN IMMEDIATE) so a read-modify-write never fails half way on a stale snapshot.
BEGIN_MODE_OPTION = "appt_tools_sqlite_begin"
IMMEDIATE = "immediate"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; for a SQLite file, its parent directories are created and the file
    itself, readable by its owner only (it holds secrets and personal data). Statement parameters
    (attendees' e-mails, phone numbers, stored keys) never appear in SQLAlchemy's errors or logs."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(Path(database))
    elif parsed.get_backend_name() == "postgresql" and SEARCH_PATH in parsed.query:
        value = parsed.query[SEARCH_PATH]
        connect_args["server_settings"] = {SEARCH_PATH: value if isinstance(value, str) else value[-1]}
        parsed = parsed.difference_update_query([SEARCH_PATH])
    return create_async_engine(parsed, connect_args=connect_args, hide_parameters=True)


def create_private_file(path: Path) -> None:
    """Create `path` (and missing parent folders) with mode 0600 unless it exists. SQLite creates its
    side files (-wal, -shm, -journal) with the database file's mode, so they are private too."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def prepare_engine(engine: AsyncEngine) -> None:
    """Install the SQLite connection hooks and hint support, or PostgreSQL's tenant setting, once per engine."""
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine.sync_engine)
    elif engine.dialect.name == "postgresql":
        _scope.prepare_postgresql(engine.sync_engine)


def sqlite_file_engine(engine: AsyncEngine, *, pooled: bool = False) -> Engine | None:
    """A synchronous engine (the stdlib driver, same hooks) on the SQLite file `engine` opens; None
    for anything else (another backend, an in-memory or URI database). Many statements in a row (a
    migration's, or a write transaction's) run there in one worker thread instead of a thread hop each.
    `pooled`: keep connections open between uses (they may be used from any thread, one at a time)."""
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    options: dict[str, Any] = (
        {"connect_args": {"check_same_thread": False}, "pool_size": 5} if pooled else {"poolclass": NullPool}
    )
    sync_engine = create_sync_engine(url.set(drivername="sqlite"), hide_parameters=True, **options)
    _prepare_sqlite(sync_engine)
    return sync_engine


def _prepare_sqlite(sync_engine: Engine) -> None:
    if not issubclass(sync_engine.dialect.statement_compiler, _HintedCompiler):
        sync_engine.dialect.statement_compiler = _hinted(sync_engine.dialect.statement_compiler)
    if not event.contains(sync_engine, "connect", _on_sqlite_connect):
        event.listen(sync_engine, "connect", _on_sqlite_connect)
    if not event.contains(sync_engine, "begin", _on_sqlite_begin):
        event.listen(sync_engine, "begin", _on_sqlite_begin)
    if not event.contains(sync_engine, "handle_error", _on_sqlite_error):
        event.listen(sync_engine, "handle_error", _on_sqlite_error)


def _on_sqlite_error(context: ExceptionContext) -> BaseException | None:
    """ "database is locked" after the busy timeout (other writers held the file that long: heavy load,
    several processes) is a retryable `StoreBusy` with words a caller can act on, not an internal error."""
    if "database is locked" in str(context.original_exception):
        return store_busy()
    return None


def store_busy() -> StoreBusy:
    """The database could not be had in time: SQLite locked by other writers past its busy timeout, or no
    connection free in the pool within its timeout (every one busy under load). Retryable, in words a
    caller can act on, never an internal error."""
    return StoreBusy(
        "The appointment records are busy right now, so this was not finished. Wait a few seconds and "
        "try again: a repeat of the same request never books or changes anything twice."
    )


class _HintedCompiler:
    """Marks a compiler class made by `_hinted`."""


def _hinted(compiler: type[SQLCompiler]) -> type[SQLCompiler]:
    """`compiler`, rendering a table hint (`select.with_hint(table, "INDEXED BY ix", "sqlite")`) after the
    table's name: SQLite's own compiler drops table hints."""

    def get_from_hint_text(_self: SQLCompiler, _table: Any, text: str | None) -> str | None:
        return text

    return type(f"Hinted{compiler.__name__}", (compiler, _HintedCompiler), {"get_from_hint_text": get_from_hint_text})


def _on_sqlite_connect(dbapi_connection: Any, _connection_record: Any) -> None:
    # The driver's own implicit BEGIN (only before DML) is switched off; `_on_sqlite_begin`
    # emits BEGIN when SQLAlchemy starts a transaction, so reads and writes share it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT_KIB * 1024}")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Switch the file to WAL. On a new file, connections opening at once race for that switch, and
    SQLite answers the losers "database is locked" without waiting for busy_timeout: try again briefly."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # the driver's OperationalError (sqlite3's, or aiosqlite's adaptation)
            if "database is locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _on_sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(BEGIN_MODE_OPTION)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == IMMEDIATE else "BEGIN")
