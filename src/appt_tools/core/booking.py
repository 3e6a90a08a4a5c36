"""Booking: from a caller's confirmed time to a Cal.com booking recorded with the call's numbers.

The order of work, top to bottom in `Booker.book`:
1. check what only the core can check (the start is still ahead, the event type and length exist);
2. run once per idempotency key (`IdempotentCalls`), else once per identical request (`_join_same`);
3. refuse a time another caller holds (`hold_slot`; read from the store, no Cal.com round trip);
4. record the intent in the store (pending, no booking uid): a crash from here on leaves a trace
   that reconciliation settles;
5. ask Cal.com (`settle`: the one round trip; Cal.com decides whether the time is free), then record
   the outcome: booked (uid, active or pending), failed (the reason, in `last_error`; a refused time
   comes back with the nearest free ones, looked up only then), or unknown (still pending,
   `last_error` says so; never `active`).

Three guards keep one request from becoming two bookings. Each covers a race the others cannot:
- **Idempotency keys** (`core/idempotency.py`): the same call retried by a client that sends a key,
  even after a crash or with a different instance answering. Only a client that sends a key is covered.
- **The in-flight unique index** (the store's `SlotHeld`): two calls racing for one start at the same
  moment. Only one may be between "recorded" and "answered" for a start; the other waits for it
  (`_wait_settled`) and joins it when it is the same request, or hears "taken". It says nothing about
  an identical request that comes after the first has been answered.
- **Twin detection** (`_join_same`, `_booked_twin`): a repeat without a key (same caller numbers,
  event type and start; a corrected name, e-mail, title, description or label is applied to it), before, during or after the first call's booking: it is answered
  with the first booking instead of a second one or a false "taken". It cannot tell a repeat from a
  second booking that merely looks the same, which is why keys exist.

A call blocked by another in flight waits, then joins an identical booking or tries again, until the
slot is booked by someone else (then "taken", as Cal.com holds it) or the wait runs out (`slot_in_progress`,
retryable). Repeats resuming one appointment whose answer was lost hold its lease (`changing`), so only
one of them asks Cal.com.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import TYPE_CHECKING

from appt_tools import validation
from appt_tools.core import questions
from appt_tools.core.holds import Holds
from appt_tools.core.idempotency import PEER_WAIT_SECONDS, POLL_SECONDS, changing
from appt_tools.core.parts import Parts, UseCase
from appt_tools.core.records import booking_fields, history_entry
from appt_tools.core.requests import BookingDraft
from appt_tools.errors import (
    BookingUidOwned,
    CalcomError,
    CalcomSlotTaken,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    SlotHeld,
    StoreBusy,
)
from appt_tools.models import (
    Appointment,
    AppointmentStatus,
    Booking,
    BookingRequest,
    EventType,
    Hold,
    NewAppointment,
)

if TYPE_CHECKING:
    from appt_tools.store import Store

# The stored statuses of a booking Cal.com holds (or is making): what a repeat joins and what makes a slot taken.
_BOOKED = (AppointmentStatus.PENDING, AppointmentStatus.ACTIVE, AppointmentStatus.RESCHEDULED)
# Writes of a booking Cal.com has made, while the database stays busy, before the caller hears store_busy.
_RECORD_ATTEMPTS = 4


class Booker(UseCase):
    def __init__(self, parts: Parts, defaults: Callable[[], tuple[str, str]], holds: Holds) -> None:
        super().__init__(parts)
        self._defaults = defaults  # (business time zone, business name)
        self._holds = holds

    async def book(self, draft: BookingDraft) -> Appointment:
        return (await self.book_with_corrections(draft))[0]

    async def book_with_corrections(self, draft: BookingDraft) -> tuple[Appointment, tuple[str, ...]]:
        """The booking, and the fields a repeat of a live booking corrected (empty for a new booking or a
        plain repeat)."""
        business_tz, business_name = self._defaults()
        hold = await self._holds.for_booking(draft.hold_id) if draft.hold_id is not None else None
        start = hold.start if hold is not None else draft.start
        assert start is not None  # the surface asks for a start or a hold id
        if hold is not None and draft.start is not None and draft.start != hold.start:
            raise InvalidArgument(
                "start", "is not the time the hold is for; leave start out to book the held time, or release the hold."
            )
        validation.in_future("start", start, self._clock(), tz_name=draft.timezone or business_tz)
        event_type = await self._catalog.pick(hold.event_type_id if hold is not None else draft.event_type_id)
        if hold is not None:
            length = round((hold.end - hold.start).total_seconds() / 60)
        else:
            length = self._catalog.duration(event_type, draft.duration_minutes)
        if draft.attendee_email is None and event_type.email_required:
            raise InvalidArgument(
                "attendee_email",
                f"is required for {event_type.title}: the business's Cal.com asks every booker for an e-mail. Ask "
                "the caller for theirs, e.g. 'ana@example.com', and book again.",
            )
        answers = questions.check(event_type, draft.answers)
        new = NewAppointment(
            title=draft.title or default_title(event_type, draft.attendee_name),
            description=draft.description or "",
            label=draft.label or "",
            attendee_name=draft.attendee_name,
            attendee_email=draft.attendee_email,
            attendee_phone=draft.attendee_phone,
            business_name=draft.business_name or business_name,
            to_number=draft.to_number,
            from_number=draft.from_number,
            call_type=draft.call_type,
            event_type_id=event_type.id,
            start=start.astimezone(UTC),
            end=(start + timedelta(minutes=length)).astimezone(UTC),
            timezone=draft.timezone or (hold.timezone if hold is not None else business_tz),
            answers=answers,
            language=draft.language,
        )
        asked = {
            name: value
            for name, value in (
                ("attendee_name", draft.attendee_name),
                ("attendee_email", draft.attendee_email),
                ("title", draft.title),
                ("description", draft.description),
                ("label", draft.label),
            )
            if value is not None
        }
        live_hold = hold if hold is not None and self._holds.live(hold) else None
        corrected: list[str] = []
        appointment = await self._keys.run(
            "book",
            draft.idempotency_key,
            {**new.model_dump(mode="json"), "duration": length},
            work=lambda scoped: self._book(new, event_type, length, scoped, asked, corrected, live_hold),
            resume=lambda appointment: self.settle(appointment, event_type, length),
        )
        if hold is not None and appointment.booking_uid is not None:
            self._holds.used(hold)
        return appointment, tuple(corrected)

    async def _book(
        self,
        new: NewAppointment,
        event_type: EventType,
        length: int,
        key: str | None,
        asked: dict[str, str],
        corrected: list[str],
        hold: Hold | None,
    ) -> Appointment:
        joined = await self._join_same(new, event_type, length)
        if joined is not None:
            return await self._correct(joined, event_type, asked, corrected)
        # Cal.com decides whether the time is free when it books: no look before (one round trip in all).
        # Only a live hold of another caller's, which Cal.com's API does not enforce, is checked here.
        await self._slots.ensure_not_held(event_type, new.start, length, hold_id=hold.id if hold else None)
        deadline = monotonic() + PEER_WAIT_SECONDS
        while True:
            try:
                appointment = await self._store.add_appointment(new, now=self._clock(), idempotency_key=key)
            except SlotHeld as held:
                holder = await self._wait_settled(held.holder_id) if held.holder_id else None
                booked = holder is not None and holder.booking_uid is not None and holder.status in _BOOKED
                if booked and holder is not None and not _same_request(holder, new):
                    raise await self._slots.refused(event_type, new.start, length, taken=True) from None  # another's
                # The holder was this same request (join it), or failed, or settled a moment ago: whatever an
                # identical call booked is joined; else the slot may be ours after all, and Cal.com decides.
                joined = await self._join_same(new, event_type, length)
                if joined is not None:
                    return await self._correct(joined, event_type, asked, corrected)
                in_flight = holder is not None and holder.status is AppointmentStatus.PENDING and not holder.booking_uid
                if in_flight or monotonic() >= deadline:
                    raise Conflict(
                        "Another booking for this time is still waiting for the calendar's answer, so this one was "
                        "not made. Try again in a minute, or offer another time.",
                        code="slot_in_progress",
                        retryable=True,
                    ) from None
                continue
            return await self.settle(appointment, event_type, length)

    async def _correct(
        self, existing: Appointment, event_type: EventType, asked: dict[str, str], corrected: list[str]
    ) -> Appointment:
        """A repeat of a live booking that brings a corrected name, e-mail, title, description or label:
        our record takes the new values (Cal.com's API v2 has no way to edit a booking's attendee or
        title, so Cal.com keeps what it was booked with), and the history says what changed."""
        changes = {name: value for name, value in asked.items() if getattr(existing, name) != value}
        renamed = changes.get("attendee_name")
        if (
            renamed is not None
            and "title" not in asked
            and existing.title == default_title(event_type, existing.attendee_name)
        ):
            changes["title"] = default_title(event_type, renamed)
        if not changes:
            return existing
        detail = "; ".join(f"{name} {getattr(existing, name)!r} → {value!r}" for name, value in changes.items())
        updated = await self._store.update_appointment(
            existing.id,
            changes,
            now=self._clock(),
            history=history_entry(
                self._clock(),
                "updated",
                f"Corrected by a repeat of the booking: {detail}. Cal.com keeps the original details "
                "(its API cannot edit them).",
            ),
        )
        corrected.extend(name for name in changes if name in asked)  # not a title that followed the name
        return updated

    async def settle(self, appointment: Appointment, event_type: EventType, length: int) -> Appointment:
        """Take a recorded appointment to its outcome: booked (uid), failed, or still unknown (raises)."""
        if appointment.booking_uid is not None or appointment.status is not AppointmentStatus.PENDING:
            return appointment
        caller = appointment.caller_phone()
        request = BookingRequest(
            start=appointment.start,
            event_type_id=event_type.id,
            attendee_name=appointment.attendee_name,
            attendee_email=appointment.attendee_email,
            attendee_time_zone=appointment.timezone,
            attendee_phone=caller,
            length_minutes=length if event_type.length_options else None,
            metadata={"appointment_id": appointment.id, "call_type": appointment.call_type},
            answers=appointment.answers,
            # A phone-call event type: the host calls the attendee back at their number.
            call_attendee_at=(caller or appointment.from_number) if event_type.phone_call else None,
            language=appointment.language,
        )
        # An earlier attempt whose answer was lost may have booked it: look before booking again.
        booking = await self._find_created(request) if appointment.last_error else None
        if booking is None and request.attendee_email is None and request.attendee_phone is None:
            await self._fail(appointment, "No e-mail and no phone number for the caller: Cal.com needs one.")
            raise InvalidArgument("attendee_email", "is needed: there is no phone number for the caller to book with.")
        if booking is None:
            try:
                booking = await self._calcom().create_booking(request)
            except CalcomSlotTaken as exc:
                twin = await self._booked_twin(appointment)
                if twin is not None:  # the same request, booked a moment ago by a concurrent call
                    await self._fail(appointment, f"Same request as {twin.id}, which was booked first.")
                    return twin
                await self._fail(appointment, f"Cal.com refused the time: {exc.message}")
                raise await self._slots.refused(event_type, appointment.start, length, cause=exc) from exc
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
            except asyncio.CancelledError:
                # The caller hung up while Cal.com was asked: say the outcome is unknown, so the slot is not
                # held in silence (peers stop waiting, a repeat looks in Cal.com, reconciliation settles it).
                lost = CalcomUnavailable("the call ended before Cal.com answered", outcome_unknown=True)
                await asyncio.shield(self._unknown(appointment, lost))
                raise
        try:
            linked = await self._link(appointment, booking)
        except BookingUidOwned as owned:
            # Cal.com answered with a booking another of our appointments already holds (an identical
            # pending repeat returns the existing booking, NOTES §12.3; a look-up after a lost answer
            # finds the twin's): this one is that request again, not a second booking.
            await self._fail(
                appointment, f"Same request as {owned.owner_id}, which holds Cal.com booking {booking.uid}."
            )
            owner = await self._store.get_appointment(owned.owner_id)
            if owner is None:  # deleted since: nothing else would have it
                raise
            return owner
        # After our own write, so that telling the other instances (a write too) does not delay it.
        self._slots.changed()
        return linked

    async def _link(self, appointment: Appointment, booking: Booking) -> Appointment:
        """Record the booking Cal.com made for `appointment` (BookingUidOwned: another appointment has it)."""
        for attempt in range(_RECORD_ATTEMPTS):
            try:
                return await self._store.update_appointment(
                    appointment.id,
                    booking_fields(booking),
                    now=self._clock(),
                    history=history_entry(
                        self._clock(),
                        "booked",
                        f"Booked in Cal.com (status {booking.status}).",
                        to_start=booking.start,
                        to_uid=booking.uid,
                    ),
                )
            except StoreBusy:
                # Cal.com has booked it: the link to its uid must not be lost to a busy database (the record
                # would stay pending and unlinked until reconciliation found it). Wait, then write again.
                if attempt == _RECORD_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _wait_settled(self, appointment_id: str) -> Appointment | None:
        """Wait (bounded) while another call books `appointment_id`; its state when settled or on time-out."""
        deadline = monotonic() + PEER_WAIT_SECONDS
        while True:
            current = await self._store.get_appointment(appointment_id)
            in_flight = (
                current is not None and current.status is AppointmentStatus.PENDING and current.booking_uid is None
            )
            if not in_flight or (current is not None and current.last_error) or monotonic() >= deadline:
                return current
            await asyncio.sleep(POLL_SECONDS)

    async def _join_same(self, new: NewAppointment, event_type: EventType, length: int) -> Appointment | None:
        """The outcome of an identical request made earlier or in flight right now, if there is one."""
        while True:
            same = await self._same_booking(new)
            if same is None:
                return None
            if same.booking_uid is None and not same.last_error:
                same = await self._wait_settled(same.id)
                if same is not None and same.booking_uid is None and not same.last_error:
                    raise Conflict(
                        "This booking is still being made; try again in a moment.", code="in_progress", retryable=True
                    )
            if same is not None and same.booking_uid is not None and same.status in _BOOKED:
                return same
            if same is not None and same.status is AppointmentStatus.PENDING:
                # Its answer was lost: resume it, one repeat at a time (each would ask Cal.com otherwise).
                async with changing(self._store, same.id, self._clock) as current:
                    if current is not None and current.status is not AppointmentStatus.FAILED:
                        return await self.settle(current, event_type, length)
            # The one waited for failed (perhaps as the twin of an identical booking made first): look again.

    async def _booked_twin(self, appointment: Appointment) -> Appointment | None:
        twin = await self._same_booking(appointment, exclude=appointment.id)
        return twin if twin is not None and twin.booking_uid is not None else None

    async def _same_booking(self, new: NewAppointment, *, exclude: str | None = None) -> Appointment | None:
        """A live booking for the same caller, attendee, numbers, event type and start: a retried call,
        answered with what the first call booked instead of a second booking or a 'slot taken'."""
        found = await self._store.live_at(new.start)
        same = [c for c in found if c.id != exclude and _same_request(c, new)]
        # The booked one first: an attempt still in flight beside it is a concurrent repeat that will fail.
        return min(same, key=lambda c: c.booking_uid is None, default=None)

    async def _find_created(self, request: BookingRequest) -> Booking | None:
        """After a timeout, ask Cal.com whether the booking was made anyway (it has no idempotency key)."""
        try:
            # A phone-only attendee is stored by Cal.com under a placeholder address: look by name then.
            page = await self._calcom().list_bookings(
                attendee_email=request.attendee_email,
                attendee_name=None if request.attendee_email else request.attendee_name,
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
        await self._store.update_appointment(
            appointment.id,
            {"status": AppointmentStatus.FAILED, "last_error": reason},
            now=self._clock(),
            history=history_entry(self._clock(), "failed", reason),
        )

    async def _unknown(self, appointment: Appointment, exc: CalcomError) -> None:
        await record_unknown(self._store, appointment, exc, self._clock())


async def record_unknown(store: Store, appointment: Appointment, exc: CalcomError, now: datetime) -> None:
    """Cal.com's answer to a change was lost: the appointment keeps its state, and `last_error` says the
    outcome is unknown until a retry or reconciliation looks in Cal.com."""
    reason = f"Cal.com did not answer ({exc.message}); the outcome is unknown until reconciled."
    await store.update_appointment(
        appointment.id, {"last_error": reason}, now=now, history=history_entry(now, "failed", reason)
    )


def _same_request(existing: Appointment, new: NewAppointment) -> bool:
    """Same caller numbers, event type and start: a repeat of the same booking request (one that brings a
    corrected name or e-mail is still a repeat; `Booker._correct` applies the correction)."""
    return (
        (existing.to_number, existing.from_number) == (new.to_number, new.from_number)
        and existing.event_type_id == new.event_type_id
        and existing.start == new.start
    )


def default_title(event_type: EventType, attendee_name: str) -> str:
    return f"{event_type.title} with {attendee_name}"
