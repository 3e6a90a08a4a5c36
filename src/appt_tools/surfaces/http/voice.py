"""The voice platforms' request and answer shapes around a tool call (shared/mcp/NOTES.md).

Vapi posts a `tool-calls` message listing the model's calls (each nested `{id, function: {name,
arguments}}` or flat `{id, name, arguments}`) and wants, for each, one line of JSON under `result` or
`error`. Retell posts `{"name", "call", "args"}` (or, with "args at root", the arguments alone, the
function named by the path) and hands a 2xx body to the model as the result. ElevenLabs' webhook tools
post the arguments as a plain JSON body, with the call's numbers in the fields its declaration wires to
its system variables (`ELEVENLABS_FIELDS`).

Each platform's call data (the numbers and the direction) becomes `CallFacts`, which fill in or
overrule the model's `to_number`, `from_number` and `call_type`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from appt_tools.errors import InvalidArgument
from appt_tools.models import CallType
from appt_tools.surfaces.call_facts import CallFacts
from appt_tools.surfaces.http.body import invalid_request
from appt_tools.surfaces.http.calls import Outcome, failed, run_tool
from appt_tools.surfaces.mcp_server import AppointmentServer

# --- Vapi ----------------------------------------------------------------------------------------


def vapi_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of a Vapi `tool-calls` message, all checked before any runs."""
    message = body.get("message")
    if not isinstance(message, dict) or message.get("type") != "tool-calls":
        raise invalid_request(
            'Expected a Vapi tool-calls message: {"message": {"type": "tool-calls", "toolCallList": [...]}}. '
            "Point a function tool's server URL here, not the assistant's server URL."
        )
    calls = message.get("toolCallList", message.get("toolCalls"))  # toolCalls: Vapi's older name
    if not isinstance(calls, list):
        raise invalid_request("message.toolCallList must be a list of tool calls.")
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            raise invalid_request("Every tool call needs a string id to answer it by.")
    return calls


async def vapi_answer(server: AppointmentServer, call: dict[str, Any], facts: CallFacts) -> dict[str, str]:
    """One entry of Vapi's `results`: the call's result, or its error (a call that names no function
    or whose arguments are not a JSON object is refused like a wrong argument)."""
    answer = {"toolCallId": call["id"]}
    try:
        name, arguments = _vapi_function(call)
    except InvalidArgument as exc:
        outcome = failed(server, exc)
    else:
        answer["name"] = name
        outcome = await run_tool(server, name, arguments, facts)
    if outcome.result is not None:
        # `say` first: it is the part a voice assistant should read out.
        answer["result"] = one_line({"say": outcome.result.get("say"), **outcome.result})
    else:
        assert outcome.error is not None
        answer["error"] = one_line(outcome.error.model_dump(mode="json", exclude_none=True))
    return answer


def vapi_facts(body: dict[str, Any]) -> CallFacts:
    """The call's numbers and direction from a Vapi server message: `message.call.type`
    (inboundPhoneCall, outboundPhoneCall, webCall), `message.call.customer.number` or
    `message.customer.number` (the other party), `message.phoneNumber.number` (the assistant's)."""
    message = _dict(body.get("message"))
    call = _dict(message.get("call"))
    customer = _dict(call.get("customer")) or _dict(message.get("customer"))
    own = _dict(message.get("phoneNumber")) or _dict(call.get("phoneNumber"))
    kind = VAPI_CALL_TYPES.get(str(call.get("type", "")))
    theirs, ours = customer.get("number"), own.get("number")
    if kind == "outbound":
        return CallFacts.of("Vapi", to_number=theirs, from_number=ours, call_type=kind)
    if kind == "web":
        return CallFacts.of("Vapi", to_number=None, from_number=None, call_type=kind)
    return CallFacts.of("Vapi", to_number=ours, from_number=theirs, call_type=kind)


