"""The composition root: settings → store → Cal.com client → service, opened and closed in one place.

The store (SQLAlchemy, the database driver) is imported when a service is opened, in a worker thread,
not when this module is: `appt-tools serve` answers initialize and tools/list while it opens.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import SecretStr

from appt_tools import config
from appt_tools.calcom import BudgetLedger, CalcomClient, Grant
from appt_tools.core.service import AppointmentService, Clock, utcnow
from appt_tools.core.slot_cache import SlotCache
from appt_tools.errors import AppError, ServiceUnavailable

if TYPE_CHECKING:
    from appt_tools.store import Store
    from calcom_sandbox import RunningSandbox


# A replaced Cal.com client is closed this long after, so calls already using it can finish.
OLD_CLIENT_GRACE_SECONDS = 30.0


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
        client = calcom_client(settings, key, StoredBudget(store)) if key else None
        service = AppointmentService(store, client, settings, clock=clock)
        try:
            yield service
        finally:
            await Runtime.of(service).aclose()


def calcom_client(settings: config.Settings, key: SecretStr, budget: BudgetLedger | None = None) -> CalcomClient:
    """A Cal.com client with `key`, on the settings' base URL, time budget and rate limit (shared, with a
    `budget` ledger, by every instance claiming from it)."""
    return CalcomClient(
        key.get_secret_value(),
        settings.calcom_base_url,
        timeout=settings.calcom_timeout,
        rate_limit=settings.calcom_rate_limit,
        budget=budget,
    )


class StoredBudget:
    """The Cal.com request budget of each key, shared through the store by every instance on the database
    (`calcom/_budget.py`; the store knows a key only by its hash)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim(self, key_id: str, want: int, *, limit: int, window: float) -> Grant:
        granted, left, resets_in = await self._store.claim_calcom_budget(key_id, want, limit=limit, window=window)
        return Grant(granted, left, resets_in)


