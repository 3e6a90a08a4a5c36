"""The MCP server: a thin adapter that shapes arguments, calls the service and shapes results.

Arguments are checked strictly before the SDK sees them: an unknown argument is refused with
the list of valid ones (the SDK would silently drop it), and a string is never coerced into a
number. Failures reach the model as `isError` results whose text is an `ErrorView` JSON object
with a stable `code`, a `message` saying what to do next, and `retryable`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from mcp.types import Tool as MCPTool
from pydantic import ValidationError

from appt_tools import validation
from appt_tools.core.service import AppointmentService
from appt_tools.errors import AppError, InvalidArgument, LockedField, NotFound
from appt_tools.runtime import Runtime
from appt_tools.runtime import ServiceHandle as ServiceHandle  # re-exported: the surfaces build servers on it
from appt_tools.speech.results import (
    ErrorView,
)
from appt_tools.surfaces.arguments import LOCKED_FIELDS, field_problems
from appt_tools.surfaces.call_facts import CallFacts
from appt_tools.surfaces.mcp_tools import Tools, register_tools
from appt_tools.surfaces.request_notes import appointment_of, note
from appt_tools.surfaces.schema_formats import compact_schema, output_schema
from appt_tools.surfaces.tenancy import TENANT_STATE

INSTRUCTIONS = """\
Books, moves and cancels appointments for this business in its Cal.com calendar.
Dates: every result carries `now`, the current time where the business is (e.g. 'Friday, December 4,
6:15 PM'); read it before turning 'tomorrow' or 'next Tuesday' into a date. If you have no result yet,
call find_slots with date 'today'.
Flow: 1) find_slots for the day the caller wants; 2) offer a few times (use each slot's `spoken` form) and
confirm one, plus the caller's name and e-mail; 3) book_appointment with that slot's `start`, the call's
to/from numbers and call type. Never book a time the caller has not confirmed. To change or cancel, find the
appointment with search_appointments (by name, e-mail or phone; on a phone call `mine: true` finds the
caller's own) or use its id, then reschedule or cancel.
Every result has `say`: a sentence you can read to the caller. Errors carry a `code`, a `message` with the
next step, `retryable`, and for wrong arguments `errors` listing every one; on `slot_unavailable`, offer the
`alternatives` it lists.
Times: pass ISO 8601 with an offset (e.g. '2026-11-24T15:00:00-05:00'), or pass `timezone`."""


class AppointmentServer(MCPServer):
    """MCPServer with strict argument checking and domain errors rendered for the model.

    `invoke` runs a tool for any other surface (plain HTTP, Vapi, Retell) through exactly the same
    checks, so every surface accepts and refuses the same calls.

    The service may still be opening when the server starts (see `ServiceHandle`): listing tools does not
    need it, and every tool call waits for it.
    """

    def __init__(
        self,
        service: AppointmentService | ServiceHandle,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handle = service if isinstance(service, ServiceHandle) else ServiceHandle.of(service)
        self._schemas: dict[str, dict[str, Any]] = {}

    @property
    def service(self) -> AppointmentService:
        """The open service (ServiceUnavailable while it is not): for surfaces built once it is open."""
        return self.handle.service

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        scope = _http_scope(context)
        result: Any = None
        try:
            tenant = (scope.get("state") or {}).get(TENANT_STATE) if scope is not None else None
            if not isinstance(tenant, int):
                result = await self._run(name, arguments, context)
                return result
            # MCP over HTTP: the request was routed to a tenant (surfaces/tenancy.py); its tools act for it.
            async with Runtime.of(await self.handle.get()).tenants.acting_for(tenant):
                result = await self._run(name, arguments, context)
                return result
        except AppError as exc:
            raise ToolError(self.render_error(exc).model_dump_json(exclude_none=True)) from exc
        finally:
            if scope is not None:  # over HTTP: the request log's line for /mcp names the tool and appointment
                found = appointment_of(getattr(result, "structured_content", None), arguments)
                note(scope, tool=str(name), appointment_id=found)

    async def invoke(self, name: str, arguments: dict[str, Any], call: CallFacts | None = None) -> dict[str, Any]:
        """A tool's structured result (its `say` included). Raises AppError for anything the caller can fix.
        `call`: the facts a voice platform sent about the call (numbers, direction), which fill in or
        overrule the model's `to_number`, `from_number` and `call_type`."""
        if call is not None:
            schema = (await self.tool_schemas()).get(name)
            if schema is not None:
                arguments = call.apply(arguments, schema.get("properties", {}))
            with call.active():
                result = await self._run(name, arguments, None)
        else:
            result = await self._run(name, arguments, None)
        assert isinstance(result, CallToolResult) and result.structured_content is not None
        return dict(result.structured_content)

    def render_error(self, error: AppError) -> ErrorView:
        return ErrorView.of(error, self.handle.timezone, self._now())

    def _now(self) -> datetime | None:
        try:
            return self.service.now()
        except AppError:  # the service is not open: the error says so, without a time
            return None

    async def tool_schemas(self) -> dict[str, dict[str, Any]]:
        """Input schema of each tool, by name."""
        if not self._schemas:
            self._schemas = {t.name: t.input_schema for t in await self.list_tools()}
        return self._schemas

    async def list_tools(self) -> list[MCPTool]:
        """The SDK's tool list with compact input schemas (`compact_schema`: what a model reads every
        turn) and strict output schemas with nothing to look up (`output_schema`). The function-calling
        exports derive their strict forms from the compact one."""
        return [
            tool.model_copy(
                update={
                    "input_schema": compact_schema(tool.input_schema),
                    "output_schema": output_schema(tool.output_schema) if tool.output_schema else None,
                }
            )
            for tool in await super().list_tools()
        ]

    async def _run(self, name: str, arguments: dict[str, Any], context: Any) -> Any:
        await self.handle.get()
        schema = (await self.tool_schemas()).get(name)
        if schema is None:
            known = ", ".join(await self.tool_schemas())
            raise NotFound(f"There is no tool named {name!r}; the tools are: {known}.", code="unknown_tool")
        problems = _argument_problems(name, schema, arguments)
        # Let the tool's own model judge the rest too, and each argument's own check, so one answer
        # names every problem (the tool itself runs only when there are none).
        rest = {key: value for key, value in arguments.items() if key not in {p.field for p in problems}}
        tool = self._tool_manager.get_tool(name)
        try:
            if tool is not None:
                tool.fn_metadata.validate_arguments(rest)
        except ValidationError as exc:
            problems.extend(_validation_problems(exc))
        if problems:
            flagged = {p.field.split(".")[0] for p in problems}
            order = list(schema.get("properties", {}))
            problems.extend(field_problems(name, {k: v for k, v in rest.items() if k in order}, flagged))
            # In the tool's own order of arguments (an unknown one first): `field` names the first.
            problems.sort(key=lambda p: _position(order, p.field))
            raise InvalidArgument.every(problems)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, AppError):
                raise cause from None
            if isinstance(cause, ValidationError):
                raise _from_validation(cause) from cause
            raise


def _http_scope(context: Any) -> dict[str, Any] | None:
    """The ASGI scope of the HTTP request carrying this MCP call (None over stdio or in memory)."""
    try:
        request = context.request_context.request
    except (AttributeError, ValueError, LookupError):
        return None
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, dict) else None


