"""The composition root: settings → store → Cal.com client → service, opened and closed in one place.

The store (SQLAlchemy, the database driver) is imported when a service is opened, in a worker thread,
not when this module is: `appt-tools serve` answers initialize and tools/list while it opens.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from appt_tools import config
from appt_tools.calcom import BudgetLedger, CalcomClient, Grant
from appt_tools.core.service import AppointmentService, Clock, utcnow
from appt_tools.core.slot_cache import SlotCache
from appt_tools.errors import AppError, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from appt_tools.store import Store
    from calcom_sandbox import RunningSandbox


logger = logging.getLogger("appt_tools.runtime")

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
    tenant: str | None = None,
) -> AsyncIterator[AppointmentService]:
    """The service of the default tenant (the environment applies to it, as it always did), or of the
    tenant whose slug is `tenant` (its stored settings, with only the deployment-wide environment over
    them; NotFound naming the slug if there is none). Its runtime's `tenants` opens the others."""
    url = database_url or config.database_url(environ)
    # Importing SQLAlchemy and the driver and creating the engine take a few hundred ms of plain Python:
    # a worker thread does it, so the event loop (an MCP session already being served) keeps answering.
    async with await asyncio.to_thread(_store_on, url) as store:
        default = True
        if tenant is not None:
            found = await store.tenants.get(tenant)
            if found is None:
                raise NotFound(f"There is no tenant {tenant!r}; `appt-tools tenants list` shows the tenants.")
            default = found.id == store.tenant_id
            store = store.for_tenant(found.id)
        settings = config.resolve_for_tenant(await store.get_settings(), environ, default=default)
        if calcom is not None:
            settings = settings.model_copy(
                update={"calcom_api_key": SecretStr(calcom.api_key), "calcom_base_url": calcom.base_url}
            )
        clients = CalcomClients()
        key = settings.calcom_api_key
        client = clients.acquire(settings, key, StoredBudget(store)) if key else None
        service = AppointmentService(store, client, settings, clock=clock)
        runtime = Runtime.adopt(service, clients=clients, environ=environ, owns_clients=True)
        try:
            yield service
        finally:
            await runtime.aclose()


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


class CalcomClients:
    """One Cal.com client per Cal.com key (and base URL, time budget and rate limit): its connection pool,
    its pacing under the rate limit and its circuit breaker are that account's. Tenants sharing a key share
    the client; a client is closed when the last service using it lets it go."""

    def __init__(self) -> None:
        self._clients: dict[tuple[bytes, str, float, int], tuple[CalcomClient, int]] = {}

    @staticmethod
    def _identity(settings: config.Settings, key: SecretStr) -> tuple[bytes, str, float, int]:
        digest = hashlib.sha256(key.get_secret_value().encode()).digest()  # the key itself is kept by the client only
        return digest, settings.calcom_base_url, settings.calcom_timeout, settings.calcom_rate_limit

    def acquire(self, settings: config.Settings, key: SecretStr, budget: BudgetLedger | None = None) -> CalcomClient:
        """The client for `key` on these settings' base URL, time budget and rate limit (made on first use,
        with `budget`, the shared request budget of the store that first asked for it)."""
        identity = self._identity(settings, key)
        client, users = self._clients.get(identity) or (calcom_client(settings, key, budget), 0)
        self._clients[identity] = (client, users + 1)
        return client

    async def release(self, client: CalcomClient) -> None:
        """One user fewer; the last one closes it. A client not made here is simply closed."""
        for identity, (known, users) in self._clients.items():
            if known is client:
                if users > 1:
                    self._clients[identity] = (known, users - 1)
                    return
                del self._clients[identity]
                break
        await client.aclose()

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients = [client for client, _ in self._clients.values()]
        self._clients.clear()
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)


