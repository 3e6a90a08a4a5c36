"""The sandbox as a tool-testing harness drives it: `appt-tools sandbox --clock … --rate-limit …`, then
POST /_sandbox/clock and /_sandbox/reset, over real HTTP to a real process; and `serve --sandbox` on
the same clock."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx2

from appt_tools.runtime import open_sandbox_service
from helpers import free_port, wait_for_port

START = "2030-01-07T08:55:00-05:00"  # a Monday, five minutes before the host's day begins
SLOTS = {"cal-api-version": "2024-09-04"}
BOOKINGS = {"cal-api-version": "2024-08-13"}


@contextmanager
def _sandbox(*options: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    command = [sys.executable, "-m", "appt_tools", "sandbox", "--port", str(port), *options]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        try:
            asyncio.run(wait_for_port(port, process, seconds=20))
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _data(response: httpx2.Response) -> dict[str, object]:
    assert response.is_success, response.text
    data: dict[str, object] = response.json()["data"]
    return data


def test_a_harness_starts_the_clock_books_travels_in_time_and_resets(tmp_path: Path) -> None:
    with _sandbox("--clock", START, "--rate-limit", "500") as base, httpx2.Client(base_url=base, timeout=5) as http:
        key = str(_data(http.get("/_sandbox/info"))["apiKey"])
        auth = {"Authorization": f"Bearer {key}"}
        now = datetime.fromisoformat(str(_data(http.get("/_sandbox/clock"))["now"]))
        slots = _data(
            http.get(
                "/v2/slots",
                params={
                    "eventTypeId": "1001",
                    "start": "2030-01-07",
                    "end": "2030-01-07",
                    "timeZone": "America/New_York",
                },
                headers={**SLOTS, **auth},
            )
        )
        first = slots["2030-01-07"][0]["start"]  # type: ignore[index]
        attendee = {"name": "Ana Ruiz", "phoneNumber": "+14155550123", "timeZone": "America/New_York"}
        booked = http.post(
            "/v2/bookings",
            json={"start": first, "eventTypeId": 1001, "attendee": attendee},
            headers={**BOOKINGS, **auth},
        )
        moved = _data(http.post("/_sandbox/clock", json={"advance_minutes": 24 * 60}))
        refused = http.post("/_sandbox/clock", json={"advance_minutes": "soon"})
        reset = _data(http.post("/_sandbox/reset"))
        listed = _data(http.get("/_sandbox/outbox"))
        after = datetime.fromisoformat(str(_data(http.get("/_sandbox/clock"))["now"]))
        limited = http.get("/v2/me", headers=auth)

    assert abs(now - datetime.fromisoformat(START)) < timedelta(minutes=1)
    assert first == "2030-01-07T10:00:00.000-05:00"  # 9 AM is inside the hour's minimum notice
    assert booked.status_code == 201, booked.text
    assert datetime.fromisoformat(str(moved["now"])) - now >= timedelta(hours=24)
    assert refused.status_code == 400 and "advance_minutes" in refused.json()["error"]["message"]
    assert reset["apiKey"] == key and listed == []
    assert abs(after - datetime.fromisoformat(START)) < timedelta(minutes=1)
    assert limited.headers["X-RateLimit-Limit-Default"] == "500"


def test_clock_and_rate_limit_options_are_checked_and_need_sandbox_for_serve(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    env["APPT_TOOLS_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appt_tools", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    naive = run("sandbox", "--clock", "2030-01-07T09:00")
    zero = run("sandbox", "--rate-limit", "0")
    serve = run("serve", "--clock", START)

    assert naive.returncode == 2 and "UTC offset" in naive.stderr
    assert zero.returncode == 2 and "--rate-limit" in zero.stderr
    assert serve.returncode == 2 and "--sandbox" in serve.stderr


async def test_serve_sandbox_runs_the_service_on_the_sandboxs_clock() -> None:
    start = datetime.fromisoformat(START)
    async with open_sandbox_service(clock=start, rate_limit=7) as (service, sandbox):
        before = service.now()
        sandbox.state.now.advance(90)  # type: ignore[attr-defined]
        after = service.now()

    assert abs(before - start) < timedelta(minutes=1)
    assert after - before >= timedelta(minutes=90)
    assert sandbox.state.rate_limiter.limit == 7
