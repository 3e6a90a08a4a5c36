"""The product as the bench runs it: the real service and `build_server` server on the Cal.com sandbox,
with two additions that exist only here.

- `CalcomRecorder`: the Cal.com client's innermost HTTP transport, wrapped to count each request and time
  its round trip (sent → answer read). Tool latency minus this time is our overhead.
- Two bench-only tools on the same server: `bench_ping` (trivial: the framework's floor on this server and
  transport) and `bench_calcom` (hands over, and forgets, the Cal.com requests recorded since the last ask).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from pydantic import BaseModel

from appt_tools import runtime
from appt_tools.calcom import CalcomClient
from appt_tools.core.service import AppointmentService
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.surfaces.mcp_server import AppointmentServer, build_server
from calcom_sandbox import RunningSandbox, SandboxState, run_sandbox
from tests.helpers import HOST_TZ

# The bench makes far more than Cal.com's 120 requests a minute. Waiting for the pacer would be counted as
# our overhead, so both the sandbox's throttler and the client's pacing are set out of reach; the request
# counts are reported separately, and they are what the rate limit costs a real deployment.
UNTHROTTLED = 10**9


class CalcomCall(BaseModel):
    method: str
    path: str
    ms: float


class CalcomCalls(BaseModel):
    calls: list[CalcomCall]


class CalcomRecorder(httpx2.AsyncBaseTransport):
    """A real HTTP transport that records each request's method, path and round-trip time."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.calls: list[CalcomCall] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        await response.aread()  # the answer in full: reading the body is part of Cal.com's time
        elapsed = (time.perf_counter() - started) * 1000
        self.calls.append(CalcomCall(method=request.method, path=request.url.path, ms=elapsed))
        return response

    def take(self) -> list[CalcomCall]:
        calls, self.calls = self.calls, []
        return calls

    async def aclose(self) -> None:
        await self._inner.aclose()


def add_bench_tools(server: AppointmentServer, recorder: CalcomRecorder) -> None:
    """The trivial reference tool and the recorder's read-out, on the product's own server."""

    def bench_ping() -> str:
        """Answers 'pong'. Bench only: the framework's own cost on this server."""
        return "pong"

    def bench_calcom() -> CalcomCalls:
        """The Cal.com requests made since the last call of this tool. Bench only."""
        return CalcomCalls(calls=recorder.take())

    server.add_tool(bench_ping, title="Ping")
    server.add_tool(bench_calcom, title="Cal.com requests")


def business_env(sandbox: RunningSandbox) -> dict[str, str]:
    return {
        "APPT_TOOLS_TIMEZONE": HOST_TZ,
        "APPT_TOOLS_BUSINESS_NAME": "Acme Dental",
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_RECONCILE_MINUTES": "0",
    }


@asynccontextmanager
async def bench_service(
    recorder: CalcomRecorder, *, database_url: str | None = None
) -> AsyncIterator[tuple[AppointmentService, RunningSandbox]]:
    """Like `runtime.open_sandbox_service` (sandbox in this process, fresh SQLite file unless a URL is
    given), built by the product's own `open_service`, with the Cal.com client on `recorder`."""
    async with AsyncExitStack() as stack:
        if database_url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="appt-bench-"))
            database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        sandbox = await stack.enter_async_context(
            run_sandbox(SandboxState(host_time_zone=HOST_TZ, rate_limit=UNTHROTTLED))
        )
        target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
        # `open_service` builds the client; only its transport and pacing differ (see UNTHROTTLED).
        original = vars(runtime)["CalcomClient"]

        def client(*args: Any, **kwargs: Any) -> CalcomClient:
            return CalcomClient(*args, **{**kwargs, "transport": recorder, "rate_limit": UNTHROTTLED})

        setattr(runtime, "CalcomClient", client)  # noqa: B010
        try:
            service = await stack.enter_async_context(
                open_service(database_url=database_url, environ=business_env(sandbox), calcom=target)
            )
        finally:
            setattr(runtime, "CalcomClient", original)  # noqa: B010
        await service.refresh_event_types()
        recorder.take()
        yield service, sandbox


def bench_server(service: AppointmentService, recorder: CalcomRecorder) -> AppointmentServer:
    server = build_server(service)
    add_bench_tools(server, recorder)
    return server
