"""The host's decision on a pending booking (an event type that needs confirmation): confirm or decline
it through Cal.com (`POST /v2/bookings/{uid}/confirm|decline`, NOTES §3.9), which tells the attendee;
the store follows and the history records it.

Cal.com may have settled it already (the host used Cal.com's own page): its 400 for a booking no
longer pending is answered by reading the booking, so the store ends in agreement with Cal.com.
"""

from __future__ import annotations

from typing import Literal

from appt_tools.core.parts import Parts, UseCase
from appt_tools.core.records import booking_fields, history_entry
from appt_tools.errors import CalcomRejected, Conflict
from appt_tools.models import Appointment, AppointmentStatus, Booking

DEFAULT_DECLINE_REASON = "Declined by the host."


class Decisions(UseCase):
    def __init__(self, parts: Parts) -> None:
        super().__init__(parts)
        self._changed = parts.slots.changed  # the calendar changed: cached slots are stale

    async def confirm(self, appointment: Appointment) -> Appointment:
        uid = _pending_uid(appointment, "confirm")
        try:
            booking = await self._calcom().confirm_booking(uid)
            detail = "Confirmed by the host in Cal.com; the attendee was told."
        except CalcomRejected:
            booking = await self._settled_already(uid, "confirm")
            detail = "Cal.com had it confirmed already."
        if booking.status in ("cancelled", "rejected"):
            return await self._record_declined(appointment, booking, "Cal.com had it declined or cancelled already.")
        self._changed()
        return await self._store.update_appointment(
            appointment.id,
            booking_fields(booking),
            now=self._clock(),
            history=history_entry(self._clock(), "confirmed", detail, to_uid=booking.uid),
        )

    async def decline(self, appointment: Appointment, reason: str | None = None) -> Appointment:
        uid = _pending_uid(appointment, "decline")
        try:
            booking = await self._calcom().decline_booking(uid, reason)
            detail = f"Declined by the host in Cal.com; the attendee was told. ({reason or DEFAULT_DECLINE_REASON})"
        except CalcomRejected:
            booking = await self._settled_already(uid, "decline")
            if booking.status == "accepted":
                raise Conflict(
                    "The host has confirmed this booking in Cal.com already, so it cannot be declined; cancel it "
                    "instead if it should not happen.",
                    code="already_confirmed",
                ) from None
            detail = "Cal.com had it declined or cancelled already."
        return await self._record_declined(appointment, booking, detail, reason)

    async def _record_declined(
        self, appointment: Appointment, booking: Booking, detail: str, reason: str | None = None
    ) -> Appointment:
        self._changed()
        return await self._store.update_appointment(
            appointment.id,
            {
                "status": AppointmentStatus.CANCELLED,
                "cancellation_reason": reason or booking.cancellation_reason or DEFAULT_DECLINE_REASON,
                "last_error": None,
            },
            now=self._clock(),
            history=history_entry(self._clock(), "declined", detail),
        )

    async def _settled_already(self, uid: str, verb: str) -> Booking:
        """Cal.com refused because the booking is no longer pending: what it is now (else the refusal)."""
        booking = await self._calcom().get_booking(uid)
        if booking.status == "pending":
            raise Conflict(f"Cal.com would not {verb} this booking; try again in a moment.", retryable=True)
        return booking


def _pending_uid(appointment: Appointment, verb: Literal["confirm", "decline"]) -> str:
    if appointment.status is not AppointmentStatus.PENDING or appointment.booking_uid is None:
        raise Conflict(
            f"Only a booking waiting for the host can be {verb}ed; this one is {appointment.status.value}"
            + (" and not yet in Cal.com." if appointment.booking_uid is None else "."),
            code="not_pending",
        )
    return appointment.booking_uid
