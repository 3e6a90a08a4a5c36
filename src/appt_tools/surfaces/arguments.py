"""Raw tool arguments (strings, as the MCP tools, the plain routes and the dashboard receive them) parsed
once into the core's typed requests. Each function raises InvalidArgument naming the first bad field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

from appt_tools import validation
from appt_tools.core.requests import BookingDraft, Cancellation, Edit, HoldRequest, Move, SearchRequest, SlotRequest
from appt_tools.errors import InvalidArgument, LockedField
from appt_tools.models import PAGE_SIZES, SORT_FIELDS, AppointmentStatus, CallType, SortField

LOCKED_FIELDS = ("to_number", "from_number", "call_type", "booking_uid")
EDITABLE_FIELDS = ("title", "description", "label", "attendee_name", "attendee_email")


def slot_request(
    *,
    business_tz: str,
    date: str | None = None,
    start: str | None = None,
    end: str | None = None,
    timezone: str | None = None,
    event_type_id: int | None = None,
    duration_minutes: int | None = None,
) -> SlotRequest:
    tz_name = timezone or business_tz
    validation.zone("timezone", tz_name)
    return SlotRequest(
        day=validation.day("date", date) if date is not None else None,
        start=validation.instant("start", start, tz_name) if start is not None else None,
        end=validation.instant("end", end, tz_name) if end is not None else None,
        timezone=timezone,
        event_type_id=event_type_id,
        duration_minutes=validation.duration("duration_minutes", duration_minutes),
    )


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
) -> BookingDraft:
    name = validation.text("attendee_name", attendee_name, required=True)
    mail = validation.email("attendee_email", attendee_email) if attendee_email and attendee_email.strip() else None
    to_e164 = validation.phone_e164("to_number", to_number)
    from_e164 = validation.phone_e164("from_number", from_number)
    kind = validation.call_type("call_type", call_type)
    phone = validation.phone_e164("attendee_phone", attendee_phone) if attendee_phone else None
    if mail is None and phone is None and kind == "web":
        raise InvalidArgument(
            "attendee_email",
            "is needed: on a web call there is no caller's number to book with. Ask for their e-mail "
            "(e.g. 'ana@example.com'), or for a phone number and pass it as attendee_phone.",
        )
    if timezone is not None:
        validation.zone("timezone", timezone)
    held = validation.text("hold_id", hold_id) or None
    if start is None and held is None:
        raise InvalidArgument(
            "start",
            "is required: a start from find_slots, e.g. '2026-11-24T15:00:00-05:00', or a hold_id from hold_slot.",
        )
    return BookingDraft(
        start=validation.instant("start", start, timezone) if start is not None else None,
        attendee_name=name,
        attendee_email=mail,
        to_number=to_e164,
        from_number=from_e164,
        call_type=kind,
        title=validation.text("title", title) or None,
        description=validation.text("description", description) or None,
        label=validation.text("label", label) or None,
        business_name=validation.text("business_name", business_name) or None,
        event_type_id=event_type_id,
        timezone=timezone,
        duration_minutes=validation.duration("duration_minutes", duration_minutes),
        idempotency_key=validation.idempotency_key(idempotency_key),
        attendee_phone=phone,
        hold_id=held,
    )


def hold_request(
    *,
    start: str,
    event_type_id: int | None = None,
    timezone: str | None = None,
    duration_minutes: int | None = None,
) -> HoldRequest:
    if timezone is not None:
        validation.zone("timezone", timezone)
    return HoldRequest(
        start=validation.instant("start", start, timezone),
        event_type_id=event_type_id,
        timezone=timezone,
        duration_minutes=validation.duration("duration_minutes", duration_minutes),
    )


def move(
    appointment_id: str,
    new_start: str,
    *,
    reason: str | None = None,
    timezone: str | None = None,
    idempotency_key: str | None = None,
) -> Move:
    if timezone is not None:
        validation.zone("timezone", timezone)
    return Move(
        appointment_id=appointment_id,
        new_start=validation.instant("new_start", new_start, timezone),
        reason=validation.text("reason", reason) or None,
        timezone=timezone,
        idempotency_key=validation.idempotency_key(idempotency_key),
    )


def cancellation(appointment_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Cancellation:
    return Cancellation(
        appointment_id=appointment_id,
        reason=validation.text("reason", reason) or None,
        idempotency_key=validation.idempotency_key(idempotency_key),
    )


def edit(changes: Mapping[str, str | None]) -> Edit:
    """Corrections to our own fields; the locked ones (fixed at creation) and unknown ones are refused."""
    for key in changes:
        if key in LOCKED_FIELDS:
            raise LockedField(key, "is fixed when the appointment is created and cannot be changed.")
        if key not in EDITABLE_FIELDS:
            raise InvalidArgument(key, f"is not an appointment field you can edit; use {', '.join(EDITABLE_FIELDS)}.")
    clean: dict[str, str] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key == "attendee_email":
            clean[key] = validation.email(key, value)
        else:
            clean[key] = validation.text(key, value, required=key in ("title", "attendee_name"))
    return Edit(**clean)


def search_request(
    *,
    query: str | None = None,
    status: str | Sequence[str] | None = None,
    label: str | None = None,
    call_type: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
) -> SearchRequest:
    """None means the default: every status but failed, sorted by start ascending, page 1 of 10."""
    statuses = statuses_of(status)
    sort_by = sort_by or "start"
    sort_order = sort_order or "asc"
    page = 1 if page is None else page
    page_size = 10 if page_size is None else page_size
    if sort_by not in SORT_FIELDS:
        raise InvalidArgument("sort_by", f"{sort_by!r} is not sortable; use one of {', '.join(SORT_FIELDS)}.")
    if sort_order not in ("asc", "desc"):
        raise InvalidArgument("sort_order", f"{sort_order!r} is not an order; use 'asc' or 'desc'.")
    if page_size not in PAGE_SIZES:
        raise InvalidArgument("page_size", f"{page_size} is not a page size; use one of 10, 25, 50 or 100.")
    if page < 1:
        raise InvalidArgument("page", f"{page} is not a page number; pages start at 1.")
    kind: CallType | None = validation.call_type("call_type", call_type) if call_type else None
    chosen: SortField = next(f for f in get_args(SortField) if f == sort_by)
    return SearchRequest(
        text=validation.text("query", query) or None,
        statuses=statuses,
        label=validation.text("label", label) or None,
        call_type=kind,
        date_from=validation.day("date_from", date_from) if date_from else None,
        date_to=validation.day("date_to", date_to) if date_to else None,
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
