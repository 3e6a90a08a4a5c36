"""The table, the calendar and the add/edit drawer: every read and change goes through the same
`AppointmentService` as the tools, so validation, Cal.com handling and messages are the same."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from appt_tools import validation
from appt_tools.core.requests import SearchRequest
from appt_tools.core.service import AppointmentService
from appt_tools.errors import AppError, InvalidArgument
from appt_tools.models import PAGE_SIZES, SORT_FIELDS, AppointmentStatus, EventType, SearchPage
from appt_tools.speech import spoken
from appt_tools.surfaces import arguments
from appt_tools.surfaces.arguments import EDITABLE_FIELDS, LOCKED_FIELDS
from appt_tools.surfaces.web import form, owner_messages, render
from appt_tools.surfaces.web.gate import json_body
from appt_tools.surfaces.web.present import (
    CALENDAR_STATUSES,
    STATUS_LABELS,
    STATUS_MARKS,
    WEEKDAY_NAMES,
    Month,
    Row,
    clock,
    editable,
    long_day,
    month_grid,
    parse_month,
    place,
    short_day,
    slot_choice,
)
from appt_tools.surfaces.web.session import Session
from appt_tools.surfaces.web.tenancy import Acting

# (column, header, what it sorts by); the numbers and the link are not sortable in the store.
COLUMNS = (
    ("title", "Title", "title"),
    ("attendee", "Attendee", "attendee_name"),
    ("business", "Business", "business_name"),
    ("host", "Host", "host_name"),
    ("start", "Date & time", "start"),
    ("status", "Status", "status"),
    ("label", "Label", "label"),
    ("call_type", "Call type", "call_type"),
    ("numbers", "To / From", None),
    ("link", "Meeting", None),
)
DEFAULT_PAGE_SIZE = 25
STATUS_FILTERS = (("", "All but failed"), *((s.value, STATUS_LABELS[s]) for s in AppointmentStatus))
CALENDAR_PAGES = 20  # at most 2,000 appointments in one month's grid
WEB_CANCEL_REASON = "Cancelled by the business from the dashboard."
WEB_MOVE_REASON = "Moved by the business from the dashboard."
# What the drawer sends for a new appointment, checked all at once (see form.py).
CREATE_FIELDS = (
    "title",
    "attendee_name",
    "attendee_email",
    "to_number",
    "from_number",
    "call_type",
    "business_name",
    "description",
    "label",
    "start",
)


WHEN = (("upcoming", "Upcoming"), ("past", "Past"), ("all", "All"))


@dataclass(frozen=True)
class TableState:
    """The table's query. `when`: upcoming (from today, soonest first: the default), past (before
    today, latest first) or all; `date_from` / `date_to` (YYYY-MM-DD, both days included) replace
    the bound that `when` sets."""

    q: str = ""
    host: str = ""  # part of the host's name or e-mail
    status: str = ""
    when: str = "upcoming"
    date_from: str = ""
    date_to: str = ""
    sort: str = "start"
    order: str = "asc"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def parse(cls, params: QueryParams) -> TableState:
        """Out-of-range sort, order, page or size fall back to the defaults: links are made by us.
        Dates are kept as typed: the search says what is wrong with one."""
        sort = params.get("sort", "start")
        size = _int(params.get("page_size")) or DEFAULT_PAGE_SIZE
        when = params.get("when", "upcoming")
        when = when if when in dict(WHEN) else "upcoming"
        order = params.get("order") or ("desc" if when == "past" else "asc")
        return cls(
            q=params.get("q", "").strip(),
            host=params.get("host", "").strip(),
            status=params.get("status", "").strip(),
            when=when,
            date_from=params.get("date_from", "").strip()[:20],
            date_to=params.get("date_to", "").strip()[:20],
            sort=sort if sort in SORT_FIELDS else "start",
            order="desc" if order == "desc" else "asc",
            page=max(1, _int(params.get("page")) or 1),
            page_size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def bounds(self, today: date) -> tuple[str | None, str | None]:
        """The first and last day searched (None: unbounded)."""
        low = self.date_from or (today.isoformat() if self.when == "upcoming" else None)
        high = self.date_to or ((today - timedelta(days=1)).isoformat() if self.when == "past" else None)
        return low, high

    @property
    def narrowed(self) -> bool:
        """Whether a search, a status or dates narrow the rows (so "Clear search" can widen them)."""
        return bool(self.q or self.host or self.status or self.date_from or self.date_to)

    def query(self, **changes: Any) -> str:
        state = replace(self, **changes)
        values = {
            "q": state.q,
            "host": state.host,
            "status": state.status,
            "when": "" if state.when == "upcoming" else state.when,
            "date_from": state.date_from,
            "date_to": state.date_to,
            "sort": state.sort,
            "order": state.order,
            "page": state.page,
            "page_size": state.page_size,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def when_query(self, when: str) -> str:
        """Another of upcoming / past / all, in its own natural order, from page 1, dates cleared."""
        order = "desc" if when == "past" else "asc"
        return self.query(when=when, date_from="", date_to="", sort="start", order=order, page=1)

    def cleared_query(self) -> str:
        """The same view without search, status or dates."""
        return self.query(q="", host="", status="", date_from="", date_to="", page=1)

    def sort_query(self, field: str) -> str:
        """Sorting by a column: ascending first, reversed on the next click; back to page 1."""
        order = "desc" if self.sort == field and self.order == "asc" else "asc"
        return self.query(sort=field, order=order, page=1)


def _date_problem(state: TableState) -> str | None:
    """What is wrong with the From / To dates, in the owner's words (None: nothing)."""
    days: dict[str, date] = {}
    for name, raw in (("From", state.date_from), ("To", state.date_to)):
        if not raw:
            continue
        try:
            days[name] = date.fromisoformat(raw)
        except ValueError:
            days[name] = date.min
        if not validation.FIRST_DAY <= days[name] <= validation.LAST_DAY:
            return f"The {name} date “{raw}” is not a date: pick one in the calendar, or type it as YYYY-MM-DD (e.g. 2026-12-08)."
    if "From" in days and "To" in days and days["To"] < days["From"]:
        return f"The To date is before the From date: pick a To date on or after {short_day(days['From'])}."
    return None


