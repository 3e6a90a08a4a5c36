"""Cal.com's JSON, and the only code that reads it: wire shapes in, domain models out.

Every mapper raises `MalformedResponse` when a success body does not have the shape NOTES §3
describes; the client turns that into `CalcomUnavailable`. Unknown extra fields are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, timedelta
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from appt_tools.models import (
    Booking,
    BookingPage,
    BookingStatus,
    EventType,
    HostProfile,
    Question,
    RateLimit,
    Slot,
    Webhook,
)

# Cal.com's built-in booking fields, which the tools cover with their own arguments (name, e-mail,
# phone, notes, guests) or which Cal.com fills itself: never asked as questions.
_BUILT_IN_FIELDS = frozenset(
    {"name", "email", "title", "notes", "guests", "rescheduleReason", "location", "attendeePhoneNumber",
     "smsReminderNumber"}
)  # fmt: skip


class MalformedResponse(Exception):
    """A 2xx body that is not what Cal.com documents."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, frozen=True)


class _Me(_Wire):
    id: int
    username: str
    email: str
    time_zone: str


class _Location(_Wire):
    type: str
    integration: str | None = None
    address: str | None = None


class _ConfirmationPolicy(_Wire):
    type: str | None = None
    disabled: bool = False


class _Option(_Wire):
    label: str | None = None
    value: str


class _BookingField(_Wire):
    """One of an event type's `bookingFields`: custom ones carry `slug` (older output `name`)."""

    slug: str | None = None
    name: str | None = None
    type: str | None = None
    label: str | None = None
    required: bool = False
    hidden: bool = False
    is_default: bool = False
    options: tuple[str | _Option, ...] = ()

    def question(self) -> Question | None:
        """The question to ask the caller, or None for a built-in or hidden field."""
        key = self.slug or self.name
        if key is None or self.type is None or self.hidden or self.is_default or key in _BUILT_IN_FIELDS:
            return None
        options = tuple(o if isinstance(o, str) else o.value for o in self.options)
        return Question(slug=key, label=self.label or key, type=self.type, required=self.required, options=options)


class _EventType(_Wire):
    id: int
    title: str
    slug: str
    length_in_minutes: int
    length_in_minutes_options: tuple[int, ...] | None = None
    description: str | None = None
    locations: tuple[_Location, ...] = ()
    requires_confirmation: bool | None = None
    confirmation_policy: _ConfirmationPolicy | None = None
    hidden: bool = False
    booking_fields: tuple[_BookingField, ...] = ()

    def email_required(self) -> bool:
        """The booking form's e-mail question is required and shown (Cal.com's default, also when the
        form is not sent); otherwise Cal.com books an attendee with a phone number alone (NOTES §12.10)."""
        email = next((f for f in self.booking_fields if f.slug == "email" or f.type == "email"), None)
        return email is None or (email.required and not email.hidden)

    def needs_confirmation(self) -> bool:
        """2024-06-14's `confirmationPolicy` ("always", or "time": only for bookings inside a notice
        threshold, so it may need confirmation; `{"disabled": true}` when off). Real output has no
        `requiresConfirmation` (NOTES §12.8); it is read only when no policy is sent."""
        policy = self.confirmation_policy
        if policy is not None:
            return not policy.disabled and policy.type in ("always", "time")
        return bool(self.requires_confirmation)


class _Attendee(_Wire):
    name: str | None = None
    email: str | None = None


class _EventTypeRef(_Wire):
    id: int


class _Booking(_Wire):
    uid: str
    id: int | None = None
    status: BookingStatus
    title: str = ""
    start: AwareDatetime
    end: AwareDatetime
    # `eventTypeId` is deprecated in favour of `eventType.id`; read either.
    event_type_id: int | None = None
    event_type: _EventTypeRef | None = None
    location: str | None = None
    meeting_url: str | None = None
    attendees: tuple[_Attendee, ...] = ()
    cancellation_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None


class _Webhook(_Wire):
    id: str | int
    subscriber_url: str
    triggers: tuple[str, ...] = ()
    active: bool = True


class _Pagination(_Wire):
    total_items: int


class _SlotItem(_Wire):
    start: AwareDatetime
    end: AwareDatetime | None = None


class _Envelope(_Wire):
    status: Literal["success"]
    data: Any


_M = TypeVar("_M", bound=_Wire)


def _unwrap(body: object) -> Any:
    """The `data` of a `{"status":"success","data":…}` envelope."""
    return _parse(_Envelope, body, "response envelope").data


def me(body: object) -> HostProfile:
    wire = _parse(_Me, _unwrap(body), "profile")
    return HostProfile(id=wire.id, username=wire.username, email=wire.email, time_zone=wire.time_zone)


def event_types(body: object) -> list[EventType]:
    return [_event_type(item) for item in _list(_unwrap(body), "event types")]


def _event_type(data: object) -> EventType:
    wire = _parse(_EventType, data, "event type")
    first = wire.locations[0] if wire.locations else None
    return EventType(
        id=wire.id,
        title=wire.title,
        slug=wire.slug,
        length_minutes=wire.length_in_minutes,
        length_options=wire.length_in_minutes_options or (),
        description=wire.description or "",
        location_type=first.type if first else None,
        location_integration=first.integration if first and first.type == "integration" else None,
        location_address=first.address if first and first.type == "address" else None,
        requires_confirmation=wire.needs_confirmation(),
        hidden=wire.hidden,
        email_required=wire.email_required(),
        questions=tuple(q for f in wire.booking_fields if (q := f.question()) is not None),
    )


