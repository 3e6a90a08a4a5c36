"""`tool_schemas/`: every tool in every ecosystem's format, written from the running server's own tool list.

tool_schemas/<tool>.json            MCP: name, title, description, inputSchema, outputSchema, annotations
tool_schemas/openai/<tool>.json     OpenAI function calling, strict mode
tool_schemas/anthropic/<tool>.json  Anthropic Messages API tool
tool_schemas/openai-realtime/<tool>.json   OpenAI Realtime API session tool (flat)
tool_schemas/gemini/<tool>.json     Gemini function declaration (OpenAPI 3.0 subset)
tool_schemas/vapi/<tool>.json       Vapi function tool to import (server URL, secret header, filler line)
tool_schemas/retell/<tool>.json     Retell custom function (URL, filler line)
tool_schemas/elevenlabs/<tool>.json ElevenLabs webhook tool (URL, secret header, caller id and called number)

The platform files point at `base_url` (`--base-url`; the committed ones at a placeholder) and never ask
the model for what the platform supplies (the call's numbers and direction).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appt_tools.runtime import open_service
from appt_tools.surfaces.mcp_server import build_server
from appt_tools.surfaces.schema_formats import (
    PLACEHOLDER_URL,
    anthropic_tool,
    elevenlabs_tool,
    gemini_declaration,
    openai_realtime_tool,
    openai_tool,
    retell_tool,
    vapi_tool,
)

MEMORY_DB = "sqlite+aiosqlite:///:memory:"
FORMATS = ("", "openai", "anthropic", "openai-realtime", "gemini", "vapi", "retell", "elevenlabs")


async def current_files(base_url: str = PLACEHOLDER_URL) -> dict[str, dict[str, Any]]:
    """What tool_schemas/ should hold, keyed by path relative to it; the platform files call `base_url`."""
    base_url = base_url.rstrip("/")
    async with open_service(database_url=MEMORY_DB, environ={}) as service:
        tools = await build_server(service).list_tools()
    files: dict[str, dict[str, Any]] = {}
    for tool in tools:
        description = tool.description or ""
        files[f"{tool.name}.json"] = tool.model_dump(
            by_alias=True,
            exclude_none=True,
            mode="json",
            include={"name", "title", "description", "input_schema", "output_schema", "annotations"},
        )
        files[f"openai/{tool.name}.json"] = openai_tool(tool.name, description, tool.input_schema)
        files[f"anthropic/{tool.name}.json"] = anthropic_tool(tool.name, description, tool.input_schema)
        files[f"openai-realtime/{tool.name}.json"] = openai_realtime_tool(tool.name, description, tool.input_schema)
        files[f"gemini/{tool.name}.json"] = gemini_declaration(tool.name, description, tool.input_schema)
        files[f"vapi/{tool.name}.json"] = vapi_tool(tool.name, description, tool.input_schema, base_url)
        files[f"retell/{tool.name}.json"] = retell_tool(tool.name, description, tool.input_schema, base_url)
        files[f"elevenlabs/{tool.name}.json"] = elevenlabs_tool(tool.name, description, tool.input_schema, base_url)
    return files


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _on_disk(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sub in FORMATS:
        folder = directory / sub if sub else directory
        for path in folder.glob("*.json"):
            found[path.relative_to(directory).as_posix()] = path
    return found


def write(directory: Path, files: dict[str, dict[str, Any]]) -> list[Path]:
    stale = _on_disk(directory)
    written = []
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content), encoding="utf-8")
        stale.pop(relative, None)
        written.append(path)
    for path in stale.values():
        path.unlink()
    return written


def drift(directory: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between the files and the live tool list (empty when in step)."""
    on_disk = _on_disk(directory)
    problems = []
    for relative, content in files.items():
        path = on_disk.pop(relative, None)
        if path is None:
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != render(content):
            problems.append(f"{relative}: differs from the live tool")
    problems.extend(f"{relative}: no such live tool" for relative in on_disk)
    return problems
