"""Serve the sandbox over real HTTP with uvicorn, inside the caller's event loop.

The running sandbox also owns what reaches outside the request cycle: the httpx2 client its webhook
deliveries use (made on the first delivery, closed on exit), and the server's connections, which the `drop` and
`timeout` faults close without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2
import uvicorn

from calcom_sandbox.app import create_app
from calcom_sandbox.clock import TravelClock
from calcom_sandbox.state import DEFAULT_RATE_LIMIT, SandboxState

_STARTUP_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox that is serving: where it listens and the world behind it."""

    base_url: str
    state: SandboxState
    accounts: tuple[SandboxState, ...] = ()  # more Cal.com accounts on the same port, told apart by API key

    @property
    def api_key(self) -> str:
        return self.state.api_key


@asynccontextmanager
async def run_sandbox(
    state: SandboxState | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    accounts: Sequence[SandboxState] = (),
) -> AsyncIterator[RunningSandbox]:
    """Serve `state` (a fresh one by default) on host:port as a task of the current loop.

    Port 0 picks a free port; `base_url` carries the real one. Returns once the server accepts
    connections and shuts it down cleanly on exit. `accounts`: more Cal.com accounts (each its own world:
    host, event types, bookings, rate limit) served on the same port; a request goes to the account whose
    API key it carries, and anything else (no key, an unknown one, `/_sandbox/*`) to `state`'s.
    """
    world = state if state is not None else SandboxState()
    worlds = (world, *accounts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP,
    # and without it every keep-alive request waits ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    app = create_app(world) if not accounts else _by_key(worlds)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    # Driven step by step rather than with `serve()`, which waits up to 0.1 s to notice `should_exit`
    # and then sleeps another 0.1 s: tests start and stop a sandbox each, so that adds up. No signal
    # handlers are installed either: the owner of the event loop decides what Ctrl-C does.
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    ticker = asyncio.create_task(server.main_loop(), name=f"appt-tools sandbox :{bound_port}")
    for each in worlds:
        each.faults.open()
        each.faults.connection_closer = _closer(server)
        each.webhooks.start(_client_for(each))
    try:
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        yield RunningSandbox(f"http://{shown_host}:{bound_port}", world, tuple(accounts))
    finally:
        for each in worlds:
            each.faults.close()  # held (timeout) answers end now, so the shutdown below is quick
        server.should_exit = True
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await _stop(server)
        for each in worlds:
            each.faults.connection_closer = None
            await each.webhooks.stop()  # and closes its client
        sock.close()


def _by_key(worlds: Sequence[SandboxState]) -> Callable[[Any, Any, Any], Any]:
    """One ASGI app serving several accounts: the account is the one whose API key the request's bearer
    token is (the first account's app answers anything else, e.g. an unknown key with Cal.com's 401)."""
    apps = {each.api_key: create_app(each) for each in worlds}
    first = apps[worlds[0].api_key]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        target = first
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization":
                    target = apps.get(value.decode("latin-1").partition(" ")[2].strip(), first)
                    break
        await target(scope, receive, send)

    return app


def _client_for(state: SandboxState) -> Callable[[], httpx2.AsyncClient]:
    return lambda: _webhook_client(state.webhook_timeout)


def _webhook_client(timeout: float) -> httpx2.AsyncClient:
    """Cal.com's fetch does not follow redirects; no proxies from the environment either."""
    return httpx2.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False)


def _closer(server: uvicorn.Server) -> Callable[[Mapping[str, object]], bool]:
    """Close the connection a request came on, without an answer: find it by the client's address."""

    def close(scope: Mapping[str, object]) -> bool:
        client = scope.get("client")
        peer = tuple(client) if isinstance(client, list | tuple) else None
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if peer is not None and getattr(connection, "client", None) == peer and transport is not None:
                transport.close()
                return True
        return False

    return close


async def _stop(server: uvicorn.Server) -> None:
    """uvicorn's graceful shutdown without its fixed pause: stop listening, close idle keep-alive
    connections, let requests in flight finish (bounded), then cancel what is left."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    try:
        async with asyncio.timeout(_STOP_TIMEOUT):
            # uvicorn offers no event for "every connection closed"; poll its state briefly.
            while server.server_state.connections or server.server_state.tasks:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    except TimeoutError:
        for task in list(server.server_state.tasks):
            task.cancel()
    for listener in server.servers:
        await listener.wait_closed()


def harness_state(clock: datetime | None = None, rate_limit: int = DEFAULT_RATE_LIMIT) -> SandboxState:
    """A sandbox a harness can drive: its clock starts at `clock` (default: now) and can be moved
    (`POST /_sandbox/clock`), and it allows `rate_limit` requests a minute per key."""
    return SandboxState(now=TravelClock(clock), rate_limit=rate_limit)


def main(port: int, host: str, *, clock: datetime | None = None, rate_limit: int = DEFAULT_RATE_LIMIT) -> None:
    """Run a sandbox until Ctrl-C, after printing where it listens, its API key and its event types."""

    async def serve() -> None:
        async with run_sandbox(harness_state(clock, rate_limit), port=port, host=host) as sandbox:
            print(
                f"Cal.com API v2 sandbox at {sandbox.base_url} (clock {sandbox.state.now().isoformat()}, "
                f"{rate_limit} requests a minute)"
            )
            print(f"API key: {sandbox.api_key}")
            print("Event types:")
            for et in sandbox.state.event_types:
                lengths = "/".join(str(n) for n in et.length_options) if et.length_options else str(et.length)
                print(f"  {et.id}  {et.slug:<18} {et.title} ({lengths} min)")
            print("Press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
