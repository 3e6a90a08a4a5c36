"""Writers that must not interleave on PostgreSQL, as they cannot on SQLite.

On SQLite every write transaction starts with BEGIN IMMEDIATE, so writers run one at a time. On
PostgreSQL two transactions can both find a row missing and both insert it; a check-then-write there
first takes a transaction-scoped advisory lock named after what it checks (an idempotency key, a
booking uid, a setting), and the second writer waits, then finds the first one's row. Names are per
tenant (what they guard is), so one tenant's writers never wait for another's.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from appt_tools.store._scope import tenant_of

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")


def hold(session: Session, name: str) -> None:
    """Until the session's transaction ends, any other writer holding `name` waits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK, {"name": f"appt_tools:{tenant_of(session)}:{name}"})
