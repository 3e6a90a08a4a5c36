"""Times as a voice assistant says them: 'Tuesday, November 24 at 3 PM'."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo


def local(moment: datetime, tz_name: str) -> datetime:
    return moment.astimezone(ZoneInfo(tz_name))


def clock(moment: datetime, tz_name: str) -> str:
    """'3 PM', '10:30 AM': minutes only when there are some, as people say it."""
    at = local(moment, tz_name)
    hour = at.hour % 12 or 12
    minutes = f":{at.minute:02d}" if at.minute else ""
    return f"{hour}{minutes} {'AM' if at.hour < 12 else 'PM'}"


def day(moment: datetime, tz_name: str) -> str:
    """'Tuesday, November 24'."""
    at = local(moment, tz_name)
    return f"{at:%A}, {at:%B} {at.day}"


def when(moment: datetime, tz_name: str) -> str:
    """'Tuesday, November 24 at 3 PM'."""
    return f"{day(moment, tz_name)} at {clock(moment, tz_name)}"


def moment(at: datetime, tz_name: str) -> str:
    """'Friday, December 4, 6:15 PM': a current time as said aloud."""
    return f"{day(at, tz_name)}, {clock(at, tz_name)}"


def choices(moments: Sequence[datetime], tz_name: str) -> str:
    """'Tuesday, November 24 at 3 PM or 3:30 PM', grouping times that share a day."""
    parts: list[str] = []
    last_day = None
    for moment in moments:
        this_day = day(moment, tz_name)
        parts.append(clock(moment, tz_name) if this_day == last_day else when(moment, tz_name))
        last_day = this_day
    return join(parts, "or")


def join(parts: Sequence[str], word: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def iso(moment: datetime, tz_name: str) -> str:
    """ISO 8601 with the zone's offset, seconds precision: '2026-11-24T15:00:00-05:00'."""
    return local(moment, tz_name).isoformat(timespec="seconds")


def phone(number: str) -> str:
    """A phone number in groups, as people read one out: '+1 415-555-0123' (as given if unparseable)."""
    import phonenumbers  # on first use, as validation does

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
