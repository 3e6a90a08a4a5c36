"""Serve the sandbox over real HTTP with uvicorn, inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from appt_tools.sandbox.app import create_app
from appt_tools.sandbox.state import SandboxState

_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox that is serving: where it listens and the world behind it."""

    base_url: str
    state: SandboxState

    @property
    def api_key(self) -> str:
        return self.state.api_key


class _GuestServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever owns the event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@asynccontextmanager
async def run_sandbox(
    state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve `state` (a fresh one by default) on host:port as a task of the current loop.

    Port 0 picks a free port; `base_url` carries the real one. Returns once the server accepts
    connections and shuts it down cleanly on exit.
    """
    world = state if state is not None else SandboxState()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(world), log_level="warning", access_log=False, lifespan="off")
    server = _GuestServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"appt-tools sandbox :{bound_port}")
    try:
        await _wait_started(server, task)
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        yield RunningSandbox(f"http://{shown_host}:{bound_port}", world)
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(_STARTUP_TIMEOUT):
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error
                raise RuntimeError("the sandbox server stopped before it started")
            await asyncio.sleep(0.005)


def main(port: int, host: str) -> None:
    """Run a sandbox until Ctrl-C, after printing where it listens, its API key and its event types."""

    async def serve() -> None:
        async with run_sandbox(port=port, host=host) as sandbox:
            print(f"Cal.com API v2 sandbox at {sandbox.base_url}")
            print(f"API key: {sandbox.api_key}")
            print("Event types:")
            for et in sandbox.state.event_types:
                lengths = "/".join(str(n) for n in et.length_options) if et.length_options else str(et.length)
                print(f"  {et.id}  {et.slug:<18} {et.title} ({lengths} min)")
            print("Press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
