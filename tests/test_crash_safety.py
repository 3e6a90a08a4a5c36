"""SIGKILL the server at each step of a booking: after a restart and a reconcile, every appointment is
either booked once (with its Cal.com uid) or clearly not booked, and the database has no half-written rows."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from appt_tools.models import AppointmentStatus, SearchQuery
from appt_tools.store import Store
from calcom_sandbox import Fault
from helpers import booking_args, free_port, next_weekday, wait_for_port

pytestmark = pytest.mark.e2e

# Where the server is when it dies: the fault holds that request open until the kill.
STEPS = {
    "asking Cal.com to book": Fault("timeout", "POST /v2/bookings", seconds=30),
    "after Cal.com booked, before recording it": Fault("timeout", "POST /v2/bookings", phase="after", seconds=30),
    "after the booking was recorded": None,
}


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    command = [sys.executable, "-m", "appt_tools", "serve", "--transport", "http", "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(process.wait(), 10)


async def _book_and_die(env: dict[str, str], sandbox: Any, args: dict[str, Any], fault: Fault | None) -> None:
    process, base = await _start(env)
    try:
        fired = len(sandbox.state.fault_log)
        if fault is not None:
            sandbox.state.faults.add(fault)
        async with httpx2.AsyncClient(base_url=base, timeout=60) as http:
            call = asyncio.create_task(http.post("/tools/book_appointment", json=args))
            async with asyncio.timeout(20):
                while fault is not None and len(sandbox.state.fault_log) == fired:  # noqa: ASYNC110 - the sandbox's log
                    await asyncio.sleep(0.02)
            if fault is None:
                assert (await call).status_code == 200
            await _kill(process)  # mid-request where a fault holds it, else right after the answer
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
    finally:
        if process.returncode is None:
            await _kill(process)
        sandbox.state.faults.clear()


async def test_a_kill_at_any_step_leaves_each_booking_made_once_or_clearly_not_made(sandbox, tmp_path: Path):
    database = tmp_path / "crash.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    env |= {
        "APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "APPT_TOOLS_CALCOM_API_KEY": sandbox.api_key,
        "APPT_TOOLS_CALCOM_BASE_URL": sandbox.base_url,
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_TIMEZONE": "America/New_York",
        "APPT_TOOLS_RECONCILE_MINUTES": "0",
    }
    day = next_weekday().isoformat()
    process, base = await _start(env)
    async with httpx2.AsyncClient(base_url=base) as http:
        slots = (await http.post("/tools/find_slots", json={"date": day})).json()["slots"]
    await _kill(process)

    emails = {}
    for n, (step, fault) in enumerate(STEPS.items()):
        emails[step] = f"step{n}@example.com"
        args = booking_args(slots[n]["start"], attendee_email=emails[step], idempotency_key=f"crash-{n}")
        await _book_and_die(env, sandbox, args, fault)

    restarted, _ = await _start(env)  # the restart itself must cope with what the kills left
    await _kill(restarted)
    reconcile = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "appt_tools", "reconcile", "--grace-seconds", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    printed, _ = await asyncio.wait_for(reconcile.communicate(), 60)
    assert reconcile.returncode == 0, printed.decode()

    with sqlite3.connect(database) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with Store.from_url(f"sqlite+aiosqlite:///{database}") as store:
        everything = await store.search(SearchQuery(page_size=100), now=sandbox.state.now())
        for step, email in emails.items():
            mine = [a for a in everything.items if a.attendee_email == email]
            in_calcom = [
                b for b in sandbox.state.bookings.values() if b.attendee.email == email and b.status == "accepted"
            ]
            assert len(in_calcom) <= 1, step
            assert all(a.booking_uid is not None or a.status is AppointmentStatus.FAILED for a in mine), step
            live = [a for a in mine if a.status is AppointmentStatus.ACTIVE]
            if in_calcom:
                assert [a.booking_uid for a in live] == [in_calcom[0].uid], step
            else:
                assert live == [], step
        outcomes = {
            step: "booked"
            if any(a.attendee_email == email and a.booking_uid for a in everything.items)
            else "not booked"
            for step, email in emails.items()
        }
    assert outcomes == {
        "asking Cal.com to book": "not booked",
        "after Cal.com booked, before recording it": "booked",
        "after the booking was recorded": "booked",
    }
