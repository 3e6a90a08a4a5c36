"""`appt-tools demo`: the whole flow through a real MCP client session on the Cal.com sandbox.

The sandbox runs in this process; the MCP server runs as a separate `appt-tools serve` process
over stdio, configured only through its environment, exactly as Claude Desktop would start it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from calcom_sandbox import run_sandbox


def _line(text: str = "") -> None:
    print(text, flush=True)


async def _call(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _line(f"\n→ {name}({json.dumps(arguments, ensure_ascii=False)})")
    result = await client.call_tool(name, arguments)
    if result.is_error:
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        raise RuntimeError(f"{name} failed: {text}")
    data = result.structured_content or {}
    _line(f"  assistant says: “{data.get('say', '')}”")
    return data


async def run_demo() -> int:
    async with run_sandbox() as sandbox:
        tz = sandbox.state.host.time_zone
        with tempfile.TemporaryDirectory(prefix="appt-tools-demo-") as tmp:
            env = {
                "APPT_TOOLS_CALCOM_API_KEY": sandbox.api_key,
                "APPT_TOOLS_CALCOM_BASE_URL": sandbox.base_url,
                "APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}",
                "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
                "APPT_TOOLS_TIMEZONE": tz,
                "APPT_TOOLS_BUSINESS_NAME": "Acme Dental",
            }
            _line(f"Cal.com sandbox at {sandbox.base_url} (host time zone {tz}); no real Cal.com account is used.")
            params = StdioServerParameters(command=sys.executable, args=["-m", "appt_tools", "serve"], env=env)
            async with Client(params) as client:
                tools = await client.list_tools()
                _line(f"MCP server over stdio lists {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}")
                await _flow(client, tz)
        await _show_sandbox(sandbox.base_url, sandbox.api_key)
    return 0


async def _flow(client: Client, tz: str) -> None:
    tomorrow = (datetime.now(ZoneInfo(tz)) + timedelta(days=1)).date()
    found = await _call(client, "find_slots", {"date": tomorrow.isoformat()})
    first = found["slots"][0]
    booked = await _call(
        client,
        "book_appointment",
        {
            "start": first["start"],
            "attendee_name": "Ana Ruiz",
            "attendee_email": "ana.ruiz@example.com",
            "to_number": "+14155550100",
            "from_number": "+14155550123",
            "call_type": "inbound",
            "title": "Teeth cleaning",
            "label": "new-client",
            "description": "First visit; prefers mornings.",
        },
    )
    appointment = booked["appointment"]
    _line(f"  stored: id {appointment['id']}, Cal.com uid {appointment['booking_uid']}, status {appointment['status']}")
    _line(f"  meeting link: {appointment['meeting_url']}")

    await _call(client, "search_appointments", {"query": "ruiz"})

    later = await _call(client, "find_slots", {"date": (tomorrow + timedelta(days=1)).isoformat()})
    moved = await _call(
        client,
        "reschedule",
        {
            "appointment_id": appointment["id"],
            "new_start": later["slots"][1]["start"],
            "reason": "Caller asked for later",
        },
    )
    m = moved["appointment"]
    _line(
        f"  same id {m['id']}, new uid {m['booking_uid']} (was {', '.join(m['previous_booking_uids'])}), status {m['status']}"
    )

    cancelled = await _call(
        client, "cancel", {"appointment_id": appointment["id"], "reason": "Caller found another clinic"}
    )
    _line(f"  status {cancelled['appointment']['status']}")
    await _call(client, "search_appointments", {"query": "ruiz", "status": ["cancelled"]})


async def _show_sandbox(base_url: str, api_key: str) -> None:
    async with httpx2.AsyncClient(base_url=base_url) as http:
        outbox = (await http.get("/_sandbox/outbox")).json()
        bookings = (
            await http.get(
                "/v2/bookings",
                headers={"Authorization": f"Bearer {api_key}", "cal-api-version": "2024-08-13"},
            )
        ).json()
    mails = outbox.get("data", outbox) if isinstance(outbox, dict) else outbox
    _line(f"\nE-mails the sandbox Cal.com sent ({len(mails)}):")
    for mail in mails:
        _line(f"  - {mail.get('kind', '?'):<14} to {mail.get('to')}: {mail.get('subject')}")
    _line(
        f"Bookings in the sandbox Cal.com: {len(bookings['data'])} ({', '.join(b['status'] for b in bookings['data'])})"
    )
