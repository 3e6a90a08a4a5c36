"""Issue 13, finding 7 and item 6: the SQLite file and its side files are private to their owner, and
SQLAlchemy's errors and logs never carry statement parameters (attendees' e-mails and phones, keys)."""

from __future__ import annotations

import logging
import stat

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from appt_tools.store import Store
from appt_tools.store._engine import create_engine

SECRET = "cal_live_MUST_NOT_LEAK_0123456789"


async def test_the_sqlite_file_and_its_side_files_are_readable_by_the_owner_only(tmp_path):
    path = tmp_path / "private" / "appointments.db"
    async with Store.from_url(f"sqlite+aiosqlite:///{path}") as store:
        await store.set_setting("calcom_api_key", SECRET)
        files = [p for p in path.parent.iterdir() if p.name.startswith("appointments.db")]
        assert {p.name for p in files} >= {"appointments.db", "appointments.db-wal", "appointments.db-shm"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, (file.name, oct(file.stat().st_mode))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_a_failing_statement_neither_logs_nor_raises_its_parameters(tmp_path, caplog):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    engine.echo = True  # even with statement logging on, parameters stay hidden
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (k TEXT UNIQUE)"))
            await connection.execute(text("INSERT INTO t VALUES (:k)"), {"k": SECRET})
            with pytest.raises(SQLAlchemyError) as raised:
                await connection.execute(text("INSERT INTO t VALUES (:k)"), {"k": SECRET})
    finally:
        await engine.dispose()
    assert "UNIQUE" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert caplog.records and SECRET not in caplog.text
