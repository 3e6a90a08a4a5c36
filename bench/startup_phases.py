"""`python -m bench.startup_phases`: the steps `appt-tools serve` takes, timed in one process (the
environment says where the database and Cal.com are). Prints one JSON line of ms per step.

Over stdio, serve answers initialize and tools/list on a server built on a `ServiceHandle` (the tool list
needs no service) and opens the service meanwhile: the steps up to `list_tools` are what the first
tools/list waits for; `open_service (after)` is the work that follows, before the first tool call runs."""

from __future__ import annotations

import time

_started = time.perf_counter()

import asyncio  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402

marks: dict[str, float] = {}


def _mark(name: str, since: float) -> float:
    now = time.perf_counter()
    marks[name] = round((now - since) * 1000, 1)
    return now


async def _serve_steps(since: float) -> None:
    from appt_tools.core.reconcile import reconciling
    from appt_tools.runtime import open_service
    from appt_tools.surfaces.mcp_server import ServiceHandle, build_server

    handle = ServiceHandle()
    server = build_server(handle)
    since = _mark("build_server", since)
    await server.list_tools()
    since = _mark("list_tools", since)
    async with open_service() as service, reconciling(service, service.settings.reconcile_minutes):
        handle.set(service)
        _mark("open_service (after)", since)


def main() -> None:
    since = _mark("import asyncio, importlib, json", _started)
    importlib.import_module("mcp.server.mcpserver")
    since = _mark("import SDK", since)
    for module in (
        "appt_tools.surfaces.cli",
        "appt_tools.surfaces.mcp_server",
        "appt_tools.runtime",
        "appt_tools.core.reconcile",
    ):
        importlib.import_module(module)
    since = _mark("import product", since)
    asyncio.run(_serve_steps(since))
    print(json.dumps(marks))


if __name__ == "__main__":
    main()
