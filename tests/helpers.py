"""Test helpers shared by several test modules (fixtures live in conftest.py), and by the bench: pytest
imports this module as `helpers` (tests/ is on its path), `python -m bench` from the repository root as
`tests.helpers`. It imports nothing from the tests, so both work."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx2

from appt_tools.core.service import AppointmentService
from appt_tools.models import Appointment, SearchPage, SlotSearch
from appt_tools.surfaces import arguments

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

HOST_TZ = "America/New_York"
BUSINESS_ENV = {"APPT_TOOLS_TIMEZONE": HOST_TZ, "APPT_TOOLS_BUSINESS_NAME": "Acme Dental"}


def next_weekday(after_days: int = 2) -> date:
    """A Monday-to-Friday date at least `after_days` ahead in the host's zone (never today: notice rules)."""
    day = datetime.now(ZoneInfo(HOST_TZ)).date() + timedelta(days=after_days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the system picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(
    port: int, process: asyncio.subprocess.Process | subprocess.Popen[Any] | None = None, *, seconds: float = 30
) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`. Raises RuntimeError as soon as
    `process` (the server meant to listen there) exits, with its output when that was piped, and
    TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if process is not None and _exited(process):
                    raise RuntimeError(
                        f"the server exited with {process.returncode}: {await _output(process)}"
                    ) from None
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                return


def _exited(process: asyncio.subprocess.Process | subprocess.Popen[Any]) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is not None
    return process.returncode is not None


async def _output(process: asyncio.subprocess.Process | subprocess.Popen[Any]) -> str:
    """What the exited server wrote on stderr (or on stdout, where stderr went there), if it was piped."""
    if isinstance(process, subprocess.Popen):
        stream = process.stderr or process.stdout
        text = stream.read() if stream is not None else None
    else:
        piped = process.stderr or process.stdout
        text = await piped.read() if piped is not None else None
    if text is None:
        return "(its output was not kept)"
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def booking_args(start: str, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "start": start,
        "attendee_name": "Ana Ruiz",
        "attendee_email": "ana.ruiz@example.com",
        "to_number": "+14155550100",
        "from_number": "+14155550123",
        "call_type": "inbound",
        "title": "Teeth cleaning",
        "label": "new-client",
        "description": "First visit",
    }
    args.update(overrides)
    return args


class Flaky(httpx2.AsyncBaseTransport):
    """A real HTTP transport to the sandbox that fails chosen requests, before they reach it or after
    it has carried them out (the answer lost). Rules: (method, path prefix, phase, what, times left), in order;
    `times=None` fails every matching request (the client's own retries included)."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.rules: list[list[object]] = []
        self.seen: list[str] = []

    def fail(
        self, method: str, path: str, what: Exception | httpx2.Response, *, after: bool = False, times: int | None = 1
    ) -> None:
        self.rules.append([method, path, "after" if after else "before", what, times])

    def _take(self, request: httpx2.Request, phase: str) -> Exception | httpx2.Response | None:
        for rule in self.rules:
            method, path, when, what, times = rule
            if when == phase and request.method == method and request.url.path.startswith(str(path)):
                if times is not None:
                    rule[4] = int(str(times)) - 1
                    if rule[4] == 0:
                        self.rules.remove(rule)
                return what  # type: ignore[return-value]
        return None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        before = self._take(request, "before")
        if isinstance(before, Exception):
            raise before
        if before is not None:
            return before
        response = await self._inner.handle_async_request(request)
        after = self._take(request, "after")
        if after is None:
            return response
        await response.aread()
        await response.aclose()
        if isinstance(after, Exception):
            raise after
        return after

    async def aclose(self) -> None:
        await self._inner.aclose()


class Raw:
    """A service called with raw, string arguments, as the tools receive them: each call is parsed by
    `surfaces.arguments` and handed to the typed use case, exactly as the MCP tools do."""

    def __init__(self, service: AppointmentService) -> None:
        self.service = service

    async def find_slots(self, *, day: str | None = None, **raw: Any) -> SlotSearch:
        request = arguments.slot_request(business_tz=self.service.timezone, now=self.service.now(), date=day, **raw)
        return await self.service.find_slots(request)

    async def book(self, **raw: Any) -> Appointment:
        return await self.service.book(arguments.booking_draft(**raw))

    async def reschedule(self, appointment_id: str, new_start: str, **raw: Any) -> Appointment:
        return await self.service.reschedule(arguments.move(appointment_id, new_start, **raw))

    async def cancel(self, appointment_id: str, **raw: Any) -> Appointment:
        return await self.service.cancel(arguments.cancellation(appointment_id, **raw))

    async def search(self, **raw: Any) -> SearchPage:
        return await self.service.search(arguments.search_request(**raw))

    async def update(self, appointment_id: str, changes: Mapping[str, str | None]) -> Appointment:
        return await self.service.update(appointment_id, arguments.edit(changes))


@asynccontextmanager
async def ordinary_role(engine: AsyncEngine) -> AsyncIterator[str]:
    """On PostgreSQL, a login role that is neither superuser nor BYPASSRLS, allowed to use the tables of
    `engine`'s database: its connection URL (row-level security applies to it). Dropped afterwards."""
    role = f"appt_rls_{secrets.token_hex(4)}"
    try:
        async with engine.begin() as connection:
            for statement in (
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS",
                f"GRANT USAGE ON SCHEMA public, extensions TO {role}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
            ):
                await connection.exec_driver_sql(statement)
        yield engine.url.set(username=role).render_as_string(hide_password=False)
    finally:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"DROP OWNED BY {role}")
            await connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
