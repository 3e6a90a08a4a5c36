"""Request validation as Cal.com's class-validator pipes do it: same rules, same messages, same order.

Each `parse_*` returns a typed input or raises a `Problem`. Unknown keys come first in the message, as
class-validator's whitelist check runs before the property checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Final, Literal, TypeGuard
from zoneinfo import available_timezones

import phonenumbers

from calcom_sandbox.problems import (
    FieldError,
    Problem,
    bad_request,
    invalid_fields,
    invalid_query,
    not_found,
    unknown_property,
)
from calcom_sandbox.state import (
    Attendee,
    BookingQuery,
    EventTypeDef,
    Location,
    NewBooking,
    SandboxState,
)

LANGUAGES: Final = (
    "ar", "ca", "de", "es", "eu", "he", "id", "ja", "lv", "pl", "ro", "sr", "th", "vi", "az", "cs", "el",
    "es-419", "fi", "hr", "it", "km", "nl", "pt", "ru", "sv", "tr", "zh-CN", "bg", "da", "en", "et", "fr",
    "hu", "iw", "ko", "no", "pt-BR", "sk", "ta", "uk", "zh-TW", "bn",
)  # fmt: skip
INTEGRATIONS: Final = (
    "cal-video", "google-meet", "zoom", "whereby-video", "whatsapp-video", "webex-video",
    "telegram-video", "tandem", "sylaps-video", "skype-video", "sirius-video", "signal-video",
    "shimmer-video", "salesroom-video", "roam-video", "riverside-video", "ping-video", "office365-video",
    "mirotalk-video", "jitsi", "jelly-video", "jelly-conferencing", "huddle", "facetime-video",
    "element-call-video", "eightxeight-video", "discord-video", "demodesk-video", "campfire-video",
)  # fmt: skip
LOCATION_TYPES: Final = (
    "address", "attendeeAddress", "attendeeDefined", "attendeePhone", "integration", "link", "phone",
    "organizersDefaultApp",
)  # fmt: skip
MSG_EITHER_EVENT_TYPE: Final = (
    "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided"
)
MSG_METADATA: Final = (
    "Metadata must have at most 50 keys, each key up to 40 characters, and string values up to 500 characters."
)
MSG_CONTACT: Final = "Attendee must have at least one contact method (email or phone number)"
# getBookingResponsesSchema.ts, reached after the DTO (whose @Validate(fn) decorators do nothing): §12.9.
MSG_BAD_EMAIL: Final = "responses - {email}email_validation_error, "
# The phone check's message is not in NOTES §12; the sandbox writes it in the same form as the e-mail's.
MSG_BAD_PHONE: Final = "responses - {attendeePhoneNumber}invalid_number, "

_CREATE_KEYS: Final = (
    "start", "lengthInMinutes", "eventTypeId", "eventTypeSlug", "username", "teamSlug", "organizationSlug",
    "attendee", "guests", "meetingUrl", "location", "metadata", "bookingFieldsResponses", "routing",
    "emailVerificationCode",
)  # fmt: skip
_ATTENDEE_KEYS: Final = ("name", "email", "timeZone", "phoneNumber", "language")
_RESCHEDULE_KEYS: Final = ("start", "rescheduledBy", "reschedulingReason", "emailVerificationCode")
_CANCEL_KEYS: Final = ("cancellationReason", "cancelSubsequentBookings")
_SLOTS_BASE: Final = ("start", "end", "timeZone", "duration", "format", "bookingUidToReschedule")
_ISO: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?", re.ASCII
)
_EMAIL: Final = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL: Final = re.compile(r"(?:https?|ftp)://[^\s/$.?#][^\s]*\.[^\s]+", re.IGNORECASE)
_JS_INT: Final = re.compile(r"\s*([+-]?\d+)")
_ISO_MESSAGE: Final = "{} must be a valid ISO 8601 date string"


# --- value helpers -------------------------------------------------------------------------------


def parse_iso(value: object) -> datetime | None:
    """An ISO 8601 date or date-time. No offset means UTC, as Cal.com reads `start` (NOTES §3.2)."""
    if not isinstance(value, str) or not _ISO.fullmatch(value):
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    # Keep a day of headroom on both sides so date arithmetic on the value cannot overflow.
    return parsed if datetime.min.year < parsed.year < datetime.max.year else None


@cache
def _zones() -> dict[str, str]:
    names = available_timezones() | {"UTC"}
    return {name.lower(): name for name in names}


def zone_name(value: object) -> str | None:
    """The canonical IANA name, matched case-insensitively like JavaScript's Intl, or None."""
    if not isinstance(value, str):
        return None
    return _zones().get(value.lower())


