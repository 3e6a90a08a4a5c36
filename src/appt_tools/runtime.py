"""The composition root: settings → store → Cal.com client → service, opened and closed in one place.

The store (SQLAlchemy, the database driver) is imported when a service is opened, in a worker thread,
not when this module is: `appt-tools serve` answers initialize and tools/list while it opens.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from appt_tools import config
from appt_tools.calcom import CalcomClient
from appt_tools.core.service import AppointmentService, Clock, utcnow

if TYPE_CHECKING:
    from appt_tools.store import Store
    from calcom_sandbox import RunningSandbox


@dataclass(frozen=True)
class CalcomTarget:
    """Where Cal.com is, when it is not taken from settings (sandbox mode)."""

    base_url: str
    api_key: str


@asynccontextmanager
async def open_service(
    *,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    calcom: CalcomTarget | None = None,
    clock: Clock = utcnow,
) -> AsyncIterator[AppointmentService]:
    url = database_url or config.database_url(environ)
    # Importing SQLAlchemy and the driver and creating the engine take a few hundred ms of plain Python:
    # a worker thread does it, so the event loop (an MCP session already being served) keeps answering.
    async with await asyncio.to_thread(_store_on, url) as store:
        settings = config.resolve(await store.get_settings(), environ)
        if calcom is not None:
            settings = settings.model_copy(
                update={"calcom_api_key": SecretStr(calcom.api_key), "calcom_base_url": calcom.base_url}
            )
        key = settings.calcom_api_key
        client = calcom_client(settings, key) if key is not None else None
        try:
            yield AppointmentService(store, client, settings, clock=clock)
        finally:
            if client is not None:
                await client.aclose()


def calcom_client(settings: config.Settings, key: SecretStr) -> CalcomClient:
    """A Cal.com client with `key`, on the settings' base URL, time budget and rate limit."""
    return CalcomClient(
        key.get_secret_value(),
        settings.calcom_base_url,
        timeout=settings.calcom_timeout,
        rate_limit=settings.calcom_rate_limit,
    )


def _store_on(url: str) -> Store:
    """A store on `url`, not yet open (its schema is checked on entering it)."""
    from appt_tools.store import Store

    return Store.from_url(url)


@asynccontextmanager
async def open_sandbox_service(
    *, database_url: str | None = None, environ: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[AppointmentService, RunningSandbox]]:
    """Start the Cal.com sandbox in-process and a service wired to it, on a fresh database file
    (unless one is given), so the store and the sandbox start out in agreement."""
    from calcom_sandbox import run_sandbox  # sandbox mode only: never imported otherwise

    with tempfile.TemporaryDirectory(prefix="appt-tools-sandbox-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sandbox.db'}"
        async with run_sandbox() as sandbox:
            target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
            async with open_service(database_url=url, environ=environ, calcom=target) as service:
                await service.refresh_event_types()
                service.settings = service.settings.model_copy(
                    update={"event_type_id": sandbox.state.default_event_type_id}
                )
                yield service, sandbox
