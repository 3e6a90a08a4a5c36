"""Issue 13, items 7 and 8: bounded resources and the request log, over real loopback HTTP (uvicorn
in-process): security headers on every response, Retell signatures accepted once, slow and departing
clients, a cap on open MCP sessions per key with an idle timeout, and one log line per request that
never carries a body, a key, an e-mail or a phone number."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from dashboard_support import served
from helpers import Raw, booking_args, next_weekday

# A protocol version with sessions (2026-07-28, the newest, has none: every request stands alone).
SESSION_PROTOCOL = "2025-06-18"
KEY = "k_live_0123456789abcdefghijKEY1"
RETELL_KEY = "key_retell_0123456789abcdef"


def _keyed(**extra: Any) -> HttpSettings:
    return HttpSettings(credentials=Credentials((SecretStr(KEY),), None, SecretStr(RETELL_KEY)), **extra)


@pytest.mark.parametrize("path", ["/static/app.css", "/static/app.js", "/healthz", "/openapi.json", "/nowhere"])
async def test_every_response_carries_the_security_headers_static_files_included(path, service):
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "referrer-policy" in response.headers


async def test_the_dashboards_own_policy_is_kept(service):
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        page = await client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def _retell_signed(body: bytes) -> str:
    stamp = str(int(time.time() * 1000))
    return f"v={stamp},d={hmac.new(RETELL_KEY.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()}"


async def test_a_retell_signature_is_accepted_once_and_its_replay_refused(service, sandbox):
    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    body = json.dumps({"name": "book_appointment", "call": {}, "args": booking_args(start)}).encode()
    headers = {"Content-Type": "application/json", "X-Retell-Signature": _retell_signed(body)}
    async with served(service, _keyed()) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        first = await client.post("/retell/functions", content=body, headers=headers)
        replayed = await client.post("/retell/functions", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["appointment"]["status"] == "active"
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "unauthorized"
    assert len(sandbox.state.bookings) == 1


async def _raw_request(base: str, head: bytes, body_part: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(head + body_part)
    await writer.drain()
    return reader, writer


def _head(base: str, length: int) -> bytes:
    host = urlsplit(base).netloc
    return (
        f"POST /tools/find_slots HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


async def test_a_client_that_stops_sending_its_body_gets_a_408_and_one_log_line(service, caplog):
    caplog.set_level(logging.INFO)
    async with served(service, HttpSettings(read_timeout=0.5)) as base:
        reader, writer = await _raw_request(base, _head(base, 100), b'{"date": ')
        async with asyncio.timeout(10):
            answer = await reader.read(4096)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request_timeout" in answer
    lines = [r for r in caplog.records if "too slowly" in r.getMessage()]
    assert len(lines) == 1
    _no_traceback(caplog)


async def test_a_client_that_hangs_up_mid_body_is_one_log_line_not_a_traceback(service, caplog):
    caplog.set_level(logging.INFO)
    async with served(service) as base:
        for _ in range(3):
            _reader, writer = await _raw_request(base, _head(base, 1000), b'{"date": "20')
            writer.close()
            await writer.wait_closed()
        async with asyncio.timeout(10):  # the server notices each departure
            while len([r for r in caplog.records if "disconnected" in r.getMessage()]) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert len([r for r in caplog.records if "disconnected" in r.getMessage()]) == 3
    _no_traceback(caplog)


def _initialize(key: str = KEY) -> dict[str, Any]:
    return {
        "json": {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": SESSION_PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "quota-test", "version": "1"},
            },
        },
        "headers": {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"},
    }


async def test_open_mcp_sessions_are_capped_per_key_until_one_closes_or_idles_out(service):
    settings = _keyed(mcp_sessions_per_key=2, mcp_session_idle_seconds=1.0)
    async with served(service, settings) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        opened = [await client.post("/mcp", **_initialize()) for _ in range(2)]
        assert all(r.status_code == 200 and r.headers.get("mcp-session-id") for r in opened)
        refused = await client.post("/mcp", **_initialize())
        assert refused.status_code == 429, refused.text
        assert "limit is 2" in refused.json()["error"]["message"] and refused.headers["retry-after"]
        closed = await client.delete(
            "/mcp",
            headers={
                "Authorization": f"Bearer {KEY}",
                "Mcp-Session-Id": opened[0].headers["mcp-session-id"],
                "Mcp-Protocol-Version": SESSION_PROTOCOL,
            },
        )
        assert closed.status_code < 300, (closed.text, closed.headers)
        again = await client.post("/mcp", **_initialize())
        assert again.status_code == 200
        assert (await client.post("/mcp", **_initialize())).status_code == 429
        async with asyncio.timeout(10):  # idle sessions end (after 1 s here) and free their places
            while (fresh := await client.post("/mcp", **_initialize())).status_code == 429:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert fresh.status_code == 200
        gone = await client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                **_initialize()["headers"],
                "Mcp-Session-Id": opened[1].headers["mcp-session-id"],
                "Mcp-Protocol-Version": SESSION_PROTOCOL,
            },
        )
        assert gone.status_code == 404  # the idle session was really ended by the SDK, not just uncounted


async def test_the_request_log_names_the_tool_and_appointment_of_each_mcp_call(service, caplog):
    """/mcp is one path for every tool: the server notes which tool ran, and on what, for its log line."""
    caplog.set_level(logging.INFO, logger="appt_tools.requests")
    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    async with (
        served(service, _keyed(request_log="json")) as base,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=20) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as mcp,
    ):
        booked = await mcp.call_tool("book_appointment", booking_args(start))
        appointment_id = (booked.structured_content or {})["appointment"]["id"]
        await mcp.call_tool("get_appointment", {"appointment_id": appointment_id})
        await mcp.call_tool("cancel", {"appointment_id": "apt_nosuchthing"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "appt_tools.requests"]
    calls = [(r["tool"], r["appointment_id"]) for r in records if r["tool"]]
    assert calls == [
        ("book_appointment", appointment_id),
        ("get_appointment", appointment_id),
        ("cancel", "apt_nosuchthing"),  # refused: still the tool and the id it was asked about
    ]
    assert all(r["surface"] == "mcp" and r["path"] == "/mcp" for r in records)


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_the_request_log_has_one_line_per_request_and_no_personal_data(fmt, service, caplog):
    caplog.set_level(logging.INFO, logger="appt_tools.requests")
    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    args = booking_args(start)
    async with (
        served(service, _keyed(request_log=fmt)) as base,
        httpx2.AsyncClient(base_url=base, timeout=20) as client,
    ):
        auth = {"Authorization": f"Bearer {KEY}"}
        booked = await client.post("/tools/book_appointment", json=args, headers=auth)
        await client.post("/tools/search_appointments", json={"query": args["attendee_email"]}, headers=auth)
        await client.get(f"/app/table?q={args['from_number']}")
        await client.get("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "appt_tools.requests"]
    assert len(lines) == 4, lines
    appointment_id = booked.json()["appointment"]["id"]
    everything = "\n".join(lines)
    for secret in (KEY, args["attendee_email"], args["from_number"], args["to_number"], args["attendee_name"]):
        assert str(secret) not in everything
    if fmt == "json":
        first = json.loads(lines[0])
        assert first["surface"] == "tools" and first["tool"] == "book_appointment" and first["status"] == 200
        assert first["appointment_id"] == appointment_id and first["duration_ms"] >= 0 and first["time"]
        assert json.loads(lines[2])["path"] == "/app/table" and json.loads(lines[3])["surface"] == "health"
    else:
        assert "tools POST /tools/book_appointment tool=book_appointment 200" in lines[0]
        assert f"appointment={appointment_id}" in lines[0]
        assert " /app/table " in lines[2]
