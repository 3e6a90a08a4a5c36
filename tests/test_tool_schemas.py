"""tool_schemas/: generated from the live server, valid JSON Schema 2020-12, and accepted by every platform."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp.server.mcpserver import MCPServer

from appt_tools.runtime import open_service
from appt_tools.surfaces import schema_export
from appt_tools.surfaces.mcp_server import build_server

SCHEMAS = Path(__file__).resolve().parent.parent / "tool_schemas"
TOOL_NAMES = sorted(p.stem for p in SCHEMAS.glob("*.json"))
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Keywords OpenAI strict mode rejects (composition, conditionals) or ignores, and the ones
# Anthropic strict tool use does not support (numeric and length bounds): none may appear.
FORBIDDEN = {
    "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties",
    "unevaluatedProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "minItems", "maxItems", "pattern", "default", "examples", "title",
}  # fmt: skip


def _load(relative: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))


def _nodes(schema: Any) -> list[dict[str, Any]]:
    """Every subschema, however deep."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        found.append(schema)
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found.extend(_nodes(sub))
            elif key in ("items", "anyOf", "oneOf", "additionalProperties"):
                found.extend(_nodes(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(_nodes(item))
    return found


def strict_problems(schema: dict[str, Any]) -> list[str]:
    """Where a schema breaks the strict function-calling rules shared by OpenAI and Anthropic."""
    problems = []
    if schema.get("type") != "object":
        problems.append("root is not an object")
    for node in _nodes(schema):
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                problems.append(f"object {sorted(node['properties'])} lacks additionalProperties: false")
            if sorted(node.get("required", ())) != sorted(node["properties"]):
                problems.append(f"object {sorted(node['properties'])} does not require every property")
        for keyword in FORBIDDEN & node.keys():
            if keyword == "title" and "properties" in node.get("$defs", {}):
                continue
            problems.append(f"uses {keyword!r}")
        if len(node.get("description", "")) >= 1024:
            problems.append("a description is 1024 characters or longer")
    return problems


async def _raw_input_schemas() -> dict[str, dict[str, Any]]:
    """The SDK's own (lax) schemas, to learn which arguments are optional."""
    async with open_service(database_url=schema_export.MEMORY_DB, environ={}) as service:
        tools = await MCPServer.list_tools(build_server(service))
    return {t.name: t.input_schema for t in tools}


async def test_tool_schema_files_match_the_live_tool_list():
    problems = schema_export.drift(SCHEMAS, await schema_export.current_files())
    assert not problems, "run `appt-tools schemas export`:\n" + "\n".join(problems)


async def test_drift_is_detected(tmp_path):
    files = await schema_export.current_files()
    schema_export.write(tmp_path, files)
    assert schema_export.drift(tmp_path, files) == []
    (tmp_path / "openai" / "cancel.json").write_text("{}\n")
    (tmp_path / "anthropic" / "extra.json").write_text("{}\n")
    (tmp_path / "find_slots.json").unlink()
    problems = schema_export.drift(tmp_path, files)
    assert sorted(p.split(":")[0] for p in problems) == [
        "anthropic/extra.json",
        "find_slots.json",
        "openai/cancel.json",
    ]


def test_every_tool_has_all_three_forms():
    assert len(TOOL_NAMES) == 10
    for name in TOOL_NAMES:
        assert (SCHEMAS / "openai" / f"{name}.json").exists()
        assert (SCHEMAS / "anthropic" / f"{name}.json").exists()


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_every_schema_is_valid_json_schema_2020_12(name):
    mcp = _load(f"{name}.json")
    schemas = [
        mcp["inputSchema"],
        mcp["outputSchema"],
        _load(f"openai/{name}.json")["function"]["parameters"],
        _load(f"anthropic/{name}.json")["input_schema"],
    ]
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_openai_form_follows_strict_mode_rules(name):
    tool = _load(f"openai/{name}.json")
    assert set(tool) == {"type", "function"} and tool["type"] == "function"
    function = tool["function"]
    assert set(function) == {"name", "description", "parameters", "strict"}
    assert function["strict"] is True
    assert NAME.match(function["name"])
    assert 0 < len(function["description"]) < 1024
    assert strict_problems(function["parameters"]) == []


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_anthropic_form_follows_its_rules(name):
    tool = _load(f"anthropic/{name}.json")
    assert set(tool) == {"name", "description", "input_schema"}
    assert NAME.match(tool["name"])
    assert 0 < len(tool["description"]) < 1024
    assert strict_problems(tool["input_schema"]) == []


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_mcp_form_is_compact_closed_and_honest_about_what_is_required(name):
    """The MCP tool list is what a model reads every turn: optional arguments are neither required nor
    wrapped as nullable, objects are closed, and the strict forms are derived from it."""
    tool = _load(f"{name}.json")
    assert set(tool) >= {"name", "title", "description", "inputSchema", "outputSchema", "annotations"}
    schema = tool["inputSchema"]
    assert schema["additionalProperties"] is False
    required = set(schema.get("required", ()))
    strict = _load(f"openai/{name}.json")["function"]["parameters"]
    assert set(strict["properties"]) == set(schema["properties"])
    for prop, definition in schema["properties"].items():
        assert {"type": "null"} not in definition.get("anyOf", []) and definition.get("type") != "null", prop
        assert ({"type": "null"} in strict["properties"][prop].get("anyOf", [])) == (prop not in required), prop
    assert not [n for n in _nodes(schema) if set(n) & {"title", "default", "minimum", "maximum", "maxLength"}]
    for node in _nodes(tool["outputSchema"]):
        if "properties" in node:
            assert node["additionalProperties"] is False
            assert sorted(node["required"]) == sorted(node["properties"])


async def test_optional_arguments_are_nullable_and_required_ones_are_not():
    raw = await _raw_input_schemas()
    for name in TOOL_NAMES:
        strict = _load(f"openai/{name}.json")["function"]["parameters"]["properties"]
        required = set(raw[name].get("required", ()))
        for prop, schema in strict.items():
            nullable = {"type": "null"} in schema.get("anyOf", [])
            assert nullable == (prop not in required), f"{name}.{prop}"


def test_the_strict_checker_catches_what_it_must():
    loose = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"type": "string"}}}
    problems = strict_problems(loose)
    assert any("additionalProperties" in p for p in problems)
    assert any("every property" in p for p in problems)
    assert any("minimum" in p for p in problems)


