"""The local store (SQLAlchemy asyncio). The only package that knows SQL; it returns domain models.

A `Store` acts for one tenant (the default one unless named: `Store.for_tenant`); `Store.tenants` is
the `TenantAdmin` that manages them (docs/architecture.md, "Tenants")."""

from appt_tools.store.store import Store, new_appointment_id
from appt_tools.store.tables import DEFAULT_TENANT_ID, DEFAULT_TENANT_SLUG
from appt_tools.store.tenants import TenantAdmin

__all__ = ["DEFAULT_TENANT_ID", "DEFAULT_TENANT_SLUG", "Store", "TenantAdmin", "new_appointment_id"]
