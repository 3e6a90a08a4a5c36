"""Cold start of `appt-tools serve`: initialize and tools/list are answered before the service is open
(tool calls wait for it, or say why it could not open), and Alembic is imported only to migrate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.migration import MigrationContext
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from appt_tools.core.service import AppointmentService
from appt_tools.store import Store, schema
from appt_tools.surfaces.mcp_server import ServiceHandle, build_server
from helpers import BUSINESS_ENV

TOOLS = 10
# What `appt-tools serve` imports before it can answer tools/list (what bench/coldstart.py times).
SERVE_PATH = (
    "import appt_tools.surfaces.cli, appt_tools.surfaces.mcp_server, appt_tools.runtime, appt_tools.core.reconcile"
)


def _error(result: Any) -> dict[str, Any]:
    assert result.is_error
    text = result.content[0].text
    loaded: dict[str, Any] = json.loads(text[text.index("{") :])
    return loaded


def _imported_after(statement: str, env: dict[str, str] | None = None) -> set[str]:
    """Top-level packages in sys.modules after running `statement` in a fresh interpreter."""
    code = f"{statement}\nimport sys; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(done.stdout.split())


# --- the schema's revision, without Alembic -------------------------------------------------------


def test_the_head_constant_is_the_migration_scripts_head() -> None:
    assert schema.HEAD == schema.script_head() == schema.head()


async def test_current_reads_the_revision_alembic_reads(empty_url: str) -> None:
    def both(connection: Any) -> tuple[str | None, str | None]:
        return schema.current(connection), MigrationContext.configure(connection).get_current_revision()

    store = Store.from_url(empty_url)
    try:
        async with store.engine.connect() as connection:
            assert await connection.run_sync(both) == (None, None)
        await store.create_schema()
        async with store.engine.connect() as connection:
            assert await connection.run_sync(both) == (schema.HEAD, schema.HEAD)
        async with store.engine.begin() as connection:
            await connection.run_sync(schema.downgrade, "0001")
            assert await connection.run_sync(both) == ("0001", "0001")
        await store.create_schema()
        assert await store.schema_revision() == schema.HEAD
    finally:
        await store.aclose()


def test_opening_an_up_to_date_database_imports_no_alembic(tmp_path: Path) -> None:
    env = {"APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'appt.db'}", "PATH": "/usr/bin:/bin"}
    opening = "import asyncio\nfrom appt_tools.runtime import open_service\n"
    opening += "async def main():\n    async with open_service():\n        pass\nasyncio.run(main())"
    assert "alembic" in _imported_after(opening, env)  # a new database: migrated
    assert "alembic" not in _imported_after(opening, env)  # at head: one query, no Alembic


def test_the_serve_path_imports_neither_alembic_nor_what_it_brings() -> None:
    assert not _imported_after(SERVE_PATH) & {"alembic", "mako", "pygments"}


def test_the_serve_path_imports_no_sqlalchemy_before_tools_list() -> None:
    assert "sqlalchemy" not in _imported_after(SERVE_PATH)


# --- the server on a service still being opened ---------------------------------------------------


async def test_tools_are_listed_before_the_service_is_open_and_calls_wait_for_it(
    service: AppointmentService,
) -> None:
    handle = ServiceHandle()
    async with Client(build_server(handle)) as client:
        assert len((await client.list_tools()).tools) == TOOLS
        call = asyncio.ensure_future(client.call_tool("list_event_types", {}))
        await asyncio.sleep(0.05)
        assert not call.done()  # waiting for the service
        handle.set(service)
        result = await asyncio.wait_for(call, 10)
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["event_types"]


async def test_every_tool_call_says_why_the_service_could_not_open() -> None:
    handle = ServiceHandle()
    server = build_server(handle)
    handle.fail(OSError("could not connect to postgresql+asyncpg://appt:hunter2@db.example:5432/appt"))
    async with Client(server) as client:
        assert len((await client.list_tools()).tools) == TOOLS
        for name, args in (("list_event_types", {}), ("get_appointment", {"appointment_id": "apt_x"})):
            error = _error(await client.call_tool(name, args))
            assert error["code"] == "service_unavailable"
            assert "OSError: could not connect" in error["message"] and "restart" in error["message"]
            assert "hunter2" not in error["message"]
            assert error["retryable"] is False and error["say"]


# --- `appt-tools serve` over stdio ----------------------------------------------------------------


@asynccontextmanager
async def _silent_database() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP port that accepts connections and never answers, until the event is set: then it hangs up."""
    hang_up = asyncio.Event()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hang_up.wait()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], hang_up
    finally:
        hang_up.set()
        server.close()


@pytest.mark.e2e
async def test_serve_lists_tools_while_the_database_does_not_answer_then_says_why(tmp_path: Path) -> None:
    async with _silent_database() as (port, hang_up):
        env = {
            **BUSINESS_ENV,
            "APPT_TOOLS_DATABASE_URL": f"postgresql+asyncpg://appt:hunter2@127.0.0.1:{port}/appt",
            "APPT_TOOLS_RECONCILE_MINUTES": "0",
            "PYTHONUNBUFFERED": "1",
        }
        params = StdioServerParameters(command=sys.executable, args=["-m", "appt_tools", "serve"], env=env)
        with (tmp_path / "stderr.txt").open("w+") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                assert len((await client.list_tools()).tools) == TOOLS
                hang_up.set()  # the database connection fails now
                error = _error(await asyncio.wait_for(client.call_tool("list_event_types", {}), 30))
            errlog.seek(0)
            logged = errlog.read()
    assert error["code"] == "service_unavailable"
    assert "hunter2" not in error["message"]
    assert "could not open its database and settings" in logged