def is_email(value: object) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


def is_phone(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith("+"):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def js_parse_int(value: str) -> int | None:
    """JavaScript's `parseInt(value)`: leading digits, or None for NaN."""
    match = _JS_INT.match(value)
    return int(match.group(1)) if match else None


def _unknown(keys: Sequence[str], allowed: Sequence[str]) -> list[FieldError]:
    return [unknown_property(key) for key in keys if key not in allowed]


def _object(body: object) -> dict[str, object]:
    if body is None:
        raise bad_request("Body is required")
    if not isinstance(body, dict):
        raise bad_request("Body should be an object")
    return body


def _string_error(body: Mapping[str, object], key: str) -> FieldError | None:
    if key in body and not isinstance(body[key], str):
        return FieldError(key, (f"{key} must be a string",))
    return None


# --- POST /v2/bookings ---------------------------------------------------------------------------


def parse_create(raw: object, state: SandboxState) -> NewBooking:
    """CreateBookingInput_2024_08_13, then the event type lookups and rules of Cal.com's input service."""
    body = _object(raw)
    extra: tuple[str, ...] = ()
    if "recurrenceCount" in body:
        extra = ("recurrenceCount",)
    elif body.get("instant") is True:  # `instant: false` is an unknown key of the regular input (§12.13)
        extra = ("instant",)
    errors = _unknown(list(body), _CREATE_KEYS + extra)
    start = parse_iso(body.get("start"))
    if start is None:
        errors.append(FieldError("start", (_ISO_MESSAGE.format("start"),)))
    if "lengthInMinutes" in body:
        length = body["lengthInMinutes"]
        if not is_int(length):
            errors.append(FieldError("lengthInMinutes", ("lengthInMinutes must be an integer number",)))
        elif length < 1:
            errors.append(FieldError("lengthInMinutes", ("lengthInMinutes must not be less than 1",)))
    if "eventTypeId" in body and not is_int(body["eventTypeId"]):
        errors.append(FieldError("eventTypeId", ("eventTypeId must be an integer number",)))
    elif "eventTypeId" not in body and "eventTypeSlug" not in body:
        errors.append(FieldError("eventTypeId", (MSG_EITHER_EVENT_TYPE,)))
    for key in ("eventTypeSlug", "username", "teamSlug", "organizationSlug", "emailVerificationCode"):
        if (error := _string_error(body, key)) is not None:
            errors.append(error)
    if "eventTypeSlug" in body and "username" not in body and "teamSlug" not in body:
        errors.append(FieldError("username", (MSG_EITHER_EVENT_TYPE,)))
    attendee_errors, attendee = _attendee(body.get("attendee"))
    errors += attendee_errors
    guests = body.get("guests", [])
    if not isinstance(guests, list):
        errors.append(FieldError("guests", ("guests must be an array",)))
        guests = []
    elif not all(is_email(guest) for guest in guests):
        errors.append(FieldError("guests", ("each value in guests must be an email",)))
    if "meetingUrl" in body and not (isinstance(body["meetingUrl"], str) and _URL.fullmatch(body["meetingUrl"])):
        errors.append(FieldError("meetingUrl", ("meetingUrl must be a URL address",)))
    if "location" in body and (error := _location_shape(body["location"])) is not None:
        errors.append(error)
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        errors.append(FieldError("metadata", ("metadata must be an object", MSG_METADATA)))
    elif not _metadata_ok(metadata):
        errors.append(FieldError("metadata", (MSG_METADATA,)))
    responses = body.get("bookingFieldsResponses", {})
    if not isinstance(responses, dict):
        errors.append(FieldError("bookingFieldsResponses", ("bookingFieldsResponses must be an object",)))
    if "routing" in body and not isinstance(body["routing"], dict):
        errors.append(FieldError("routing", ("nested property routing must be either object or array",)))
    count = body.get("recurrenceCount", 1)
    if not (is_int(count) and count >= 1):
        errors.append(FieldError("recurrenceCount", ("recurrenceCount must be an integer number",)))
    if "instant" in body and not isinstance(body["instant"], bool):
        errors.append(FieldError("instant", ("instant must be a boolean value",)))
    if errors:
        raise invalid_fields(errors)
    assert start is not None and attendee is not None and isinstance(metadata, dict)
    assert isinstance(responses, dict)

    et = _event_type_to_book(body, state)
    if not attendee.email.endswith("@sms.cal.com") and not is_email(attendee.email):
        raise Problem(400, MSG_BAD_EMAIL, code="BAD_REQUEST")
    if attendee.phone_number is not None and _phone_field_visible(et) and not is_phone(attendee.phone_number):
        raise Problem(400, MSG_BAD_PHONE, code="BAD_REQUEST")
    if "recurrenceCount" in body:
        raise bad_request(f"Event type with id={et.id} is not a recurring event type.")
    if body.get("instant") is True:
        raise bad_request("Instant bookings are only available for team event types.")
    length = _length(body.get("lengthInMinutes"), et)
    location = _location(body.get("location"), et)
    meeting_url = body.get("meetingUrl")
    if isinstance(meeting_url, str):  # deprecated: the caller's own link replaces the generated one
        location = Location("link", link=meeting_url)
    return NewBooking(
        event_type=et,
        start=start,
        length=length,
        attendee=attendee,
        location=location,
        guests=tuple(str(guest) for guest in guests),
        metadata=dict(metadata),
        responses=dict(responses),
    )


def _attendee(raw: object) -> tuple[list[FieldError], Attendee | None]:
    if not isinstance(raw, dict):
        return [FieldError("attendee", ("nested property attendee must be either object or array",))], None
    children = _unknown(list(raw), _ATTENDEE_KEYS)
    contact: list[FieldError] = []  # Cal.com's contact check names its own property (§12.10)
    name, email, tz = raw.get("name"), raw.get("email"), raw.get("timeZone")
    phone, language = raw.get("phoneNumber"), raw.get("language", "en")
    if not isinstance(name, str):
        children.append(FieldError("name", ("name must be a string",)))
    has_email = isinstance(email, str) and email.strip() != ""
    has_phone = isinstance(phone, str) and phone.strip() != ""
    if "email" in raw and email is not None and not isinstance(email, str):
        children.append(FieldError("email", ("email must be a string",)))
    elif not has_email and not has_phone:
        contact = [FieldError("attendee email or phone", (MSG_CONTACT,))]
    canonical_tz = zone_name(tz)
    if canonical_tz is None:
        children.append(FieldError("timeZone", ("timeZone must be a valid IANA time-zone",)))
    if phone is not None and not isinstance(phone, str):
        children.append(FieldError("phoneNumber", ("phoneNumber must be a string",)))
    if language not in LANGUAGES:
        children.append(
            FieldError("language", ("language must be one of the following values: " + ", ".join(LANGUAGES),))
        )
    if children or contact:
        nested = [FieldError("attendee", (), tuple(children))] if children else []
        return nested + contact, None
    assert isinstance(name, str) and canonical_tz is not None and isinstance(language, str)
    phone_number = phone if has_phone and isinstance(phone, str) else None
    address = email if has_email and isinstance(email, str) else _faux_email(phone_number or "")
    return [], Attendee(name, address, canonical_tz, language, phone_number)


def _phone_field_visible(et: EventTypeDef) -> bool:
    """Cal.com checks the attendee's phone only when the event type shows a phone field (§12.9)."""
    return any(f.type == "phone" and not f.hidden for f in et.booking_fields)


def _faux_email(phone: str) -> str:
    """Cal.com's stand-in address for a phone-only attendee: the digits at sms.cal.com."""
    return re.sub(r"\D", "", phone) + "@sms.cal.com"


def _metadata_ok(metadata: Mapping[str, object]) -> bool:
    if len(metadata) > 50:
        return False
    for key, value in metadata.items():
        if len(key) > 40:
            return False
        if isinstance(value, str) and len(value) > 500:
            return False
        if not isinstance(value, str | int | float | bool):
            return False
    return True


def _location_shape(raw: object) -> FieldError | None:
    if isinstance(raw, str):
        return None  # a plain string is still accepted for backward compatibility
    message = "location must be one of the location objects with type: " + ", ".join(LOCATION_TYPES)
    if not isinstance(raw, dict) or raw.get("type") not in LOCATION_TYPES:
        return FieldError("location", (message,))
    kind = raw["type"]
    needs = {"attendeeAddress": "address", "attendeeDefined": "location", "attendeePhone": "phone"}
    allowed = {"type", "integration"} if kind == "integration" else {"type"} | {needs.get(str(kind), "type")}
    unknown = [key for key in raw if key not in allowed]
    if unknown:
        return FieldError("location", tuple(f"property location.{key} should not exist" for key in unknown))
    if kind == "integration" and raw.get("integration") not in INTEGRATIONS:
        return FieldError("location", ("integration must be one of the following values: " + ", ".join(INTEGRATIONS),))
    if kind in needs and not isinstance(raw.get(needs[str(kind)]), str):
        return FieldError("location", (f"{needs[str(kind)]} must be a string",))
    return None


def _event_type_to_book(body: Mapping[str, object], state: SandboxState) -> EventTypeDef:
    if "eventTypeId" in body:
        found = state.event_type(int(str(body["eventTypeId"])))
        if found is None:
            raise not_found(f"Event type with id {body['eventTypeId']} not found.")
        return found
    slug = body.get("eventTypeSlug")
    if "teamSlug" in body:
        org = f" within organization {body['organizationSlug']}" if "organizationSlug" in body else ""
        raise not_found(f"Event type with slug {slug} belonging to team {body['teamSlug']}{org} not found.")
    username = body.get("username")
    found = state.event_type_by_slug(str(slug))
    if username != state.host.username or "organizationSlug" in body or found is None:
        org = f" within organization {body['organizationSlug']}" if "organizationSlug" in body else ""
        raise not_found(f"Event type with slug {slug} belonging to user {username}{org} not found.")
    return found


def _length(requested: object, et: EventTypeDef) -> int:
    if requested is None:
        return et.length
    assert isinstance(requested, int)
    if not et.length_options:
        raise bad_request(
            "Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths. "
            "Please, remove the 'lengthInMinutes' field from the request."
        )
    if requested not in et.length_options:
        options = ", ".join(str(n) for n in et.length_options)
        raise bad_request(
            f"Provided 'lengthInMinutes' is not one of the possible lengths for the event type. "
            f"The possible lengths are: {options}"
        )
    return requested


def _names(raw: Mapping[str, object], location: Location) -> bool:
    if raw.get("type") != location.type:
        return False
    return location.type in ("address", "attendeePhone") or raw.get("integration") == location.integration


def _location(raw: object, et: EventTypeDef) -> Location:
    """The event type location the request names; none named means the event type's first one."""
    if raw is None:
        return et.locations[0]
    for location in et.locations:
        if isinstance(raw, str) and raw in (
            location.address,
            location.integration,
            f"integrations:{location.integration}",
        ):
            return location
        if isinstance(raw, dict) and _names(raw, location):
            if location.type == "attendeePhone":  # the number to call is the booking's, not the event type's
                return Location("attendeePhone", phone=str(raw.get("phone")))
            return location
    named = raw if isinstance(raw, str) else f"{raw.get('type')}" if isinstance(raw, dict) else str(raw)
    if isinstance(raw, dict) and raw.get("type") == "integration":
        named = f"integration {raw.get('integration')}"
    offered = ", ".join(
        f"integration {loc.integration}" if loc.type == "integration" else loc.type for loc in et.locations
    )
    raise bad_request(
        f"Location '{named}' is not one of the locations of the event type with id={et.id}. "
        f"Its locations are: {offered}."
    )


# --- reschedule and cancel -----------------------------------------------------------------------


@dataclass(frozen=True)
class RescheduleInput:
    start: datetime
    reason: str | None
    rescheduled_by: str | None


def parse_reschedule(raw: object) -> RescheduleInput:
    body = _object(raw)
    if "seatUid" in body:
        raise bad_request("Invalid seatUid: this seat does not exist or has already been cancelled.")
    errors = _unknown(list(body), _RESCHEDULE_KEYS)
    start = parse_iso(body.get("start"))
    if start is None:
        errors.append(FieldError("start", (_ISO_MESSAGE.format("start"),)))
    if "rescheduledBy" in body and not is_email(body["rescheduledBy"]):
        errors.append(FieldError("rescheduledBy", ("rescheduledBy must be an email",)))
    for key in ("reschedulingReason", "emailVerificationCode"):
        if (error := _string_error(body, key)) is not None:
            errors.append(error)
    if errors:
        raise invalid_fields(errors)
    assert start is not None
    reason, by = body.get("reschedulingReason"), body.get("rescheduledBy")
    return RescheduleInput(start, reason if isinstance(reason, str) else None, by if isinstance(by, str) else None)


@dataclass(frozen=True)
class ReserveInput:
    event_type: EventTypeDef
    start: datetime
    length: int
    minutes: int


_RESERVE_KEYS: Final = ("eventTypeId", "slotStart", "slotDuration", "reservationDuration")


def parse_reserve(raw: object, state: SandboxState, *, authenticated: bool) -> ReserveInput:
    """ReserveSlotInput_2024_09_04 (NOTES §12.14): `reservationDuration` only with credentials (default 5)."""
    body = _object(raw)
    errors = _unknown(list(body), _RESERVE_KEYS)
    event_type_id, length, minutes = body.get("eventTypeId"), body.get("slotDuration"), body.get("reservationDuration")
    if not is_int(event_type_id):
        errors.append(
            FieldError("eventTypeId", ("eventTypeId must be a number conforming to the specified constraints",))
        )
    start = parse_iso(body.get("slotStart"))
    if start is None:
        errors.append(FieldError("slotStart", (_ISO_MESSAGE.format("slotStart"),)))
    for key, value in (("slotDuration", length), ("reservationDuration", minutes)):
        if value is not None and not (is_int(value) and value > 0):
            errors.append(FieldError(key, (f"{key} must be a number conforming to the specified constraints",)))
    if errors:
        raise invalid_fields(errors)
    assert is_int(event_type_id) and start is not None
    et = state.event_type(event_type_id)
    if et is None:
        raise not_found(f"Event type with id={event_type_id} not found")
    if minutes is not None and not authenticated:
        raise bad_request("reservationDuration can only be used for authenticated requests.")
    return ReserveInput(
        et,
        start,
        length if is_int(length) else et.length,
        minutes if is_int(minutes) else 5,
    )


@dataclass(frozen=True)
class CancelInput:
    reason: str | None
    cancel_subsequent: bool


def parse_cancel(raw: object) -> CancelInput:
    body = _object({} if raw is None else raw)
    if "seatUid" in body:
        errors = _unknown(list(body), ("seatUid",))
        if errors:
            raise invalid_fields(errors)
        raise bad_request("Invalid seatUid: this seat does not exist or has already been cancelled.")
    errors = _unknown(list(body), _CANCEL_KEYS)
    if (error := _string_error(body, "cancellationReason")) is not None:
        errors.append(error)
    if "cancelSubsequentBookings" in body and not isinstance(body["cancelSubsequentBookings"], bool):
        errors.append(FieldError("cancelSubsequentBookings", ("cancelSubsequentBookings must be a boolean value",)))
    if errors:
        raise invalid_fields(errors)
    reason = body.get("cancellationReason")
    return CancelInput(reason if isinstance(reason, str) else None, body.get("cancelSubsequentBookings") is True)


# --- GET /v2/slots -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotsInput:
    event_type: EventTypeDef
    start: datetime
    end: datetime
    time_zone: str | None
    length: int
    format: Literal["time", "range"]
    ignore_uid: str | None


def parse_slots(params: Mapping[str, str], state: SandboxState) -> SlotsInput:
    """The 2024-09-04 pipe: the lookup mode is picked by which keys are present (NOTES §3.1)."""
    own: tuple[str, ...]
    if "eventTypeId" in params:
        mode, own = "id", ("eventTypeId",)
    elif "username" in params and "eventTypeSlug" in params:
        mode, own = "user", ("eventTypeSlug", "username", "organizationSlug")
    elif "teamSlug" in params and "eventTypeSlug" in params:
        mode, own = "team", ("eventTypeSlug", "teamSlug", "organizationSlug")
    else:
        mode, own = "usernames", ("usernames", "organizationSlug")
    errors = _unknown(list(params), _SLOTS_BASE + own)
    start, end = parse_iso(params.get("start")), parse_iso(params.get("end"))
    for key, value in (("start", start), ("end", end)):
        if value is None:
            errors.append(FieldError(key, (_ISO_MESSAGE.format(key),)))
    tz = params.get("timeZone")
    canonical_tz = zone_name(tz) if tz is not None else None
    if tz is not None and canonical_tz is None:
        errors.append(FieldError("timeZone", ("timeZone must be a valid IANA time-zone",)))
    duration = js_parse_int(params["duration"]) if "duration" in params else None
    if "duration" in params and duration is None:
        errors.append(FieldError("duration", ("duration must be a number conforming to the specified constraints",)))
    slot_format = (params.get("format") or "time").lower()
    if slot_format not in ("time", "range"):
        errors.append(FieldError("format", ("slotFormat must be either 'range' or 'time'",)))
    event_type_id = js_parse_int(params["eventTypeId"]) if mode == "id" else None
    if mode == "id" and event_type_id is None:
        errors.append(
            FieldError("eventTypeId", ("eventTypeId must be a number conforming to the specified constraints",))
        )
    if mode == "usernames":
        usernames = [name.strip() for name in params.get("usernames", "").split(",") if name.strip()]
        if len(usernames) < 2:
            errors.append(FieldError("usernames", ("The array must contain at least 2 elements.",)))
        if "organizationSlug" not in params:
            errors.append(FieldError("organizationSlug", ("organizationSlug must be a string",)))
    if errors:
        raise invalid_fields(errors)
    assert start is not None and end is not None

    et = _slots_event_type(mode, params, event_type_id, state)
    # Cal.com uses `duration || length` without checking it against the event type's lengths (§12.13).
    # A week bounds the arithmetic only: no slot of that length fits in working hours anyway.
    length = min(duration, 7 * 24 * 60) if duration is not None and duration > 0 else et.length
    if end.hour == end.minute == end.second == 0:
        end = end.replace(hour=23, minute=59, second=59)
    end = min(end, _one_year_after(state.now()))
    return SlotsInput(
        event_type=et,
        start=start,
        end=end,
        time_zone=canonical_tz,
        length=length,
        format="range" if slot_format == "range" else "time",
        ignore_uid=params.get("bookingUidToReschedule"),
    )


def _slots_event_type(
    mode: str, params: Mapping[str, str], event_type_id: int | None, state: SandboxState
) -> EventTypeDef:
    org = params.get("organizationSlug")
    if org is not None:
        raise not_found(f"slots-input.service.ts: Organization with slug {org} not found")
    if mode == "team":
        raise not_found(f"Team with slug {params['teamSlug']} not found")
    if mode == "user" and params["username"] != state.host.username:
        raise not_found(f"User with username {params['username']} not found")
    found = state.event_type(event_type_id) if event_type_id is not None else None
    if mode == "user":
        found = state.event_type_by_slug(params["eventTypeSlug"])
    if found is None:
        raise not_found("Event Type not found")
    return found


def _one_year_after(now: datetime) -> datetime:
    try:
        return now.replace(year=now.year + 1)
    except ValueError:  # 29 February
        return now.replace(year=now.year + 1, day=28)


# --- GET /v2/bookings ----------------------------------------------------------------------------

_STATUSES: Final = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")
_SORTS: Final = {
    "sortStart": "start",
    "sortEnd": "end",
    "sortCreated": "createdAt",
    "sortUpdatedAt": "updatedAt",
}
_DATES: Final = (
    "afterStart",
    "beforeEnd",
    "afterCreatedAt",
    "beforeCreatedAt",
    "afterUpdatedAt",
    "beforeUpdatedAt",
)


def parse_bookings_query(params: Mapping[str, str]) -> BookingQuery:
    """GetBookingsInput_2024_08_13 via the global ValidationPipe: unknown keys are dropped, not refused."""
    errors: list[tuple[str, dict[str, str]]] = []
    statuses = tuple(s.strip() for s in params["status"].split(",")) if "status" in params else ()
    if statuses == ("",):
        errors.append(("status", {"arrayNotEmpty": "status cannot be empty."}))
    elif any(s not in _STATUSES for s in statuses):
        errors.append(("status", {"isEnum": "Invalid status. Allowed are " + ", ".join(_STATUSES)}))
    email = params.get("attendeeEmail")
    if email is not None:  # a plain string; spaces are an unencoded "+" of a managed user's address
        email = email.strip().replace(" ", "+")
    event_type_ids: list[int] = []
    for key in ("eventTypeId", "eventTypeIds"):
        for part in params.get(key, "").split(",") if key in params else ():
            number = js_parse_int(part)
            if number is None:
                errors.append((key, {"isNumber": f"{key} must be a number conforming to the specified constraints"}))
            else:
                event_type_ids.append(number)
    dates: dict[str, datetime | None] = {}
    for key in _DATES:
        dates[key] = parse_iso(params[key]) if key in params else None
        if key in params and dates[key] is None:
            errors.append((key, {"isDateString": _ISO_MESSAGE.format(key)}))
    sort: list[tuple[str, bool]] = []
    for key, name in _SORTS.items():
        if key in params:
            if params[key] not in ("asc", "desc"):
                # Cal.com's message for sortUpdatedAt says "SortCreated" too.
                label = "SortCreated" if key == "sortUpdatedAt" else key[0].upper() + key[1:]
                errors.append((key, {"isEnum": f'{label} must be either "asc" or "desc".'}))
            else:
                sort.append((name, params[key] == "desc"))
    take = bounded_int(params, "take", 100, 1, 250, errors)
    skip = bounded_int(params, "skip", 0, 0, None, errors)
    if errors:
        raise invalid_query(errors)
    return BookingQuery(
        statuses=statuses,
        attendee_email=email,
        attendee_name=params.get("attendeeName"),
        booking_uid=params.get("bookingUid"),
        event_type_ids=tuple(event_type_ids),
        after_start=dates["afterStart"],
        before_end=dates["beforeEnd"],
        after_created_at=dates["afterCreatedAt"],
        before_created_at=dates["beforeCreatedAt"],
        after_updated_at=dates["afterUpdatedAt"],
        before_updated_at=dates["beforeUpdatedAt"],
        sort=tuple(sort),
        take=take,
        skip=skip,
        no_match="teamId" in params or "teamsIds" in params,
    )


def bounded_int(
    params: Mapping[str, str],
    key: str,
    default: int,
    low: int,
    high: int | None,
    errors: list[tuple[str, dict[str, str]]],
) -> int:
    if key not in params:
        return default
    number = js_parse_int(params[key])
    if number is None:
        errors.append((key, {"isNumber": f"{key} must be a number conforming to the specified constraints"}))
        return default
    if number < low:
        errors.append((key, {"min": f"{key} must not be less than {low}"}))
    if high is not None and number > high:
        errors.append((key, {"max": f"{key} must not be greater than {high}"}))
    return number
