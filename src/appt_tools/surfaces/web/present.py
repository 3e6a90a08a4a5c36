"""Appointments as the dashboard shows them: local dates and times in the business's zone, status
badges, the month grid. Pure functions over domain models; no I/O."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from appt_tools.models import Appointment, AppointmentStatus, EventType, Slot
from appt_tools.speech import spoken
from appt_tools.validation import FIRST_DAY, LAST_DAY

STATUS_LABELS = {
    AppointmentStatus.ACTIVE: "Active",
    AppointmentStatus.PENDING: "Pending",
    AppointmentStatus.COMPLETED: "Completed",
    AppointmentStatus.CANCELLED: "Cancelled",
    AppointmentStatus.RESCHEDULED: "Rescheduled",
    AppointmentStatus.FAILED: "Failed",
}
GONE = (AppointmentStatus.CANCELLED, AppointmentStatus.FAILED)  # no meeting to join
CHANGEABLE = (AppointmentStatus.ACTIVE, AppointmentStatus.PENDING, AppointmentStatus.RESCHEDULED)
# Each status also has a mark, so the calendar's chips say it by more than colour.
STATUS_MARKS = {"active": "●", "pending": "◔", "completed": "✓", "cancelled": "✕", "rescheduled": "↻", "failed": "!"}
CALL_TYPE_LABELS = {"inbound": "Inbound call", "outbound": "Outbound call", "web": "Web"}
# What the calendar shows: everything but cancelled appointments and bookings that never went through.
CALENDAR_STATUSES = "pending,active,rescheduled,completed"


def clock(moment: datetime, tz: str) -> str:
    """'3:00 PM'."""
    at = spoken.local(moment, tz)
    return f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"


def short_day(moment: datetime | date, tz: str | None = None) -> str:
    """'Tue, Nov 24, 2026'."""
    at = spoken.local(moment, tz) if isinstance(moment, datetime) and tz else moment
    return f"{at:%a}, {at:%b} {at.day}, {at.year}"


def long_day(day: date) -> str:
    """'Tuesday, November 24'."""
    return f"{day:%A}, {day:%B} {day.day}"


def short_date(moment: datetime, tz: str) -> str:
    """'Dec 8', for naming an appointment in a button's accessible name."""
    at = spoken.local(moment, tz)
    return f"{at:%b} {at.day}"


def whereabouts(a: Appointment) -> tuple[str, str]:
    """Where the meeting happens, as (kind, text): a link, an address, a phone number, or nothing.
    Cal.com's `location` is an address, a phone number, or an integration's id such as
    'integrations:google:meet' when the link is not known yet."""
    link = safe_link(a.meeting_url)
    if link:
        return "link", link
    location = (a.location or "").strip()
    if a.status is AppointmentStatus.PENDING and (not location or location.startswith("integrations:")):
        return "online", "Online meeting: the link comes once the host confirms it."
    if location.startswith("integrations:"):
        return "online", "Online meeting: the link comes with Cal.com's invitation."
    if location and location.lstrip("+").replace(" ", "").replace("-", "").isdigit():
        return "phone", f"By phone: the call is on {location}."
    if location:
        return "address", location
    if a.call_type in ("inbound", "outbound") and a.from_number:
        return "phone", f"By phone: they will call you at {a.to_number} from {a.from_number}."
    return "none", ""


def safe_link(url: str | None) -> str | None:
    """Only http(s) links become clickable; anything else (javascript:, data:) is not a link."""
    if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return url


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    attendee_name: str
    attendee_email: str
    business_name: str
    host_name: str  # who meets the caller (a team's assigned member); '' when Cal.com named no one
    day: str
    time: str
    local_date: str  # YYYY-MM-DD in the business's zone
    start: str  # ISO 8601 with the zone's offset
    status: str
    status_label: str
    label: str
    call_type: str
    call_type_label: str
    to_number: str
    from_number: str
    meeting_url: str | None  # only while the meeting can still be joined
    changeable: bool
    past: bool  # it has ended
    where_kind: str  # link, online, phone, address or none (see `whereabouts`)
    where: str
    booking_uid: str
    pending: bool  # waiting for the host: it can be confirmed or declined
    named: str  # 'Sales call with Ana Ruiz, Dec 8': what a button acts on, for a screen reader

    @classmethod
    def of(cls, a: Appointment, tz: str, now: datetime) -> Row:
        status = a.effective_status(now)
        past = a.end <= now
        where_kind, where = whereabouts(a)
        return cls(
            id=a.id,
            title=a.title,
            attendee_name=a.attendee_name,
            attendee_email=a.attendee_email or a.caller_phone() or "",
            business_name=a.business_name,
            host_name=a.host_name or "",
            day=short_day(a.start, tz),
            time=clock(a.start, tz),
            local_date=spoken.local(a.start, tz).date().isoformat(),
            start=spoken.iso(a.start, tz),
            status=status.value,
            status_label=STATUS_LABELS[status],
            label=a.label,
            call_type=a.call_type,
            call_type_label=CALL_TYPE_LABELS.get(a.call_type, a.call_type),
            to_number=a.to_number,
            from_number=a.from_number,
            meeting_url=safe_link(a.meeting_url) if status not in GONE and not past else None,
            changeable=status in CHANGEABLE and a.booking_uid is not None,
            past=past,
            where_kind=where_kind,
            where=where,
            booking_uid=a.booking_uid or "",
            pending=status is AppointmentStatus.PENDING and a.booking_uid is not None,
            named=f"{a.title} with {a.attendee_name}, {short_date(a.start, tz)}",
        )