def _position(order: list[str], field: str) -> int:
    name = field.split(".")[0]
    return order.index(name) if name in order else -1


def _argument_problems(name: str, schema: dict[str, Any], arguments: dict[str, Any]) -> list[InvalidArgument]:
    """What the SDK would quietly accept: unknown arguments (it drops them), numbers or booleans sent as
    strings and booleans sent as numbers or numbers as booleans (it coerces them); and what nothing
    downstream can hold: integers beyond 2^53, strings with a NUL or a lone surrogate (`validation`).
    Every one is listed."""
    properties: dict[str, Any] = schema.get("properties", {})
    if len(arguments) > 2 * len(properties) + 10:  # explicit bound: a 10,000-item request is refused before any work
        extra = next(key for key in arguments if key not in properties)
        return [
            InvalidArgument(
                extra,
                f"is not an argument of {name}; it takes at most {len(properties)} arguments: {', '.join(properties)}.",
            )
        ]
    problems: list[InvalidArgument] = []
    for key, value in arguments.items():
        if key not in properties:
            if name == "update_appointment" and key in LOCKED_FIELDS:
                problems.append(LockedField(key, "is fixed when the appointment is created and cannot be changed."))
            else:
                problems.append(
                    InvalidArgument(key, f"is not an argument of {name}; valid arguments are: {', '.join(properties)}.")
                )
            continue
        kinds = _types(properties[key]) - {"null"}
        if isinstance(value, str) and kinds and kinds <= {"integer", "number", "boolean"}:
            problems.append(
                InvalidArgument(key, f"must be a JSON {' or '.join(sorted(kinds))}, not the string {value!r}.")
            )
        elif isinstance(value, bool) and "boolean" not in kinds and kinds & {"integer", "number"}:
            problems.append(InvalidArgument(key, f"must be a whole number such as 1, not {str(value).lower()}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and kinds == {"boolean"}:
            problems.append(InvalidArgument(key, f"must be true or false, not the number {value!r}."))
        else:
            try:
                _check_value(key, value)
            except InvalidArgument as problem:
                problems.append(problem)
    return problems


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, str):
        validation.plain_string(key, value)
    elif isinstance(value, int) and not isinstance(value, bool):
        validation.integer(key, value)
    elif isinstance(value, list):
        for item in value[:1000]:
            _check_value(key, item)
    elif isinstance(value, dict):
        for name, item in list(value.items())[:1000]:
            _check_value(key, name)
            _check_value(key, item)


def _types(prop: dict[str, Any]) -> set[str]:
    if "type" in prop:
        return {prop["type"]} if isinstance(prop["type"], str) else set(prop["type"])
    return {t for option in prop.get("anyOf", []) for t in _types(option)}


def _from_validation(error: ValidationError) -> InvalidArgument:
    return InvalidArgument.every(_validation_problems(error))


def _validation_problems(error: ValidationError) -> list[InvalidArgument]:
    """Every problem pydantic found, one per field (the first message of each)."""
    found: dict[str, InvalidArgument] = {}
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "arguments"
        message = "is required." if item["type"] == "missing" else item["msg"] + "."
        found.setdefault(field.split(".")[0], InvalidArgument(field, message))
    return list(found.values())


def build_server(provider: AppointmentService | ServiceHandle, *, log_level: str = "WARNING") -> AppointmentServer:
    """The MCP server on an open service, or on a `ServiceHandle` whose service is still being opened."""
    server = AppointmentServer(provider, name="appt-tools", instructions=INSTRUCTIONS, log_level=log_level)
    register_tools(server, Tools(server.handle))
    return server
