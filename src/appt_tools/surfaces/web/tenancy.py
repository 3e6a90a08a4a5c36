"""Which business (tenant) a dashboard request shows and acts for.

A tenant's key (one of its `http_api_keys`; the default tenant's also from the environment) signs in to
that tenant only: its table, calendar, drawer and settings, nothing of another's. An operator's key
(`APPT_TOOLS_OPERATOR_KEYS`), or the open dashboard on loopback with no key anywhere, acts for the tenant
chosen in the header's switcher (kept in the session, the default tenant until one is chosen). The gate
runs every handler inside `Acting.using(tenant)`, so `Acting.service` is that tenant's service (opened
through the runtime's `TenantServices`, which keeps it open while the request runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from pydantic import SecretStr

from appt_tools.core.service import AppointmentService
from appt_tools.runtime import Directory, Runtime

_ACTING: ContextVar[AppointmentService | None] = ContextVar("dashboard_service", default=None)


@dataclass(frozen=True)
class Business:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class Keyring:
    """Every key that may sign in, and whose it is: the operator's, and each tenant's."""

    operator: tuple[SecretStr, ...]
    tenants: tuple[tuple[int, tuple[SecretStr, ...]], ...]
    businesses: tuple[Business, ...]
    default: int

    @property
    def any(self) -> bool:
        return bool(self.operator) or any(keys for _, keys in self.tenants)

    def of(self, tenant_id: int) -> tuple[SecretStr, ...]:
        return next((keys for owner, keys in self.tenants if owner == tenant_id), ())

    def business(self, tenant_id: int | None) -> Business | None:
        return next((b for b in self.businesses if b.id == tenant_id), None)

    def by_slug(self, slug: str) -> Business | None:
        return next((b for b in self.businesses if b.slug == slug), None)

    @classmethod
    def of_directory(cls, directory: Directory, operator: tuple[SecretStr, ...], default: int) -> Keyring:
        return cls(
            operator,
            tuple((t.id, t.http_api_keys) for t in directory.tenants),
            tuple(Business(t.id, t.slug, t.name) for t in directory.tenants),
            default,
        )


KeyringSource = Callable[[], Awaitable[Keyring]]


class Acting:
    """The service of the tenant the current request acts for (the default tenant's outside a request)."""

    def __init__(self, default: AppointmentService) -> None:
        self.default = default

    @property
    def service(self) -> AppointmentService:
        return _ACTING.get() or self.default

    @asynccontextmanager
    async def using(self, tenant_id: int) -> AsyncIterator[AppointmentService]:
        if tenant_id == self.default.store.tenant_id:
            service_cm = None
        else:
            service_cm = Runtime.of(self.default).tenants.acting_for(tenant_id)
        if service_cm is None:
            token = _ACTING.set(self.default)
            try:
                yield self.default
            finally:
                _ACTING.reset(token)
            return
        async with service_cm as service:
            token = _ACTING.set(service)
            try:
                yield service
            finally:
                _ACTING.reset(token)
