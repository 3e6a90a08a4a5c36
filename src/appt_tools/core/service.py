"""The use cases: find, book, reschedule, cancel, search, update. Every surface (MCP, CLI, demo)
calls these; they validate raw input, talk to Cal.com and the store, and keep the two in agreement.

Order of work for a change: validate everything (nothing written yet), check the slot against
Cal.com's free slots, record the intent in the store, ask Cal.com, record the outcome. A Cal.com
refusal leaves a `failed` record with the reason; an unknown outcome (timeout) leaves `pending`
with `last_error` saying so, never `active`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from appt_tools import validation
from appt_tools.calcom import CalcomClient
from appt_tools.config import Settings
from appt_tools.core.idempotency import PEER_WAIT_SECONDS, POLL_SECONDS, IdempotentCalls
from appt_tools.core.slot_cache import SlotCache
from appt_tools.errors import (
    CalcomError,
    CalcomRejected,
    CalcomSlotTaken,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    LockedField,
    NotConfigured,
    NotFound,
    SlotHeld,
    SlotUnavailable,
)
from appt_tools.models import (
    PAGE_SIZES,
    SORT_FIELDS,
    Appointment,
    AppointmentStatus,
    Booking,
    BookingRequest,
    EventType,
    HistoryEntry,
    NewAppointment,
    SearchPage,
    SearchQuery,
    Slot,
    SlotSearch,
)
from appt_tools.speech import spoken

if TYPE_CHECKING:  # the store (and SQLAlchemy) is imported when one is opened, not to list the tools
    from appt_tools.store import Store

Clock = Callable[[], datetime]
LOCKED_FIELDS = ("to_number", "from_number", "call_type", "booking_uid")
EDITABLE_FIELDS = ("title", "description", "label", "attendee_name", "attendee_email")
DEFAULT_CANCEL_REASON = "Cancelled at the caller's request."
ALTERNATIVES = 3
# Event types are read from memory on every call; the store's copy (which a sync in another process may
# have replaced) is read again when the memory is older than this.
EVENT_TYPES_TTL_SECONDS = 30.0
LOOKAHEAD = timedelta(days=14)
MAX_SLOTS = 100
NOT_CONFIGURED = (
    "Cal.com is not configured: set APPT_TOOLS_CALCOM_API_KEY (or run 'appt-tools settings set calcom_api_key …'), "
    "or start with --sandbox to try it without an account."
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class AppointmentService:
    def __init__(self, store: Store, calcom: CalcomClient | None, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._calcom = calcom
        self.settings = settings
        self._clock = clock
        self.slot_cache = SlotCache()
        self._keys = IdempotentCalls(store, clock, load=self.get)
        self._event_types: tuple[list[EventType], float] | None = None  # (types, monotonic time read)

    def now(self) -> datetime:
        return self._clock()

    # --- settings and event types -------------------------------------------------------------

    @property
    def timezone(self) -> str:
        return self.settings.timezone or "UTC"

    def use_calcom(self, client: CalcomClient | None) -> CalcomClient | None:
        """Switch to another Cal.com client (a new key saved while running); returns the one replaced,
        which the caller closes. Cached slots came from the old one, so they are dropped."""
        old, self._calcom = self._calcom, client
        self.slots_changed()
        return old

    @property
    def calcom(self) -> CalcomClient:
        if self._calcom is None:
            raise NotConfigured(NOT_CONFIGURED)
        return self._calcom

    async def refresh_event_types(self) -> list[EventType]:
        """Sync event types from Cal.com; adopt the host's time zone if none is configured."""
        me = await self.calcom.me()
        types = await self.calcom.event_types(me.username)
        await self.store.replace_event_types(types, now=self._clock())
        self._event_types = (types, monotonic())
        if self.settings.timezone is None:
            await self.store.set_setting("timezone", me.time_zone)
            self.settings = self.settings.model_copy(update={"timezone": me.time_zone})
        return types

    async def list_event_types(self) -> list[EventType]:
        """The synced event types: from memory, from the store when that is stale (see
        EVENT_TYPES_TTL_SECONDS), or from Cal.com when none were ever synced."""
        cached = self._event_types
        if cached is not None and monotonic() - cached[1] < EVENT_TYPES_TTL_SECONDS:
            return list(cached[0])
        types = await self.store.list_event_types()
        if not types and self._calcom is not None:
            return await self.refresh_event_types()
        self._event_types = (types, monotonic())
        return list(types)

    async def event_type(self, event_type_id: int | None) -> EventType:
        types = await self.list_event_types()
        if not types:
            raise NotConfigured(NOT_CONFIGURED)
        wanted = event_type_id if event_type_id is not None else self.settings.event_type_id
        if wanted is None:
            return next((t for t in types if not t.hidden), types[0])
        for candidate in types:
            if candidate.id == wanted:
                return candidate
        known = "; ".join(f"{t.id} ({t.title}, {t.length_minutes} min)" for t in types)
        raise InvalidArgument("event_type_id", f"unknown event type {wanted}; known event types: {known}.")

    def _duration(self, event_type: EventType, requested: int | None) -> int:
        requested = validation.duration("duration_minutes", requested)
        options = event_type.length_options or (event_type.length_minutes,)
        if requested is None:
            configured = self.settings.duration_minutes
            return configured if configured in options else event_type.length_minutes
        if requested not in options:
            allowed = ", ".join(str(o) for o in options)
            raise InvalidArgument(
                "duration_minutes", f"{event_type.title} can be {allowed} minutes long, not {requested}."
            )
        return requested

    # --- slots --------------------------------------------------------------------------------

    async def find_slots(
        self,
        *,
        day: str | None = None,
        start: str | None = None,
        end: str | None = None,
        timezone: str | None = None,
        event_type_id: int | None = None,
        duration_minutes: int | None = None,
    ) -> SlotSearch:
        tz_name = timezone or self.timezone
        tz = validation.zone("timezone", tz_name)
        if day is not None and (start is not None or end is not None):
            raise InvalidArgument("date", "give either date, or start and end, not both.")
        now = self._clock()
        if start is not None or end is not None:
            if start is None or end is None:
                raise InvalidArgument("start" if start is None else "end", "start and end go together.")
            lo = validation.instant("start", start, tz_name)
            hi = validation.instant("end", end, tz_name)
            validation.window(lo, hi)
        else:
            wanted = validation.day("date", day) if day is not None else now.astimezone(tz).date()
            lo, hi = _local_day(wanted, tz)
        if hi <= now:
            raise InvalidArgument(
                "date" if day is not None else "end", "that time is already past; ask for a later one."
            )
        event_type = await self.event_type(event_type_id)
        length = self._duration(event_type, duration_minutes)
        slots = await self._free(event_type, max(lo, now), hi, length)
        later = False
        if not slots:
            later = True
            slots = (await self._free(event_type, hi, hi + LOOKAHEAD, length))[:5]
        return SlotSearch(
            event_type=event_type,
            duration_minutes=length,
            timezone=tz_name,
            window_start=lo,
            window_end=hi,
            slots=tuple(slots[:MAX_SLOTS]),
            later=later,
            truncated=len(slots) > MAX_SLOTS,
        )

    async def _free(
        self,
        event_type: EventType,
        lo: datetime,
        hi: datetime,
        length: int,
        *,
        rescheduling: str | None = None,
        cached: bool = True,
    ) -> list[Slot]:
        """Cal.com's free slots starting within [lo, hi); from the slot cache when it has them."""
        duration = length if event_type.length_options else None
        if cached and rescheduling is None:
            hit = self.slot_cache.get(event_type.id, duration, lo, hi)
            if hit is not None:
                return hit
        slots = await self.calcom.slots(
            event_type.id, lo, hi, duration_minutes=duration, booking_uid_to_reschedule=rescheduling
        )
        if rescheduling is None:
            self.slot_cache.put(event_type.id, duration, lo, hi, slots)
        return slots

    async def _near(
        self, event_type: EventType, start: datetime, length: int, *, rescheduling: str | None = None
    ) -> list[Slot]:
        """Free slots from a day before `start` (but not before now) to a week after it, fresh from Cal.com:
        one call that both confirms `start` is free and yields the nearest alternatives when it is not."""
        lo = max(self._clock(), start - timedelta(days=1))
        return await self._free(
            event_type, lo, start + timedelta(days=7), length, rescheduling=rescheduling, cached=False
        )

    async def _check_free(
        self, event_type: EventType, start: datetime, length: int, *, rescheduling: str | None = None
    ) -> list[Slot]:
        """The free slots around `start`; SlotUnavailable (with the nearest ones) unless `start` is one.
        A slot the cache saw free a moment ago passes without a round trip (Cal.com decides at booking);
        anything else is asked afresh, so a stale cache never refuses a caller."""
        duration = length if event_type.length_options else None
        seen = self.slot_cache.covering(event_type.id, duration, start)
        if seen is not None and any(s.start == start for s in seen):
            return seen
        around = await self._near(event_type, start, length, rescheduling=rescheduling)
        if not any(s.start == start for s in around):
            raise self._unavailable(start, _nearest(around, start), taken=False)
        return around

    def slots_changed(self) -> None:
        """The calendar changed (a booking made, moved, cancelled or synced): cached slots are stale."""
        self.slot_cache.clear()

    async def _taken(self, event_type: EventType, start: datetime, length: int) -> SlotUnavailable:
        """Cal.com refused `start` as taken: the error, with fresh alternatives when Cal.com gives them."""
        self.slots_changed()
        try:
            around = await self._near(event_type, start, length)
        except CalcomError:
            around = []
        return self._unavailable(start, _nearest([s for s in around if s.start != start], start), taken=True)

    def _unavailable(self, start: datetime, alternatives: Sequence[Slot], *, taken: bool) -> SlotUnavailable:
        tz = self.timezone
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

    # --- booking ------------------------------------------------------------------------------

    async def book(
        self,
        *,
        start: str,
        attendee_name: str,
        attendee_email: str,
        to_number: str,
        from_number: str,
        call_type: str,
        title: str | None = None,
        description: str | None = None,
        label: str | None = None,
        business_name: str | None = None,
        event_type_id: int | None = None,
        timezone: str | None = None,
        duration_minutes: int | None = None,
        idempotency_key: str | None = None,
    ) -> Appointment:
        now = self._clock()
        name = validation.text("attendee_name", attendee_name, required=True)
        mail = validation.email("attendee_email", attendee_email)
        to_e164 = validation.phone_e164("to_number", to_number)
        from_e164 = validation.phone_e164("from_number", from_number)
        kind = validation.call_type("call_type", call_type)
        if timezone is not None:
            validation.zone("timezone", timezone)
        when = validation.instant("start", start, timezone)
        validation.in_future("start", when, now, tz_name=timezone or self.timezone)
        key = validation.idempotency_key(idempotency_key)
        event_type = await self.event_type(event_type_id)
        length = self._duration(event_type, duration_minutes)
        new = NewAppointment(
            title=validation.text("title", title) or f"{event_type.title} with {name}",
            description=validation.text("description", description),
            label=validation.text("label", label),
            attendee_name=name,
            attendee_email=mail,
            business_name=validation.text("business_name", business_name) or self.settings.business_name,
            to_number=to_e164,
            from_number=from_e164,
            call_type=kind,
            event_type_id=event_type.id,
            start=when.astimezone(UTC),
            end=(when + timedelta(minutes=length)).astimezone(UTC),
            timezone=timezone or self.timezone,
        )
        return await self._keys.run(
            "book",
            key,
            {**new.model_dump(mode="json"), "duration": length},
            work=lambda scoped: self._book(new, event_type, length, scoped),
            resume=lambda appointment: self._settle_booking(appointment, event_type, length),
        )

    async def _book(self, new: NewAppointment, event_type: EventType, length: int, key: str | None) -> Appointment:
        joined = await self._join_same(new, event_type, length)
        if joined is not None:
            return joined
        try:
            around = await self._check_free(event_type, new.start, length)
        except SlotUnavailable:
            # Not free: perhaps because a concurrent identical call has just booked it.
            joined = await self._join_same(new, event_type, length)
            if joined is not None:
                return joined
            raise
        for _ in range(2):
            try:
                appointment = await self.store.add_appointment(new, now=self._clock(), idempotency_key=key)
            except SlotHeld as held:
                holder = await self._wait_settled(held.holder_id)
                if holder is not None and holder.booking_uid is not None and _same_request(holder, new):
                    return holder
                if holder is None or holder.status is AppointmentStatus.FAILED:
                    continue  # the other attempt failed: the slot may be ours after all
                others = [s for s in around if s.start != new.start]
                raise self._unavailable(new.start, _nearest(others, new.start), taken=True) from None
            return await self._settle_booking(appointment, event_type, length)
        raise self._unavailable(new.start, _nearest([s for s in around if s.start != new.start], new.start), taken=True)

    async def _settle_booking(self, appointment: Appointment, event_type: EventType, length: int) -> Appointment:
        """Take a recorded appointment to its outcome: booked (uid), failed, or still unknown (raises)."""
        if appointment.booking_uid is not None or appointment.status is not AppointmentStatus.PENDING:
            return appointment
        request = BookingRequest(
            start=appointment.start,
            event_type_id=event_type.id,
            attendee_name=appointment.attendee_name,
            attendee_email=appointment.attendee_email,
            attendee_time_zone=appointment.timezone,
            attendee_phone={"inbound": appointment.from_number, "outbound": appointment.to_number}.get(
                appointment.call_type
            ),
            length_minutes=length if event_type.length_options else None,
            metadata={"appointment_id": appointment.id, "call_type": appointment.call_type},
        )
        # An earlier attempt whose answer was lost may have booked it: look before booking again.
        booking = await self._find_created(request) if appointment.last_error else None
        if booking is None:
            try:
                booking = await self.calcom.create_booking(request)
            except CalcomSlotTaken as exc:
                twin = await self._booked_twin(appointment)
                if twin is not None:  # the same request, booked a moment ago by a concurrent call
                    await self._fail(appointment, f"Same request as {twin.id}, which was booked first.")
                    return twin
                await self._fail(appointment, f"Cal.com refused: the slot was taken ({exc.message})")
                raise await self._taken(event_type, appointment.start, length) from exc
            except CalcomUnavailable as exc:
                if not exc.outcome_unknown:
                    await self._fail(
                        appointment, f"Cal.com could not be reached, so nothing was booked ({exc.message})"
                    )
                    raise CalcomUnavailable(
                        "The calendar is not answering, so nothing was booked. Try again in a moment, "
                        "or offer to call the caller back.",
                        status=exc.status,
                        retryable=True,
                    ) from exc
                found = await self._find_created(request)
                if found is None:
                    await self._unknown(appointment, exc)
                    raise CalcomUnavailable(
                        "The calendar did not confirm this booking in time, so it is not confirmed yet. Do not book "
                        f"again: check it later with get_appointment (id {appointment.id}).",
                        status=exc.status,
                        retryable=False,
                        outcome_unknown=True,
                    ) from exc
                booking = found
            except CalcomError as exc:
                await self._fail(appointment, f"Cal.com refused the booking: {exc.message}")
                raise
        return await self._record_booked(appointment, booking)

    async def _record_booked(self, appointment: Appointment, booking: Booking) -> Appointment:
        self.slots_changed()
        return await self.store.update_appointment(
            appointment.id,
            {
                "booking_uid": booking.uid,
                "status": AppointmentStatus.ACTIVE if booking.status == "accepted" else AppointmentStatus.PENDING,
                "start": booking.start,
                "end": booking.end,
                "meeting_url": booking.meeting_url,
                "location": booking.location,
                "last_error": None,
            },
            now=self._clock(),
            history=self.history_entry(
                "booked",
                f"Booked in Cal.com (status {booking.status}).",
                to_start=booking.start,
                to_uid=booking.uid,
            ),
        )

    async def _wait_settled(self, appointment_id: str) -> Appointment | None:
        """Wait (bounded) while another call books `appointment_id`; its state when settled or on time-out."""
        deadline = monotonic() + PEER_WAIT_SECONDS
        while True:
            current = await self.store.get_appointment(appointment_id)
            in_flight = (
                current is not None and current.status is AppointmentStatus.PENDING and current.booking_uid is None
            )
            if not in_flight or (current is not None and current.last_error) or monotonic() >= deadline:
                return current
            await asyncio.sleep(POLL_SECONDS)

    async def _join_same(self, new: NewAppointment, event_type: EventType, length: int) -> Appointment | None:
        """The outcome of an identical request made earlier or in flight right now, if there is one."""
        same = await self._same_booking(new)
        if same is not None and same.booking_uid is None and not same.last_error:
            same = await self._wait_settled(same.id)
            if same is not None and same.booking_uid is None and not same.last_error:
                raise Conflict(
                    "This booking is still being made; try again in a moment.", code="in_progress", retryable=True
                )
        if same is None or same.status is AppointmentStatus.FAILED:
            return None
        return await self._settle_booking(same, event_type, length)

    async def _booked_twin(self, appointment: Appointment) -> Appointment | None:
        twin = await self._same_booking(appointment, exclude=appointment.id)
        return twin if twin is not None and twin.booking_uid is not None else None

    async def _same_booking(self, new: NewAppointment, *, exclude: str | None = None) -> Appointment | None:
        """A live booking for the same caller, attendee, numbers, event type and start: a retried call,
        answered with what the first call booked instead of a second booking or a 'slot taken'."""
        found = await self.store.live_at(new.start)
        return next((c for c in found if c.id != exclude and _same_request(c, new)), None)

    async def _find_created(self, request: BookingRequest) -> Booking | None:
        """After a timeout, ask Cal.com whether the booking was made anyway (it has no idempotency key)."""
        try:
            page = await self.calcom.list_bookings(
                attendee_email=request.attendee_email,
                event_type_id=request.event_type_id,
                after_start=request.start,
                before_end=request.start + timedelta(days=1),
                take=50,
            )
        except CalcomError:
            return None
        for booking in page.bookings:
            if booking.start == request.start and booking.status in ("accepted", "pending"):
                return booking
        return None

    async def _fail(self, appointment: Appointment, reason: str) -> None:
        await self.store.update_appointment(
            appointment.id,
            {"status": AppointmentStatus.FAILED, "last_error": reason},
            now=self._clock(),
            history=self.history_entry("failed", reason),
        )

    async def _unknown(self, appointment: Appointment, exc: CalcomError) -> None:
        reason = f"Cal.com did not answer ({exc.message}); the outcome is unknown until reconciled."
        await self.store.update_appointment(
            appointment.id, {"last_error": reason}, now=self._clock(), history=self.history_entry("failed", reason)
        )

    # --- changing a booking -------------------------------------------------------------------

    async def get(self, appointment_id: str) -> Appointment:
        """By appointment id, or by any Cal.com booking uid it has had."""
        key = (appointment_id or "").strip()
        if not key or len(key) > 100:
            raise InvalidArgument(
                "appointment_id",
                "must be an appointment id or booking uid of at most 100 characters; e.g. 'apt_3kq9x2mz7w1b'.",
            )
        found = await self.store.get_appointment(key) or await self.store.get_by_booking_uid(key)
        if found is None:
            raise NotFound(
                f"No appointment has id {key!r}. Use search_appointments to find it by name, e-mail or phone.",
                code="appointment_not_found",
            )
        return found

    async def history(self, appointment_id: str) -> list[HistoryEntry]:
        return await self.store.history(appointment_id)

    def _ensure_live(self, appointment: Appointment, action: str) -> str:
        """The booking uid of an appointment that can still be changed, or a Conflict saying why not."""
        now = self._clock()
        status = appointment.effective_status(now)
        if status is AppointmentStatus.CANCELLED:
            code = "already_cancelled" if action == "cancel" else "not_reschedulable"
            detail = (
                "It is already cancelled; nothing to do."
                if action == "cancel"
                else ("It was cancelled, and a cancelled appointment cannot be rescheduled. Book a new one instead.")
            )
            raise Conflict(detail, code=code)
        if status is AppointmentStatus.FAILED:
            raise Conflict(
                "It was never booked in Cal.com (the booking failed), so it cannot be changed.",
                code="not_booked",
            )
        if status is AppointmentStatus.COMPLETED:
            raise Conflict("It has already taken place, so it cannot be changed.", code="already_ended")
        if appointment.booking_uid is None:
            raise Conflict(
                "Its booking is not confirmed by Cal.com yet; try again in a minute.",
                code="not_confirmed",
                retryable=True,
            )
        return appointment.booking_uid

    async def reschedule(
        self,
        appointment_id: str,
        new_start: str,
        *,
        reason: str | None = None,
        timezone: str | None = None,
        idempotency_key: str | None = None,
    ) -> Appointment:
        appointment = await self.get(appointment_id)
        if timezone is not None:
            validation.zone("timezone", timezone)
        when = validation.instant("new_start", new_start, timezone).astimezone(UTC)
        validation.in_future("new_start", when, self._clock(), tz_name=timezone or self.timezone)
        why = validation.text("reason", reason) or None
        key = validation.idempotency_key(idempotency_key)

        async def work(scoped: object) -> Appointment:
            # With a key, the call may have waited for its claim: read the appointment again.
            return await self._reschedule(await self.get(appointment.id) if scoped else appointment, when, why)

        payload = {"appointment_id": appointment.id, "new_start": when.isoformat(), "reason": why}
        return await self._keys.run("reschedule", key, payload, work=work, resume=work)

    async def _reschedule(self, appointment: Appointment, when: datetime, why: str | None) -> Appointment:
        uid = self._ensure_live(appointment, "reschedule")
        if appointment.last_error:
            # An earlier attempt's answer was lost: it may have moved the booking already.
            moved = await self._find_rescheduled(uid)
            if moved is not None and moved.start == when:
                return await self._record_moved(appointment, moved, why)
        if when == appointment.start:
            raise InvalidArgument("new_start", "the appointment is already at that time; choose a different one.")
        event_type = await self.event_type(appointment.event_type_id)
        length = int((appointment.end - appointment.start).total_seconds() // 60)
        await self._check_free(event_type, when, length, rescheduling=uid)
        try:
            booking = await self.calcom.reschedule_booking(uid, when, reason=why)
        except CalcomSlotTaken as exc:
            raise await self._taken(event_type, when, length) from exc
        except CalcomUnavailable as exc:
            moved = await self._find_rescheduled(uid)
            if moved is None:
                await self._unknown(appointment, exc)
                raise CalcomUnavailable(
                    "The calendar did not confirm the new time, so the appointment may still be at the old time. "
                    "Do not try again yet; check it with get_appointment in a minute.",
                    status=exc.status,
                    retryable=False,
                    outcome_unknown=True,
                ) from exc
            booking = moved
        return await self._record_moved(appointment, booking, why)

    async def _record_moved(self, appointment: Appointment, booking: Booking, why: str | None) -> Appointment:
        self.slots_changed()
        return await self.store.update_appointment(
            appointment.id,
            {
                "booking_uid": booking.uid,
                "start": booking.start,
                "end": booking.end,
                "status": AppointmentStatus.RESCHEDULED if booking.status == "accepted" else AppointmentStatus.PENDING,
                "meeting_url": booking.meeting_url,
                "location": booking.location,
                "last_error": None,
            },
            now=self._clock(),
            history=self.history_entry(
                "rescheduled",
                why or "Rescheduled.",
                from_start=appointment.start,
                to_start=booking.start,
                from_uid=appointment.booking_uid,
                to_uid=booking.uid,
            ),
        )

    async def _find_rescheduled(self, old_uid: str) -> Booking | None:
        try:
            old = await self.calcom.get_booking(old_uid)
            return await self.calcom.get_booking(old.rescheduled_to_uid) if old.rescheduled_to_uid else None
        except CalcomError:
            return None

    async def cancel(
        self, appointment_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Appointment:
        appointment = await self.get(appointment_id)
        why = validation.text("reason", reason) or DEFAULT_CANCEL_REASON
        key = validation.idempotency_key(idempotency_key)

        async def work(scoped: object) -> Appointment:
            # With a key, the call may have waited for its claim: read the appointment again.
            return await self._cancel(await self.get(appointment.id) if scoped else appointment, why)

        payload = {"appointment_id": appointment.id, "reason": why}
        return await self._keys.run("cancel", key, payload, work=work, resume=work)

    async def _cancel(self, appointment: Appointment, why: str) -> Appointment:
        uid = self._ensure_live(appointment, "cancel")
        try:
            await self.calcom.cancel_booking(uid, why)
            detail = why
        except CalcomRejected as exc:
            if "already been cancelled" not in exc.message:
                raise
            detail = f"{why} (Cal.com already had it cancelled.)"
        self.slots_changed()
        return await self.store.update_appointment(
            appointment.id,
            {"status": AppointmentStatus.CANCELLED, "cancellation_reason": why, "last_error": None},
            now=self._clock(),
            history=self.history_entry("cancelled", detail, from_uid=uid),
        )

    async def update(self, appointment_id: str, changes: Mapping[str, str | None]) -> Appointment:
        """Edit our own fields. To/from numbers, call type and the booking uid are fixed at creation."""
        for key in changes:
            if key in LOCKED_FIELDS:
                raise LockedField(key, "is fixed when the appointment is created and cannot be changed.")
            if key not in EDITABLE_FIELDS:
                raise InvalidArgument(
                    key, f"is not an appointment field you can edit; use {', '.join(EDITABLE_FIELDS)}."
                )
        given = {k: v for k, v in changes.items() if v is not None}
        if not given:
            raise InvalidArgument("changes", f"nothing to update; pass at least one of {', '.join(EDITABLE_FIELDS)}.")
        appointment = await self.get(appointment_id)
        clean: dict[str, object] = {}
        for key, value in given.items():
            if key == "attendee_email":
                clean[key] = validation.email(key, value)
            else:
                clean[key] = validation.text(key, value, required=key in ("title", "attendee_name"))
        changed = {k: v for k, v in clean.items() if getattr(appointment, k) != v}
        if not changed:
            return appointment
        detail = "; ".join(f"{k}: {getattr(appointment, k)!r} → {v!r}" for k, v in changed.items())
        return await self.store.update_appointment(
            appointment.id, changed, now=self._clock(), history=self.history_entry("updated", detail)
        )

    # --- search -------------------------------------------------------------------------------

    async def search(
        self,
        *,
        query: str | None = None,
        status: str | None = None,
        label: str | None = None,
        call_type: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> SearchPage:
        """None means the default: sorted by start, ascending, page 1 of 10."""
        sort_by = sort_by or "start"
        sort_order = sort_order or "asc"
        page = 1 if page is None else page
        page_size = 10 if page_size is None else page_size
        statuses = _statuses(status)
        if sort_by not in SORT_FIELDS:
            raise InvalidArgument("sort_by", f"{sort_by!r} is not sortable; use one of {', '.join(SORT_FIELDS)}.")
        if sort_order not in ("asc", "desc"):
            raise InvalidArgument("sort_order", f"{sort_order!r} is not an order; use 'asc' or 'desc'.")
        if page_size not in PAGE_SIZES:
            raise InvalidArgument("page_size", f"{page_size} is not a page size; use one of 10, 25, 50 or 100.")
        if page < 1:
            raise InvalidArgument("page", f"{page} is not a page number; pages start at 1.")
        tz = ZoneInfo(self.timezone)
        lo = _local_day(validation.day("date_from", date_from), tz)[0] if date_from else None
        hi = _local_day(validation.day("date_to", date_to), tz)[1] if date_to else None
        if lo is not None and hi is not None and hi <= lo:
            raise InvalidArgument("date_to", "must be on or after date_from.")
        text = _phone_digits(validation.text("query", query)) or None
        return await self.store.search(
            SearchQuery(
                text=text,
                statuses=statuses,
                label=validation.text("label", label) or None,
                call_type=validation.call_type("call_type", call_type) if call_type else None,
                start_from=lo,
                start_to=hi,
                sort_by=sort_by,  # checked against SORT_FIELDS above
                descending=sort_order == "desc",
                page=page,
                page_size=page_size,
            ),
            now=self._clock(),
        )

    # --- helpers ------------------------------------------------------------------------------

    def history_entry(
        self,
        action: str,
        detail: str,
        *,
        from_start: datetime | None = None,
        to_start: datetime | None = None,
        from_uid: str | None = None,
        to_uid: str | None = None,
    ) -> HistoryEntry:
        return HistoryEntry.model_validate(
            {
                "at": self._clock(),
                "action": action,
                "detail": detail,
                "from_start": from_start,
                "to_start": to_start,
                "from_booking_uid": from_uid,
                "to_booking_uid": to_uid,
            }
        )


def _local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A local calendar day as a UTC interval (23 or 25 hours long across a DST change)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _nearest(slots: Sequence[Slot], target: datetime) -> list[Slot]:
    closest = sorted(slots, key=lambda s: (abs((s.start - target).total_seconds()), s.start))[:ALTERNATIVES]
    return sorted(closest, key=lambda s: s.start)


def _same_request(existing: Appointment, new: NewAppointment) -> bool:
    """Same caller, attendee, numbers, event type and start: a repeat of the same booking request."""
    return (
        existing.attendee_email.lower() == new.attendee_email.lower()
        and (existing.to_number, existing.from_number) == (new.to_number, new.from_number)
        and existing.event_type_id == new.event_type_id
        and existing.start == new.start
    )


def _phone_digits(query: str) -> str:
    """'(415) 555-0123' → '4155550123', so a number typed any way finds the stored E.164 form."""
    if not re.fullmatch(r"\+?[\d\s().-]+", query) or sum(c.isdigit() for c in query) < 4:
        return query
    return ("+" if query.startswith("+") else "") + "".join(c for c in query if c.isdigit())


def _statuses(raw: str | None) -> tuple[AppointmentStatus, ...]:
    """'active', 'cancelled,completed' or None (everything but failed bookings)."""
    if raw is None or not raw.strip():
        return tuple(s for s in AppointmentStatus if s is not AppointmentStatus.FAILED)
    chosen: list[AppointmentStatus] = []
    for part in raw.split(","):
        name = part.strip().lower()
        try:
            chosen.append(AppointmentStatus(name))
        except ValueError:
            valid = ", ".join(s.value for s in AppointmentStatus)
            raise InvalidArgument("status", f"{part.strip()!r} is not a status; use one of {valid}.") from None
    return tuple(chosen)
