"""Shared fixtures: the real Cal.com sandbox over loopback HTTP and a service on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.sandbox import RunningSandbox, SandboxState, run_sandbox
from appt_tools.service import AppointmentService
from helpers import BUSINESS_ENV, HOST_TZ


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
