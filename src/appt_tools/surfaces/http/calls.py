"""One tool call as every HTTP route runs it: through `AppointmentServer.invoke`, so each route accepts
and refuses exactly the calls MCP does, and ends in an `Outcome` the route shapes for its caller."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from appt_tools.errors import AppError, CalcomRateLimited
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.call_facts import CallFacts
from appt_tools.surfaces.http.body import SORRY
from appt_tools.surfaces.mcp_server import AppointmentServer
from appt_tools.surfaces.statuses import http_status

logger = logging.getLogger("appt_tools.http")

INTERNAL_ERROR = ErrorView(
    code="internal_error",
    message="The server failed unexpectedly; nothing about the cause is shared. Try again later.",
    retryable=True,
    say=SORRY,
)


@dataclass(frozen=True)
class Outcome:
    """A tool call's result, or its error with the HTTP status and headers the plain route answers with."""

    result: dict[str, Any] | None = None
    error: ErrorView | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


async def run_tool(
    server: AppointmentServer, name: str, arguments: dict[str, Any], call: CallFacts | None = None
) -> Outcome:
    """`call`: the voice platform's facts about the call, if the route has them."""
    try:
        return Outcome(result=await server.invoke(name, arguments, call))
    except AppError as exc:
        return failed(server, exc)
    except Exception:
        # The boundary of every route: the caller learns nothing about an unexpected failure,
        # the operator gets the traceback (never the request's headers, which carry credentials).
        logger.exception("tool %r failed unexpectedly", name)
        return Outcome(error=INTERNAL_ERROR, status=500)


def failed(server: AppointmentServer, error: AppError) -> Outcome:
    """The outcome of a refused call: the error as the model reads it, its HTTP status, and Retry-After
    when Cal.com said how long to wait."""
    headers = {}
    if isinstance(error, CalcomRateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(error.retry_after))
    return Outcome(error=server.render_error(error), status=http_status(error), headers=headers)
