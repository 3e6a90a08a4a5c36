"""The MCP server: a thin adapter that shapes arguments, calls the service and shapes results.

Arguments are checked strictly before the SDK sees them: an unknown argument is refused with
the list of valid ones (the SDK would silently drop it), and a string is never coerced into a
number. Failures reach the model as `isError` results whose text is an `ErrorView` JSON object
with a stable `code`, a `message` saying what to do next, and `retryable`.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from mcp.types import Tool as MCPTool
from pydantic import Field, ValidationError

from appt_tools.core.service import LOCKED_FIELDS, AppointmentService
from appt_tools.errors import AppError, InvalidArgument, LockedField, NotFound, ServiceUnavailable
from appt_tools.models import Appointment, SortField
from appt_tools.speech import say
from appt_tools.speech.results import (
    AppointmentResult,
    AppointmentView,
    ErrorView,
    EventTypesResult,
    EventTypeView,
    HistoryView,
    SearchResult,
    SlotsResult,
)
from appt_tools.surfaces.schema_formats import strict_schema

INSTRUCTIONS = """\
Books, moves and cancels appointments for this business in its Cal.com calendar.
Flow: 1) find_slots for the day the caller wants; 2) offer a few times (use each slot's `spoken` form) and
confirm one, plus the caller's name and e-mail; 3) book_appointment with that slot's `start`, the call's
to/from numbers and call type. Never book a time the caller has not confirmed. To change or cancel, find the
appointment with search_appointments (by name, e-mail or phone) or use its id, then reschedule or cancel.
Every result has `say`: a sentence you can read to the caller. Errors carry a `code`, a `message` with the
next step, and `retryable`; on `slot_unavailable`, offer the `alternatives` it lists.
Times: pass ISO 8601 with an offset (e.g. '2026-11-24T15:00:00-05:00'), or pass `timezone`."""

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
    Field(description="Day to search, YYYY-MM-DD, e.g. '2026-11-24'. Default: today.", examples=["2026-11-24"]),
]
TimeZone = Annotated[
    str | None,
    Field(
        description="IANA time zone to read `date` in and show times in, e.g. 'America/New_York'. "
        "Default: the business's.",
        examples=["America/New_York"],
    ),
]
EventTypeId = Annotated[
    int | None, Field(description="Cal.com event type id from list_event_types. Default: the configured one.")
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="A unique id for this request, e.g. 'call-7f3a-book-1'. A repeat with the same key returns the "
        "first result and never books twice; use a new key for each new request."
    ),
]
AppointmentId = Annotated[
    str,
    Field(
        description="The appointment id from book_appointment or search_appointments (e.g. 'apt_3kq9x2mz7w1b'); "
        "a Cal.com booking uid also works."
    ),
]


class ServiceHandle:
    """The service a server's tools run on, possibly still being opened.

    The tool list does not depend on the service, so `appt-tools serve` answers initialize and tools/list
    at once and opens the service (database, settings, Cal.com client) meanwhile: each tool call awaits
    `get()`. If opening fails, `fail()` records why and every tool call is refused with that reason.
    """

    def __init__(self) -> None:
        self._service: AppointmentService | None = None
        self._error: ServiceUnavailable | None = None
        self._settled = asyncio.Event()

    @classmethod
    def of(cls, service: AppointmentService) -> ServiceHandle:
        """A handle on a service that is already open."""
        handle = cls()
        handle.set(service)
        return handle

    def set(self, service: AppointmentService) -> None:
        """The service is open: tool calls waiting for it go ahead."""
        self._service = service
        self._settled.set()

    def fail(self, error: BaseException) -> None:
        """Opening failed: tool calls waiting for it, and every later one, are refused saying why."""
        if isinstance(error, AppError):
            reason = error.message
        else:
            detail = str(error).strip().splitlines()
            reason = f"{type(error).__name__}: {detail[0][:300]}" if detail else type(error).__name__
            reason = _CREDENTIALS_IN_URL.sub(r"\1***@", reason)
        self._error = ServiceUnavailable(
            f"The appointment server could not open its database and settings ({reason}), so no tool can run. "
            "Its log (stderr) has the details; fix the cause and restart the server."
        )
        self._settled.set()

    @property
    def opened(self) -> AppointmentService | None:
        """The service if it is open, else None."""
        return self._service

    @property
    def settled(self) -> bool:
        """Whether opening has finished, either way."""
        return self._settled.is_set()

    @property
    def service(self) -> AppointmentService:
        """The open service; raises ServiceUnavailable if opening failed or has not finished."""
        if self._service is not None:
            return self._service
        raise self._error or ServiceUnavailable(
            "The appointment server is still starting; try again in a moment.", retryable=True
        )

    @property
    def timezone(self) -> str:
        """The business's time zone once the service is open; UTC until then."""
        return self._service.timezone if self._service is not None else "UTC"

    async def get(self) -> AppointmentService:
        """The service, once opening has finished; raises ServiceUnavailable if it failed."""
        await self._settled.wait()
        return self.service


# user:password@ in a database URL that an error message may quote.
_CREDENTIALS_IN_URL = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")


class AppointmentServer(MCPServer):
    """MCPServer with strict argument checking and domain errors rendered for the model.

    `invoke` runs a tool for any other surface (plain HTTP, Vapi, Retell) through exactly the same
    checks, so every surface accepts and refuses the same calls.

    The service may still be opening when the server starts (see `ServiceHandle`): listing tools does not
    need it, and every tool call waits for it. `on_open` receives it once, before the first tool runs.
    """

    def __init__(
        self,
        service: AppointmentService | ServiceHandle,
        *,
        on_open: Callable[[AppointmentService], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handle = service if isinstance(service, ServiceHandle) else ServiceHandle.of(service)
        self._on_open = on_open
        self._schemas: dict[str, dict[str, Any]] = {}
        if self.handle.opened is not None:
            self._opened(self.handle.opened)

    @property
    def service(self) -> AppointmentService:
        """The open service (ServiceUnavailable while it is not): for surfaces built once it is open."""
        return self.handle.service

    async def _open(self) -> None:
        self._opened(await self.handle.get())

    def _opened(self, service: AppointmentService) -> None:
        if self._on_open is not None:
            self._on_open(service)
            self._on_open = None

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await self._run(name, arguments, context)
        except AppError as exc:
            raise ToolError(self.render_error(exc).model_dump_json(exclude_none=True)) from exc

    async def invoke(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A tool's structured result (its `say` included). Raises AppError for anything the caller can fix."""
        result = await self._run(name, arguments, None)
        assert isinstance(result, CallToolResult) and result.structured_content is not None
        return dict(result.structured_content)

    def render_error(self, error: AppError) -> ErrorView:
        return ErrorView.of(error, self.handle.timezone)

    async def tool_schemas(self) -> dict[str, dict[str, Any]]:
        """Input schema of each tool, by name."""
        if not self._schemas:
            self._schemas = {t.name: t.input_schema for t in await self.list_tools()}
        return self._schemas

    async def list_tools(self) -> list[MCPTool]:
        """The SDK's tool list with strict input and output schemas (see `strict_schema`)."""
        return [
            tool.model_copy(
                update={
                    "input_schema": strict_schema(tool.input_schema),
                    "output_schema": strict_schema(tool.output_schema) if tool.output_schema else None,
                }
            )
            for tool in await super().list_tools()
        ]

    async def _run(self, name: str, arguments: dict[str, Any], context: Any) -> Any:
        await self._open()
        schema = (await self.tool_schemas()).get(name)
        if schema is None:
            known = ", ".join(await self.tool_schemas())
            raise NotFound(f"There is no tool named {name!r}; the tools are: {known}.", code="unknown_tool")
        _check_arguments(name, schema, arguments)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, AppError):
                raise cause from None
            if isinstance(cause, ValidationError):
                raise _from_validation(cause) from cause
            raise


def _check_arguments(name: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Refuse what the SDK would quietly accept: unknown arguments (it drops them) and numbers or
    booleans sent as strings (it coerces them)."""
    properties: dict[str, Any] = schema.get("properties", {})
    if len(arguments) > len(properties):  # explicit bound: a 10,000-item request is refused before any work
        extra = next(key for key in arguments if key not in properties)
        raise InvalidArgument(
            extra,
            f"is not an argument of {name}; it takes at most {len(properties)} arguments: {', '.join(properties)}.",
        )
    for key, value in arguments.items():
        if key not in properties:
            if name == "update_appointment" and key in LOCKED_FIELDS:
                raise LockedField(key, "is fixed when the appointment is created and cannot be changed.")
            raise InvalidArgument(key, f"is not an argument of {name}; valid arguments are: {', '.join(properties)}.")
        kinds = _types(properties[key]) - {"null"}
        if isinstance(value, str) and kinds and kinds <= {"integer", "number", "boolean"}:
            raise InvalidArgument(key, f"must be a JSON {' or '.join(sorted(kinds))}, not the string {value!r}.")


def _types(prop: dict[str, Any]) -> set[str]:
    if "type" in prop:
        return {prop["type"]} if isinstance(prop["type"], str) else set(prop["type"])
    return {t for option in prop.get("anyOf", []) for t in _types(option)}


def _from_validation(error: ValidationError) -> InvalidArgument:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "arguments"
    return InvalidArgument(field, first["msg"] + ".")


def build_server(provider: AppointmentService | ServiceHandle, *, log_level: str = "WARNING") -> AppointmentServer:
    """The MCP server on an open service, or on a `ServiceHandle` whose service is still being opened."""
    # The tools below use `service`; it is bound when the service is open, before any tool runs
    # (AppointmentServer awaits the handle first). Nothing here may use it before then.
    service: AppointmentService

    def bind(opened: AppointmentService) -> None:
        nonlocal service
        service = opened

    server = AppointmentServer(
        provider, on_open=bind, name="appt-tools", instructions=INSTRUCTIONS, log_level=log_level
    )

    def tz() -> str:
        return service.timezone

    def now() -> datetime:
        return service.now()

    def tool(title: str, annotations: ToolAnnotations) -> Callable[[ToolFn], ToolFn]:
        """Register a tool; its docstring, folded to one paragraph, is the description the model reads."""

        def register(fn: ToolFn) -> ToolFn:
            description = " ".join(inspect.cleandoc(fn.__doc__ or "").split())
            server.add_tool(fn, title=title, description=description, annotations=annotations)
            return fn

        return register

    def result(appointment: Appointment, say: str, history: list[HistoryView] | None = None) -> AppointmentResult:
        return AppointmentResult(appointment=AppointmentView.of(appointment, tz(), now()), history=history, say=say)

    @tool(title="Find free slots", annotations=READ_ONLY)
    async def find_slots(
        date: Date = None,
        timezone: TimeZone = None,
        event_type_id: EventTypeId = None,
        duration_minutes: Annotated[
            int | None,
            Field(description="Length in minutes, only for event types that offer several, e.g. 30."),
        ] = None,
        start: Annotated[
            str | None,
            Field(description="Instead of date: range start, ISO 8601, e.g. '2026-11-24T12:00:00-05:00'."),
        ] = None,
        end: Annotated[
            str | None,
            Field(description="Instead of date: range end, ISO 8601 (at most 31 days after start)."),
        ] = None,
    ) -> SlotsResult:
        """Free appointment times on a day (or in a start/end range) from the business's Cal.com calendar.
        Call this before booking. If the day has nothing free, the next free times after it are returned."""
        found = await service.find_slots(
            day=date,
            start=start,
            end=end,
            timezone=timezone,
            event_type_id=event_type_id,
            duration_minutes=duration_minutes,
        )
        return SlotsResult.of(found)

    @tool(title="Book an appointment", annotations=CREATES)
    async def book_appointment(
        start: Annotated[
            str,
            Field(
                description="Start from a find_slots result, ISO 8601 with offset, e.g. '2026-11-24T15:00:00-05:00' "
                "(or without offset plus `timezone`)."
            ),
        ],
        attendee_name: Annotated[str, Field(description="The caller's full name, e.g. 'Ana Ruiz'.")],
        attendee_email: Annotated[str, Field(description="Where the invite goes, e.g. 'ana@example.com'.")],
        to_number: Annotated[str, Field(description="The number that was called, E.164, e.g. '+14155550100'.")],
        from_number: Annotated[str, Field(description="The number that called, E.164, e.g. '+14155550123'.")],
        call_type: Annotated[
            Literal["inbound", "outbound", "web"],
            Field(description="'inbound' (caller phoned us), 'outbound' (we phoned them) or 'web' (chat/web call)."),
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
                description="The caller's IANA time zone, e.g. 'America/Chicago': used for the invite and to read "
                "`start` when it has no offset. Default for the invite: the business's."
            ),
        ] = None,
        duration_minutes: Annotated[
            int | None, Field(description="Length, only for event types that offer several.")
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AppointmentResult:
        """Book a confirmed time in Cal.com (which sends the invite and makes the meeting link) and record it with
        the call's numbers and type. Only book a slot the caller agreed to. On `slot_unavailable`, offer the
        returned alternatives."""
        booked = await service.book(
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
        )
        return result(booked, say.booked(booked, tz()))

    @tool(title="Reschedule an appointment", annotations=CHANGES_BOOKING)
    async def reschedule(
        appointment_id: AppointmentId,
        new_start: Annotated[
            str,
            Field(description="New start from find_slots, ISO 8601 with offset, e.g. '2026-11-25T10:00:00-05:00'."),
        ],
        reason: Annotated[str | None, Field(description="Why it moves, e.g. 'Caller is travelling'.")] = None,
        timezone: Annotated[
            str | None,
            Field(description="IANA zone to read `new_start` in when it has no offset, e.g. 'America/New_York'."),
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AppointmentResult:
        """Move an appointment to a new free time. Cal.com makes a new booking uid and notifies the attendee;
        the appointment id stays the same. Cancelled appointments cannot be moved."""
        moved = await service.reschedule(
            appointment_id, new_start, reason=reason, timezone=timezone, idempotency_key=idempotency_key
        )
        return result(moved, say.rescheduled(moved, tz()))

    @tool(title="Cancel an appointment", annotations=CHANGES_BOOKING)
    async def cancel(
        appointment_id: AppointmentId,
        reason: Annotated[
            str | None,
            Field(description="Why, e.g. 'Caller no longer needs it'. Default: cancelled at the caller's request."),
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AppointmentResult:
        """Cancel an appointment in Cal.com (the attendee is notified). Permanent: it stays searchable as cancelled."""
        cancelled = await service.cancel(appointment_id, reason=reason, idempotency_key=idempotency_key)
        return result(cancelled, say.cancelled(cancelled, tz()))

    @tool(title="Search appointments", annotations=LOCAL_READ)
    async def search_appointments(
        query: Annotated[
            str | None,
            Field(
                description="Free text over title, attendee name and e-mail, business, label and phone numbers, e.g. 'ruiz'."
            ),
        ] = None,
        status: Annotated[
            str | None,
            Field(description="pending, active, rescheduled, cancelled, completed or failed; several comma-separated."),
        ] = None,
        label: Annotated[str | None, Field(description="Exact label, e.g. 'new-client'.")] = None,
        call_type: Annotated[
            Literal["inbound", "outbound", "web"] | None, Field(description="Only this call type.")
        ] = None,
        date_from: Annotated[
            str | None, Field(description="First day, YYYY-MM-DD, in the business's time zone.")
        ] = None,
        date_to: Annotated[str | None, Field(description="Last day (inclusive), YYYY-MM-DD.")] = None,
        sort_by: Annotated[SortField | None, Field(description="Column to sort by. Default: start.")] = None,
        sort_order: Annotated[Literal["asc", "desc"] | None, Field(description="asc or desc. Default: asc.")] = None,
        page: Annotated[int | None, Field(description="Page number, from 1. Default: 1.")] = None,
        page_size: Annotated[int | None, Field(description="10, 25, 50 or 100. Default: 10.")] = None,
    ) -> SearchResult:
        """Find recorded appointments by text and filters, sorted and paged, with the total count (exact up
        to 1,000; beyond that total_exact is false). Failed bookings are left out unless status asks for them."""
        found = await service.search(
            query=query,
            status=status,
            label=label,
            call_type=call_type,
            date_from=date_from,
            date_to=date_to,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
            page_size=page_size,
        )
        return SearchResult.of(found, tz(), now())

    @tool(title="Get an appointment", annotations=LOCAL_READ)
    async def get_appointment(appointment_id: AppointmentId) -> AppointmentResult:
        """One appointment with its full history (created, rescheduled from → to, updated, cancelled)."""
        found = await service.get(appointment_id)
        history = [HistoryView.of(h, tz()) for h in await service.history(found.id)]
        return result(found, say.appointment(found, tz(), now()), history)

    @tool(title="Update appointment details", annotations=LOCAL_EDIT)
    async def update_appointment(
        appointment_id: AppointmentId,
        title: Annotated[str | None, Field(description="New title.")] = None,
        description: Annotated[str | None, Field(description="New description.")] = None,
        label: Annotated[str | None, Field(description="New label, e.g. 'vip'.")] = None,
        attendee_name: Annotated[str | None, Field(description="Corrected attendee name.")] = None,
        attendee_email: Annotated[str | None, Field(description="Corrected attendee e-mail.")] = None,
    ) -> AppointmentResult:
        """Correct our record's title, description, label, attendee name or e-mail (Cal.com is not re-notified).
        To/from numbers, call type and booking uid are fixed; to change the time use reschedule."""
        changed = await service.update(
            appointment_id,
            {
                "title": title,
                "description": description,
                "label": label,
                "attendee_name": attendee_name,
                "attendee_email": attendee_email,
            },
        )
        return result(changed, say.updated())

    @tool(title="List event types", annotations=READ_ONLY)
    async def list_event_types(
        refresh: Annotated[
            bool | None, Field(description="true to sync the list from Cal.com first. Default: false.")
        ] = None,
    ) -> EventTypesResult:
        """The kinds of meeting that can be booked (id, length, location), and which one is the default."""
        types = await (service.refresh_event_types() if refresh else service.list_event_types())
        default = service.settings.event_type_id or next((t.id for t in types if not t.hidden), None)
        views = [EventTypeView.of(t, default) for t in types]
        sentence = say.event_types([v.title for v in views], [v.length_minutes for v in views])
        return EventTypesResult(event_types=views, say=sentence)

    return server
