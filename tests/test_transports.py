"""End to end over real transports: `appt-tools serve --sandbox` as a subprocess, over stdio and HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from helpers import booking_args, free_port, next_weekday, wait_for_port

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path) -> dict[str, str]:
    return {"APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}", "PYTHONUNBUFFERED": "1"}


async def _conversation(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) == 10
    assert all(t.description and t.input_schema and t.output_schema for t in tools)
    slots = await client.call_tool("find_slots", {"date": next_weekday().isoformat()})
    assert not slots.is_error, slots.content
    start = slots.structured_content["slots"][0]["start"]  # type: ignore[index]
    booked = await client.call_tool("book_appointment", booking_args(start))
    assert not booked.is_error, booked.content
    appointment = booked.structured_content["appointment"]  # type: ignore[index]
    assert appointment["status"] == "active"
    found = await client.call_tool("search_appointments", {"query": "+14155550123"})
    assert found.structured_content["total"] == 1  # type: ignore[index]


async def test_serve_sandbox_over_stdio_runs_the_conversation(tmp_path):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "appt_tools", "serve", "--sandbox"], env=_env(tmp_path)
    )
    async with Client(params) as client:
        await _conversation(client)


async def test_serve_sandbox_over_streamable_http_runs_the_conversation(tmp_path):
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appt_tools",
        "serve",
        "--sandbox",
        "--transport",
        "http",
        "--port",
        str(port),
        env={**os.environ, **_env(tmp_path)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_port(port, process, seconds=20)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            await _conversation(client)
    finally:
        process.terminate()
        await process.wait()


async def test_the_same_conversation_over_stdio_ends_in_the_same_state_as_every_other_surface(sandbox, service, db_url):
    from helpers import BUSINESS_ENV
    from test_http_app import EXPECTED_STATE, _conversation, _final_state

    env = {
        **BUSINESS_ENV,
        "APPT_TOOLS_DATABASE_URL": db_url,
        "APPT_TOOLS_CALCOM_API_KEY": sandbox.api_key,
        "APPT_TOOLS_CALCOM_BASE_URL": sandbox.base_url,
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_RECONCILE_MINUTES": "0",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "appt_tools", "serve"], env=env)
    async with Client(params) as client:

        async def call(name: str, args: dict[str, object]) -> dict[str, object]:
            result = await client.call_tool(name, args)
            assert not result.is_error and result.structured_content is not None, result.content
            return dict(result.structured_content)

        await _conversation(call)  # type: ignore[arg-type]
    state = await _final_state(service, sandbox)
    assert {k: v for k, v in state.items() if k != "calcom"} == EXPECTED_STATE
