"""What the caller hears: the documented conversation over a real MCP session on stdio against
`appt-tools serve --sandbox`, with Cal.com's latency injected, cold (a fresh server) and warm.

The sandbox runs inside the server (as in sandbox mode); the bench reaches it only over its HTTP control
endpoints: `POST /_sandbox/faults` arms a latency fault on every Cal.com endpoint (`--calcom-latency`,
250 ms by default), and since every fault that fires is logged, `GET /_sandbox/faults` counts the Cal.com
round trips each call made. The floor of a call is its round trips × the latency + the p50 of a trivial
tool (`bench/trivial_server.py`, its own stdio session, timed before every call of the same run): what a
caller would wait if everything we do cost nothing. Targets (issue 15): each call ≤ 1.1× its floor, the
whole conversation ≤ 1.05×; printed with met/missed, never asserted by tests.

Also here: the size of the tool list an LLM pays for on every turn (characters of each tool's name,
description and input schema as compact JSON), and the cost of one durable SQLite commit on this machine
(WAL, synchronous=FULL: the fsync a booking's writes pay), to read the write figures against.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from appt_tools.core import warm
from bench.coldstart import _appt_tools
from bench.common import PYTHON, ROOT, Row, child_env, p50, ratio, say
from tests.helpers import next_weekday

CALL_TARGET = 1.1  # each call's wait within 1.1× its floor
CONVERSATION_TARGET = 1.05  # the whole conversation within 1.05× the sum of the floors
TOOL_LIST_TARGET = 8000  # characters the five core tools cost an LLM on every turn
CORE_TOOLS = ("find_slots", "book_appointment", "search_appointments", "reschedule", "cancel")
DEFAULT_LATENCY_MS = 250.0
_BANNER = re.compile(r"local Cal\.com sandbox at (http://\S+?) and")


@dataclass
class Call:
    tool: str
    wait_ms: float
    round_trips: int
    paths: list[str]
    calcom_ms: float = 0.0  # Cal.com's own time for those requests, as the sandbox timed them


@dataclass
class Run:
    """One conversation: its calls in order."""

    calls: list[Call] = field(default_factory=list)
    background: int = 0  # Cal.com requests the server made between calls (refreshing its warm slots)


class Sandbox:
    """The sandbox inside `serve --sandbox`, through its control endpoints."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx2.AsyncClient(base_url=base_url, timeout=10.0)
        self.latency_s = 0.0

    async def arm_latency(self, ms: float) -> None:
        self.latency_s = ms / 1000
        fault = {"kind": "latency", "endpoint": "*", "times": None, "seconds": ms / 1000}
        answer = await self.http.post("/_sandbox/faults", json=fault)
        answer.raise_for_status()

    async def requests(self) -> list[str]:
        """Every Cal.com request the latency fault delayed so far (that is, every request since it was armed)."""
        answer = await self.http.get("/_sandbox/faults")
        answer.raise_for_status()
        return [f"{e['method']} {e['path']}" for e in answer.json()["data"]["log"] if e["kind"] == "latency"]

    async def served_ms(self) -> list[float]:
        """How long the sandbox took over each API request so far (the injected latency and its own work)."""
        answer = await self.http.get("/_sandbox/served")
        answer.raise_for_status()
        return [float(r["ms"]) for r in answer.json()["data"]]


