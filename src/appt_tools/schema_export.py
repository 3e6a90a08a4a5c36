"""`tool_schemas/`: one JSON file per tool, written from the running server's own tool list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appt_tools.mcp_server import build_server
from appt_tools.runtime import open_service

MEMORY_DB = "sqlite+aiosqlite:///:memory:"


async def current_schemas() -> dict[str, dict[str, Any]]:
    """Each tool as the server lists it: name, title, description, inputSchema, outputSchema, annotations."""
    async with open_service(database_url=MEMORY_DB, environ={}) as service:
        tools = await build_server(service).list_tools()
    return {
        tool.name: tool.model_dump(
            by_alias=True,
            exclude_none=True,
            mode="json",
            include={"name", "title", "description", "input_schema", "output_schema", "annotations"},
        )
        for tool in tools
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write(directory: Path, schemas: dict[str, dict[str, Any]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stale in directory.glob("*.json"):
        if stale.stem not in schemas:
            stale.unlink()
    for name, schema in schemas.items():
        path = directory / f"{name}.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def drift(directory: Path, schemas: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between the files and the live tool list (empty when in step)."""
    problems = []
    on_disk = {p.stem: p for p in directory.glob("*.json")}
    for name, schema in schemas.items():
        path = on_disk.pop(name, None)
        if path is None:
            problems.append(f"{name}: no file {directory / (name + '.json')}")
        elif path.read_text(encoding="utf-8") != render(schema):
            problems.append(f"{name}: {path} differs from the live tool")
    problems.extend(f"{name}: {path} has no live tool" for name, path in on_disk.items())
    return problems
