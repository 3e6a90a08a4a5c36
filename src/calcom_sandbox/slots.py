"""Slot arithmetic: weekly working hours in the host's zone, the grid of start times, busy intervals.

Pure functions over aware datetimes. Working hours are wall-clock times in the host's IANA zone and are
turned into UTC day by day with zoneinfo, so a DST change moves the UTC times of the same local hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]
# Weekday (Monday = 0) -> the day's open windows as local (open, close) wall-clock times.
WorkingHours = Mapping[int, Sequence[tuple[time, time]]]

WEEKDAYS_9_TO_5: WorkingHours = {day: ((time(9), time(17)),) for day in range(5)}


@dataclass(frozen=True)
class Schedule:
    """A host's availability: a zone and its weekly working hours."""

    zone: ZoneInfo
    hours: WorkingHours

    def windows(self, first: date, last: date) -> list[Interval]:
        """The open windows of local days `first`..`last`, in UTC."""
        out: list[Interval] = []
        day = first
        while day <= last:
            for opens, closes in self.hours.get(day.weekday(), ()):
                out.append((self._utc(day, opens), self._utc(day, closes)))
            day += timedelta(days=1)
        return out

    def grid(self, start: datetime, end: datetime, length: timedelta, step: timedelta) -> list[datetime]:
        """Starts in [start, end] of `length` meetings that fit a window, stepping from its opening."""
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        starts: list[datetime] = []
        for opens, closes in self.windows(first, last):
            at = opens
            while at + length <= closes:
                if start <= at <= end:
                    starts.append(at)
                at += step
        return starts

    def _utc(self, day: date, wall: time) -> datetime:
        return datetime.combine(day, wall, tzinfo=self.zone).astimezone(UTC)


def is_free(start: datetime, end: datetime, before: timedelta, after: timedelta, busy: Iterable[Interval]) -> bool:
    """True when [start - before, end + after] touches no busy interval (touching ends are fine)."""
    lo, hi = start - before, end + after
    return all(hi <= busy_start or lo >= busy_end for busy_start, busy_end in busy)


def iso_z(value: datetime) -> str:
    """`2050-09-05T07:00:00.000Z`, as JavaScript's `Date.toISOString()` writes it."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def iso_in_zone(value: datetime, zone_name: str | None) -> str:
    """Luxon's `toISO()` in `zone_name`: `Z` for UTC (or no zone), otherwise the zone's offset."""
    if zone_name is None or zone_name.lower() in ("utc", "gmt"):
        return iso_z(value)
    return value.astimezone(ZoneInfo(zone_name)).isoformat(timespec="milliseconds")


def local_date_key(value: datetime, zone_name: str | None) -> str:
    zone = UTC if zone_name is None or zone_name.lower() in ("utc", "gmt") else ZoneInfo(zone_name)
    return value.astimezone(zone).date().isoformat()
