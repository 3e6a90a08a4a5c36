"""Domain models: the leaves of the house. No I/O, no library but pydantic and the stdlib.

Every datetime here is timezone-aware. Storage and Cal.com speak UTC; presentation converts
to the business's IANA zone at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

CallType = Literal["inbound", "outbound", "web"]
CALL_TYPES: tuple[CallType, ...] = get_args(CallType)

# Cal.com's booking status, lower-cased as API v2 returns it (NOTES §3.2).
BookingStatus = Literal["accepted", "pending", "cancelled", "rejected", "awaiting_host"]


class AppointmentStatus(StrEnum):
    """Our status. `completed` is derived (end has passed, not cancelled), never stored."""

    PENDING = "pending"
    ACTIVE = "active"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- Cal.com side ---------------------------------------------------------------------------


class HostProfile(_Frozen):
    """The Cal.com user that owns the API key (GET /v2/me)."""

    id: int
    username: str
    email: str
    time_zone: str


AnswerValue = str | bool | float | list[str]
SchedulingType = Literal["ROUND_ROBIN", "COLLECTIVE", "MANAGED"]


class Question(_Frozen):
    """A custom booking question of an event type (Cal.com's `bookingFields`, less the built-in name,
    e-mail, notes, guests and phone fields the tools already cover)."""

    slug: str = Field(description="Key to answer it under in `answers`, e.g. 'topic'.")
    label: str = Field(description="The question as the business wrote it, e.g. 'What would you like to discuss?'.")
    type: str = Field(
        description="Cal.com field type: text, textarea, number, select, radio, multiselect, checkbox, boolean, phone, …"
    )
    required: bool = False
    options: tuple[str, ...] = Field(default=(), description="The allowed answers, for choice questions.")

    @property
    def multiple(self) -> bool:
        """Answered with a list of options (a checkbox group or a multi-select)."""
        return self.type in ("multiselect", "checkbox")


class EventType(_Frozen):
    """A Cal.com event type, reduced to what booking needs."""

    id: int
    title: str
    slug: str
    length_minutes: int
    length_options: tuple[int, ...] = ()
    description: str = ""
    location_type: str | None = Field(
        default=None,
        description="Cal.com location type of the first location, e.g. 'integration', 'address'.",
    )
    location_integration: str | None = Field(default=None, description="e.g. 'cal-video', 'zoom', 'google-meet'.")
    location_address: str | None = None
    requires_confirmation: bool = False
    hidden: bool = False
    email_required: bool = Field(
        default=True,
        description="The booking form's e-mail question is required (Cal.com's default); when False a caller "
        "can book with a phone number alone.",
    )
    questions: tuple[Question, ...] = ()
    team_id: int | None = Field(
        default=None, description="The Cal.com team whose event type this is; None: the user's own."
    )
    team_name: str | None = None
    scheduling_type: SchedulingType | None = Field(
        default=None,
        description="How a team event type picks its host: ROUND_ROBIN (one free member), COLLECTIVE (all members).",
    )

    @property
    def phone_call(self) -> bool:
        """The host calls the attendee at the attendee's number (location type `attendeePhone`)."""
        return self.location_type == "attendeePhone"


class Team(_Frozen):
    """A Cal.com team the key's user belongs to (GET /v2/teams)."""

    id: int
    slug: str
    name: str


class Slot(_Frozen):
    """A free interval on the host's calendar."""

    start: datetime
    end: datetime


class BookingRequest(_Frozen):
    """What we ask Cal.com to book."""

    start: datetime
    event_type_id: int
    attendee_name: str
    attendee_email: str | None  # None: a phone-only attendee (Cal.com needs `attendee_phone` then)
    attendee_time_zone: str
    attendee_phone: str | None = None
    length_minutes: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    answers: dict[str, AnswerValue] = Field(default_factory=dict, description="`bookingFieldsResponses`.")
    call_attendee_at: str | None = Field(default=None, description="`attendeePhone` location: the number to call.")
    language: str | None = Field(default=None, description="The attendee's language for Cal.com's e-mails, e.g. 'es'.")


class Booking(_Frozen):
    """A Cal.com booking as our client sees it."""

    uid: str
    id: int | None = None
    status: BookingStatus
    title: str = ""
    start: datetime
    end: datetime
    event_type_id: int | None = None
    meeting_url: str | None = None
    location: str | None = None
    attendee_name: str | None = None
    attendee_email: str | None = None
    cancellation_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    host_name: str | None = None  # the host(s) Cal.com assigned, "Dr. Lee" or "Dr. Lee and Dr. Patel"
    host_email: str | None = None  # their e-mail addresses, comma-separated


class Webhook(_Frozen):
    """A Cal.com webhook subscription (user level)."""

    id: str
    subscriber_url: str
    triggers: tuple[str, ...]
    active: bool


class BookingPage(_Frozen):
    bookings: tuple[Booking, ...]
    total: int


class RateLimit(_Frozen):
    """Cal.com's X-RateLimit-*-Default headers; reset is seconds from now (NOTES §5)."""

    limit: int
    remaining: int
    reset_seconds: int


# --- our side -------------------------------------------------------------------------------


HistoryAction = Literal[
    "created", "booked", "rescheduled", "updated", "cancelled", "failed", "synced", "confirmed", "declined"
]