def test_the_five_core_tools_cost_a_model_under_8000_characters_a_turn():
    """What a model reads for each tool on every turn (name, description, compact input schema) stays
    small as arguments are added (issue 15; `python -m bench --only conversation` prints the same)."""
    core = ("find_slots", "book_appointment", "search_appointments", "reschedule", "cancel")
    size = 0
    for name in core:
        tool = _load(f"{name}.json")
        size += (
            len(tool["name"]) + len(tool["description"]) + len(json.dumps(tool["inputSchema"], separators=(",", ":")))
        )
    assert size < 8_000, f"{size} characters"


def test_an_output_schema_is_written_out_in_place_and_accepts_exactly_what_the_strict_one_does():
    from enum import Enum

    from pydantic import BaseModel

    from appt_tools.surfaces.schema_formats import output_schema, strict_schema

    class Colour(Enum):
        RED = "red"
        BLUE = "blue"

    class Part(BaseModel):
        name: str
        size: int | None = None
        colour: Colour

    class Whole(BaseModel):
        parts: list[Part]
        main: Part | None
        note: str | None = None
        tags: list[str] | None = None

    raw = Whole.model_json_schema()
    strict, lean = strict_schema(raw), output_schema(raw)
    assert "$defs" in strict and "$ref" not in json.dumps(lean) and "$defs" not in lean
    assert lean["properties"]["note"]["type"] == ["string", "null"]
    part = {"name": "a", "size": None, "colour": "red"}
    instances: list[Any] = [
        {"parts": [part], "main": part, "note": None, "tags": None},
        {"parts": [], "main": None, "note": "n", "tags": ["x"]},
        {"parts": [{**part, "colour": "green"}], "main": None, "note": None, "tags": None},
        {"parts": [{**part, "extra": 1}], "main": None, "note": None, "tags": None},
        {"parts": [], "main": None, "note": 3, "tags": None},
        {"parts": [], "main": {"name": "b"}, "note": None, "tags": None},
        {"parts": [], "main": None, "note": None},
        {"parts": [], "main": None, "note": None, "tags": [1]},
    ]
    Draft202012Validator.check_schema(lean)
    verdicts = [(Draft202012Validator(strict).is_valid(i), Draft202012Validator(lean).is_valid(i)) for i in instances]
    assert (
        [s for s, _ in verdicts]
        == [lean_ok for _, lean_ok in verdicts]
        == [True, True, False, False, False, False, False, False]
    )


def test_a_recursive_output_model_keeps_its_references():
    from pydantic import BaseModel

    from appt_tools.surfaces.schema_formats import output_schema, strict_schema

    class Node(BaseModel):
        name: str
        children: list[Node]

    raw = Node.model_json_schema()
    assert output_schema(raw) == strict_schema(raw)
