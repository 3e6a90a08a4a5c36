"""Raw tool arguments (strings, as the MCP tools, the plain routes and the dashboard receive them) parsed
once into the core's typed requests. Each function checks every field and raises one InvalidArgument naming them all (`errors`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import get_args
from zoneinfo import ZoneInfo

from appt_tools import validation
from appt_tools.core.requests import BookingDraft, Cancellation, Edit, HoldRequest, Move, SearchRequest, SlotRequest
from appt_tools.errors import InvalidArgument, LockedField, Problems
from appt_tools.models import PAGE_SIZES, SORT_FIELDS, AppointmentStatus, CallType, SortField

LOCKED_FIELDS = ("to_number", "from_number", "call_type", "booking_uid")
NO_START = "is required: a start from find_slots, e.g. '2026-11-24T15:00:00-05:00', or a hold_id from hold_slot."
EDITABLE_FIELDS = ("title", "description", "label", "attendee_name", "attendee_email")


def slot_request(
    *,
    business_tz: str,
    now: datetime,
    date: str | None = None,
    start: str | None = None,
    end: str | None = None,
    timezone: str | None = None,
    event_type_id: int | None = None,
    duration_minutes: int | None = None,
) -> SlotRequest:
    """`date` is YYYY-MM-DD, or 'today' / 'tomorrow' in `timezone` (default: the business's)."""
    problems = Problems()
    zone = problems.check(lambda: validation.zone_name("timezone", timezone)) if timezone is not None else None
    tz_name = zone or business_tz
    day = problems.check(lambda: relative_day("date", date, now, tz_name)) if date is not None else None
    first = problems.check(lambda: validation.instant("start", start, tz_name)) if start is not None else None
    last = problems.check(lambda: validation.instant("end", end, tz_name)) if end is not None else None
    length = problems.check(lambda: validation.duration("duration_minutes", duration_minutes))
    problems.raise_any()
    return SlotRequest(
        day=day,
        start=first,
        end=last,
        timezone=zone,
        event_type_id=event_type_id,
        duration_minutes=length,
    )


RELATIVE_DAYS = {"today": 0, "tomorrow": 1}


def relative_day(field: str, value: str, now: datetime, tz_name: str) -> date:
    """'today', 'tomorrow' (in `tz_name`, at `now`), or a YYYY-MM-DD date."""
    offset = RELATIVE_DAYS.get(value.strip().lower())
    if offset is None:
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidArgument(
                field, f"{value!r} is not a date; use YYYY-MM-DD (e.g. '2026-11-24'), 'today' or 'tomorrow'."
            ) from None
        validation.date_in_range(field, parsed, value)
        return parsed
    return (now.astimezone(ZoneInfo(tz_name)) + timedelta(days=offset)).date()


def booking_draft(
    *,
    start: str | None,
    attendee_name: str,
    attendee_email: str | None,
    to_number: str,
    from_number: str,
    call_type: str,
    title: str | None = None,
    description: str | None = None,
    label: str | None = None,
    business_name: str | None = None,
    event_type_id: int | None = None,
    timezone: str | None = None,
    duration_minutes: int | None = None,
    idempotency_key: str | None = None,
    attendee_phone: str | None = None,
    hold_id: str | None = None,
    answers: Mapping[str, object] | None = None,
    language: str | None = None,
) -> BookingDraft:
    """Every field is checked; one InvalidArgument names all that are wrong (`errors`)."""
    p = Problems()
    name = p.check(lambda: validation.text("attendee_name", attendee_name, required=True))
    given_mail = attendee_email if attendee_email and attendee_email.strip() else None
    mail = p.check(lambda: validation.email("attendee_email", given_mail)) if given_mail else None
    to_e164 = p.check(lambda: validation.phone_e164("to_number", to_number))
    from_e164 = p.check(lambda: validation.phone_e164("from_number", from_number))
    kind = p.check(lambda: validation.call_type("call_type", call_type))
    phone = p.check(lambda: validation.phone_e164("attendee_phone", attendee_phone)) if attendee_phone else None
    if given_mail is None and attendee_phone is None and kind == "web":
        p.add(
            InvalidArgument(
                "attendee_email",
                "is needed: on a web call there is no caller's number to book with. Ask for their e-mail "
                "(e.g. 'ana@example.com'), or for a phone number and pass it as attendee_phone.",
            )
        )
    zone = p.check(lambda: validation.zone_name("timezone", timezone)) if timezone is not None else None
    held = p.check(lambda: validation.text("hold_id", hold_id)) or None
    when = None
    if start is not None:
        # With a wrong timezone the time is still checked (read in UTC: the call is refused anyway).
        when = p.check(lambda: validation.instant("start", start, zone or ("UTC" if timezone else None)))
    elif held is None:
        p.add(InvalidArgument("start", NO_START))
    given = {"title": title, "description": description, "label": label, "business_name": business_name}
    texts = {key: p.check(partial(validation.text, key, value)) for key, value in given.items()}
    length = p.check(lambda: validation.duration("duration_minutes", duration_minutes))
    key = p.check(lambda: validation.idempotency_key(idempotency_key))
    given_answers = p.check(lambda: answer_map(answers))
    tongue = p.check(lambda: validation.language("language", language)) if language is not None else None
    p.raise_any()
    assert name is not None and kind is not None and to_e164 is not None and from_e164 is not None
    return BookingDraft(
        start=when,
        attendee_name=name,
        attendee_email=mail,
        to_number=to_e164,
        from_number=from_e164,
        call_type=kind,
        title=texts["title"] or None,
        description=texts["description"] or None,
        label=texts["label"] or None,
        business_name=texts["business_name"] or None,
        event_type_id=event_type_id,
        timezone=zone,
        duration_minutes=length,
        idempotency_key=key,
        attendee_phone=phone,
        hold_id=held,
        answers=given_answers or {},
        language=tongue,
    )


def answer_map(raw: Mapping[str, object] | None) -> dict[str, object]:
    """The answers object as given (each value is checked against its question by the core)."""
    if raw is None:
        return {}
    for slug in raw:
        if not isinstance(slug, str) or not slug.strip() or len(slug) > 100:
            raise InvalidArgument(
                "answers",
                f"{slug!r} is not a question slug; use the `slug` of a question from find_slots, e.g. 'topic'.",
            )
    return {slug.strip(): value for slug, value in raw.items()}


def hold_request(
    *,
    start: str,
    event_type_id: int | None = None,
    timezone: str | None = None,
    duration_minutes: int | None = None,
) -> HoldRequest:
    """Every field is checked; one InvalidArgument names all that are wrong (`errors`)."""
    p = Problems()
    zone = p.check(lambda: validation.zone_name("timezone", timezone)) if timezone is not None else None
    when = p.check(lambda: validation.instant("start", start, zone or ("UTC" if timezone else None)))
    length = p.check(lambda: validation.duration("duration_minutes", duration_minutes))
    p.raise_any()
    assert when is not None
    return HoldRequest(start=when, event_type_id=event_type_id, timezone=zone, duration_minutes=length)


def move(
    appointment_id: str,
    new_start: str,
    *,
    reason: str | None = None,
    timezone: str | None = None,
    idempotency_key: str | None = None,
    answers: Mapping[str, object] | None = None,
) -> Move:
    p = Problems()
    zone = p.check(lambda: validation.zone_name("timezone", timezone)) if timezone is not None else None
    when = p.check(lambda: validation.instant("new_start", new_start, zone or ("UTC" if timezone else None)))
    why = p.check(lambda: validation.text("reason", reason))
    key = p.check(lambda: validation.idempotency_key(idempotency_key))
    given_answers = p.check(lambda: answer_map(answers))
    p.raise_any()
    assert when is not None
    return Move(
        appointment_id=appointment_id,
        new_start=when,
        reason=why or None,
        timezone=zone,
        idempotency_key=key,
        answers=given_answers or {},
    )


def cancellation(appointment_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Cancellation:
    p = Problems()
    why = p.check(lambda: validation.text("reason", reason))
    key = p.check(lambda: validation.idempotency_key(idempotency_key))
    p.raise_any()
    return Cancellation(appointment_id=appointment_id, reason=why or None, idempotency_key=key)


def edit(changes: Mapping[str, str | None]) -> Edit:
    """Corrections to our own fields; the locked ones (fixed at creation) and unknown ones are refused."""
    for key in changes:
        if key in LOCKED_FIELDS:
            raise LockedField(key, "is fixed when the appointment is created and cannot be changed.")
    p = Problems()
    for key in changes:
        if key not in EDITABLE_FIELDS:
            p.add(InvalidArgument(key, f"is not an appointment field you can edit; use {', '.join(EDITABLE_FIELDS)}."))
    clean: dict[str, str] = {}
    for key, value in changes.items():
        if value is None or key not in EDITABLE_FIELDS:
            continue
        if key == "attendee_email":
            checked = p.check(partial(validation.email, key, value))
        else:
            checked = p.check(partial(validation.text, key, value, required=key in ("title", "attendee_name")))
        if checked is not None:
            clean[key] = checked
    p.raise_any()
    return Edit(**clean)


def search_request(
    *,
    query: str | None = None,
    status: str | Sequence[str] | None = None,
    label: str | None = None,
    host: str | None = None,
    call_type: str | None = None,
    phone: str | None = None,
    region: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
) -> SearchRequest:
    """None means the default: every status but failed, sorted by start ascending, page 1 of 10. `phone`
    is any common form of a number (national ones read in `region`, e.g. 'US')."""
    p = Problems()
    statuses = p.check(lambda: statuses_of(status)) or ()
    sort_by = sort_by or "start"
    sort_order = sort_order or "asc"
    page = 1 if page is None else page
    page_size = 10 if page_size is None else page_size
    if sort_by not in SORT_FIELDS:
        p.add(InvalidArgument("sort_by", f"{sort_by!r} is not sortable; use one of {', '.join(SORT_FIELDS)}."))
    if sort_order not in ("asc", "desc"):
        p.add(InvalidArgument("sort_order", f"{sort_order!r} is not an order; use 'asc' or 'desc'."))
    if page_size not in PAGE_SIZES:
        p.add(InvalidArgument("page_size", f"{page_size} is not a page size; use one of 10, 25, 50 or 100."))
    if page < 1:
        p.add(InvalidArgument("page", f"{page} is not a page number; pages start at 1."))
    kind: CallType | None = p.check(lambda: validation.call_type("call_type", call_type)) if call_type else None
    number = p.check(lambda: validation.phone("phone", phone, region)) if phone else None
    text = p.check(lambda: validation.text("query", query))
    tag = p.check(lambda: validation.text("label", label))
    who = p.check(lambda: validation.text("host", host))
    first = p.check(lambda: validation.day("date_from", date_from)) if date_from else None
    last = p.check(lambda: validation.day("date_to", date_to)) if date_to else None
    p.raise_any()
    chosen: SortField = next(f for f in get_args(SortField) if f == sort_by)
    return SearchRequest(
        text=text or None,
        statuses=statuses,
        label=tag or None,
        host=who or None,
        call_type=kind,
        phone=number,
        date_from=first,
        date_to=last,
        sort_by=chosen,
        descending=sort_order == "desc",
        page=page,
        page_size=page_size,
    )


def statuses_of(raw: str | Sequence[str] | None) -> tuple[AppointmentStatus, ...]:
    """['active'], 'cancelled,completed', or None/empty (no filter: the core's default)."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw or ())
    if not any(part.strip() for part in parts):
        return ()
    chosen: list[AppointmentStatus] = []
    for part in parts:
        name = part.strip().lower()
        try:
            chosen.append(AppointmentStatus(name))
        except ValueError:
            valid = ", ".join(s.value for s in AppointmentStatus)
            raise InvalidArgument("status", f"{part.strip()!r} is not a status; use one of {valid}.") from None
    return tuple(chosen)


def _start(field: str, value: str) -> object:
    # Without a zone in hand, a naive time is the tool's to judge (it may come with `timezone`).
    return validation.instant(field, value, "UTC")


# Checks of single string arguments by name, whatever the tool: run on the arguments the tool's own
# model accepted when others were refused, so one answer names every problem (`mcp_server._run`).
FIELD_CHECKS: dict[str, Callable[[str, str], object]] = {
    "timezone": validation.zone_name,
    "attendee_email": validation.email,
    "attendee_name": partial(validation.text, required=True),
    "to_number": validation.phone_e164,
    "from_number": validation.phone_e164,
    "call_type": validation.call_type,
    "start": _start,
    "new_start": _start,
    "date": lambda field, value: relative_day(field, value, datetime.now(UTC), "UTC"),
    "date_from": validation.day,
    "date_to": validation.day,
    "idempotency_key": lambda field, value: validation.idempotency_key(value),
}


def field_problems(tool: str, arguments: Mapping[str, object], skip: Collection[str]) -> list[InvalidArgument]:
    """What `FIELD_CHECKS` finds wrong in the string arguments not in `skip`, and a booking without a time
    (`start` is optional in its schema only because a `hold_id` can stand for it)."""
    found = []
    if tool == "book_appointment" and arguments.get("start") is None and arguments.get("hold_id") is None:
        found.append(InvalidArgument("start", NO_START))
    for key, value in arguments.items():
        check = FIELD_CHECKS.get(key)
        if check is None or key in skip or not isinstance(value, str):
            continue
        try:
            check(key, value)
        except InvalidArgument as exc:
            found.append(exc)
    return found
