"""The local store (SQLAlchemy asyncio). The only package that knows SQL; it returns domain models."""

from appt_tools.store.store import Store, new_appointment_id

__all__ = ["Store", "new_appointment_id"]
