"""One tool definition, three ecosystems: MCP, OpenAI function calling (strict mode) and Anthropic.

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


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(schema)
    _strict(result)
    return result


def _strict(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strict(item)
        return
    if not isinstance(node, dict):
        return
    for keyword in DROPPED_KEYWORDS:
        node.pop(keyword, None)
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = set(node.get("required", ()))
        for name, prop in properties.items():
            if name not in required and not _nullable(prop):
                properties[name] = _make_nullable(prop)
        node["required"] = list(properties)
        node["additionalProperties"] = False
        if "type" not in node:
            node["type"] = "object"
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop in value.values():
                _strict(prop)
        elif key == "$defs" and isinstance(value, dict):
            for definition in value.values():
                _strict(definition)
        elif isinstance(value, (dict, list)):
            _strict(value)


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
