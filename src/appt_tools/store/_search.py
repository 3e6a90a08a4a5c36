"""SQL for `Store.search`: filters (incl. the derived `completed` status) and sort order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_
from sqlalchemy.orm import InstrumentedAttribute

from appt_tools.models import AppointmentStatus, SearchQuery, SortField
from appt_tools.store.tables import AppointmentRow as A

SORT_COLUMNS: dict[SortField, InstrumentedAttribute[Any]] = {
    "start": A.start_at,
    "end": A.end_at,
    "created_at": A.created_at,
    "updated_at": A.updated_at,
    "title": A.title,
    "attendee_name": A.attendee_name,
    "attendee_email": A.attendee_email,
    "business_name": A.business_name,
    "label": A.label,
    "status": A.status,
    "call_type": A.call_type,
}

TEXT_COLUMNS: tuple[InstrumentedAttribute[str], ...] = (
    A.title,
    A.attendee_name,
    A.attendee_email,
    A.business_name,
    A.label,
    A.to_number,
    A.from_number,
)

_LIVE = (AppointmentStatus.PENDING.value, AppointmentStatus.ACTIVE.value, AppointmentStatus.RESCHEDULED.value)


def _finished(now: datetime) -> ColumnElement[bool]:
    """Booked and over: a live appointment in this state is effectively `completed`."""
    return and_(A.booking_uid.is_not(None), A.end_at <= now)


def _not_finished(now: datetime) -> ColumnElement[bool]:
    return or_(A.booking_uid.is_(None), A.end_at > now)


def effective_status_is(status: AppointmentStatus, now: datetime) -> ColumnElement[bool]:
    """SQL twin of `Appointment.effective_status(now) == status`."""
    if status is AppointmentStatus.COMPLETED:
        return and_(A.status.in_(_LIVE), _finished(now))
    if status.value in _LIVE:
        return and_(A.status == status.value, _not_finished(now))
    return A.status == status.value


def conditions(query: SearchQuery, now: datetime) -> list[ColumnElement[bool]]:
    """WHERE terms for `query`; `now` and the date bounds are aware (checked by the caller)."""
    terms: list[ColumnElement[bool]] = []
    text = (query.text or "").strip()
    if text:
        # autoescape: `%`, `_` and the escape char itself in the user's text match literally.
        terms.append(or_(*(column.icontains(text, autoescape=True) for column in TEXT_COLUMNS)))
    if query.statuses:
        statuses = dict.fromkeys(query.statuses)  # dedupe, keep order
        terms.append(or_(*(effective_status_is(status, now) for status in statuses)))
    if query.label is not None:
        terms.append(func.lower(A.label) == query.label.lower())
    if query.call_type is not None:
        terms.append(A.call_type == query.call_type)
    if query.start_from is not None:
        terms.append(A.start_at >= query.start_from)
    if query.start_to is not None:
        terms.append(A.start_at < query.start_to)
    return terms


def order_by(query: SearchQuery) -> list[ColumnElement[Any]]:
    """The sort column, then `id` in the same direction so pages are stable."""
    column = SORT_COLUMNS[query.sort_by]
    if query.descending:
        return [column.desc(), A.id.desc()]
    return [column.asc(), A.id.asc()]