VAPI_CALL_TYPES: dict[str, CallType] = {
    "inboundPhoneCall": "inbound",
    "outboundPhoneCall": "outbound",
    "webCall": "web",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _vapi_function(call: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Nested `{"function": {"name", "arguments"}}` or Vapi's documented flat `{"name", "arguments"}`."""
    function = call.get("function")
    if not isinstance(function, dict):
        function = call  # the flat form
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(
            "function.name",
            'the tool call names no function; send {"id", "function": {"name", "arguments"}} or {"id", "name", "arguments"}.',
        )
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    if isinstance(arguments, str):  # Vapi may send the model's arguments as the JSON string it wrote
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise InvalidArgument("arguments", "is not valid JSON; send a JSON object of the arguments.") from None
    if not isinstance(arguments, dict):
        raise InvalidArgument("arguments", "must be a JSON object of the tool's arguments.")
    return name, arguments


def one_line(data: Mapping[str, Any]) -> str:
    """Compact JSON on one line, as Vapi wants a tool's result: JSON already escapes control
    characters; these three are line breaks too for some readers."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# --- Retell --------------------------------------------------------------------------------------


def retell_call(path_name: str | None, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The function's name and arguments: from `{"name", "call", "args"}`, or with "args at root" the
    body is the arguments alone (then the function is named by the path)."""
    wrapped = "args" in body and ("name" in body or "call" in body)
    arguments = body["args"] if wrapped else body
    body_name = body.get("name") if wrapped else None
    if not isinstance(arguments, dict):
        raise invalid_request("args must be a JSON object of the function's arguments.")
    if path_name and body_name and body_name != path_name:
        raise invalid_request(f"The path names {path_name!r} but the body names {body_name!r}.")
    name = path_name or body_name
    if not isinstance(name, str) or not name:
        raise invalid_request("Name the function in the path (/retell/functions/<name>) or in the body's name.")
    return name, arguments


def retell_facts(body: dict[str, Any]) -> CallFacts | None:
    """The call's numbers and direction from Retell's `call` object (`from_number`, `to_number`,
    `direction`, `call_type` 'web_call' or 'phone_call'); None with "args at root" (no call object)."""
    call = body.get("call") if "args" in body else None
    if not isinstance(call, dict):
        return None
    if call.get("call_type") == "web_call":
        return CallFacts.of("Retell", to_number=None, from_number=None, call_type="web")
    direction = call.get("direction")
    kind: CallType | None = direction if direction in ("inbound", "outbound") else None
    return CallFacts.of("Retell", to_number=call.get("to_number"), from_number=call.get("from_number"), call_type=kind)


# --- ElevenLabs ----------------------------------------------------------------------------------

# Body fields the exported ElevenLabs tools fill from the conversation's system variables, never from
# the model (see `schema_formats.elevenlabs_tool`).
ELEVENLABS_FIELDS = {
    "caller_id": "system__caller_id",
    "called_number": "system__called_number",
    "call_direction": None,  # a constant in the declaration: 'inbound' (or 'outbound' for an outbound agent)
}


# Object arguments, which ElevenLabs' schemas cannot declare: the model sends them as JSON text.
ELEVENLABS_JSON_TEXT = ("answers",)


def _json_text(value: object) -> object:
    """The object JSON text stands for; anything else (a refusal follows, naming the argument) as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def elevenlabs_call(body: dict[str, Any]) -> tuple[dict[str, Any], CallFacts]:
    """The tool's arguments and the call's facts from an ElevenLabs webhook body: the caller id is the
    number that called, the called number the one that was called; with neither (a web or test
    conversation) the call is a web call."""
    arguments = {key: value for key, value in body.items() if key not in ELEVENLABS_FIELDS}
    for key in ELEVENLABS_JSON_TEXT:
        if key in arguments:
            arguments[key] = _json_text(arguments[key])
    caller, called = body.get("caller_id"), body.get("called_number")
    direction = body.get("call_direction")
    facts = CallFacts.of("ElevenLabs", to_number=called, from_number=caller, call_type=None)
    if facts.to_number is None and facts.from_number is None:
        facts.call_type = "web"
    else:
        facts.call_type = "outbound" if direction == "outbound" else "inbound"
    return arguments, facts


def retell_status(outcome: Outcome) -> int:
    """Retell hands a 2xx body to the model as the function's result and treats anything else as a
    failed request it retries. A domain error is an answer the model must read (alternatives, `say`),
    so it is a 200; only an unexpected failure is a 500, which Retell may retry."""
    return 500 if outcome.status == 500 else 200