class Runtime:
    """The one owner of a running service's settings and Cal.com client: every change to either goes
    through `apply`, and the clients it made are closed by `aclose` (a replaced one after a grace period,
    so calls already using it can finish). `Runtime.of(service)` finds (or makes) a service's owner."""

    _owners: ClassVar[weakref.WeakKeyDictionary[AppointmentService, Runtime]] = weakref.WeakKeyDictionary()

    def __init__(self, service: AppointmentService) -> None:
        self.service = service
        self._retiring: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, service: AppointmentService) -> Runtime:
        owner = cls._owners.get(service)
        if owner is None:
            owner = cls._owners[service] = cls(service)
        return owner

    def apply(self, values: Mapping[str, object], sources: Mapping[str, config.Source] | None = None) -> None:
        """Use these typed setting values now (e.g. from `config.parse_setting`). A new Cal.com key gets
        a new client at once; the one it replaces is closed OLD_CLIENT_GRACE_SECONDS later."""
        current = self.service.settings
        update: dict[str, object] = dict(values)
        if sources is not None:
            update["sources"] = {**current.sources, **sources}
        settings = current.model_copy(update=update)
        key = values.get("calcom_api_key")
        if not isinstance(key, SecretStr):
            self.service.reconfigure(settings)
            return
        old = self.service.calcom if self.service.calcom_configured else None
        self.service.reconfigure(
            settings, calcom_client(settings, key, StoredBudget(self.service.store)), new_client=True
        )
        if old is not None:
            task = asyncio.create_task(_close_later(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def stored_settings(self) -> dict[str, str]:
        """The settings saved in the database (raw, as typed), without the environment's."""
        return await self.service.store.get_settings()

    async def save_settings(self, updates: Mapping[str, str | None]) -> None:
        """Save raw setting values (None removes one) for this and every later start; `apply` uses them now."""
        for key, value in updates.items():
            await self.service.store.set_setting(key, value)

    async def shared_secret(self, name: str, make: Callable[[], str]) -> str:
        """An internal secret every server on this database shares (e.g. the dashboard's cookie key),
        made by `make()` on first use."""
        return await self.service.store.setting_once(name, make)

    async def aclose(self) -> None:
        """Stop a sync still running and the warm slots' refresh, close the client in use and any still
        waiting to be retired."""
        await self.service.warm.aclose()
        await self.service.catalog.aclose()
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.service.calcom_configured:
            await self.service.calcom.aclose()


async def _close_later(client: CalcomClient) -> None:
    try:
        await asyncio.sleep(OLD_CLIENT_GRACE_SECONDS)
    finally:
        await client.aclose()


def _store_on(url: str) -> Store:
    """A store on `url`, not yet open (its schema is checked on entering it)."""
    from appt_tools.store import Store

    return Store.from_url(url)


@asynccontextmanager
async def open_sandbox_service(
    *,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: datetime | None = None,
    rate_limit: int | None = None,
) -> AsyncIterator[tuple[AppointmentService, RunningSandbox]]:
    """Start the Cal.com sandbox in-process and a service wired to it, on a fresh database file
    (unless one is given), so the store and the sandbox start out in agreement. The service reads the
    sandbox's clock (started at `clock`, movable with POST /_sandbox/clock), so both agree on "now"."""
    from calcom_sandbox import harness_state, run_sandbox  # sandbox mode only: never imported otherwise

    with tempfile.TemporaryDirectory(prefix="appt-tools-sandbox-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sandbox.db'}"
        state = harness_state(clock) if rate_limit is None else harness_state(clock, rate_limit)
        async with run_sandbox(state) as sandbox:
            target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
            async with open_service(database_url=url, environ=environ, calcom=target, clock=state.now) as service:
                # The slot cache's 60 s follow the same clock, so a time jump expires it as it would.
                service.slots.cache = SlotCache(clock=lambda: state.now().timestamp())
                Runtime.of(service).apply({"event_type_id": sandbox.state.default_event_type_id})
                service.start_sync()  # event types and the host's time zone, read in the background
                yield service, sandbox


class ServiceHandle:
    """The service a server's tools run on, possibly still being opened.

    The tool list does not depend on the service, so `appt-tools serve` answers initialize and tools/list
    at once and opens the service (database, settings, Cal.com client) meanwhile: each tool call awaits
    `get()`. If opening fails, `fail()` records why and every tool call is refused with that reason.
    """

    def __init__(self) -> None:
        self._service: AppointmentService | None = None
        self._error: ServiceUnavailable | None = None
        self._settled = asyncio.Event()

    @classmethod
    def of(cls, service: AppointmentService) -> ServiceHandle:
        """A handle on a service that is already open."""
        handle = cls()
        handle.set(service)
        return handle

    def set(self, service: AppointmentService) -> None:
        """The service is open: tool calls waiting for it go ahead."""
        self._service = service
        self._settled.set()

    def fail(self, error: BaseException) -> None:
        """Opening failed: tool calls waiting for it, and every later one, are refused saying why."""
        if isinstance(error, AppError):
            reason = error.message
        else:
            detail = str(error).strip().splitlines()
            reason = f"{type(error).__name__}: {detail[0][:300]}" if detail else type(error).__name__
            reason = _CREDENTIALS_IN_URL.sub(r"\1***@", reason)
        self._error = ServiceUnavailable(
            f"The appointment server could not open its database and settings ({reason}), so no tool can run. "
            "Its log (stderr) has the details; fix the cause and restart the server."
        )
        self._settled.set()

    @property
    def opened(self) -> AppointmentService | None:
        """The service if it is open, else None."""
        return self._service

    @property
    def settled(self) -> bool:
        """Whether opening has finished, either way."""
        return self._settled.is_set()

    @property
    def service(self) -> AppointmentService:
        """The open service; raises ServiceUnavailable if opening failed or has not finished."""
        if self._service is not None:
            return self._service
        raise self._error or ServiceUnavailable(
            "The appointment server is still starting; try again in a moment.", retryable=True
        )

    @property
    def timezone(self) -> str:
        """The business's time zone once the service is open; UTC until then."""
        return self._service.timezone if self._service is not None else "UTC"

    async def get(self) -> AppointmentService:
        """The service, once opening has finished; raises ServiceUnavailable if it failed."""
        await self._settled.wait()
        return self.service


# user:password@ in a database URL that an error message may quote.
_CREDENTIALS_IN_URL = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")
