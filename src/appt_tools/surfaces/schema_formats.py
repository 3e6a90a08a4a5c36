"""One tool definition, three ecosystems: MCP, OpenAI function calling (strict mode) and Anthropic.

`compact_schema` is the MCP tool list's form: what the model reads every turn, kept small.

`strict_schema` turns the schema pydantic generates into the subset every platform accepts:
every object closed (`additionalProperties: false`), every property listed in `required`, optional
ones made nullable with `anyOf [..., {"type": "null"}]`, and no `title`, `default`, `examples` or
numeric and length bounds (OpenAI's strict mode and Anthropic's strict tool use reject or ignore them).
The bounds are still enforced: the tools' pydantic argument models check them on every call, and each
bounded argument's description states its range. A missing or null
optional argument means the same thing to our tools: use the default the description states.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

DROPPED_KEYWORDS = (
    "title",
    "default",
    "examples",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
)
NULL = {"type": "null"}


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The MCP tool list's form, which a client puts before its model on every turn: closed objects
    (`additionalProperties: false`), only the truly required arguments in `required`, optional ones
    without a nullable wrapper, and none of the keywords `strict_schema` drops (descriptions state
    defaults and ranges). A null optional argument is still accepted: it means "use the default"."""
    return _closed(schema, _optional_plain)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return _closed(schema, _optional_nullable)


def output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The MCP form of a tool's output schema: `strict_schema`'s, with every `$ref` to `$defs` written out
    in place and each nullable scalar as a type list (`{"type": ["string", "null"]}` instead of an `anyOf`
    of two schemas). The same instances are valid; what changes is what a client pays to use it. An MCP
    client checks the schema against the JSON Schema 2020-12 metaschema on a tool's first call and
    validates every result against it: fewer subschemas and no references make both cheaper (the mcp
    Python SDK's client: the first-call check of book_appointment's schema 45 → 32 ms, find_slots' results
    1.5 → 1.0 ms each; bench/conversation.py prints both)."""
    strict = strict_schema(schema)
    definitions = strict.pop("$defs", {})

    def lean(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [lean(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            name = reference.removeprefix("#/$defs/")
            if name in seen:  # a recursive model: nothing to write out in place, keep `$defs` then
                raise _Recursive
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return lean({**definitions[name], **rest}, (*seen, name))
        result = {key: lean(value, seen) if key != "properties" else _each(value, seen) for key, value in node.items()}
        options = result.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and NULL in options:
            (other,) = [option for option in options if option != NULL]
            if set(other) == {"type"} and isinstance(other["type"], str):
                result.pop("anyOf")
                result["type"] = [other["type"], "null"]
        return result

    def _each(properties: Any, seen: tuple[str, ...]) -> Any:
        if not isinstance(properties, dict):
            return lean(properties, seen)
        return {name: lean(value, seen) for name, value in properties.items()}

    try:
        leaned: dict[str, Any] = lean(strict, ())
    except _Recursive:
        return strict_schema(schema)
    return leaned


class _Recursive(Exception):
    """An output model that refers to itself: its schema keeps `$defs` and `$ref`."""


def _optional_plain(properties: dict[str, Any], required: set[str]) -> list[str] | None:
    for name, prop in properties.items():
        if name not in required:
            properties[name] = _without_null(prop)
    return [name for name in properties if name in required] or None


def _optional_nullable(properties: dict[str, Any], required: set[str]) -> list[str] | None:
    for name, prop in properties.items():
        if name not in required and not _nullable(prop):
            properties[name] = _make_nullable(prop)
    return list(properties)


def _closed(schema: dict[str, Any], optional: Callable[[dict[str, Any], set[str]], list[str] | None]) -> dict[str, Any]:
    """A copy of `schema` with every object closed, the dropped keywords gone, and each object's optional
    properties shaped by `optional`, which answers the object's new `required` list (None: none)."""
    result = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        for keyword in DROPPED_KEYWORDS:
            node.pop(keyword, None)
        properties = node.get("properties")
        if isinstance(properties, dict):
            required = optional(properties, set(node.get("required", ())))
            if required is None:
                node.pop("required", None)
            else:
                node["required"] = required
            node["additionalProperties"] = False
            node.setdefault("type", "object")
        for key, value in node.items():
            if key in ("properties", "$defs") and isinstance(value, dict):
                for sub in value.values():  # a property may be named like a keyword ("title")
                    walk(sub)
            elif isinstance(value, (dict, list)):
                walk(value)

    walk(result)
    return result


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = prop.get("anyOf")
    if not isinstance(options, list) or NULL not in options:
        return prop
    real = [option for option in options if option != NULL]
    rest = {key: value for key, value in prop.items() if key != "anyOf"}
    return {**real[0], **rest} if len(real) == 1 else {"anyOf": real, **rest}


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or NULL in prop.get("anyOf", ())


