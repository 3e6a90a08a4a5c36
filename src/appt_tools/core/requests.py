"""What the use cases take: typed, already-parsed requests.

The surfaces (MCP tools, the plain HTTP routes through them, the dashboard, the CLI) parse the raw
strings they receive once, with `appt_tools.validation` (see `surfaces/arguments.py`), and hand the
core datetimes, dates, enums and tuples. What only the core can check (is the start still in the
future, is the event type known, is the length one it offers) is checked here, in the use cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from appt_tools.models import AppointmentStatus, CallType, SortField


@dataclass(frozen=True)
class SlotRequest:
    """Free slots on a local `day` (default: today), or from `start` to `end`; read and shown in `timezone`
    (an IANA name already checked; default: the business's)."""

    day: date | None = None
    start: datetime | None = None
    end: datetime | None = None
    timezone: str | None = None
    event_type_id: int | None = None
    duration_minutes: int | None = None


@dataclass(frozen=True)
class BookingDraft:
    """A booking as the caller asked for it: `start` is aware; numbers are E.164; texts are trimmed.
    `attendee_email` may be None when a phone number for the caller is known (`attendee_phone`, or the
    caller's side of an inbound or outbound call); `hold_id` books the time a `hold_slot` holds."""

    start: datetime | None
    attendee_name: str
    attendee_email: str | None
    to_number: str
    from_number: str
    call_type: CallType
    title: str | None = None
    description: str | None = None
    label: str | None = None
    business_name: str | None = None
    event_type_id: int | None = None
    timezone: str | None = None
    duration_minutes: int | None = None
    idempotency_key: str | None = None
    # Answers to the event type's questions, slug → answer, checked against them by the core.
    answers: Mapping[str, object] = field(default_factory=dict)
    language: str | None = None  # a Cal.com locale already checked; default: the settings' language
    attendee_phone: str | None = None
    hold_id: str | None = None


@dataclass(frozen=True)
class HoldRequest:
    """Hold `start` (aware) for one call while the caller decides; `minutes` None: the configured time."""

    start: datetime
    event_type_id: int | None = None
    timezone: str | None = None
    duration_minutes: int | None = None


@dataclass(frozen=True)
class Move:
    """A reschedule: the appointment (id or booking uid) and its new, aware start."""

    appointment_id: str
    new_start: datetime
    reason: str | None = None
    timezone: str | None = None
    idempotency_key: str | None = None
    answers: Mapping[str, object] = field(default_factory=dict)  # added to or replacing those given when booked


@dataclass(frozen=True)
class Cancellation:
    appointment_id: str
    reason: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Edit:
    """Corrections to our own record; None leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    label: str | None = None
    attendee_name: str | None = None
    attendee_email: str | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class SearchRequest:
    """Filters and order for search. No statuses means every status but failed; days are local days in
    the business's time zone, both inclusive."""

    text: str | None = None
    statuses: tuple[AppointmentStatus, ...] = ()
    label: str | None = None
    call_type: CallType | None = None
    phone: str | None = None  # E.164: either number of the appointment is exactly this
    date_from: date | None = None
    date_to: date | None = None
    sort_by: SortField = "start"
    descending: bool = False
    page: int = 1
    page_size: int = 10
