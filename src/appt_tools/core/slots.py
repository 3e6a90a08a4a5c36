"""Free slots: what find_slots answers, the check a hold makes, and the alternatives after a refusal.

Cal.com decides availability. A booking or a move goes to Cal.com straight away (one round trip) and
looks at the free slots only when Cal.com refuses, to offer the nearest free times. The next days of the
event types in use are kept warm in memory (`WarmSlots`, core/warm.py) and other answers are cached
briefly (`SlotCache`); a stale copy never refuses a caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from appt_tools import validation
from appt_tools.calcom import CalcomClient
from appt_tools.core.catalog import EventTypeCatalog
from appt_tools.core.requests import SlotRequest
from appt_tools.core.slot_cache import SlotCache
from appt_tools.core.warm import WarmSlots
from appt_tools.errors import CalcomError, CalcomTimeOutOfBounds, InvalidArgument, SlotUnavailable
from appt_tools.models import BusyTimes, EventType, Hold, Slot, SlotSearch
from appt_tools.speech import spoken

ALTERNATIVES = 3
LOOKAHEAD = timedelta(days=14)
MAX_SLOTS = 100


class SlotFinder:
    def __init__(
        self,
        catalog: EventTypeCatalog,
        calcom: Callable[[], CalcomClient],
        clock: Callable[[], datetime],
        timezone: Callable[[], str],
        held: Callable[[datetime, datetime], Awaitable[Sequence[Hold]]] | None = None,
        warm: WarmSlots | None = None,
        busy: Callable[[datetime, datetime, bool], Awaitable[BusyTimes]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._calcom = calcom
        self._clock = clock
        self._timezone = timezone
        self._held = held  # live holds overlapping [lo, hi): times held for a call, offered to no one else
        # Those and the times of bookings still being made (or whose outcome Cal.com has not confirmed): the
        # times find_slots and the alternatives leave out; with True, the change counter in the same read.
        self._busy = busy
        self.cache = SlotCache()
        self.warm = warm

    async def find(self, request: SlotRequest) -> SlotSearch:
        tz_name = request.timezone or self._timezone()
        now = self._clock()
        if request.day is not None and (request.start is not None or request.end is not None):
            raise InvalidArgument("date", "give either date, or start and end, not both.")
        if request.start is not None or request.end is not None:
            if request.start is None or request.end is None:
                raise InvalidArgument("start" if request.start is None else "end", "start and end go together.")
            lo, hi = request.start, request.end
            validation.window(lo, hi)
        else:
            lo, hi = local_day(request.day or now.astimezone(ZoneInfo(tz_name)).date(), ZoneInfo(tz_name))
        if hi <= now:
            raise InvalidArgument(
                "date" if request.day is not None else "end", "that time is already past; ask for a later one."
            )
        event_type = await self._catalog.pick(request.event_type_id)
        length = self._catalog.duration(event_type, request.duration_minutes)
        slots, fresh_as_of = await self._free_as_of(event_type, max(lo, now), hi, length)
        later = False
        if not slots:
            later = True
            slots, after_as_of = await self._free_as_of(event_type, hi, hi + LOOKAHEAD, length)
            slots, fresh_as_of = slots[:5], min(fresh_as_of, after_as_of)
        return SlotSearch(
            event_type=event_type,
            duration_minutes=length,
            timezone=tz_name,
            window_start=lo,
            window_end=hi,
            slots=tuple(slots[:MAX_SLOTS]),
            later=later,
            truncated=len(slots) > MAX_SLOTS,
            fresh_as_of=fresh_as_of,
        )

    async def free(
        self,
        event_type: EventType,
        lo: datetime,
        hi: datetime,
        length: int,
        *,
        rescheduling: str | None = None,
        cached: bool = True,
    ) -> list[Slot]:
        """Cal.com's free slots starting within [lo, hi) and not held; from memory when it has them."""
        return (await self._free_as_of(event_type, lo, hi, length, rescheduling=rescheduling, cached=cached))[0]

    async def _free_as_of(
        self,
        event_type: EventType,
        lo: datetime,
        hi: datetime,
        length: int,
        *,
        rescheduling: str | None = None,
        cached: bool = True,
    ) -> tuple[list[Slot], datetime]:
        """`free`, and when Cal.com said so: from the warm copy, else the cache, else Cal.com now."""
        duration = length if event_type.length_options else None
        if cached and rescheduling is None:
            key = (event_type.id, duration)
            # When the warm copy may answer and needs the change counter, one read for both that and what
            # is busy in the window (which the answer needs anyway).
            busy = None
            if self.warm is not None and self._busy is not None and self.warm.needs_counter(key, lo, hi):
                busy = await self._busy(lo, hi + timedelta(minutes=length), True)
            changes = None if busy is None else busy.changes
            warm = None if self.warm is None else await self.warm.get(key, lo, hi, changes=changes)
            if warm is not None:
                return await self._unheld(warm[0], busy), warm[1]
            hit = self.cache.lookup(event_type.id, duration, lo, hi)
            if hit is not None:
                return await self._unheld(hit[0], busy), self._clock() - timedelta(seconds=hit[1])
        asked = self._clock()
        slots = await self._calcom().slots(
            event_type.id, lo, hi, duration_minutes=duration, booking_uid_to_reschedule=rescheduling
        )
        if rescheduling is None:
            self.cache.put(event_type.id, duration, lo, hi, slots)
        return await self._unheld(slots), asked

    async def _unheld(self, slots: Sequence[Slot], busy: BusyTimes | None = None) -> list[Slot]:
        """`slots` without those overlapping a live hold or a booking still being made (read fresh unless
        `busy` was read just now for a window covering them: another process may have one): offered now,
        such a time would only be refused."""
        if self._busy is None or not slots:
            return list(slots)
        if busy is None:
            busy = await self._busy(min(s.start for s in slots), max(s.end for s in slots), False)
        return [s for s in slots if not any(start < s.end and s.start < end for start, end in busy.times)]

    async def near(
        self, event_type: EventType, start: datetime, length: int, *, rescheduling: str | None = None
    ) -> list[Slot]:
        """Free slots from a day before `start` (but not before now) to a week after it, fresh from Cal.com:
        one call that both confirms `start` is free and yields the nearest alternatives when it is not."""
        lo = max(self._clock(), start - timedelta(days=1))
        return await self.free(
            event_type, lo, start + timedelta(days=7), length, rescheduling=rescheduling, cached=False
        )

    async def check_free(self, event_type: EventType, start: datetime, length: int) -> None:
        """SlotUnavailable (with the nearest free times) unless `start` is free and not held. Only a hold
        checks first (Cal.com's reservation does not check working hours); a booking or a move asks Cal.com
        straight away (`refused` after). A time the warm copy or the cache saw free passes without a round
        trip: Cal.com's reservation still refuses a time booked or reserved since (`Holds.hold`)."""
        duration = length if event_type.length_options else None
        key, end = (event_type.id, duration), start + timedelta(minutes=1)
        busy = None  # read with the change counter when the warm copy may answer (as in `_free_as_of`)
        if self.warm is not None and self._busy is not None and self.warm.needs_counter(key, start, end):
            busy = await self._busy(start, start + timedelta(minutes=length), True)
        seen = self.cache.covering(event_type.id, duration, start)
        if seen is None and self.warm is not None:
            warm = await self.warm.get(key, start, end, changes=None if busy is None else busy.changes)
            seen = None if warm is None else warm[0]
        if seen is not None and any(s.start == start for s in seen):
            if any(s.start == start for s in await self._unheld([s for s in seen if s.start == start], busy)):
                return
            raise await self.refused(event_type, start, length, taken=True)  # another call holds it
        around = await self.near(event_type, start, length)
        if not any(s.start == start for s in around):
            raise self.unavailable(start, around, taken=False)

    async def ensure_not_held(
        self, event_type: EventType, start: datetime, length: int, *, hold_id: str | None = None
    ) -> None:
        """SlotUnavailable (with alternatives) when another caller's live hold covers [start, start+length).
        Read from the store, which every process shares: no Cal.com round trip unless it is held."""
        if self._held is None:
            return
        end = start + timedelta(minutes=length)
        if any(h.id != hold_id for h in await self._held(start, end)):
            raise await self.refused(event_type, start, length, taken=True)

    def changed(self) -> None:
        """The calendar changed (a booking made, moved, cancelled or synced): cached slots are stale, and
        the warm ones are read again at once (on every instance sharing the database)."""
        self.cache.clear()
        if self.warm is not None:
            self.warm.changed()

    async def refused(
        self,
        event_type: EventType,
        start: datetime,
        length: int,
        *,
        taken: bool | None = None,
        cause: CalcomError | None = None,
        rescheduling: str | None = None,
    ) -> SlotUnavailable:
        """`start` cannot be had (Cal.com refused it, or another call holds or booked it): the error, with
        fresh alternatives when Cal.com gives them. This is the only slot look-up a booking or a move makes,
        and only after a refusal. `taken` None: "just taken" if this process saw the time free a moment
        ago, else "not a free time" (Cal.com's refusal does not say which); never "taken" when Cal.com
        said the start is out of its bounds (`cause`)."""
        if isinstance(cause, CalcomTimeOutOfBounds):
            taken = False
        if taken is None:
            duration = length if event_type.length_options else None
            seen = self.cache.covering(event_type.id, duration, start)
            taken = (seen is not None and any(s.start == start for s in seen)) or (
                self.warm is not None and self.warm.saw_free((event_type.id, duration), start)
            )
        if cause is not None:  # Cal.com knew better than our copies: they are stale (a hold changes nothing)
            self.changed()
        try:
            around = await self.near(event_type, start, length, rescheduling=rescheduling)
        except CalcomError:
            around = []
        return self.unavailable(start, around, taken=taken)

    def unavailable(self, start: datetime, around: Sequence[Slot], *, taken: bool) -> SlotUnavailable:
        """`start` cannot be had: the error offering the nearest of `around` (other than `start`)."""
        alternatives = nearest([s for s in around if s.start != start], start)
        tz = self._timezone()
        opening = (
            f"{spoken.when(start, tz)} was just taken." if taken else f"{spoken.when(start, tz)} is not a free time."
        )
        if alternatives:
            offer = spoken.choices([s.start for s in alternatives], tz)
            message = (
                f"{opening} The nearest free times are {offer}. Offer these to the caller and book the one they choose."
            )
        else:
            message = f"{opening} Nothing is free in the week around it; call find_slots with a later date."
        return SlotUnavailable(message, alternatives, taken=taken)


def local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A local calendar day as a UTC interval (23 or 25 hours long across a DST change)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def nearest(slots: Sequence[Slot], target: datetime) -> list[Slot]:
    closest = sorted(slots, key=lambda s: (abs((s.start - target).total_seconds()), s.start))[:ALTERNATIVES]
    return sorted(closest, key=lambda s: s.start)
