"""The set-up reads (`/v2/me`, the event types, then the warm slots) happen when the server starts, in the
background, never on a caller's call: the first `find_slots` of a fresh server costs no Cal.com request; a call arriving
before they end waits for the same sync (never a second copy); a failure is logged, not fatal, and the
next call retries."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from appt_tools.core.requests import SlotRequest
from appt_tools.runtime import CalcomTarget, open_service
from calcom_sandbox import Fault, RunningSandbox
from calcom_sandbox.records import TEAM_ID
from helpers import next_weekday

# A latency fault of 0 s on every endpoint, armed until cleared: the sandbox's fault log then records
# each request Cal.com receives (method and path), which is what these tests count.
LOG_EVERY_REQUEST = Fault("latency", "*", times=None, seconds=0)


def _requests(sandbox: RunningSandbox, since: int = 0) -> list[str]:
    return [f"{e.method} {e.path}" for e in sandbox.state.fault_log[since:] if e.kind == "latency"]


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# A sync: whose account, its own event types, its teams and each team's event types.
TEAM_TYPES = f"GET /v2/teams/{TEAM_ID}/event-types"
SYNC = ["GET /v2/me", "GET /v2/event-types", "GET /v2/teams", TEAM_TYPES]


@asynccontextmanager
async def _serve(sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[Client]:
    """`appt-tools serve` over stdio, as a real subprocess, on a fresh database and this sandbox."""
    env = {
        "APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}",
        "APPT_TOOLS_CALCOM_API_KEY": sandbox.api_key,
        "APPT_TOOLS_CALCOM_BASE_URL": sandbox.base_url,
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_RECONCILE_MINUTES": "0",
        "PYTHONUNBUFFERED": "1",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "appt_tools", "serve"], env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


@pytest.mark.e2e
async def test_the_first_find_slots_of_a_fresh_server_costs_no_calcom_request(sandbox, tmp_path):
    sandbox.state.faults.add(LOG_EVERY_REQUEST)
    async with _serve(sandbox, tmp_path) as client:
        # Nobody has called a tool: the server reads whose account it is, the event types, and the default
        # event type's free slots for the next 14 days (kept warm) by itself.
        await _until(lambda: "GET /v2/slots" in _requests(sandbox))
        await asyncio.sleep(1.0)  # as an LLM's first turn would: Cal.com's answer is read and kept
        assert _requests(sandbox) == [*SYNC, "GET /v2/slots"]
        before = len(sandbox.state.fault_log)
        result = await client.call_tool("find_slots", {"date": next_weekday().isoformat()})
        assert not result.is_error, result.content
        assert result.structured_content is not None and result.structured_content["slots"]
        assert result.structured_content["fresh_as_of"].endswith("Z")
        # The caller's call cost no request at all: answered from the warm slots.
        assert _requests(sandbox, before) == []
        # The host's time zone was adopted by that start-up sync (none was configured).
        assert result.structured_content["timezone"] == sandbox.state.host.time_zone


@pytest.mark.e2e
async def test_a_call_during_the_start_up_sync_waits_for_it_and_sends_no_second_copy(sandbox, tmp_path):
    sandbox.state.faults.add(Fault("latency", "GET /v2/me", times=1, seconds=1.5))
    sandbox.state.faults.add(LOG_EVERY_REQUEST)
    async with _serve(sandbox, tmp_path) as client:
        await _until(lambda: "GET /v2/me" in _requests(sandbox))  # the start-up sync is in flight
        result = await client.call_tool("find_slots", {"date": next_weekday().isoformat()})
        assert not result.is_error, result.content
    # The sync once; the slots read by the call, or by the warm-up it then found done (or both, in a race).
    sent = _requests(sandbox)
    assert [r for r in sent if r != "GET /v2/slots"] == SYNC
    assert 1 <= sent.count("GET /v2/slots") <= 2


async def test_concurrent_syncs_share_the_one_in_flight(sandbox, db_url):
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with open_service(database_url=db_url, environ={}, calcom=target) as service:
        sandbox.state.faults.add(Fault("latency", "GET /v2/me", times=1, seconds=0.5))
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        service.start_sync()
        outcomes = await asyncio.gather(
            service.refresh_event_types(),
            service.refresh_event_types(),
            service.list_event_types(),
            service.catalog.synced(),
        )
        assert all(outcome for outcome in outcomes)
        assert _requests(sandbox) == SYNC
        assert service.settings.timezone == sandbox.state.host.time_zone


async def test_a_failed_start_up_sync_is_logged_and_the_next_call_retries(sandbox, db_url, caplog):
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    env = {"APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with open_service(database_url=db_url, environ=env, calcom=target) as service:
        sandbox.state.faults.add(Fault("status", "GET /v2/me", times=3, status=503))  # every attempt fails
        with caplog.at_level(logging.WARNING, logger="appt_tools.core.catalog"):
            service.start_sync()
            await service.catalog.ready()  # ends without raising
        assert "could not read the event types from Cal.com at start" in caplog.text
        assert "next call" in caplog.text
        assert await service.catalog.synced() == []
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        found = await service.find_slots(SlotRequest(day=next_weekday()))
        assert found.slots
        assert _requests(sandbox) == [*SYNC, "GET /v2/slots"]
