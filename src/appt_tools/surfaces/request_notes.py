"""What a request's handler tells the request log (`http.guards.RequestLog`): the tool it ran and the
appointment it touched, kept in the ASGI scope's "state" of the HTTP request that carried the call. The
MCP server notes its tool calls here too: /mcp is one path for every tool."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

LOG_TOOL = "appt_tools.log_tool"
LOG_APPOINTMENT = "appt_tools.log_appointment"
MAX_TOOL = 60


def note(scope: MutableMapping[str, Any], *, tool: str | None = None, appointment_id: str | None = None) -> None:
    """Tell the request log of the request with ASGI `scope` which tool ran and which appointment it concerned."""
    state = scope.setdefault("state", {})
    if tool is not None:
        state[LOG_TOOL] = tool[:MAX_TOOL]
    if appointment_id is not None:
        state[LOG_APPOINTMENT] = appointment_id


def appointment_of(result: Any, arguments: Any = None) -> str | None:
    """The appointment a tool's result (or else its arguments) names, if any."""
    if isinstance(result, dict) and isinstance(result.get("appointment"), dict):
        found = result["appointment"].get("id")
        if isinstance(found, str):
            return found
    if isinstance(arguments, dict) and isinstance(arguments.get("appointment_id"), str):
        return str(arguments["appointment_id"])[:40]
    return None
