"""The `payload` of Cal.com's booking webhooks (NOTES §8), built from a sandbox booking.

Cal.com builds it from its CalendarEvent (`handleNewBooking`, `handleCancelBooking`, `confirm.handler`),
JSON.stringify drops what is undefined, and `sendPayload` adds each person's `utcOffset` and fills an
empty `description` with the notes. Its time formats differ by path: the booking paths write
`2030-10-29T13:00:00Z`, confirm and decline `2030-10-29T13:00:00.000Z`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from calcom_sandbox.records import BookingRecord, EventTypeDef, Host, Location
from calcom_sandbox.slots import iso_z

TimeStyle = Literal["seconds", "millis"]

# Cal.com's app ids for the sandbox's video integrations, as a booking's location stores them.
_INTEGRATION_LOCATIONS: Final = {
    "cal-video": "integrations:daily",
    "zoom": "integrations:zoom",
    "google-meet": "integrations:google:meet",
}
# The default booking fields' labels, as i18n keys (Cal.com's defaultLabel).
_LABELS: Final = {
    "name": "your_name",
    "email": "email_address",
    "location": "location",
    "title": "what_is_this_meeting_about",
    "notes": "additional_notes",
    "guests": "additional_guests",
    "rescheduleReason": "reschedule_reason",
    "attendeePhoneNumber": "phone_number",
}


def booking_payload(
    booking: BookingRecord,
    event_type: EventTypeDef | None,
    host: Host,
    *,
    status: Literal["ACCEPTED", "PENDING", "CANCELLED", "REJECTED"],
    has_meeting: bool,
    times: TimeStyle = "seconds",
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The payload for one booking event. `has_meeting`: the video meeting exists (not while pending),
    so `metadata.videoCallUrl` is set. `extra` adds the trigger's own fields (reschedule, cancel…)."""
    start, end = booking.start, booking.end
    notes = booking.responses.get("notes")
    additional_notes = notes if isinstance(notes, str) else ""
    description = (event_type.description if event_type else "") or additional_notes
    attendee = booking.attendee
    people: list[dict[str, object]] = [
        {
            "email": attendee.email,
            "name": attendee.name,
            "timeZone": attendee.time_zone,
            **({"phoneNumber": attendee.phone_number} if attendee.phone_number else {}),
            "language": {"locale": attendee.language},
            "utcOffset": _utc_offset(attendee.time_zone, start),
        }
    ]
    people += [
        {
            "email": guest,
            "name": "",
            "timeZone": attendee.time_zone,
            "language": {"locale": "en"},
            "utcOffset": _utc_offset(attendee.time_zone, start),
        }
        for guest in booking.guests
    ]
    metadata: dict[str, object] = {}
    video = _video_url(booking)
    if video and (has_meeting or booking.venue.type == "link"):
        metadata["videoCallUrl"] = video
    metadata.update(booking.metadata)
    payload: dict[str, object] = {
        "type": event_type.slug if event_type else "",
        "title": booking.title,
        "description": description,
        "additionalNotes": additional_notes,
        "startTime": _time(start, times),
        "endTime": _time(end, times),
        "organizer": {
            "id": host.id,
            "name": host.name,
            "email": host.email,
            "username": host.username,
            "timeZone": host.time_zone,
            "language": {"locale": "en"},
            "timeFormat": "h:mma",
            "utcOffset": _utc_offset(host.time_zone, start),
        },
        "responses": _responses(booking),
        "userFieldsResponses": {
            key: {"label": key, "value": value} for key, value in booking.responses.items() if key not in _LABELS
        },
        "attendees": people,
        "location": location_value(booking.venue),
        "uid": booking.uid,
        "bookingId": booking.id,
        "eventTypeId": booking.event_type_id,
        "status": status,
        "metadata": metadata,
        "eventTitle": event_type.title if event_type else None,
        "eventDescription": event_type.description if event_type else None,
        "price": 0,
        "currency": "usd",
        "length": booking.duration,
        "requiresConfirmation": bool(event_type and event_type.requires_confirmation),
    }
    payload.update(extra or {})
    return payload


def reschedule_fields(old: BookingRecord, rescheduled_by: str | None) -> dict[str, object]:
    """What a reschedule adds: the OLD booking's uid, id and times (`uid` is the new booking's)."""
    return {
        "rescheduleUid": old.uid,
        "rescheduleId": old.id,
        "rescheduleStartTime": _time(old.start, "seconds"),
        "rescheduleEndTime": _time(old.end, "seconds"),
        "rescheduledBy": rescheduled_by,
    }


def location_value(venue: Location) -> str:
    """The booking location as Cal.com stores it: an app id for video, else the address or link."""
    if venue.type == "integration":
        name = venue.integration or ""
        return _INTEGRATION_LOCATIONS.get(name, f"integrations:{name.replace('-', '_')}")
    if venue.type == "address":
        return venue.address or ""
    if venue.type == "attendeePhone":
        return venue.phone or ""
    return venue.link or ""


def _responses(booking: BookingRecord) -> dict[str, object]:
    """Cal.com's `responses`: each default field as {label, value}, value only when there is one."""
    attendee = booking.attendee
    values: dict[str, object] = {
        "name": attendee.name,
        "email": attendee.email,
        "location": {"value": _location_option(booking.venue), "optionValue": ""},
    }
    if attendee.phone_number:
        values["attendeePhoneNumber"] = attendee.phone_number
    for key in ("title", "notes", "rescheduleReason"):
        if key in booking.responses:
            values[key] = booking.responses[key]
    if booking.guests:
        values["guests"] = list(booking.guests)
    out: dict[str, object] = {}
    for key, label in _LABELS.items():
        out[key] = {"label": label, "value": values[key]} if key in values else {"label": label}
    if not attendee.phone_number:
        del out["attendeePhoneNumber"]
    return out


def _location_option(venue: Location) -> str:
    if venue.type == "address":
        return "inPerson"
    if venue.type == "link":
        return "link"
    if venue.type == "attendeePhone":
        return "phone"
    return location_value(venue)


def _video_url(booking: BookingRecord) -> str | None:
    if booking.venue.type in ("address", "attendeePhone"):
        return None
    return booking.location or None


def _time(value: datetime, style: TimeStyle) -> str:
    if style == "millis":
        return iso_z(value)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_offset(zone: str, at: datetime) -> int:
    offset = at.astimezone(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0
