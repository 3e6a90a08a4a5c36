"""Two server processes sharing one database and one Cal.com: a contested slot is still booked once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from appt_tools.models import AppointmentStatus, SearchQuery
from appt_tools.store import Store
from helpers import booking_args, free_port, next_weekday, wait_for_port

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def _servers(env: dict[str, str], count: int = 2) -> AsyncIterator[list[str]]:
    """`count` processes of `appt-tools serve --transport http`, each listening; stopped on the way out."""
    started: dict[int, asyncio.subprocess.Process] = {}
    try:
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "appt_tools", "serve", "--transport", "http", "--port", str(port)]
            started[port] = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        await asyncio.gather(*(wait_for_port(port, process) for port, process in started.items()))
        yield [f"http://127.0.0.1:{port}" for port in started]
    finally:
        for process in started.values():
            if process.returncode is None:
                process.terminate()
        for process in started.values():
            await asyncio.wait_for(process.wait(), 10)


def _env(sandbox: Any, database: str, **extra: str) -> dict[str, str]:
    """The servers' environment: this one's without appt-tools settings, plus one shared database and Cal.com."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    return env | {
        "APPT_TOOLS_DATABASE_URL": database,
        "APPT_TOOLS_CALCOM_API_KEY": sandbox.api_key,
        "APPT_TOOLS_CALCOM_BASE_URL": sandbox.base_url,
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_TIMEZONE": "America/New_York",
        **extra,
    }


async def test_two_processes_on_one_database_book_a_contested_slot_once(sandbox, tmp_path: Path):
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    env = _env(sandbox, database)
    async with _servers(env) as bases, httpx2.AsyncClient(timeout=30) as http:
        found = await http.post(f"{bases[0]}/tools/find_slots", json={"date": next_weekday().isoformat()})
        start = found.json()["slots"][2]["start"]
        calls = [
            http.post(
                f"{bases[i % 2]}/tools/book_appointment",
                json=booking_args(start, attendee_email=f"caller{i}@example.com", from_number=f"+1415555015{i}"),
            )
            for i in range(8)
        ]
        answers = await asyncio.gather(*calls)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 7, [a.text for a in answers]
    assert all(a.json()["error"]["code"] == "slot_unavailable" for a in answers if a.status_code == 409)
    live_in_calcom = [b for b in sandbox.state.bookings.values() if b.status == "accepted"]
    assert len(live_in_calcom) == 1
    async with Store.from_url(database) as store:
        live = await store.search(
            SearchQuery(statuses=(AppointmentStatus.ACTIVE, AppointmentStatus.PENDING)),
            now=live_in_calcom[0].start,
        )
    assert live.total == 1
    assert live.items[0].booking_uid == live_in_calcom[0].uid


def _rpc_result(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a streamable-HTTP POST (a JSON body, or one SSE `message` event)."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        return dict(response.json())
    data = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    return dict(json.loads(data[-1]))


async def test_stateless_instances_answer_any_request_of_an_mcp_session(sandbox, tmp_path: Path):
    """Behind a load balancer without sticky sessions, each request of one MCP client may reach another
    instance: with APPT_TOOLS_HTTP_STATELESS every instance answers it."""
    env = _env(sandbox, f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}", APPT_TOOLS_HTTP_STATELESS="true")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "lb-test", "version": "1"},
        },
    }
    async with _servers(env) as bases, httpx2.AsyncClient(timeout=30, headers=headers) as http:
        hello = _rpc_result(await http.post(f"{bases[0]}/mcp", json=initialize))
        assert hello["result"]["serverInfo"]["name"] == "appt-tools"
        version = {"MCP-Protocol-Version": hello["result"]["protocolVersion"]}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(f"{bases[0]}/mcp", json=initialized, headers=version)).status_code == 202
        for n, base in enumerate([bases[1], bases[0], bases[1]], start=2):
            call = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": "find_slots", "arguments": {"date": next_weekday().isoformat()}},
            }
            answer = _rpc_result(await http.post(f"{base}/mcp", json=call, headers=version))
            assert answer["id"] == n and not answer["result"].get("isError"), answer
            assert answer["result"]["structuredContent"]["slots"]
