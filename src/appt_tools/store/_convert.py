"""Rows to domain models and back. Nothing outside the store package sees a row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from appt_tools.models import Appointment, AppointmentStatus, EventType, HistoryEntry, NewAppointment
from appt_tools.store.tables import AppointmentRow, EventTypeRow, HistoryRow

# Appointment field name -> appointments column, for every field `update_appointment` may change.
CHANGEABLE_FIELDS: dict[str, str] = {
    "booking_uid": "booking_uid",
    "title": "title",
    "description": "description",
    "label": "label",
    "attendee_name": "attendee_name",
    "attendee_email": "attendee_email",
    "business_name": "business_name",
    "to_number": "to_number",
    "from_number": "from_number",
    "call_type": "call_type",
    "event_type_id": "event_type_id",
    "start": "start_at",
    "end": "end_at",
    "timezone": "timezone",
    "status": "status",
    "meeting_url": "meeting_url",
    "location": "location",
    "cancellation_reason": "cancellation_reason",
    "last_error": "last_error",
}


def utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; ValueError if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {value.isoformat()} (a timezone is required)")
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else utc(value, name)


def appointment_row(appointment_id: str, new: NewAppointment, now: datetime) -> AppointmentRow:
    return AppointmentRow(
        id=appointment_id,
        booking_uid=None,
        title=new.title,
        description=new.description,
        label=new.label,
        attendee_name=new.attendee_name,
        attendee_email=new.attendee_email,
        business_name=new.business_name,
        to_number=new.to_number,
        from_number=new.from_number,
        call_type=new.call_type,
        event_type_id=new.event_type_id,
        start_at=utc(new.start, "start"),
        end_at=utc(new.end, "end"),
        timezone=new.timezone,
        status=AppointmentStatus.PENDING.value,
        meeting_url=None,
        location=None,
        cancellation_reason=None,
        last_error=None,
        created_at=now,
        updated_at=now,
    )


def appointment_from_row(row: AppointmentRow, all_uids: Sequence[str]) -> Appointment:
    """`all_uids`: every uid the appointment has had, oldest first (the current one included)."""
    return Appointment(
        id=row.id,
        booking_uid=row.booking_uid,
        previous_booking_uids=tuple(uid for uid in all_uids if uid != row.booking_uid),
        title=row.title,
        description=row.description,
        label=row.label,
        attendee_name=row.attendee_name,
        attendee_email=row.attendee_email,
        business_name=row.business_name,
        to_number=row.to_number,
        from_number=row.from_number,
        call_type=row.call_type,
        event_type_id=row.event_type_id,
        start=utc(row.start_at, "start"),
        end=utc(row.end_at, "end"),
        timezone=row.timezone,
        status=AppointmentStatus(row.status),
        meeting_url=row.meeting_url,
        location=row.location,
        cancellation_reason=row.cancellation_reason,
        last_error=row.last_error,
        created_at=utc(row.created_at, "created_at"),
        updated_at=utc(row.updated_at, "updated_at"),
    )


def history_row(appointment_id: str, entry: HistoryEntry) -> HistoryRow:
    return HistoryRow(
        appointment_id=appointment_id,
        at=utc(entry.at, "history.at"),
        action=entry.action,
        detail=entry.detail,
        from_start=utc_or_none(entry.from_start, "history.from_start"),
        to_start=utc_or_none(entry.to_start, "history.to_start"),
        from_booking_uid=entry.from_booking_uid,
        to_booking_uid=entry.to_booking_uid,
    )


def history_from_row(row: HistoryRow) -> HistoryEntry:
    return HistoryEntry(
        at=utc(row.at, "at"),
        action=row.action,
        detail=row.detail,
        from_start=utc_or_none(row.from_start, "from_start"),
        to_start=utc_or_none(row.to_start, "to_start"),
        from_booking_uid=row.from_booking_uid,
        to_booking_uid=row.to_booking_uid,
    )


def fill_event_type_row(row: EventTypeRow, event_type: EventType, synced_at: datetime) -> None:
    row.title = event_type.title
    row.slug = event_type.slug
    row.length_minutes = event_type.length_minutes
    row.length_options = list(event_type.length_options)
    row.description = event_type.description
    row.location_type = event_type.location_type
    row.location_integration = event_type.location_integration
    row.location_address = event_type.location_address
    row.requires_confirmation = event_type.requires_confirmation
    row.hidden = event_type.hidden
    row.synced_at = synced_at


def event_type_from_row(row: EventTypeRow) -> EventType:
    return EventType(
        id=row.id,
        title=row.title,
        slug=row.slug,
        length_minutes=row.length_minutes,
        length_options=tuple(row.length_options),
        description=row.description,
        location_type=row.location_type,
        location_integration=row.location_integration,
        location_address=row.location_address,
        requires_confirmation=row.requires_confirmation,
        hidden=row.hidden,
    )