def editable(a: Appointment, tz: str, now: datetime, event_types: list[EventType]) -> dict[str, object]:
    """What the drawer needs to edit one appointment."""
    row = Row.of(a, tz, now)
    kind = next((t.title for t in event_types if t.id == a.event_type_id), f"Event type {a.event_type_id}")
    return {
        "id": a.id,
        "title": a.title,
        "description": a.description,
        "label": a.label,
        "attendee_name": a.attendee_name,
        "attendee_email": a.attendee_email or "",
        "business_name": a.business_name,
        "to_number": a.to_number,
        "from_number": a.from_number,
        "call_type": a.call_type,
        "event_type_id": a.event_type_id,
        "event_type": kind,
        "start": row.start,
        "local_date": row.local_date,
        "when": f"{row.day}, {row.time}",
        "status": row.status,
        "status_label": row.status_label,
        "changeable": row.changeable,
        "meeting_url": row.meeting_url,
        "where_kind": row.where_kind,
        "where": row.where,
        "past": row.past,
        "booking_uid": row.booking_uid,
        "host_name": row.host_name,
        "named": row.named,
        "last_error": a.last_error,
        "pending": row.pending,
        "answers": answered(a, event_types),
    }


def answered(a: Appointment, event_types: list[EventType]) -> list[dict[str, str]]:
    """The caller's answers as (question, answer) in the event type's order; an answer to a question the
    event type no longer asks keeps its slug as the question."""
    asked = next((t.questions for t in event_types if t.id == a.event_type_id), ())
    labels = {q.slug: q.label for q in asked}
    order = [q.slug for q in asked if q.slug in a.answers] + [k for k in a.answers if k not in labels]
    return [{"question": labels.get(k, k), "answer": _answer_text(a.answers[k])} for k in order]


def _answer_text(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def slot_choice(slot: Slot, tz: str) -> dict[str, str]:
    return {"start": spoken.iso(slot.start, tz), "time": clock(slot.start, tz), "day": short_day(slot.start, tz)}


# --- the month grid ---------------------------------------------------------------------------


@dataclass
class Day:
    date: date
    in_month: bool
    today: bool
    items: list[Row] = field(default_factory=list)

    @property
    def iso(self) -> str:
        return self.date.isoformat()

    @property
    def title(self) -> str:
        return long_day(self.date)


@dataclass(frozen=True)
class Month:
    first: date
    weeks: list[list[Day]]

    @property
    def title(self) -> str:
        return f"{self.first:%B} {self.first.year}"

    @property
    def key(self) -> str:
        return f"{self.first:%Y-%m}"

    @property
    def previous(self) -> str:
        return f"{(self.first - timedelta(days=1)):%Y-%m}"

    @property
    def next(self) -> str:
        return f"{(self.first + timedelta(days=32)).replace(day=1):%Y-%m}"

    @property
    def agenda(self) -> list[Day]:
        """The month's days with appointments, and today: the list a narrow screen shows."""
        return [day for week in self.weeks for day in week if day.in_month and (day.items or day.today)]

    @property
    def grid_start(self) -> date:
        return self.weeks[0][0].date

    @property
    def grid_end(self) -> date:
        return self.weeks[-1][-1].date


WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def month_grid(first: date, today: date) -> Month:
    """Whole weeks, Monday first, covering the month of `first`."""
    weeks = [
        [Day(d, d.month == first.month, d == today) for d in week]
        for week in calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
    ]
    return Month(first.replace(day=1), weeks)


def place(month: Month, rows: list[Row]) -> Month:
    by_day = {day.iso: day for week in month.weeks for day in week}
    for row in rows:
        if row.local_date in by_day:
            by_day[row.local_date].items.append(row)
    return month


# The calendar pages a month either way, so its first and last months stay a month inside the dates handled.
FIRST_MONTH = (FIRST_DAY + timedelta(days=31)).replace(day=1)
LAST_MONTH = (LAST_DAY - timedelta(days=62)).replace(day=1)


def parse_month(raw: str | None, today: date) -> date:
    """'2026-11' → 2026-11-01; anything else (or a month the calendar cannot page past) → this month."""
    try:
        year, month = (raw or "").split("-")
        if not (year + month).isascii():
            raise ValueError(raw)
        first = date(int(year), int(month), 1)
    except ValueError:
        return today.replace(day=1)
    return first if FIRST_MONTH <= first <= LAST_MONTH else today.replace(day=1)
