"""Times into the store: aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; ValueError if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {value.isoformat()} (a timezone is required)")
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else utc(value, name)