def _make_nullable(prop: dict[str, Any]) -> dict[str, Any]:
    description = prop.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [prop, dict(NULL)]}
    if description is not None:
        wrapped["description"] = description
    return wrapped


def openai_tool(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI Chat Completions / Responses function tool, strict mode."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": strict_schema(input_schema),
            "strict": True,
        },
    }


def anthropic_tool(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """Anthropic Messages API tool definition."""
    return {"name": name, "description": description, "input_schema": strict_schema(input_schema)}


# --- voice platforms and realtime APIs --------------------------------------------------------------

# What a voice platform states about the call itself: its declarations never ask the model for these.
PLATFORM_SUPPLIED = ("to_number", "from_number", "call_type")
# Said while a tool that waits on Cal.com runs (a phone line is otherwise silent for a second or two).
FILLER_LINES = {
    "find_slots": "One moment, I'm checking the calendar.",
    "list_event_types": "One moment, I'm checking the calendar.",
    "book_appointment": "One moment while I book that.",
    "reschedule": "One moment while I move that.",
    "cancel": "One moment while I cancel that.",
}
PLACEHOLDER_URL = "https://appt-tools.example.com"
TIMEOUT_SECONDS = 20
# Only what Gemini's OpenAPI 3.0 subset reads (Schema: type, format, description, nullable, enum,
# properties, required, items, min/maxItems...).
GEMINI_KEYS = ("type", "format", "description", "nullable", "enum", "properties", "required", "items")


def plain_schema(input_schema: dict[str, Any], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The tool's arguments as a plain JSON Schema object: optional arguments simply left out of
    `required` (no nullable wrappers), no `title`/`default`/`examples`, `drop` left out entirely."""
    schema = copy.deepcopy(input_schema)
    for keyword in ("title", "default", "examples"):
        schema.pop(keyword, None)
    properties = {name: _plain(prop) for name, prop in schema.get("properties", {}).items() if name not in drop}
    required = [name for name in schema.get("required", ()) if name in properties]
    return {"type": "object", "properties": properties, "required": required}


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(prop)
    options = node.pop("anyOf", None)
    if options is not None:
        real = [o for o in options if o != NULL]
        if len(real) == 1:
            node = {**real[0], **node}
    for keyword in ("title", "default", "examples"):
        node.pop(keyword, None)
    if isinstance(node.get("items"), dict):
        node["items"] = _plain(node["items"])
    return node


def openai_realtime_tool(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI Realtime API session tool: flat, no nested `function` object."""
    return {"type": "function", "name": name, "description": description, "parameters": plain_schema(input_schema)}


def gemini_declaration(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini function declaration; `parameters` in the OpenAPI 3.0 subset Gemini reads."""
    return {"name": name, "description": description, "parameters": _gemini(plain_schema(input_schema))}


def _gemini(node: dict[str, Any]) -> dict[str, Any]:
    out = {key: node[key] for key in GEMINI_KEYS if key in node}
    if "properties" in out:
        out["properties"] = {k: _gemini(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _gemini(out["items"])
    if "enum" in out and out.get("type") != "string":
        # Gemini's enum is for strings only: the allowed numbers are stated in the description.
        allowed = ", ".join(str(v) for v in out.pop("enum"))
        out["description"] = f"{out.get('description', '')} One of {allowed}.".strip()
    return out


def vapi_tool(name: str, description: str, input_schema: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A Vapi function tool to import (POST /tool): its server is our /vapi/tool-calls; the call's numbers
    and direction come from Vapi's call data, so the model is not asked for them."""
    tool: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": plain_schema(input_schema, drop=PLATFORM_SUPPLIED),
        },
        "server": {
            "url": f"{base_url}/vapi/tool-calls",
            "timeoutSeconds": TIMEOUT_SECONDS,
            "headers": {"X-Vapi-Secret": "<APPT_TOOLS_VAPI_SECRET>"},
        },
    }
    if name in FILLER_LINES:
        tool["messages"] = [{"type": "request-start", "content": FILLER_LINES[name]}]
    return tool


def retell_tool(name: str, description: str, input_schema: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A Retell custom function (an entry of the Retell LLM's `general_tools`): posted to our
    /retell/functions with the call object, whose numbers and direction fill in the call's facts."""
    slow = name in FILLER_LINES
    tool: dict[str, Any] = {
        "type": "custom",
        "name": name,
        "description": description,
        "url": f"{base_url}/retell/functions",
        "method": "POST",
        "args_at_root": False,
        "timeout_ms": TIMEOUT_SECONDS * 1000,
        "speak_during_execution": slow,
        "speak_after_execution": True,
        "parameters": plain_schema(input_schema, drop=PLATFORM_SUPPLIED),
    }
    if slow:
        tool["execution_message_description"] = FILLER_LINES[name]
    return tool


# ElevenLabs fills these body fields from the conversation, never from the model (surfaces/http/voice.py).
ELEVENLABS_CALL_FIELDS: dict[str, dict[str, Any]] = {
    "caller_id": {"type": "string", "dynamic_variable": "system__caller_id"},
    "called_number": {"type": "string", "dynamic_variable": "system__called_number"},
    "call_direction": {"type": "string", "constant_value": "inbound"},
}


JSON_TEXT = 'Send it as JSON text, e.g. \'{"topic": "Moving my pension"}\'.'


def elevenlabs_tool(name: str, description: str, input_schema: dict[str, Any], base_url: str) -> dict[str, Any]:
    """An ElevenLabs webhook (server) tool, as `POST /v1/convai/tools` takes it: the body's properties
    are the model's arguments, plus the caller id and called number wired to system variables; our
    API key travels in an ElevenLabs secret as the Authorization header."""
    body = plain_schema(input_schema, drop=PLATFORM_SUPPLIED)
    properties = {key: _elevenlabs(prop) for key, prop in body["properties"].items()}
    if any(key in input_schema.get("properties", {}) for key in (*PLATFORM_SUPPLIED, "mine")):
        properties.update(copy.deepcopy(ELEVENLABS_CALL_FIELDS))
    config: dict[str, Any] = {
        "type": "webhook",
        "name": name,
        "description": description,
        "response_timeout_secs": TIMEOUT_SECONDS,
        "force_pre_tool_speech": name in FILLER_LINES,
        "api_schema": {
            "url": f"{base_url}/elevenlabs/tools/{name}",
            "method": "POST",
            "content_type": "application/json",
            "request_headers": {"Authorization": {"secret_id": "<ELEVENLABS_SECRET_ID: 'Bearer <API key>'>"}},
            "request_body_schema": {
                "type": "object",
                "description": f"The arguments of {name}.",
                "properties": properties,
                "required": [key for key in body["required"] if key in properties],
            },
        },
    }
    return {"tool_config": config}


def _elevenlabs(prop: dict[str, Any]) -> dict[str, Any]:
    """A property as ElevenLabs' literal/array schema takes it: a type, a description the model reads
    (string enums kept; other limits stated in words)."""
    kind = prop.get("type", "string")
    description = prop.get("description") or "See the tool's description."
    if kind == "object":  # ElevenLabs has no free-form object: the object travels as JSON text
        return {"type": "string", "description": f"{description} {JSON_TEXT}"}
    if kind == "array":
        items = _elevenlabs(prop.get("items", {"type": "string"}))
        return {"type": "array", "description": description, "items": items}
    out: dict[str, Any] = {"type": kind, "description": description}
    if "enum" in prop:
        if kind == "string":
            out["enum"] = list(prop["enum"])
        else:
            out["description"] = f"{description} One of {', '.join(str(v) for v in prop['enum'])}."
    return out
