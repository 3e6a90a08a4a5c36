"""Tenant scoping, in one place: every session the store opens acts for one tenant, or for all of them
(the operator's: tenant administration, migrations, seeding).

- Reads, updates and deletes: `do_orm_execute` adds `tenant_id = <tenant>` to every ORM statement for
  every `TenantScoped` table it touches, subqueries and CTEs included (`with_loader_criteria`), so no
  store method can forget it. Plain SQL (`text()`) is not ORM: the store's few plain statements read
  catalogues and statistics, never rows of a tenant.
- Inserts: `before_flush` sets `tenant_id` on every new `TenantScoped` row (refusing one that names
  another tenant).
- PostgreSQL: each transaction runs with `app.tenant_id` naming its tenant (or `app.all_tenants` =
  'on' for the operator), set from the engine's `begin` event (see `_on_begin`), and row-level security
  (migration 0006, `ENABLE` + `FORCE`) admits only that tenant's rows, so a statement that escaped the
  store's filter still sees nothing of another tenant.

A session must say who it acts for: a `TenantSession` without a tenant refuses every statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker, with_loader_criteria

from appt_tools.store.tables import TenantScoped

# The session's info key and the engine's execution option naming the tenant.
TENANT = "appt_tools_tenant"
# The operator's marker: every tenant (no filter; on PostgreSQL, the policies' `app.all_tenants`).
ALL_TENANTS = "*"
Scope = int | str  # a tenant id, or ALL_TENANTS

# PostgreSQL's per-transaction settings the row-level security policies read (migration 0006).
TENANT_SETTING = "app.tenant_id"
ALL_TENANTS_SETTING = "app.all_tenants"


class TenantSession(Session):
    """A store session: `info[TENANT]` is the tenant it acts for (or ALL_TENANTS)."""


def tenant(tenant_id: int) -> int:
    """`tenant_id` if it can be a tenant's id (a positive int); ValueError otherwise."""
    if isinstance(tenant_id, int) and not isinstance(tenant_id, bool) and tenant_id > 0:
        return tenant_id
    raise ValueError(f"tenant: a tenant id (a positive integer), not {tenant_id!r}")


def check(scope: Scope) -> Scope:
    return scope if scope == ALL_TENANTS else tenant(scope)  # type: ignore[arg-type]


def bind(engine: AsyncEngine, scope: Scope) -> AsyncEngine:
    """`engine` (same pool) for `scope`: on PostgreSQL its transactions set the tenant first."""
    return engine.execution_options(**{TENANT: check(scope)})


def sessions(engine: AsyncEngine, scope: Scope) -> async_sessionmaker[AsyncSession]:
    """Async sessions acting for `scope`, on `engine` (already `bind`-ed to the same scope)."""
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TenantSession, info={TENANT: scope})


def sync_sessions(engine: Any, scope: Scope) -> sessionmaker[Session]:
    """Sessions acting for `scope` on a synchronous engine (the SQLite file writer)."""
    return sessionmaker(engine, expire_on_commit=False, class_=TenantSession, info={TENANT: check(scope)})


def tenant_of(session: Session) -> Scope:
    scope: Scope | None = session.info.get(TENANT)
    if scope is None:
        raise RuntimeError("a store session acting for no tenant (open it with _scope.sessions)")
    return scope


@event.listens_for(TenantSession, "do_orm_execute")
def _filter(state: ORMExecuteState) -> None:
    scope = tenant_of(state.session)
    if scope == ALL_TENANTS or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(TenantScoped, lambda row: row.tenant_id == scope, include_aliases=True)
        )


@event.listens_for(TenantSession, "before_flush")
def _stamp(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    scope = tenant_of(session)
    for row in session.new:
        if not isinstance(row, TenantScoped):
            continue
        if scope == ALL_TENANTS:
            if row.tenant_id is None:
                raise RuntimeError(f"{type(row).__name__}: an operator session must name the row's tenant")
        elif row.tenant_id is None:
            row.tenant_id = int(scope)
        elif row.tenant_id != scope:
            raise RuntimeError(f"{type(row).__name__}: tenant {row.tenant_id} written by a store of tenant {scope}")


def prepare_postgresql(sync_engine: Any) -> None:
    """Install the hooks that name each transaction's tenant (once per engine)."""
    for target, name, hook in (
        (sync_engine, "begin", _on_begin),
        (sync_engine, "commit", _on_commit),
        (sync_engine, "rollback", _on_rollback),
        (sync_engine, "handle_error", _on_error),
        (sync_engine.pool, "reset", _on_reset),
    ):
        if not event.contains(target, name, hook):
            event.listen(target, name, hook)


# In a pooled connection's `info`: the tenant its PostgreSQL session names (`app.tenant_id`), and
# whether the transaction that set it has yet to commit.
_NAMED = "appt_tools_tenant_named"
_UNCOMMITTED = "appt_tools_tenant_uncommitted"


def _on_begin(connection: Connection) -> None:
    """Name the transaction's tenant for row-level security, at no cost when the connection already
    does: `app.tenant_id` is set for the PostgreSQL session (not the transaction) and remembered with
    the pooled connection, so connections that keep serving one tenant send it once (a statement, and
    a round trip, per transaction otherwise). The operator's `app.all_tenants` is set for its
    transaction only. A rollback (or an error) in the transaction that set it undoes the `set_config`:
    then the connection forgets what it named, and the next transaction names it again."""
    scope = connection.get_execution_options().get(TENANT)
    if scope is None:
        return
    if scope == ALL_TENANTS:
        connection.exec_driver_sql(f"SELECT set_config('{ALL_TENANTS_SETTING}', 'on', true)")
        return
    info = connection.connection.info
    if info.get(_NAMED) != scope:
        info.pop(_NAMED, None)
        # an int (checked by `bind`): nothing to quote
        connection.exec_driver_sql(f"SELECT set_config('{TENANT_SETTING}', '{int(scope)}', false)")
        info[_NAMED], info[_UNCOMMITTED] = scope, True


def _on_commit(connection: Connection) -> None:
    if not connection.invalidated:
        connection.connection.info.pop(_UNCOMMITTED, None)


def _on_rollback(connection: Connection) -> None:
    if not connection.invalidated:
        _forget_uncommitted(connection.connection.info)


def _on_error(context: Any) -> None:
    connection = context.connection
    if connection is not None and not connection.closed and not connection.invalidated:
        connection.connection.info.pop(_NAMED, None)


def _on_reset(_dbapi_connection: Any, record: Any, _state: Any = None) -> None:
    _forget_uncommitted(record.info)


def _forget_uncommitted(info: dict[Any, Any]) -> None:
    if info.pop(_UNCOMMITTED, False):
        info.pop(_NAMED, None)