def page_numbers(page: int, last: int) -> list[int | None]:
    """The page links to show: the first, the last known, and two either side of this one; None
    marks a gap."""
    wanted = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
    shown: list[int | None] = []
    for number in wanted:
        if shown and shown[-1] is not None and number - shown[-1] > 1:
            shown.append(None)
        shown.append(number)
    return shown


def _int(raw: str | None) -> int | None:
    """A whole number the dashboard's own links carry; anything else (even '²', which passes
    `str.isdigit`) is None, so the default applies."""
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() and len(raw) < 7 else None


class Appointments:
    def __init__(self, acting: Acting) -> None:
        self._acting = acting

    @property
    def service(self) -> AppointmentService:
        """The service of the tenant this request acts for (web/tenancy.py)."""
        return self._acting.service

    @property
    def region(self) -> str | None:
        """The business's country, for phone numbers typed without one: its time zone's."""
        return validation.country_of_zone(self.service.timezone)

    # --- what the pages show ------------------------------------------------------------------

    async def table(self, params: QueryParams) -> dict[str, Any]:
        state = TableState.parse(params)
        service = self.service
        context: dict[str, Any] = {
            "state": state,
            "columns": COLUMNS,
            "status_filters": STATUS_FILTERS,
            "whens": WHEN,
            "today": spoken.local(service.now(), service.timezone).date().isoformat(),
            "page_links": [1],
            "page_sizes": PAGE_SIZES,
            "timezone": service.timezone,
            "rows": [],
            "total": 0,
            "total_exact": True,
            "pages": 1,
            "more": False,
            "error": None,
        }
        problem = _date_problem(state)
        if problem:
            context["error"] = problem
            return context
        try:
            found = await self._search(state)
            pages = max(1, -(-found.total // state.page_size))
            if found.total_exact and state.page > pages:  # narrowed below the page asked for: show the last one
                state = replace(state, page=pages)
                found = await self._search(state)
        except AppError as exc:
            context["error"] = owner_messages.problem(exc, service.timezone)[1]["error"]["message"]
            return context
        now = service.now()
        rows = [Row.of(a, service.timezone, now) for a in found.items]
        more = state.page < pages or (not found.total_exact and len(found.items) == state.page_size)
        return {
            **context,
            "page_links": page_numbers(state.page, pages if found.total_exact else state.page + int(more)),
            "state": state,
            "rows": rows,
            "total": found.total,
            "total_exact": found.total_exact,
            "pages": pages,
            "more": more,
        }

    async def _search(self, state: TableState) -> SearchPage:
        date_from, date_to = state.bounds(spoken.local(self.service.now(), self.service.timezone).date())
        request = arguments.search_request(
            query=state.q or None,
            host=state.host or None,
            status=state.status or None,
            date_from=date_from,
            date_to=date_to,
            sort_by=state.sort,
            sort_order=state.order,
            page=state.page,
            page_size=state.page_size,
        )
        return await self.service.search(request)

    async def calendar(self, params: QueryParams) -> dict[str, Any]:
        service = self.service
        tz = service.timezone
        today = spoken.local(service.now(), tz).date()
        month = month_grid(parse_month(params.get("month"), today), today)
        error = None
        try:
            place(month, await self._month_rows(month))
        except AppError as exc:
            error = owner_messages.problem(exc, tz)[1]["error"]["message"]
        return {
            "month": month,
            "weekdays": WEEKDAY_NAMES,
            "timezone": tz,
            "error": error,
            "today": today.isoformat(),
            "marks": STATUS_MARKS,
        }

    async def _month_rows(self, month: Month) -> list[Row]:
        rows: list[Row] = []
        now = self.service.now()
        for page in range(1, CALENDAR_PAGES + 1):
            request = SearchRequest(
                statuses=arguments.statuses_of(CALENDAR_STATUSES),
                date_from=month.grid_start,
                date_to=month.grid_end,
                page=page,
                page_size=100,
            )
            found = await self.service.search(request)
            rows += [Row.of(a, self.service.timezone, now) for a in found.items]
            if len(found.items) < 100:
                break
        return rows

    async def event_types(self) -> list[EventType]:
        """The synced event types (synced once from Cal.com if there are none yet); none on failure."""
        try:
            return await self.service.list_event_types()
        except AppError:
            return await self.service.catalog.synced()

    # --- endpoints ----------------------------------------------------------------------------

    async def table_fragment(self, request: Request, session: Session) -> Response:
        return render.html("_table.html", **await self.table(request.query_params))

    async def calendar_fragment(self, request: Request, session: Session) -> Response:
        return render.html("_calendar.html", **await self.calendar(request.query_params))

    async def slots(self, request: Request, session: Session) -> Response:
        """Free times on one day for the drawer; when there are none, the next free day."""
        raw = request.query_params.get("date", "").strip()
        if not raw:
            raise InvalidArgument("date", "choose a day.")
        asked = validation.day("date", raw)
        found = await self.service.find_slots(
            arguments.slot_request(
                business_tz=self.service.timezone,
                now=self.service.now(),
                date=raw,
                event_type_id=validation.whole_number("event_type_id", request.query_params.get("event_type_id")),
            )
        )
        tz = found.timezone
        body: dict[str, Any] = {
            "date": raw,
            "day": long_day(asked),
            "timezone": tz,
            "event_type": found.event_type.title,
        }
        if not found.later:
            return render.json({**body, "slots": [slot_choice(s, tz) for s in found.slots], "empty": False})
        nxt = spoken.local(found.slots[0].start, tz).date() if found.slots else None
        message = f"Nothing is free on {long_day(asked)}."
        message += (
            f" The next free day is {long_day(nxt)}." if nxt else " Nothing is free in the two weeks after it either."
        )
        return render.json(
            {
                **body,
                "slots": [],
                "empty": True,
                "message": message,
                "next_date": nxt.isoformat() if nxt else None,
                "next_day": long_day(nxt) if nxt else None,
            }
        )

    async def get(self, request: Request, session: Session) -> Response:
        appointment = await self.service.get(request.path_params["id"])
        history = await self.service.history(appointment.id)
        tz = self.service.timezone
        data = editable(appointment, tz, self.service.now(), await self.event_types())
        data["history"] = [
            {"at": f"{short_day(h.at, tz)}, {clock(h.at, tz)}", "action": h.action, "detail": h.detail} for h in history
        ]
        return render.json({"appointment": data})

    async def create(self, request: Request, session: Session) -> Response:
        body = await json_body(request)
        f = form.checked(body, CREATE_FIELDS, self.region)
        draft = arguments.booking_draft(
            start=f["start"],
            title=f["title"] or None,
            attendee_name=f["attendee_name"],
            attendee_email=f["attendee_email"],
            to_number=f["to_number"],
            from_number=f["from_number"],
            call_type=f["call_type"],
            business_name=f["business_name"] or None,
            description=f["description"] or None,
            label=f["label"] or None,
            event_type_id=_number(body, "event_type_id"),
            idempotency_key=_text(body, "idempotency_key") or None,
            answers=_answers(body),
        )
        booked = await self.service.book(draft)
        tz = self.service.timezone
        when = spoken.when(booked.start, tz)
        message = (
            f"Requested for {when}; the host still has to confirm it."
            if booked.status is AppointmentStatus.PENDING
            else f"Booked for {when}. Cal.com is sending the invitation."
        )
        data = editable(booked, tz, self.service.now(), await self.event_types())
        return render.json({"appointment": data, "message": message}, 201)

    async def update(self, request: Request, session: Session) -> Response:
        """Details through `service.update` (locked fields are refused there); a new time through
        `service.reschedule`. When the details saved but the move failed, the error says so."""
        body = await json_body(request)
        appointment = await self.service.get(request.path_params["id"])
        changes: dict[str, str | None] = {k: _text(body, k) for k in LOCKED_FIELDS if k in body}
        changes |= form.checked(body, tuple(k for k in EDITABLE_FIELDS if k in body), self.region)
        saved = False
        if changes:
            before = appointment
            appointment = await self.service.update(appointment.id, arguments.edit(changes))
            saved = appointment != before
        tz = self.service.timezone
        start = _text(body, "start")
        moved = False
        if start and start != spoken.iso(appointment.start, tz):
            try:
                move = arguments.move(
                    appointment.id,
                    start,
                    reason=WEB_MOVE_REASON,
                    idempotency_key=_text(body, "idempotency_key") or None,
                )
                appointment = await self.service.reschedule(move)
            except AppError as exc:
                status, error = owner_messages.problem(exc, tz)
                if saved:
                    error["error"]["message"] = (
                        "The details were saved, but the time was not changed. " + error["error"]["message"]
                    )
                    error["error"]["saved"] = True
                return render.json(error, status)
            moved = True
        message = (
            f"Moved to {spoken.when(appointment.start, tz)}. Cal.com is sending the new invitation."
            if moved
            else ("Saved." if saved else "Nothing changed.")
        )
        data = editable(appointment, tz, self.service.now(), await self.event_types())
        return render.json({"appointment": data, "message": message})

    async def cancel(self, request: Request, session: Session) -> Response:
        body = await json_body(request)
        cancellation = arguments.cancellation(
            request.path_params["id"],
            reason=_text(body, "reason") or WEB_CANCEL_REASON,
            idempotency_key=_text(body, "idempotency_key") or None,
        )
        cancelled = await self.service.cancel(cancellation)
        tz = self.service.timezone
        data = editable(cancelled, tz, self.service.now(), await self.event_types())
        message = f"Cancelled the appointment on {spoken.when(cancelled.start, tz)}. Cal.com is telling the attendee."
        return render.json({"appointment": data, "message": message})

    async def confirm(self, request: Request, session: Session) -> Response:
        confirmed = await self.service.confirm(request.path_params["id"])
        tz = self.service.timezone
        data = editable(confirmed, tz, self.service.now(), await self.event_types())
        message = f"Confirmed the appointment on {spoken.when(confirmed.start, tz)}. Cal.com is telling the attendee."
        return render.json({"appointment": data, "message": message})

    async def decline(self, request: Request, session: Session) -> Response:
        body = await json_body(request)
        reason = validation.text("reason", _text(body, "reason")) or None
        declined = await self.service.decline(request.path_params["id"], reason)
        tz = self.service.timezone
        data = editable(declined, tz, self.service.now(), await self.event_types())
        message = f"Declined the request for {spoken.when(declined.start, tz)}. Cal.com is telling the attendee."
        return render.json({"appointment": data, "message": message})


def _answers(body: dict[str, Any]) -> dict[str, object] | None:
    raw = body.get("answers")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgument("answers", "must be an object of question slug to answer.")
    return raw


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(name, "must be text.")


def _number(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    raise InvalidArgument(name, "must be a whole number.")