class Trivial:
    """The trivial tool on its own stdio session: the SDK's floor for one call on this transport."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ms: list[float] = []

    async def ping(self) -> None:
        started = time.perf_counter()
        await self.client.call_tool("ping", {})
        self.ms.append((time.perf_counter() - started) * 1000)


def _booking(start: str, n: int) -> dict[str, Any]:
    return {
        "start": start,
        "attendee_name": f"Conversation Caller {n}",
        "attendee_email": f"conversation.caller{n}@example.com",
        "to_number": "+14155550100",
        "from_number": f"+1415555{n % 10000:04d}",
        "call_type": "inbound",
    }


async def _conversation(client: Client, sandbox: Sandbox, trivial: Trivial, n: int, tools: set[str]) -> Run:
    """find_slots → (hold_slot, where the server has it) → book → search → reschedule → cancel."""
    run = Run()
    seen = len(await sandbox.requests())

    async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        nonlocal seen
        # As between an LLM's turns: the warm slots' refresh after the last change (core/warm.py) is done,
        # and its requests are the server's own, not this call's.
        quiet = await _settled(sandbox, poll=max(0.3, 2 * sandbox.latency_s) + warm.SETTLE)
        run.background += len(quiet) - seen
        seen = len(quiet)
        await trivial.ping()
        served = len(await sandbox.served_ms())
        started = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        wait = (time.perf_counter() - started) * 1000
        if result.is_error:
            raise RuntimeError(f"{tool}({arguments}) failed: {result.content}")
        made = await sandbox.requests()
        calcom_ms = sum((await sandbox.served_ms())[served:])
        run.calls.append(Call(tool, wait, len(made) - seen, made[seen:], calcom_ms))
        seen = len(made)
        return dict(result.structured_content or {})

    day = next_weekday(3).isoformat()
    found = await call("find_slots", {"date": day})
    starts = [str(s["start"]) for s in found["slots"]]
    start = starts[n % len(starts)]
    booking = _booking(start, n)
    if "hold_slot" in tools:  # the held time is booked by its hold_id: to anyone else it is taken
        held = await call("hold_slot", {"start": start})
        booking["hold_id"] = held["hold_id"]
    booked = await call("book_appointment", booking)
    appointment_id = booked["appointment"]["id"]
    await call("search_appointments", {"query": f"conversation.caller{n}@"})
    await call("reschedule", {"appointment_id": appointment_id, "new_start": starts[(n + 1) % len(starts)]})
    await call("cancel", {"appointment_id": appointment_id})
    return run


async def _banner(errlog: IO[str], seconds: float = 60.0) -> str:
    """The sandbox's base URL, from the line `serve --sandbox` prints once its service is open."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        errlog.seek(0)
        found = _BANNER.search(errlog.read())
        if found:
            return found.group(1)
        await asyncio.sleep(0.02)
    errlog.seek(0)
    raise RuntimeError(f"serve --sandbox did not say where its sandbox is: {errlog.read()[-2000:]}")


@asynccontextmanager
async def _server(tmp: Path) -> AsyncIterator[tuple[Client, Sandbox, IO[str]]]:
    """A fresh `appt-tools serve --sandbox` over stdio (fresh temporary database, fresh sandbox)."""
    params = StdioServerParameters(
        command=_appt_tools()[0],
        args=[*_appt_tools()[1:], "serve", "--sandbox"],
        env=child_env(APPT_TOOLS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'conversation.db'}"),
        cwd=str(ROOT),
    )
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            sandbox = Sandbox(await _banner(errlog))
            try:
                yield client, sandbox, errlog
            finally:
                await sandbox.http.aclose()


async def _settled(sandbox: Sandbox, seconds: float = 30.0, poll: float = 0.5) -> list[str]:
    """Wait until the server's own Cal.com reads (at start, or refreshing its warm slots) are done: no new
    Cal.com request for `poll` seconds."""
    deadline = time.monotonic() + seconds
    before = await sandbox.requests()
    while time.monotonic() < deadline:
        await asyncio.sleep(poll)
        now = await sandbox.requests()
        if now == before:
            return now
        before = now
    return before


def tool_list_size(tools: Sequence[Any]) -> dict[str, int]:
    """Characters an LLM reads for each tool on every turn: name + description + input schema (compact JSON)."""
    return {
        t.name: len(t.name) + len(t.description or "") + len(json.dumps(t.input_schema, separators=(",", ":")))
        for t in tools
    }