class Runtime:
    """The one owner of a running service's settings and Cal.com client: every change to either goes
    through `apply`, and the clients it made are closed by `aclose` (a replaced one after a grace period,
    so calls already using it can finish). `Runtime.of(service)` finds (or makes) a service's owner.

    The runtime of the service `open_service` opened (the default tenant's) also holds the deployment's
    `CalcomClients` and, on first use of `tenants`, the `TenantServices` of every other tenant."""

    _owners: ClassVar[weakref.WeakKeyDictionary[AppointmentService, Runtime]] = weakref.WeakKeyDictionary()

    def __init__(
        self,
        service: AppointmentService,
        *,
        clients: CalcomClients | None = None,
        environ: Mapping[str, str] | None = None,
        owns_clients: bool = False,
    ) -> None:
        self.service = service
        self.clients = clients
        self.environ = environ
        self._owns_clients = owns_clients
        self._tenants: TenantServices | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, service: AppointmentService) -> Runtime:
        owner = cls._owners.get(service)
        if owner is None:
            owner = cls._owners[service] = cls(service)
        return owner

    @classmethod
    def adopt(cls, service: AppointmentService, **kwargs: Any) -> Runtime:
        """Become the owner of a service just made (its client acquired from `clients`)."""
        owner = cls._owners[service] = cls(service, **kwargs)
        return owner

    @property
    def tenants(self) -> TenantServices:
        """The services of the deployment's tenants (this service is the default tenant's)."""
        if self._tenants is None:
            clients = self.clients
            if clients is None:
                clients = self.clients = CalcomClients()
                self._owns_clients = True
            self._tenants = TenantServices(self.service, clients=clients, environ=self.environ)
        return self._tenants

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
        budget = StoredBudget(self.service.store)
        new = (
            self.clients.acquire(settings, key, budget)
            if self.clients is not None
            else calcom_client(settings, key, budget)
        )
        self.service.reconfigure(settings, new, new_client=True)
        if old is not None:
            task = asyncio.create_task(_close_later(old, self.clients))
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
        """Close every other tenant's service, stop a sync still running and the warm slots' refresh, close
        the client in use and any still waiting to be retired."""
        if self._tenants is not None:
            await self._tenants.aclose()
        await self.service.stop()
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.service.calcom_configured:
            client = self.service.calcom
            await (self.clients.release(client) if self.clients is not None else client.aclose())
        if self._owns_clients and self.clients is not None:
            await self.clients.aclose()


async def _close_later(client: CalcomClient, clients: CalcomClients | None) -> None:
    try:
        await asyncio.sleep(OLD_CLIENT_GRACE_SECONDS)
    finally:
        await (clients.release(client) if clients is not None else client.aclose())


# --- tenants -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantEntry:
    """One tenant as routing sees it: who it is, the numbers it answers on, and its credentials."""

    id: int
    slug: str
    name: str
    numbers: tuple[str, ...]
    http_api_keys: tuple[SecretStr, ...] = ()
    vapi_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None


@dataclass(frozen=True)
class Directory:
    """The deployment's tenants and the operator's credentials, read at one moment (`TenantServices.directory`)."""

    tenants: tuple[TenantEntry, ...]
    operator: config.OperatorCredentials = field(default_factory=config.OperatorCredentials)

    def by_slug(self, slug: str) -> TenantEntry | None:
        return next((t for t in self.tenants if t.slug == slug), None)

    def by_id(self, tenant_id: int) -> TenantEntry | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def by_number(self, number: str) -> TenantEntry | None:
        """The tenant answering on `number` (E.164, as `CallFacts` hold it)."""
        return next((t for t in self.tenants if number in t.numbers), None)

    @property
    def only(self) -> TenantEntry | None:
        """The tenant, when there is exactly one."""
        return self.tenants[0] if len(self.tenants) == 1 else None


# The settings routing needs of every tenant.
_ROUTING_KEYS = ("http_api_keys", "vapi_secret", "retell_api_key", "calcom_webhook_secret")


@dataclass
class _Open:
    service: AppointmentService
    background: AsyncExitStack
    in_use: int = 0
    last_used: float = 0.0


