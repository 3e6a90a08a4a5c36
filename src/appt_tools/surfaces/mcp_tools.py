"""The MCP tools: each a small method that parses its arguments (`surfaces/arguments.py`), calls one use
case and shapes the result. `register_tools` puts them on the server; the description the model reads is
each method's docstring, folded to one paragraph.

The tools reach the service through the server's `ServiceHandle`: the server awaits it before any tool
runs, so `self.service` is always the open service here.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

from mcp.types import ToolAnnotations
from pydantic import Field

from appt_tools import validation
from appt_tools.core import reconcile
from appt_tools.core.service import AppointmentService
from appt_tools.errors import InvalidArgument
from appt_tools.models import Appointment, AppointmentStatus, SortField
from appt_tools.runtime import ServiceHandle
from appt_tools.speech import say
from appt_tools.speech.results import (
    AppointmentResult,
    AppointmentView,
    EventTypesResult,
    EventTypeView,
    HistoryView,
    HoldResult,
    NowView,
    SearchResult,
    SlotsResult,
)
from appt_tools.surfaces import arguments, call_facts

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

ToolFn = TypeVar("ToolFn", bound=Callable[..., Awaitable[Any]])
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
LOCAL_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# A booking is new state in Cal.com; a second identical call returns the first (not idempotent in general).
CREATES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
# Reschedule and cancel replace or end a Cal.com booking and notify the attendee.
CHANGES_BOOKING = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)
LOCAL_EDIT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Date = Annotated[
    str | None,
    Field(
        description="Day to search: YYYY-MM-DD (e.g. '2026-11-24'), 'today' or 'tomorrow' (in `timezone`). "
        "Default: today. Work out other days from the result's `now`.",
        examples=["2026-11-24", "tomorrow"],
    ),
]
TimeZone = Annotated[
    str | None,
    Field(
        description="IANA zone for `date` and the times shown, e.g. 'America/New_York'. Default: the business's.",
        examples=["America/New_York"],
    ),
]
EventTypeId = Annotated[int | None, Field(description="Event type id from list_event_types. Default: the business's.")]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Unique per request, e.g. 'call-7f3a-book-1': a retry with the same key gets the first "
        "result, never a second change."
    ),
]
AppointmentId = Annotated[
    str,
    Field(description="The appointment id, e.g. 'apt_3kq9x2mz7w1b' (a Cal.com booking uid also works)."),
]


Answers = Annotated[
    dict[str, str | bool | float | list[str]] | None,
    Field(
        description="Answers to the event type's `questions` (from find_slots), by slug, e.g. {'topic': "
        "'Pension', 'first-visit': true}; every required one; a list for multiselect.",
        max_length=50,
    ),
]


# The statuses spelled out (not the enum, whose schema would be a $ref that some platforms cannot follow).
StatusName = Literal["pending", "active", "rescheduled", "cancelled", "completed", "failed"]
assert set(get_args(StatusName)) == {s.value for s in AppointmentStatus}
MinutesLong = Annotated[
    int | None,
    Field(ge=5, le=1440, description="Minutes (5 to 1440), for event types with several lengths, e.g. 30."),
]


def tool(title: str, annotations: ToolAnnotations) -> Callable[[ToolFn], ToolFn]:
    """Mark a method of `Tools` as a tool with this title and these annotations."""

    def mark(fn: ToolFn) -> ToolFn:
        fn.__dict__["mcp_tool"] = (title, annotations)
        return fn

    return mark


def register_tools(server: MCPServer, tools: Tools) -> None:
    """Add each method of `tools` marked with `@tool` to the server, bound to `tools`."""
    for name, fn in vars(type(tools)).items():
        marked: tuple[str, ToolAnnotations] | None = getattr(fn, "__dict__", {}).get("mcp_tool")
        if marked is not None:
            description = " ".join(inspect.cleandoc(fn.__doc__ or "").split())
            title, annotations = marked
            server.add_tool(
                getattr(tools, name), name=name, title=title, description=description, annotations=annotations
            )


class Tools:
    def __init__(self, handle: ServiceHandle) -> None:
        self._handle = handle

    @property
    def service(self) -> AppointmentService:
        return self._handle.service

    def _tz(self) -> str:
        return self.service.timezone

    def _now(self) -> datetime:
        return self.service.now()

    def _clock(self) -> NowView:
        return NowView.of(self._now(), self._tz())

    def _result(
        self, appointment: Appointment, sentence: str, history: list[HistoryView] | None = None
    ) -> AppointmentResult:
        view = AppointmentView.of(appointment, self._tz(), self._now())
        return AppointmentResult(appointment=view, history=history, now=self._clock(), say=sentence)

    @tool("Find free slots", READ_ONLY)
    async def find_slots(
        self,
        date: Date = None,
        timezone: TimeZone = None,
        event_type_id: EventTypeId = None,
        duration_minutes: MinutesLong = None,
        start: Annotated[
            str | None,
            Field(description="Instead of date: range start, ISO 8601, e.g. '2026-11-24T12:00:00-05:00'."),
        ] = None,
        end: Annotated[
            str | None,
            Field(description="Instead of date: range end, ISO 8601 (at most 31 days after start)."),
        ] = None,
    ) -> SlotsResult:
        """Free times on a day (or a start/end range) in the business's Cal.com calendar; call it before
        booking. A day with nothing free returns the next free times after it."""
        request = arguments.slot_request(
            business_tz=self._tz(),
            now=self._now(),
            date=date,
            start=start,
            end=end,
            timezone=timezone,
            event_type_id=event_type_id,
            duration_minutes=duration_minutes,
        )
        return SlotsResult.of(await self.service.find_slots(request), self._clock())

    @tool("Book an appointment", CREATES)
    async def book_appointment(
        self,
        attendee_name: Annotated[str, Field(description="The caller's full name, e.g. 'Ana Ruiz'.")],
        to_number: Annotated[str, Field(description="The number that was called, E.164, e.g. '+14155550100'.")],
        from_number: Annotated[str, Field(description="The number that called, E.164, e.g. '+14155550123'.")],
        call_type: Annotated[
            Literal["inbound", "outbound", "web"],
            Field(description="inbound (they phoned us), outbound (we phoned them) or web (chat/web call)."),
        ],
        title: Annotated[
            str | None,
            Field(description="Short title, e.g. 'Roof inspection'. Default: event type and name."),
        ] = None,
        description: Annotated[str | None, Field(description="Notes for the host, e.g. what the caller needs.")] = None,
        label: Annotated[str | None, Field(description="A tag for filtering, e.g. 'new-client'.")] = None,
        business_name: Annotated[
            str | None, Field(description="The business the meeting is with, e.g. 'Acme Dental'.")
        ] = None,
        event_type_id: EventTypeId = None,
        timezone: Annotated[
            str | None,
            Field(
                description="The caller's IANA time zone, e.g. 'America/Chicago', for the invite and a `start` "
                "without offset. Default: the business's."
            ),
        ] = None,
        duration_minutes: MinutesLong = None,
        idempotency_key: IdempotencyKey = None,
        start: Annotated[
            str | None,
            Field(
                description="From find_slots, ISO 8601 with offset, e.g. '2026-11-24T15:00:00-05:00' "
                "(or without offset plus `timezone`). Required unless hold_id is given."
            ),
        ] = None,
        attendee_email: Annotated[
            str | None,
            Field(
                description="Where the invite goes, e.g. 'ana@example.com'. May be left out on a phone call if "
                "the event type allows (the error says when it is needed)."
            ),
        ] = None,
        attendee_phone: Annotated[
            str | None,
            Field(
                description="The caller's own number, E.164, e.g. '+14155550123', if not the one they call from. "
                "Default: the caller's side of the call."
            ),
        ] = None,
        hold_id: Annotated[
            str | None,
            Field(description="The hold_id from hold_slot: books the held time (start may be left out)."),
        ] = None,
        answers: Answers = None,
        language: Annotated[
            str | None,
            Field(
                description="Language of the invite and e-mails, e.g. 'es', 'pt-BR'. Default: the business's setting."
            ),
        ] = None,
    ) -> AppointmentResult:
        """Book a time the caller agreed to in Cal.com (it sends the invite and makes the meeting link), recorded
        with the call's numbers and type. Ask the required `questions` from find_slots first and pass `answers`.
        On `slot_unavailable`, offer the returned alternatives. Booking the same time again in the same call with
        a corrected name, e-mail, title, description or label corrects the booking; it never makes a second."""
        draft = arguments.booking_draft(
            start=start,
            attendee_name=attendee_name,
            attendee_email=attendee_email,
            to_number=to_number,
            from_number=from_number,
            call_type=call_type,
            title=title,
            description=description,
            label=label,
            business_name=business_name,
            event_type_id=event_type_id,
            timezone=timezone,
            duration_minutes=duration_minutes,
            idempotency_key=idempotency_key,
            attendee_phone=attendee_phone,
            hold_id=hold_id,
            answers=answers,
            language=language,
        )
        booked, corrected = await self.service.book_with_corrections(draft)
        call = call_facts.current()
        if call is not None and call.overruled:
            booked = await self.service.note(booked.id, "updated", call.history_note())
        known = {t.id: t for t in await self.service.list_event_types()}
        return self._result(booked, say.booked(booked, self._tz(), corrected, known.get(booked.event_type_id)))

    @tool("Hold a time", CREATES)
    async def hold_slot(
        self,
        start: Annotated[
            str,
            Field(
                description="Start from a find_slots result, ISO 8601 with offset, e.g. '2026-11-24T15:00:00-05:00'."
            ),
        ],
        event_type_id: EventTypeId = None,
        timezone: Annotated[
            str | None,
            Field(description="IANA zone to read `start` in when it has no offset, e.g. 'America/New_York'."),
        ] = None,
        duration_minutes: MinutesLong = None,
    ) -> HoldResult:
        """Hold a free time for a few minutes (5 by default) while the caller decides, so no other caller can
        take it: find_slots stops offering it and other bookings of it are refused. Then book it with
        book_appointment(hold_id=…), or release_hold if the caller declines; an unused hold simply expires."""
        request = arguments.hold_request(
            start=start, event_type_id=event_type_id, timezone=timezone, duration_minutes=duration_minutes
        )
        hold = await self.service.hold(request)
        minutes = round((hold.expires_at - hold.created_at).total_seconds() / 60)
        return HoldResult.of(hold, self._tz(), self._now(), say.held(hold.start, minutes, self._tz()))

    @tool("Release a held time", LOCAL_EDIT)
    async def release_hold(
        self,
        hold_id: Annotated[str, Field(description="The hold_id from hold_slot, e.g. 'hold_3kq9x2mz7w1b'.")],
    ) -> HoldResult:
        """Let go of a held time the caller does not want, so others can book it at once."""
        ended = await self.service.release_hold(hold_id)
        return HoldResult.of(ended, self._tz(), self._now(), say.released(ended.start, self._tz()))

    @tool("Reschedule an appointment", CHANGES_BOOKING)
    async def reschedule(
        self,
        appointment_id: AppointmentId,
        new_start: Annotated[
            str,
            Field(description="New start from find_slots, ISO 8601 with offset, e.g. '2026-11-25T10:00:00-05:00'."),
        ],
        reason: Annotated[str | None, Field(description="Why it moves, e.g. 'Caller is travelling'.")] = None,
        timezone: Annotated[
            str | None,
            Field(description="IANA zone for a `new_start` without offset, e.g. 'America/New_York'."),
        ] = None,
        idempotency_key: IdempotencyKey = None,
        answers: Answers = None,
    ) -> AppointmentResult:
        """Move an appointment to a new free time. Cal.com makes a new booking uid and notifies the attendee;
        the appointment id stays the same. Cancelled appointments cannot be moved. `answers` add to or correct
        those given when booking."""
        move = arguments.move(
            appointment_id,
            new_start,
            reason=reason,
            timezone=timezone,
            idempotency_key=idempotency_key,
            answers=answers,
        )
        moved = await self.service.reschedule(move)
        known = {t.id: t for t in await self.service.list_event_types()}
        return self._result(moved, say.rescheduled(moved, self._tz(), known.get(moved.event_type_id)))

    @tool("Cancel an appointment", CHANGES_BOOKING)
    async def cancel(
        self,
        appointment_id: AppointmentId,
        reason: Annotated[
            str | None,
            Field(description="Why, e.g. 'Caller no longer needs it'. Default: cancelled at the caller's request."),
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AppointmentResult:
        """Cancel an appointment in Cal.com (the attendee is notified). Permanent: it stays searchable as cancelled."""
        request = arguments.cancellation(appointment_id, reason=reason, idempotency_key=idempotency_key)
        cancelled = await self.service.cancel(request)
        return self._result(cancelled, say.cancelled(cancelled, self._tz()))

    @tool("Search appointments", LOCAL_READ)
    async def search_appointments(
        self,
        query: Annotated[
            str | None,
            Field(description="Free text over title, name, e-mail, business, label and numbers, e.g. 'ruiz'."),
        ] = None,
        status: Annotated[
            list[StatusName] | None,
            Field(
                description="Only these, e.g. ['active', 'rescheduled']. Default: all but failed.",
                max_length=len(AppointmentStatus),
            ),
        ] = None,
        label: Annotated[str | None, Field(description="Exact label, e.g. 'new-client'.")] = None,
        host: Annotated[
            str | None,
            Field(description="Only this host (the team member assigned): part of the name or e-mail, e.g. 'Lee'."),
        ] = None,
        call_type: Annotated[
            Literal["inbound", "outbound", "web"] | None, Field(description="Only this call type.")
        ] = None,
        phone: Annotated[
            str | None,
            Field(
                description="Only this called or calling number, in any common form, "
                "e.g. '+14155550123' or '(415) 555-0123'."
            ),
        ] = None,
        mine: Annotated[
            bool | None,
            Field(
                description="true on a phone call: the caller's own appointments, by the number they call from. "
                "Default: false."
            ),
        ] = None,
        date_from: Annotated[
            str | None, Field(description="First day, YYYY-MM-DD, in the business's time zone.")
        ] = None,
        date_to: Annotated[str | None, Field(description="Last day (inclusive), YYYY-MM-DD.")] = None,
        sort_by: Annotated[SortField | None, Field(description="Column to sort by. Default: start.")] = None,
        sort_order: Annotated[Literal["asc", "desc"] | None, Field(description="asc or desc. Default: asc.")] = None,
        page: Annotated[int | None, Field(ge=1, description="Page number, from 1. Default: 1.")] = None,
        page_size: Annotated[
            Literal[10, 25, 50, 100] | None, Field(description="Results per page. Default: 10.")
        ] = None,
    ) -> SearchResult:
        """Find appointments by text and filters, sorted and paged, with the total (exact up to 1,000: see
        total_exact). Failed bookings only when status asks for them."""
        if mine:
            call = call_facts.current()
            if call is None or call.caller_number is None:
                raise InvalidArgument(
                    "mine",
                    "needs the caller's number, which only a phone call through Vapi, Retell or ElevenLabs gives; "
                    "pass phone instead, e.g. '+14155550123', or search by name with query.",
                )
            phone = call.caller_number
        request = arguments.search_request(
            query=query,
            status=status,
            label=label,
            host=host,
            call_type=call_type,
            phone=phone,
            region=validation.country_of_zone(self._tz()),
            date_from=date_from,
            date_to=date_to,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
            page_size=page_size,
        )
        found = await self.service.search(request)
        return SearchResult.of(found, self._tz(), self._now())

    @tool("Get an appointment", LOCAL_READ)
    async def get_appointment(self, appointment_id: AppointmentId) -> AppointmentResult:
        """One appointment with its full history (created, rescheduled from → to, updated, cancelled)."""
        found = await reconcile.settled(self.service, await self.service.get(appointment_id))
        history = [HistoryView.of(h, self._tz()) for h in await self.service.history(found.id)]
        return self._result(found, say.appointment(found, self._tz(), self._now()), history)

    @tool("Update appointment details", LOCAL_EDIT)
    async def update_appointment(
        self,
        appointment_id: AppointmentId,
        title: Annotated[str | None, Field(description="New title.")] = None,
        description: Annotated[str | None, Field(description="New description.")] = None,
        label: Annotated[str | None, Field(description="New label, e.g. 'vip'.")] = None,
        attendee_name: Annotated[str | None, Field(description="Corrected attendee name.")] = None,
        attendee_email: Annotated[str | None, Field(description="Corrected attendee e-mail.")] = None,
    ) -> AppointmentResult:
        """Correct our record's title, description, label, attendee name or e-mail (Cal.com is not re-notified).
        To/from numbers, call type and booking uid are fixed; to change the time use reschedule."""
        edit = arguments.edit(
            {
                "title": title,
                "description": description,
                "label": label,
                "attendee_name": attendee_name,
                "attendee_email": attendee_email,
            }
        )
        changed = await self.service.update(appointment_id, edit)
        return self._result(changed, say.updated())

    @tool("List event types", READ_ONLY)
    async def list_event_types(
        self,
        refresh: Annotated[
            bool | None, Field(description="true to sync the list from Cal.com first. Default: false.")
        ] = None,
    ) -> EventTypesResult:
        """The kinds of meeting that can be booked (id, length, location), and which one is the default."""
        service = self.service
        types = await (service.refresh_event_types() if refresh else service.list_event_types())
        default = service.settings.event_type_id or next((t.id for t in types if not t.hidden), None)
        views = [EventTypeView.of(t, default) for t in types]
        sentence = say.event_types([v.title for v in views], [v.length_minutes for v in views])
        return EventTypesResult(event_types=views, now=self._clock(), say=sentence)
