"""How a Cal.com booking is written onto an appointment, and how history entries are made: one place
for what booking, rescheduling and reconciliation all record."""

from __future__ import annotations

from datetime import datetime

from appt_tools.models import AppointmentStatus, Booking, HistoryEntry


def booked_status(booking: Booking, *, moved: bool = False) -> AppointmentStatus:
    """Cal.com's `accepted` is our active (rescheduled, for a moved booking); anything else still live
    (pending, awaiting the host) is pending."""
    if booking.status != "accepted":
        return AppointmentStatus.PENDING
    return AppointmentStatus.RESCHEDULED if moved else AppointmentStatus.ACTIVE


def booking_fields(booking: Booking, *, moved: bool = False) -> dict[str, object]:
    """The appointment's fields that follow a Cal.com booking (a live one: see `booked_status`); the host
    only when Cal.com names one, so an answer without `hosts` keeps the one recorded."""
    host = {"host_name": booking.host_name, "host_email": booking.host_email} if booking.host_name else {}
    return {
        **host,
        "booking_uid": booking.uid,
        "status": booked_status(booking, moved=moved),
        "start": booking.start,
        "end": booking.end,
        "meeting_url": booking.meeting_url,
        "location": booking.location,
        "last_error": None,
    }


def history_entry(
    at: datetime,
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
            "at": at,
            "action": action,
            "detail": detail,
            "from_start": from_start,
            "to_start": to_start,
            "from_booking_uid": from_uid,
            "to_booking_uid": to_uid,
        }
    )