class TenantServices:
    """The `AppointmentService` of each tenant of a deployment, on one database.

    The default tenant's is the service `open_service` opened (the environment applies to it, as it always
    did). Any other tenant's is opened on first use: its `Store.for_tenant(id)` (same pool), its settings
    from its stored values with only the deployment-wide environment over them
    (`config.resolve_for_tenant`), and the Cal.com client of its key from the deployment's
    `CalcomClients` (one per key). When `serve` has been called, each one opened also starts its own
    background work: the start-up sync and its periodic reconciliation. A service unused for `idle_seconds`
    (`APPT_TOOLS_TENANT_IDLE_MINUTES`) is closed; the next call opens it again."""

    def __init__(
        self,
        default: AppointmentService,
        *,
        clients: CalcomClients,
        environ: Mapping[str, str] | None = None,
        idle_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.clients = clients
        self.environ = environ
        self.idle_seconds = config.tenant_idle_seconds(environ) if idle_seconds is None else idle_seconds
        self._monotonic = monotonic
        self._open: dict[int, _Open] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._reconcile_minutes: int | None = None
        self._reaper: asyncio.Task[None] | None = None

    @property
    def opened(self) -> list[int]:
        """The ids of the tenants (besides the default one) whose service is open now."""
        return sorted(self._open)

    def serve(self, *, reconcile_minutes: int) -> None:
        """A server is running: each tenant's service starts its own background work when opened, and idle
        ones are closed every so often."""
        self._reconcile_minutes = reconcile_minutes
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())

    async def service(self, tenant_id: int) -> AppointmentService:
        """The tenant's service, opened if it is not. It may be closed once idle: hold it with `acting_for`."""
        if tenant_id == self.default.store.tenant_id:
            return self.default
        opened = self._open.get(tenant_id)
        if opened is None:
            async with self._locks.setdefault(tenant_id, asyncio.Lock()):
                opened = self._open.get(tenant_id) or await self._start(tenant_id)
        opened.last_used = self._monotonic()
        return opened.service

    @asynccontextmanager
    async def acting_for(self, tenant_id: int) -> AsyncIterator[AppointmentService]:
        """The tenant's service, kept open while the block runs, and the service every `ServiceHandle`
        gives inside it (so the tools act for this tenant)."""
        service = await self.service(tenant_id)
        opened = self._open.get(tenant_id)
        if opened is not None:
            opened.in_use += 1
        token = _ACTING.set(service)
        try:
            yield service
        finally:
            _ACTING.reset(token)
            if opened is not None:
                opened.in_use -= 1
                opened.last_used = self._monotonic()

    async def _start(self, tenant_id: int) -> _Open:
        from appt_tools.store import DEFAULT_TENANT_ID  # already imported: the default service's store is open

        store = self.default.store.for_tenant(tenant_id)
        settings = config.resolve_for_tenant(
            await store.get_settings(), self.environ, default=tenant_id == DEFAULT_TENANT_ID
        )
        key = settings.calcom_api_key
        client = self.clients.acquire(settings, key, StoredBudget(store)) if key else None
        service = AppointmentService(store, client, settings, clock=self.default.now)
        Runtime.adopt(service, clients=self.clients, environ=self.environ)
        background = AsyncExitStack()
        if self._reconcile_minutes is not None:
            from appt_tools.core.reconcile import reconciling

            service.start_sync()
            service.start_warm()  # its own warm slots (core/warm.py), stopped by its runtime's aclose
            await background.enter_async_context(reconciling(service, self._reconcile_minutes))
        opened = self._open[tenant_id] = _Open(service, background, last_used=self._monotonic())
        return opened

    async def close_idle(self) -> list[int]:
        """Close the services of tenants unused for `idle_seconds` with no call running; their ids."""
        now = self._monotonic()
        idle = [
            tenant_id
            for tenant_id, opened in self._open.items()
            if opened.in_use == 0 and now - opened.last_used >= self.idle_seconds
        ]
        for tenant_id in idle:
            await self._close(tenant_id)
        return idle

    async def _close(self, tenant_id: int) -> None:
        opened = self._open.pop(tenant_id, None)
        if opened is not None:
            await opened.background.aclose()
            await Runtime.of(opened.service).aclose()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.idle_seconds / 4))
            try:
                await self.close_idle()
            except Exception:  # a failed close must not stop the next ones
                logger.exception("closing idle tenant services failed")

    async def directory(self) -> Directory:
        """Every tenant (not removed), its numbers and credentials, and the operator's, read now (one
        read of the tenants and one of their stored credentials). Routing re-reads it every few seconds."""
        from appt_tools.store import DEFAULT_TENANT_ID

        admin = self.default.store.tenants
        tenants = await admin.list()
        stored = await admin.stored_settings(_ROUTING_KEYS)
        entries = []
        for tenant in tenants:
            settings = config.resolve_for_tenant(
                stored.get(tenant.id, {}), self.environ, default=tenant.id == DEFAULT_TENANT_ID
            )
            entries.append(
                TenantEntry(
                    tenant.id,
                    tenant.slug,
                    tenant.name,
                    tenant.numbers,
                    settings.http_api_keys,
                    settings.vapi_secret,
                    settings.retell_api_key,
                    settings.calcom_webhook_secret,
                )
            )
        return Directory(tuple(entries), config.OperatorCredentials.of(self.environ))

    async def aclose(self) -> None:
        """Stop closing idle ones, and close every tenant's service (not the default one's)."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        for tenant_id in list(self._open):
            await self._close(tenant_id)


# The service the tools act for inside `TenantServices.acting_for` (else the handle's own).
_ACTING: ContextVar[AppointmentService | None] = ContextVar("acting_service", default=None)


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
        """The service if it is open, else None (inside `TenantServices.acting_for`: that tenant's)."""
        return _ACTING.get() or self._service

    @property
    def settled(self) -> bool:
        """Whether opening has finished, either way."""
        return self._settled.is_set()

    @property
    def service(self) -> AppointmentService:
        """The open service (inside `TenantServices.acting_for`, that tenant's); raises ServiceUnavailable if
        opening failed or has not finished."""
        acting = _ACTING.get()
        if acting is not None:
            return acting
        if self._service is not None:
            return self._service
        raise self._error or ServiceUnavailable(
            "The appointment server is still starting; try again in a moment.", retryable=True
        )

    @property
    def timezone(self) -> str:
        """The business's time zone once the service is open; UTC until then."""
        service = self.opened
        return service.timezone if service is not None else "UTC"

    async def get(self) -> AppointmentService:
        """The service, once opening has finished; raises ServiceUnavailable if it failed."""
        await self._settled.wait()
        return self.service


# user:password@ in a database URL that an error message may quote.
_CREDENTIALS_IN_URL = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")
