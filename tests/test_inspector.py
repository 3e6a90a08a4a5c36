"""A real MCP client we did not write: the official MCP Inspector CLI (from npm), over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import free_port, next_weekday, wait_for_port

pytestmark = pytest.mark.e2e
# 2.x declares node >= 22.19 but its CLI runs on node 20 (checked). 0.15, the last release without that
# declaration, sends every --tool-arg as a string, so integer and boolean arguments fail; 2.x parses them.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
API_KEY = "inspector-test-key-0123456789abcdef"


@contextmanager
def _http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    env["APPT_TOOLS_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'inspector.db'}"
    env["APPT_TOOLS_HTTP_API_KEYS"] = API_KEY
    command = [sys.executable, "-m", "appt_tools", "serve", "--sandbox", "--transport", "http", "--port", str(port)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as server:
        try:
            asyncio.run(wait_for_port(port, server))
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.terminate()
            server.wait(timeout=10)


def _inspector(url: str, *args: str) -> dict[str, object]:
    npx = shutil.which("npx")
    assert npx, "node's npx is needed for the MCP Inspector test (.ci/run installs nothing else for it)"
    done = subprocess.run(
        [npx, "-y", INSPECTOR, "--cli", url, "--header", f"Authorization: Bearer {API_KEY}", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_mcp_inspector_lists_and_calls_our_tools_over_streamable_http(tmp_path):
    with _http_server(tmp_path) as url:
        listed = _inspector(url, "--method", "tools/list")
        tools = {t["name"]: t for t in listed["tools"]}  # type: ignore[union-attr,index]
        assert len(tools) == 10
        assert tools["book_appointment"]["inputSchema"]["additionalProperties"] is False
        # An integer and a boolean argument: strict arguments refuse "1002" and "true" sent as strings.
        called = _inspector(
            url,
            *("--method", "tools/call", "--tool-name", "find_slots"),
            *("--tool-arg", f"date={next_weekday()}", "event_type_id=1002"),
        )
        assert called.get("isError") is not True, called
        content = called["structuredContent"]
        assert content["slots"] and content["say"].startswith("I have")  # type: ignore[index]
        assert (content["event_type_id"], content["duration_minutes"]) == (1002, 15)  # type: ignore[index]
        refreshed = _inspector(
            url, "--method", "tools/call", "--tool-name", "list_event_types", "--tool-arg", "refresh=true"
        )
        assert refreshed.get("isError") is not True, refreshed
        assert {t["id"] for t in refreshed["structuredContent"]["event_types"]} >= {1001, 1002}  # type: ignore[index]