def client_schema_check_ms(tools: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
    """ms the mcp Python SDK's client spends checking a tool's output schema on that tool's first call in a
    session (`ClientSession._output_schema_validator`: jsonschema's `check_schema`, then cached): part of
    every cold call's wait that no server change removes, timed here in the same run."""
    from jsonschema.validators import validator_for

    times: dict[str, float] = {}
    for tool in tools:
        if tool.name in names and tool.output_schema:
            started = time.perf_counter()
            validator_for(tool.output_schema).check_schema(tool.output_schema)
            times[tool.name] = (time.perf_counter() - started) * 1000
    return times


def durable_commit_ms(commits: int) -> list[float]:
    """ms per commit of one small row to a SQLite file in WAL mode with synchronous=FULL (fsync each)."""
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="appt-bench-commit-") as tmp:
        db = sqlite3.connect(Path(tmp) / "commit.db", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            for i in range(commits + 5):
                started = time.perf_counter()
                db.execute("BEGIN")
                db.execute("INSERT INTO t (body) VALUES (?)", (f"row {i}" * 20,))
                db.execute("COMMIT")
                if i >= 5:  # the first few create the WAL file
                    times.append((time.perf_counter() - started) * 1000)
        finally:
            db.close()
    return times


async def run(latency_ms: float, warm_rounds: int, commits: int) -> tuple[list[Row], dict[str, Any]]:
    say(f"conversation: serve --sandbox over stdio, Cal.com latency {latency_ms:g} ms, 1 cold + {warm_rounds} warm")
    trivial_params = StdioServerParameters(
        command=PYTHON, args=[str(ROOT / "bench" / "trivial_server.py")], env=child_env(), cwd=str(ROOT)
    )
    with tempfile.TemporaryDirectory(prefix="appt-bench-conversation-") as tmp:
        async with Client(trivial_params) as trivial_client, _server(Path(tmp)) as (client, sandbox, _):
            trivial = Trivial(trivial_client)
            for _ in range(3):  # unmeasured: the trivial server's first calls
                await trivial.ping()
            trivial.ms.clear()
            await sandbox.arm_latency(latency_ms)
            listed = (await client.list_tools()).tools
            names = {t.name for t in listed}
            # As after an LLM's first turn: the server has had time to finish what it does at start.
            start_up = await _settled(sandbox)
            cold = await _conversation(client, sandbox, trivial, 0, names)
            warm = [await _conversation(client, sandbox, trivial, n, names) for n in range(1, warm_rounds + 1)]
    floor_ms = p50(trivial.ms)
    sizes = tool_list_size(listed)
    checks = client_schema_check_ms(listed, [c.tool for c in cold.calls])
    check_row = Row(
        "conversation: reference figures",
        "MCP client's first-call schema check, cold calls",
        sum(checks.values()),
        "ms",
        target="info",
        note="the mcp Python SDK checks each tool's output schema on its first call in a session: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in checks.items())
        + "; in the cold calls' waits, not in the warm ones'",
    )
    commit_times = durable_commit_ms(commits)
    commit_p95 = statistics.quantiles(commit_times, n=20)[-1] if len(commit_times) > 1 else math.nan
    commit_row = Row(
        "conversation: reference figures",
        "durable SQLite commit p50 (WAL, synchronous=FULL)",
        p50(commit_times),
        "ms",
        target="info",
        note="one fsync'd commit of a small row on this machine; a booking makes two",
        shown=f"{p50(commit_times):.2f} ms (p95 {commit_p95:.2f})",
    )
    rows = _rows(cold, warm, floor_ms, latency_ms)
    rows[1:1] = [commit_row, check_row]
    rows.extend(_size_rows(sizes))
    details = {
        "calcom_latency_ms": latency_ms,
        "trivial_ms": trivial.ms,
        "start_up_requests": start_up,
        "cold": [vars(c) for c in cold.calls],
        "warm": [[vars(c) for c in w.calls] for w in warm],
        "background_requests": [cold.background, *(w.background for w in warm)],
        "tool_list_chars": sizes,
        "durable_commit_ms": commit_times,
        "client_schema_check_ms": checks,
    }
    return rows, details


def _rows(cold: Run, warm: list[Run], floor_ms: float, latency_ms: float) -> list[Row]:
    rows = [
        Row(
            "conversation: reference figures",
            "trivial tool p50 (stdio, same run)",
            floor_ms,
            "ms",
            note=f"Cal.com latency injected: {latency_ms:g} ms a request; floor = round trips × latency + this",
        )
    ]

    def judge(section: str, runs: list[Run]) -> None:
        total_wait = total_floor = total_calcom = 0.0
        for i, first in enumerate(runs[0].calls):
            waits = [r.calls[i].wait_ms for r in runs]
            trips = [r.calls[i].round_trips for r in runs]
            wait = statistics.median(waits)
            trip = statistics.median(trips)
            floor = trip * latency_ms + floor_ms
            calcom = statistics.median(r.calls[i].calcom_ms for r in runs)
            total_wait += wait
            total_floor += floor
            total_calcom += calcom
            share = ratio(wait, floor)
            shown_trips = f"{min(trips)}" if min(trips) == max(trips) else f"{min(trips)}–{max(trips)}"
            rows.append(
                Row(
                    section,
                    f"{first.tool} ({shown_trips} Cal.com round trip{'s' if max(trips) != 1 else ''})",
                    wait,
                    "ms",
                    reference=floor,
                    reference_label="floor",
                    ratio=share,
                    target=f"≤{CALL_TARGET:g}× floor",
                    met=share is not None and share <= CALL_TARGET,
                    shown=_split(wait, calcom, floor_ms),
                    extra={
                        "waits_ms": waits,
                        "round_trips": trips,
                        "calcom_ms": [run.calls[i].calcom_ms for run in runs],
                        "paths": [run.calls[i].paths for run in runs],
                    },
                )
            )
        share = ratio(total_wait, total_floor)
        rows.append(
            Row(
                section,
                "whole conversation",
                total_wait,
                "ms",
                shown=_split(total_wait, total_calcom, floor_ms * len(runs[0].calls)),
                reference=total_floor,
                reference_label="floor",
                ratio=share,
                target=f"≤{CONVERSATION_TARGET:g}× floor",
                met=share is not None and share <= CONVERSATION_TARGET,
            )
        )

    judge("conversation: cold (a fresh serve --sandbox)", [cold])
    if warm:
        judge(f"conversation: warm (median of {len(warm)})", warm)
    finds = [c for r in (cold, *warm) for c in r.calls if c.tool == "find_slots"]
    if finds:
        most = max(c.round_trips for c in finds)
        wait = statistics.median(c.wait_ms for c in finds)
        rows.append(
            Row(
                "conversation: warm slots",
                "find_slots from the warm slots: Cal.com requests",
                most,
                "req",
                target="0",
                met=most == 0,
                shown=f"{most} (wait p50 {wait:.2f} ms, trivial tool {floor_ms:.2f} ms)",
                note="the next 14 days of the default event type are kept in memory (core/warm.py); "
                f"refreshes between calls: {cold.background + sum(w.background for w in warm)} requests",
                extra={"wait_p50_ms": wait, "round_trips": [c.round_trips for c in finds]},
            )
        )
    return rows


def _split(wait: float, calcom: float, trivial: float) -> str:
    """The wait, Cal.com's own part of it (as the sandbox timed its requests: the injected latency plus the
    sandbox's work, which real Cal.com's latency includes) and ours (the rest, less the trivial tool's)."""
    return f"{wait:.1f} ms (Cal.com {calcom:.1f}, ours {wait - calcom - trivial:.1f})"


def _size_rows(sizes: dict[str, int]) -> list[Row]:
    core = sum(sizes.get(name, 0) for name in CORE_TOOLS)
    every = sum(sizes.values())
    missing = [name for name in CORE_TOOLS if name not in sizes]
    biggest = ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
    return [
        Row(
            "conversation: tool list an LLM reads every turn",
            "five core tools (characters)",
            core,
            "chars",
            target=f"<{TOOL_LIST_TARGET:,}",
            met=core < TOOL_LIST_TARGET and not missing,
            shown=f"{core:,}",
            note="name + description + input schema as compact JSON, per tool: "
            + ", ".join(f"{n} {sizes.get(n, 0):,}" for n in CORE_TOOLS)
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        ),
        Row(
            "conversation: tool list an LLM reads every turn",
            f"all {len(sizes)} tools (characters)",
            every,
            "chars",
            target="info",
            shown=f"{every:,}",
            note=f"largest: {biggest}",
        ),
    ]