def slots(body: object, *, default_length: timedelta | None) -> list[Slot]:
    """Slots from `{"YYYY-MM-DD": [{start, end?}, …]}`, in UTC, sorted by start.

    A slot without `end` (the `time` format) lasts `default_length`; without one it is malformed.
    """
    data = _unwrap(body)
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"slots: expected an object keyed by date, got {type(data).__name__}")
    result = []
    for day, items in data.items():
        for item in _list(items, f"slots of {day}"):
            wire = _parse(_SlotItem, item, f"slot on {day}")
            if wire.end is not None:
                end = wire.end
            elif default_length is not None:
                end = wire.start + default_length
            else:
                raise MalformedResponse(f"slot on {day} has no end and no duration was asked for")
            result.append(Slot(start=wire.start.astimezone(UTC), end=end.astimezone(UTC)))
    return sorted(result, key=lambda s: (s.start, s.end))


def booking(body: object) -> Booking:
    """One booking. A recurring or cancelled series comes as a list: its first occurrence."""
    data = _unwrap(body)
    if isinstance(data, list):
        if not data:
            raise MalformedResponse("booking: got an empty list")
        data = data[0]
    return _booking(data)


def _booking(data: object) -> Booking:
    wire = _parse(_Booking, data, "booking")
    attendee = wire.attendees[0] if wire.attendees else None
    url = next((u for u in (wire.meeting_url, wire.location) if u and _is_web_url(u)), None)
    return Booking(
        uid=wire.uid,
        id=wire.id,
        status=wire.status,
        title=wire.title,
        start=wire.start.astimezone(UTC),
        end=wire.end.astimezone(UTC),
        event_type_id=wire.event_type.id if wire.event_type else wire.event_type_id,
        meeting_url=url,
        # `location` mirrors the meeting URL when there is one; otherwise it is an address, a phone number,
        # or an internal id such as "integrations:daily" (a pending booking's video, NOTES §12.4), which is
        # never a place anyone can go to and is dropped.
        location=wire.location if wire.location and wire.location != url and not _internal(wire.location) else None,
        attendee_name=attendee.name if attendee else None,
        attendee_email=attendee.email if attendee else None,
        cancellation_reason=wire.cancellation_reason,
        rescheduled_from_uid=wire.rescheduled_from_uid,
        rescheduled_to_uid=wire.rescheduled_to_uid,
    )


class _Reservation(_Wire):
    reservation_uid: str


def reservation_uid(body: object) -> str:
    """POST /v2/slots/reservations: the reservation's uid."""
    return _parse(_Reservation, _unwrap(body), "slot reservation").reservation_uid


def success(body: object) -> None:
    """A `{"status": "success"}` answer with nothing else to read."""
    if not isinstance(body, Mapping) or body.get("status") != "success":
        raise MalformedResponse('expected {"status": "success"}')


def booking_page(body: object) -> BookingPage:
    """GET /v2/bookings: `data` plus `pagination.totalItems`."""
    data = _unwrap(body)
    pagination = body.get("pagination") if isinstance(body, Mapping) else None
    total = _parse(_Pagination, pagination, "pagination").total_items
    return BookingPage(bookings=tuple(_booking(item) for item in _list(data, "bookings")), total=total)


def webhook(body: object) -> Webhook:
    return _webhook(_unwrap(body))


def webhooks(body: object) -> list[Webhook]:
    return [_webhook(item) for item in _list(_unwrap(body), "webhooks")]


def _webhook(data: object) -> Webhook:
    wire = _parse(_Webhook, data, "webhook")
    return Webhook(id=str(wire.id), subscriber_url=wire.subscriber_url, triggers=wire.triggers, active=wire.active)


_RATE_LIMIT_HEADER = re.compile(r"x-ratelimit-(limit|remaining|reset)-(.+)", re.IGNORECASE)


def rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """`X-RateLimit-{Limit,Remaining,Reset}-<Name>` (NOTES §5), for the tightest named limit.

    Reset is seconds from now, not an epoch. None when no complete set of headers is present.
    """
    by_name: dict[str, dict[str, int]] = {}
    for key, value in headers.items():
        match = _RATE_LIMIT_HEADER.fullmatch(key)
        if match is None:
            continue
        try:
            number = int(float(value))
        except ValueError:
            continue
        by_name.setdefault(match[2].lower(), {})[match[1].lower()] = number
    complete = [
        RateLimit(limit=v["limit"], remaining=v["remaining"], reset_seconds=v["reset"])
        for v in by_name.values()
        if {"limit", "remaining", "reset"} <= v.keys()
    ]
    return min(complete, key=lambda r: (r.remaining, -r.reset_seconds), default=None)


def _internal(location: str) -> bool:
    """Cal.com's app id for a location not made yet, e.g. 'integrations:daily', 'integrations:google:meet'."""
    return location.startswith("integrations:")


def _is_web_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _list(data: object, what: str) -> list[object]:
    if not isinstance(data, list):
        raise MalformedResponse(f"{what}: expected a list, got {type(data).__name__}")
    return data


def _parse(model: type[_M], data: object, what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:3])
        raise MalformedResponse(f"{what}: {problems}") from None
