"""tool_schemas/ for the voice platforms and realtime APIs (issue 12, item 8): each form checked against
its platform's published rules, and none asks the model for what the platform supplies."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from appt_tools.surfaces import schema_export
from appt_tools.surfaces.schema_formats import FILLER_LINES, PLATFORM_SUPPLIED

SCHEMAS = Path(__file__).resolve().parent.parent / "tool_schemas"
TOOLS = sorted(p.stem for p in SCHEMAS.glob("*.json"))
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
GEMINI_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# Gemini's Schema object (an OpenAPI 3.0 subset): no $ref, anyOf/oneOf, additionalProperties or title.
GEMINI_KEYS = {
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
}
GEMINI_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
# ElevenLabs' literal properties: one value source each (the model by description, a dynamic variable, a constant).
ELEVENLABS_SOURCES = ("description", "dynamic_variable", "constant_value", "is_system_provided")


def _load(relative: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))


def _gemini_problems(node: dict[str, Any], where: str) -> list[str]:
    problems = [f"{where}: {key} is not in Gemini's schema" for key in node if key not in GEMINI_KEYS]
    if node.get("type") not in GEMINI_TYPES:
        problems.append(f"{where}: type {node.get('type')!r}")
    if "enum" in node and node.get("type") != "string":
        problems.append(f"{where}: enum on a {node.get('type')}")
    for name, sub in node.get("properties", {}).items():
        problems += _gemini_problems(sub, f"{where}.{name}")
    if set(node.get("required", ())) - set(node.get("properties", {})):
        problems.append(f"{where}: requires an unknown property")
    if isinstance(node.get("items"), dict):
        problems += _gemini_problems(node["items"], f"{where}[]")
    return problems


def _elevenlabs_problems(prop: dict[str, Any], where: str) -> list[str]:
    kind = prop.get("type")
    if kind == "array":
        extra = set(prop) - {"type", "description", "items"}
        return [f"{where}: {sorted(extra)}"] * bool(extra) + _elevenlabs_problems(prop["items"], f"{where}[]")
    problems = []
    if kind not in ("string", "integer", "number", "boolean"):
        problems.append(f"{where}: type {kind!r}")
    sources = [key for key in ELEVENLABS_SOURCES if key in prop]
    if len(sources) != 1:
        problems.append(f"{where}: value sources {sources} (exactly one allowed)")
    if "enum" in prop and kind != "string":
        problems.append(f"{where}: enum on a {kind}")
    if set(prop) - {"type", "enum", *ELEVENLABS_SOURCES}:
        problems.append(f"{where}: unknown keys {sorted(set(prop) - {'type', 'enum', *ELEVENLABS_SOURCES})}")
    return problems


@pytest.mark.parametrize("tool", TOOLS)
def test_openai_realtime_tools_are_flat_functions(tool: str) -> None:
    declared = _load(f"openai-realtime/{tool}.json")
    assert set(declared) == {"type", "name", "description", "parameters"} and declared["type"] == "function"
    assert OPENAI_NAME.match(declared["name"]) and len(declared["description"]) < 1024
    Draft202012Validator.check_schema(declared["parameters"])
    assert declared["parameters"]["type"] == "object"


@pytest.mark.parametrize("tool", TOOLS)
def test_gemini_declarations_use_only_gemini_schema(tool: str) -> None:
    declared = _load(f"gemini/{tool}.json")
    assert set(declared) == {"name", "description", "parameters"} and GEMINI_NAME.match(declared["name"])
    assert _gemini_problems(declared["parameters"], tool) == []
    assert declared["parameters"]["type"] == "object"


@pytest.mark.parametrize("tool", TOOLS)
def test_vapi_tools_call_our_webhook_and_ask_nothing_the_call_knows(tool: str) -> None:
    declared = _load(f"vapi/{tool}.json")
    assert declared["type"] == "function" and declared["function"]["name"] == tool
    parameters = declared["function"]["parameters"]
    Draft202012Validator.check_schema(parameters)
    assert not set(PLATFORM_SUPPLIED) & set(parameters["properties"])
    assert declared["server"]["url"].endswith("/vapi/tool-calls") and "X-Vapi-Secret" in declared["server"]["headers"]
    assert declared["server"]["timeoutSeconds"] <= 20  # Vapi's default tool timeout
    filler = [m["content"] for m in declared.get("messages", ()) if m["type"] == "request-start"]
    assert filler == ([FILLER_LINES[tool]] if tool in FILLER_LINES else [])


@pytest.mark.parametrize("tool", TOOLS)
def test_retell_functions_get_the_call_object_and_a_filler_line(tool: str) -> None:
    declared = _load(f"retell/{tool}.json")
    assert declared["type"] == "custom" and declared["name"] == tool and declared["url"].endswith("/retell/functions")
    assert declared["args_at_root"] is False  # the call object (numbers, direction) comes with the arguments
    Draft202012Validator.check_schema(declared["parameters"])
    assert not set(PLATFORM_SUPPLIED) & set(declared["parameters"]["properties"])
    assert declared["speak_during_execution"] == (tool in FILLER_LINES)
    assert declared.get("execution_message_description") == FILLER_LINES.get(tool)


@pytest.mark.parametrize("tool", TOOLS)
def test_elevenlabs_webhook_tools_wire_the_system_variables(tool: str) -> None:
    config = _load(f"elevenlabs/{tool}.json")["tool_config"]
    assert config["type"] == "webhook" and config["name"] == tool
    api = config["api_schema"]
    assert api["url"].endswith(f"/elevenlabs/tools/{tool}") and api["method"] == "POST"
    assert set(api["request_headers"]["Authorization"]) == {"secret_id"}
    body = api["request_body_schema"]
    assert body["type"] == "object" and set(body["required"]) <= set(body["properties"])
    problems = [p for name, prop in body["properties"].items() for p in _elevenlabs_problems(prop, name)]
    assert problems == []
    assert not set(PLATFORM_SUPPLIED) & set(body["properties"])
    if tool in ("book_appointment", "search_appointments"):
        assert body["properties"]["caller_id"] == {"type": "string", "dynamic_variable": "system__caller_id"}
        assert body["properties"]["called_number"]["dynamic_variable"] == "system__called_number"
    assert config["force_pre_tool_speech"] == (tool in FILLER_LINES)


async def test_base_url_goes_into_every_platform_file() -> None:
    files = await schema_export.current_files("https://appt.example.org/")
    assert files["vapi/find_slots.json"]["server"]["url"] == "https://appt.example.org/vapi/tool-calls"
    assert files["retell/cancel.json"]["url"] == "https://appt.example.org/retell/functions"
    assert (
        files["elevenlabs/cancel.json"]["tool_config"]["api_schema"]["url"]
        == "https://appt.example.org/elevenlabs/tools/cancel"
    )
    assert schema_export.drift(SCHEMAS, await schema_export.current_files()) == []
