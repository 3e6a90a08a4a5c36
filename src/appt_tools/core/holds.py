"""Holding a time while the caller decides: `hold_slot` → a hold id, `book_appointment(hold_id=…)`.

A hold is a row in the store (`holds`), so every process sharing the database sees it: `find_slots`
leaves held times out and a booking of a held time without its hold id is refused with alternatives
(`SlotFinder` filters both). Cal.com is asked to reserve the slot too (POST /v2/slots/reservations,
NOTES §12.14), which hides it from Cal.com's own booking page; a reservation does not stop an API
booking, so the holder's booking goes straight to Cal.com. A hold ends when it is booked, released or
past `expires_at`; an expired row holds nothing and is swept away by the next hold.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from appt_tools import validation
from appt_tools.core.parts import Parts, UseCase
from appt_tools.core.requests import HoldRequest
from appt_tools.errors import CalcomError, CalcomSlotTaken, InvalidArgument
from appt_tools.models import Hold

HOLD_ID_PREFIX = "hold_"


class Holds(UseCase):
    def __init__(self, parts: Parts, defaults: Callable[[], tuple[str, int]]) -> None:
        super().__init__(parts)
        self._defaults = defaults  # (business time zone, hold minutes)

    async def hold(self, request: HoldRequest) -> Hold:
        """Hold a free time; SlotUnavailable (with alternatives) when it is not free or already held."""
        business_tz, minutes = self._defaults()
        now = self._clock()
        validation.in_future("start", request.start, now, tz_name=request.timezone or business_tz)
        event_type = await self._catalog.pick(request.event_type_id)
        length = self._catalog.duration(event_type, request.duration_minutes)
        start = request.start.astimezone(UTC)
        await self._slots.check_free(event_type, start, length)
        try:
            reservation = await self._reserve(
                event_type.id, start, length if event_type.length_options else None, minutes
            )
        except CalcomSlotTaken as exc:  # booked or reserved in Cal.com since our copy was read
            raise await self._slots.refused(event_type, start, length, cause=exc) from None
        hold = Hold(
            id=HOLD_ID_PREFIX + secrets.token_urlsafe(9),
            event_type_id=event_type.id,
            start=start,
            end=start + timedelta(minutes=length),
            expires_at=now + timedelta(minutes=minutes),
            timezone=request.timezone or business_tz,
            reservation_uid=reservation,
            created_at=now,
        )
        if await self._store.add_hold(hold, now=now) is None:  # another call held it a moment ago
            await self._unreserve(reservation)
            raise await self._slots.refused(event_type, start, length, taken=True)
        return hold

    async def release(self, hold_id: str) -> Hold:
        """End a hold early; InvalidArgument when there is none by that id."""
        await self._store.written(_used(hold_id))  # a booking of this process that just used it: it is gone
        ended = await self._store.delete_hold(hold_id)
        if ended is None:
            raise _unknown(hold_id)
        await self._unreserve(ended.reservation_uid)
        self._slots.changed()
        return ended

    async def for_booking(self, hold_id: str) -> Hold:
        """The hold a booking names, live or expired (an expired one is booked like any other time)."""
        await self._store.written(_used(hold_id))
        found = await self._store.get_hold(hold_id)
        if found is None:
            raise _unknown(hold_id)
        return found

    def live(self, hold: Hold) -> bool:
        return hold.expires_at > self._clock()

    def used(self, hold: Hold) -> None:
        """The held time is booked: the hold ends, once the booking's answer is on its way (the caller does
        not wait for that write: `Store.after_answer`; a crash before it leaves a hold on a booked time,
        which lapses at `expires_at`). Cal.com's reservation is left to lapse on its own within minutes (it
        hides a time that is booked now anyway): releasing it would cost the caller a second Cal.com round
        trip for the booking."""
        self._store.after_answer(self._store.delete_hold(hold.id), f"ending hold {hold.id}", key=_used(hold.id))

    async def _reserve(self, event_type_id: int, start: datetime, length: int | None, minutes: int) -> str | None:
        """Cal.com's reservation uid; `CalcomSlotTaken` when Cal.com says the time is booked or reserved."""
        try:
            return await self._calcom().reserve_slot(event_type_id, start, length_minutes=length, minutes=minutes)
        except CalcomSlotTaken:
            raise
        except CalcomError:
            return None  # our hold stands; only Cal.com's own booking page will not hide the time

    async def _unreserve(self, uid: str | None) -> None:
        if uid is None:
            return
        with contextlib.suppress(CalcomError):  # it lapses on its own within minutes
            await self._calcom().release_reservation(uid)


def _used(hold_id: str) -> str:
    """`Store.after_answer`'s key for ending a hold a booking used."""
    return f"hold-used:{hold_id}"


def _unknown(hold_id: str) -> InvalidArgument:
    return InvalidArgument(
        "hold_id",
        f"no hold {hold_id!r}: it was booked, released or never made. Book with the start instead, "
        "or call hold_slot again.",
    )
