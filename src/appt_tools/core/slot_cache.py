"""Free slots remembered for a short while, so repeated look-ups during one call cost no Cal.com round trip.

The cache only ever answers "these times were free a moment ago": it is cleared by every booking,
reschedule, cancellation or sync this process makes, entries expire after `ttl` seconds (changes made
elsewhere, by other processes or in Cal.com itself), and it is never trusted to refuse or to confirm a
booking: Cal.com decides when the booking is made, and a slot the cache lacks is looked up afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appt_tools.models import Slot

DEFAULT_TTL = 60.0
MAX_ENTRIES = 256


@dataclass(frozen=True)
class _Entry:
    lo: datetime
    hi: datetime
    slots: tuple[Slot, ...]
    at: float


class SlotCache:
    def __init__(
        self, ttl: float = DEFAULT_TTL, *, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        # (event type id, duration) -> windows fetched for it, newest last
        self._entries: OrderedDict[tuple[int, int | None], list[_Entry]] = OrderedDict()

    def get(self, event_type_id: int, duration: int | None, lo: datetime, hi: datetime) -> list[Slot] | None:
        """The free slots in [lo, hi) if a fresh entry covers that whole window."""
        hit = self.lookup(event_type_id, duration, lo, hi)
        return None if hit is None else hit[0]

    def lookup(
        self, event_type_id: int, duration: int | None, lo: datetime, hi: datetime
    ) -> tuple[list[Slot], float] | None:
        """`get`, with the entry's age in seconds."""
        for entry in self._fresh(event_type_id, duration):
            if entry.lo <= lo and hi <= entry.hi:
                return [s for s in entry.slots if lo <= s.start < hi], self._clock() - entry.at
        return None

    def covering(self, event_type_id: int, duration: int | None, moment: datetime) -> list[Slot] | None:
        """The slots of a fresh entry whose window contains `moment`."""
        for entry in self._fresh(event_type_id, duration):
            if entry.lo <= moment < entry.hi:
                return list(entry.slots)
        return None

    def put(self, event_type_id: int, duration: int | None, lo: datetime, hi: datetime, slots: list[Slot]) -> None:
        key = (event_type_id, duration)
        entries = [e for e in self._alive(key) if not (lo <= e.lo and e.hi <= hi)]
        entries.append(_Entry(lo, hi, tuple(slots), self._clock()))
        self._entries[key] = entries
        self._entries.move_to_end(key)
        while sum(len(v) for v in self._entries.values()) > self._max:
            oldest = next(iter(self._entries))
            self._entries[oldest].pop(0)
            if not self._entries[oldest]:
                del self._entries[oldest]

    def clear(self) -> None:
        """Something changed the calendar: forget everything (a booking blocks every event type's slots)."""
        self._entries.clear()

    def _fresh(self, event_type_id: int, duration: int | None) -> list[_Entry]:
        return list(reversed(self._alive((event_type_id, duration))))  # newest first

    def _alive(self, key: tuple[int, int | None]) -> list[_Entry]:
        """The unexpired entries of `key`, oldest first; expired ones are dropped."""
        now = self._clock()
        entries = [e for e in self._entries.get(key, []) if now - e.at < self.ttl]
        if entries:
            self._entries[key] = entries
        else:
            self._entries.pop(key, None)
        return entries
