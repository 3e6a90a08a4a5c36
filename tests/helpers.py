"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

HOST_TZ = "America/New_York"
BUSINESS_ENV = {"APPT_TOOLS_TIMEZONE": HOST_TZ, "APPT_TOOLS_BUSINESS_NAME": "Acme Dental"}


def next_weekday(after_days: int = 2) -> date:
    """A Monday-to-Friday date at least `after_days` ahead in the host's zone (never today: notice rules)."""
    day = datetime.now(ZoneInfo(HOST_TZ)).date() + timedelta(days=after_days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def booking_args(start: str, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "start": start,
        "attendee_name": "Ana Ruiz",
        "attendee_email": "ana.ruiz@example.com",
        "to_number": "+14155550100",
        "from_number": "+14155550123",
        "call_type": "inbound",
        "title": "Teeth cleaning",
        "label": "new-client",
        "description": "First visit",
    }
    args.update(overrides)
    return args