class HistoryEntry(_Frozen):
    at: datetime
    action: HistoryAction
    detail: str = ""
    from_start: datetime | None = None
    to_start: datetime | None = None
    from_booking_uid: str | None = None
    to_booking_uid: str | None = None


class NewAppointment(_Frozen):
    """An appointment validated and ready to record, before Cal.com is asked."""

    title: str
    description: str = ""
    label: str = ""
    attendee_name: str
    # None: the caller gave no e-mail and books with a phone number (`attendee_phone`, else the call's).
    attendee_email: str | None = None
    # The caller's own number when it is not the call's (a web call, a callback number); None: the call's.
    attendee_phone: str | None = None
    business_name: str = ""
    to_number: str
    from_number: str
    call_type: CallType
    event_type_id: int
    start: datetime
    end: datetime
    timezone: str
    answers: dict[str, AnswerValue] = Field(default_factory=dict)
    language: str | None = None

    @field_validator("attendee_email", mode="before")
    @classmethod
    def _no_email(cls, value: object) -> object:
        # The store keeps "no e-mail" as '' (the column is sorted and searched; NULL would break both).
        return None if value == "" else value

    def caller_phone(self) -> str | None:
        """The number Cal.com gets for the attendee: the one given, else the caller's side of the call."""
        return self.attendee_phone or {"inbound": self.from_number, "outbound": self.to_number}.get(self.call_type)


class Appointment(NewAppointment):
    """An appointment as the store holds it. `id` survives reschedules; `booking_uid` does not."""

    id: str
    booking_uid: str | None
    previous_booking_uids: tuple[str, ...] = ()
    status: AppointmentStatus
    meeting_url: str | None = None
    location: str | None = None
    # Who meets the caller, as Cal.com assigned it (a round robin's member, a collective's members).
    host_name: str | None = None
    host_email: str | None = None
    cancellation_reason: str | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime

    def effective_status(self, now: datetime) -> AppointmentStatus:
        """Completed once its end has passed, unless cancelled or never booked."""
        live = (AppointmentStatus.ACTIVE, AppointmentStatus.RESCHEDULED, AppointmentStatus.PENDING)
        if self.status in live and self.end <= now and self.booking_uid is not None:
            return AppointmentStatus.COMPLETED
        return self.status


class Hold(_Frozen):
    """A time held for one call while the caller decides (`hold_slot`); it holds nothing after `expires_at`."""

    id: str
    event_type_id: int
    start: datetime
    end: datetime
    expires_at: datetime
    timezone: str
    reservation_uid: str | None = None
    created_at: datetime


class BusyTimes(NamedTuple):
    """What no caller should be offered in a window (live holds, bookings still being made), as (start,
    end) by start; with `changes`, the calendar's change counter read in the same transaction."""

    times: tuple[tuple[datetime, datetime], ...]
    changes: int | None = None


class Tenant(_Frozen):
    """A business this deployment serves: its own settings, event types, appointments and phone numbers."""

    id: int
    slug: str = Field(description="Lower-case letters, digits and '-', as in a URL: 'acme-dental'.")
    name: str
    numbers: tuple[str, ...] = Field(default=(), description="The E.164 numbers it answers on, sorted.")
    created_at: datetime
    removed_at: datetime | None = Field(default=None, description="Removed (its data kept) at this time.")


class IdempotencyRecord(_Frozen):
    """What a caller's idempotency key stands for: a request (by hash) and, once known, its outcome."""

    key: str
    request_hash: str
    appointment_id: str | None = None
    done: bool = False
    error: dict[str, object] | None = Field(
        default=None, description="code, message, retryable of a failed first call."
    )
    created_at: datetime
    updated_at: datetime


class Claim(_Frozen):
    """The result of claiming a key: `mine` when this call should do the work."""

    record: IdempotencyRecord
    mine: bool


SortField = Literal[
    "start",
    "end",
    "created_at",
    "updated_at",
    "title",
    "attendee_name",
    "attendee_email",
    "business_name",
    "label",
    "status",
    "call_type",
    "host_name",
]
SORT_FIELDS: tuple[SortField, ...] = get_args(SortField)
PAGE_SIZES = (10, 25, 50, 100)


class SearchQuery(_Frozen):
    text: str | None = None
    statuses: tuple[AppointmentStatus, ...] = ()
    label: str | None = None
    host: str | None = None  # part of the host's name or their e-mail, any case
    call_type: CallType | None = None
    phone: str | None = None  # E.164; matches to_number or from_number exactly
    start_from: datetime | None = None
    start_to: datetime | None = None
    sort_by: SortField = "start"
    descending: bool = False
    page: int = 1
    page_size: int = 10


class SearchPage(_Frozen):
    items: tuple[Appointment, ...]
    # The number of matches when `total_exact`; otherwise there are more than `total` (counting
    # stops past a bound: see `appt_tools.store._finder`).
    total: int
    page: int
    page_size: int
    total_exact: bool = True


@dataclass(frozen=True)
class SlotSearch:
    """Free slots for a request; `later` is set when the requested window had none and these come after it."""

    event_type: EventType
    duration_minutes: int
    timezone: str
    window_start: datetime
    window_end: datetime
    slots: tuple[Slot, ...]
    later: bool
    truncated: bool
    fresh_as_of: datetime | None = None  # when Cal.com gave these slots (a warm or cached copy's read time)
