"""Result models every surface returns: typed, in the business's time zone, each with a `say`
sentence a voice assistant can read aloud (no ids, no URLs, no ISO strings)."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from appt_tools.errors import AppError, CalcomRateLimited, InvalidArgument, SlotUnavailable
from appt_tools.models import (
    AnswerValue,
    Appointment,
    AppointmentStatus,
    CallType,
    EventType,
    HistoryEntry,
    Hold,
    Question,
    SchedulingType,
    SearchPage,
    Slot,
    SlotSearch,
)
from appt_tools.speech import say, spoken

SAY = "One short sentence the assistant can read aloud as is."
# Cal.com blocks a key for 60 s once it is over its limit: the wait to suggest when it did not say.
RATE_LIMIT_WAIT_SECONDS = 60


class NowView(BaseModel):
    """The current time where the business is: read it before turning 'next Tuesday' into a date."""

    iso: str = Field(
        description="Now in the business's time zone, ISO 8601 with offset, e.g. '2026-12-04T18:15:00-05:00'."
    )
    spoken: str = Field(description="Now as said aloud, e.g. 'Friday, December 4, 6:15 PM'.")
    timezone: str = Field(description="The business's IANA time zone, e.g. 'America/New_York'.")

    @classmethod
    def of(cls, now: datetime, tz: str) -> NowView:
        return cls(iso=spoken.iso(now, tz), spoken=spoken.moment(now, tz), timezone=tz)


NOW = "The current time in the business's time zone: use it to turn 'today' or 'next Tuesday' into a date."


class SlotView(BaseModel):
    start: str = Field(description="ISO 8601 start with the time zone's offset, e.g. '2026-11-24T15:00:00-05:00'.")
    end: str = Field(description="ISO 8601 end with offset.")
    spoken: str = Field(description="The start as said aloud, e.g. 'Tuesday, November 24 at 3 PM'.")

    @classmethod
    def of(cls, slot: Slot, tz: str) -> SlotView:
        return _slot_view(slot.start, slot.end, tz)


@functools.lru_cache(maxsize=4096)
def _slot_view(start: datetime, end: datetime, tz: str) -> SlotView:
    """One slot as shown, made once: find_slots answers the same warm slots call after call (a fortnight of
    half hours is under 700 of them), and spelling each out costs more than the rest of the answer."""
    return SlotView(start=spoken.iso(start, tz), end=spoken.iso(end, tz), spoken=spoken.when(start, tz))


class QuestionView(BaseModel):
    slug: str = Field(description="Key for the answer in book_appointment's `answers`, e.g. 'topic'.")
    label: str = Field(description="The question to ask the caller, e.g. 'What would you like to discuss?'.")
    type: str = Field(
        description="text, textarea, number, phone, select or radio (one option), multiselect or checkbox "
        "(a list of options), boolean (true or false)."
    )
    required: bool = Field(description="Booking is refused without an answer.")
    options: list[str] | None = Field(default=None, description="The allowed answers, for choice questions.")

    @classmethod
    def of(cls, q: Question) -> QuestionView:
        return cls(slug=q.slug, label=q.label, type=q.type, required=q.required, options=list(q.options) or None)


QUESTIONS = (
    "Questions the event type asks: ask the caller each required one and pass the answers to book_appointment "
    "as `answers` (slug → answer). Name, e-mail, phone and notes are not questions: they have their own arguments."
)


class SlotsResult(BaseModel):
    timezone: str = Field(description="IANA zone the times are shown in.")
    event_type_id: int
    event_type: str = Field(description="Event type title, e.g. 'Consultation'.")
    duration_minutes: int
    slots: list[SlotView] = Field(description="Free start times, earliest first. Book one by passing its `start`.")
    requested_window_empty: bool = Field(
        description="True when nothing was free in the requested day or range; `slots` then holds the next free times after it."
    )
    truncated: bool = Field(description="True when more slots were free than listed; ask for a narrower range.")
    fresh_as_of: str = Field(description="When Cal.com gave these slots, ISO 8601 UTC; booking rechecks.")
    questions: list[QuestionView] = Field(description=QUESTIONS)
    now: NowView = Field(description=NOW)
    say: str = Field(description=SAY)

    @classmethod
    def of(cls, found: SlotSearch, now: NowView) -> SlotsResult:
        tz = found.timezone
        slots = [SlotView.of(s, tz) for s in found.slots]
        say_text = say.slots(found.slots, tz, day_asked=found.window_start, later=found.later)
        return cls(
            timezone=tz,
            event_type_id=found.event_type.id,
            event_type=found.event_type.title,
            duration_minutes=found.duration_minutes,
            slots=slots,
            requested_window_empty=found.later,
            truncated=found.truncated,
            fresh_as_of=_utc_iso(found.fresh_as_of or datetime.now(UTC)),
            questions=[QuestionView.of(q) for q in found.event_type.questions],
            now=now,
            say=say_text,
        )


class AppointmentView(BaseModel):
    id: str = Field(description="Our appointment id; stable across reschedules, e.g. 'apt_3kq9x2mz7w1b'.")
    booking_uid: str | None = Field(description="The current Cal.com booking uid (changes on reschedule).")
    previous_booking_uids: list[str] = Field(description="Earlier Cal.com booking uids, oldest first.")
    status: AppointmentStatus = Field(
        description="pending (awaiting Cal.com or host confirmation), active, rescheduled, cancelled, "
        "completed (its time has passed) or failed (Cal.com refused it)."
    )
    title: str
    description: str
    label: str
    start: str = Field(description="ISO 8601 start in the business's time zone, with offset.")
    end: str = Field(description="ISO 8601 end in the business's time zone, with offset.")
    start_spoken: str = Field(description="The start as said aloud, e.g. 'Tuesday, November 24 at 3 PM'.")
    timezone: str = Field(description="The zone `start` and `end` are shown in.")
    attendee_name: str
    attendee_email: str | None = Field(description="None: booked with the caller's phone number, no e-mail.")
    attendee_phone: str | None = Field(
        description="The caller's number Cal.com has for the attendee (E.164), if any: given, or the call's."
    )
    business_name: str
    to_number: str = Field(description="Number that was called, E.164.")
    from_number: str = Field(description="Number that called, E.164.")
    call_type: CallType
    event_type_id: int
    meeting_url: str | None = Field(
        description="Link to join (Zoom, Google Meet, Cal Video…), if any; a booking waiting for the host gets "
        "its link once confirmed."
    )
    location: str | None = Field(
        description="Where it happens: the link, an address for in-person visits, or the number the host calls."
    )
    host_name: str | None = Field(
        description="Who meets the caller, as Cal.com assigned it: a team's round robin picks one member "
        "('Dr. Lee'), a collective names them all ('Dr. Lee and Dr. Patel')."
    )
    host_email: str | None = Field(description="The host's e-mail (several: comma-separated).")
    answers: dict[str, AnswerValue] = Field(description="The caller's answers to the event type's questions, by slug.")
    language: str | None = Field(description="The language of the attendee's invite and e-mails, e.g. 'es'.")
    cancellation_reason: str | None
    last_error: str | None = Field(description="What went wrong last with Cal.com, if anything.")
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, a: Appointment, tz: str, now: datetime) -> AppointmentView:
        return cls(
            id=a.id,
            booking_uid=a.booking_uid,
            previous_booking_uids=list(a.previous_booking_uids),
            status=a.effective_status(now),
            title=a.title,
            description=a.description,
            label=a.label,
            start=spoken.iso(a.start, tz),
            end=spoken.iso(a.end, tz),
            start_spoken=spoken.when(a.start, tz),
            timezone=tz,
            attendee_name=a.attendee_name,
            attendee_email=a.attendee_email,
            attendee_phone=a.caller_phone(),
            business_name=a.business_name,
            to_number=a.to_number,
            from_number=a.from_number,
            call_type=a.call_type,
            event_type_id=a.event_type_id,
            meeting_url=a.meeting_url,
            # An internal id ('integrations:daily', stored before it was dropped) is no place to go.
            location=None if (a.location or "").startswith("integrations:") else a.location,
            host_name=a.host_name,
            host_email=a.host_email,
            answers=dict(a.answers),
            language=a.language,
            cancellation_reason=a.cancellation_reason,
            last_error=a.last_error,
            created_at=spoken.iso(a.created_at, tz),
            updated_at=spoken.iso(a.updated_at, tz),
        )


class HistoryView(BaseModel):
    at: str
    action: str
    detail: str
    from_start: str | None
    to_start: str | None

    @classmethod
    def of(cls, h: HistoryEntry, tz: str) -> HistoryView:
        return cls(
            at=spoken.iso(h.at, tz),
            action=h.action,
            detail=h.detail,
            from_start=spoken.iso(h.from_start, tz) if h.from_start else None,
            to_start=spoken.iso(h.to_start, tz) if h.to_start else None,
        )


class AppointmentResult(BaseModel):
    appointment: AppointmentView
    history: list[HistoryView] | None = Field(default=None, description="What happened to it, oldest first.")
    now: NowView = Field(description=NOW)
    say: str = Field(description=SAY)


class SearchResult(BaseModel):
    items: list[AppointmentView]
    total: int = Field(description="Matches over all pages; when total_exact is false, there are more than this.")
    total_exact: bool = Field(
        description="False when counting stopped at `total` to stay fast (add a filter or a longer query to narrow it)."
    )
    page: int
    page_size: int
    total_pages: int = Field(description="Pages of results; at least this many when total_exact is false.")
    has_more: bool = Field(description="True when a later page has results.")
    now: NowView = Field(description=NOW)
    say: str = Field(description=SAY)

    @classmethod
    def of(cls, found: SearchPage, tz: str, now: datetime) -> SearchResult:
        pages = max(1, -(-found.total // found.page_size))
        full = len(found.items) == found.page_size
        first = found.items[0] if found.items else None
        return cls(
            items=[AppointmentView.of(a, tz, now) for a in found.items],
            total=found.total,
            total_exact=found.total_exact,
            page=found.page,
            page_size=found.page_size,
            total_pages=pages,
            has_more=found.page < pages or (not found.total_exact and full),
            now=NowView.of(now, tz),
            say=say.search(found.total, first, tz, now, exact=found.total_exact, shown=len(found.items)),
        )


class EventTypeView(BaseModel):
    id: int
    title: str
    slug: str
    length_minutes: int
    length_options: list[int] = Field(description="Allowed durations when the type has several.")
    location: str | None = Field(
        description="e.g. 'cal-video', 'zoom', 'google-meet', an address, or 'phone call' (the host calls the "
        "caller at the number they called from)."
    )
    requires_confirmation: bool = Field(description="Bookings stay pending until the host confirms.")
    is_default: bool
    questions: list[QuestionView] = Field(description=QUESTIONS)
    team: str | None = Field(
        description="The team whose event type this is, e.g. 'Riverside Clinic'; null: the owner's own."
    )
    scheduling_type: SchedulingType | None = Field(
        description="For a team's event type: ROUND_ROBIN (Cal.com assigns one free member; the booking result names "
        "them in host_name) or COLLECTIVE (every member attends; free only when all are)."
    )

    @classmethod
    def of(cls, e: EventType, default_id: int | None) -> EventTypeView:
        return cls(
            id=e.id,
            title=e.title,
            slug=e.slug,
            length_minutes=e.length_minutes,
            length_options=list(e.length_options),
            location="phone call" if e.phone_call else e.location_integration or e.location_address or e.location_type,
            requires_confirmation=e.requires_confirmation,
            is_default=e.id == default_id,
            questions=[QuestionView.of(q) for q in e.questions],
            team=e.team_name if e.team_id is not None else None,
            scheduling_type=e.scheduling_type,
        )


class EventTypesResult(BaseModel):
    event_types: list[EventTypeView]
    now: NowView = Field(description=NOW)
    say: str = Field(description=SAY)


class FieldError(BaseModel):
    field: str = Field(description="The argument, e.g. 'attendee_email'.")
    message: str = Field(description="Why it is wrong and what a valid value looks like.")


class HoldResult(BaseModel):
    hold_id: str = Field(description="Pass to book_appointment as hold_id to book this time, or to release_hold.")
    start: str = Field(description="ISO 8601 start of the held time, in the business's time zone, with offset.")
    end: str
    start_spoken: str = Field(description="The start as said aloud, e.g. 'Tuesday, November 24 at 3 PM'.")
    event_type_id: int
    expires_at: str = Field(description="ISO 8601: the hold ends then unless the time is booked first.")
    now: NowView = Field(description=NOW)
    say: str = Field(description=SAY)

    @classmethod
    def of(cls, hold: Hold, tz: str, now: datetime, sentence: str) -> HoldResult:
        return cls(
            hold_id=hold.id,
            start=spoken.iso(hold.start, tz),
            end=spoken.iso(hold.end, tz),
            start_spoken=spoken.when(hold.start, tz),
            event_type_id=hold.event_type_id,
            expires_at=spoken.iso(hold.expires_at, tz),
            now=NowView.of(now, tz),
            say=sentence,
        )


class ErrorView(BaseModel):
    """What every surface returns for a failed call."""

    code: str = Field(description="Stable machine code, e.g. 'slot_unavailable', 'invalid_argument'.")
    message: str = Field(description="What went wrong and what to do next.")
    retryable: bool = Field(description="Whether the same call may succeed if retried later.")
    field: str | None = Field(default=None, description="The first wrong argument (invalid_argument).")
    errors: list[FieldError] | None = Field(
        default=None,
        description="Every wrong or missing argument of the call, the first one included: fix them all at once.",
    )
    alternatives: list[SlotView] | None = None
    retry_after_seconds: int | None = Field(
        default=None, description="For calcom_rate_limited: seconds to wait before trying the same call again."
    )
    now: NowView | None = Field(default=None, description=NOW)
    say: str

    @classmethod
    def of(cls, error: AppError, tz: str, now: datetime | None = None) -> ErrorView:
        alternatives = [SlotView.of(s, tz) for s in error.alternatives] if isinstance(error, SlotUnavailable) else None
        invalid = isinstance(error, InvalidArgument)
        errors = [FieldError.model_validate(e) for e in getattr(error, "errors", ())] if invalid else None
        return cls(
            code=error.code,
            message=error.message,
            retryable=error.retryable,
            field=error.field if isinstance(error, InvalidArgument) else None,
            errors=errors or None,
            alternatives=alternatives,
            retry_after_seconds=_retry_after(error),
            now=NowView.of(now, tz) if now is not None else None,
            say=say.error(error, tz),
        )


def _retry_after(error: AppError) -> int | None:
    if not isinstance(error, CalcomRateLimited):
        return None
    return max(1, math.ceil(error.retry_after)) if error.retry_after is not None else RATE_LIMIT_WAIT_SECONDS


def _utc_iso(moment: datetime) -> str:
    """'2026-12-04T23:15:02Z': a moment in UTC to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
