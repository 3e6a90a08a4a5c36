"""The sandbox's clock for harnesses: it runs like the wall clock, from wherever it was started or set.

`appt-tools sandbox --clock 2030-01-07T08:55:00-05:00` starts it there; `POST /_sandbox/clock` moves
it (`{"advance_minutes": N}` or `{"set": ISO}`); `POST /_sandbox/reset` puts it back where it started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class TravelClock:
    """`now()` is the wall clock shifted by an offset that `set` and `advance` change."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError("the clock's start needs a UTC offset, e.g. 2030-01-07T08:55:00-05:00")
        self._start = start
        self._offset = timedelta()
        self.restart()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def set(self, at: datetime) -> None:
        if at.utcoffset() is None:
            raise ValueError("a time for the clock needs a UTC offset")
        self._offset = at.astimezone(UTC) - datetime.now(UTC)

    def advance(self, minutes: float) -> None:
        self._offset += timedelta(minutes=minutes)

    def restart(self) -> None:
        """Back to where it started: the `start` given, else the wall clock."""
        self._offset = timedelta() if self._start is None else self._start.astimezone(UTC) - datetime.now(UTC)
