"""Shared by the dashboard tests: the HTTP app served by uvicorn on a free loopback port, and how to
read a page's CSRF token."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import uvicorn

from appt_tools.core.service import AppointmentService
from appt_tools.surfaces.http.app import HttpSettings, build_http_app
from appt_tools.surfaces.mcp_server import AppointmentServer, build_server

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@asynccontextmanager
async def served(
    service: AppointmentService, settings: HttpSettings | None = None, server: AppointmentServer | None = None
) -> AsyncIterator[str]:
    """The whole HTTP application (dashboard included) on 127.0.0.1:<free port>; yields its base URL."""
    app = build_http_app(server or build_server(service), settings=settings or HttpSettings())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uvi = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(uvi.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not uvi.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        uvi.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def browsing(
    service: AppointmentService, settings: HttpSettings | None = None
) -> AsyncIterator[httpx2.AsyncClient]:
    """A client with a cookie jar, like a browser without script, pointed at the served app."""
    async with served(service, settings) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)
