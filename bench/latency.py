"""Floor, overhead per tool, Cal.com requests per tool and warm find_slots, over in-memory, stdio and
streamable HTTP.

Each transport gets its own server (the product's `build_server` on the sandbox, plus the bench tools) and
runs the same conversation several times: find_slots (cold) → find_slots again (warm) → book → search →
find_slots → reschedule → cancel. Before every measured call the trivial `bench_ping` is timed on the same
session: that is the floor, measured beside the figure it is compared with. After every measured call
`bench_calcom` says which Cal.com requests the call made and how long each took; overhead = latency minus
that time. A few extra rounds book and reschedule without a find_slots first, to count the cold path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult

from bench.common import (
    PYTHON,
    ROOT,
    Row,
    child_env,
    http_server_process,
    p50,
    p95,
    ratio,
    say,
    scratch_database,
    summary,
)
from bench.conversation import durable_commit_ms
from bench.harness import CalcomRecorder, bench_server, bench_service
from tests.helpers import free_port, next_weekday

TRANSPORTS = ("memory", "stdio", "http")
TOOLS = ("find_slots", "book_appointment", "reschedule", "cancel", "search_appointments")
# Median overhead at most this many times the floor (issue 15: a booking's two durable commits included).
OVERHEAD_TARGETS = {
    "find_slots": 2.0,
    "book_appointment": 7.0,
    "reschedule": 5.0,
    "cancel": 5.0,
    "search_appointments": 5.0,
}
WARM_TARGET = 1.5  # warm find_slots within 1.5× the floor
# Durable (fsync'd) commits a caller waits for in each call, to read its overhead against one commit's cost:
# a booking's intent and outcome; a change's lease (with its fresh read) and outcome. The lease's release
# and the slot-change notice are written after the answer.
COMMITS = {"book_appointment": 2, "reschedule": 2, "cancel": 2}

# (tool, path) -> (the fewest Cal.com requests the API allows, the target, what it is). None: no target.
REQUEST_TARGETS: dict[tuple[str, str], tuple[int, tuple[int, int] | None, str]] = {
    ("find_slots", "warm"): (0, (0, 0), "the same window again within a call: the slot cache answers"),
    ("find_slots", "cold"): (1, (1, 1), "GET /v2/slots (a 2nd, for the days after, only when the day is full)"),
    ("book_appointment", "warm"): (1, (1, 1), "POST /v2/bookings; find_slots saw the time free a moment ago"),
    ("book_appointment", "cold"): (
        1,
        (1, 1),
        "POST /v2/bookings alone: free times are looked up only when Cal.com refuses the time (core/slots.py)",
    ),
    ("reschedule", "warm"): (1, (1, 1), "POST /v2/bookings/{uid}/reschedule"),
    ("reschedule", "cold"): (1, (1, 1), "POST …/reschedule alone, as for a booking"),
    ("cancel", "any"): (1, (1, 1), "POST /v2/bookings/{uid}/cancel"),
    ("search_appointments", "any"): (0, (0, 0), "the local store only"),
}


@dataclass
class Measured:
    """Everything one transport's run recorded, in ms."""

    floor: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    validation: dict[str, list[float]] = field(default_factory=dict)
    calcom: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    paths: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)

    def overhead(self, key: str) -> list[float]:
        return [lat - cal for lat, cal in zip(self.latency.get(key, []), self.calcom.get(key, []), strict=True)]


class Caller:
    """Times tool calls on one session, each beside a trivial call, and reads back their Cal.com requests.

    The SDK's client re-validates every structured result against the tool's output schema (jsonschema,
    in the client process). That is the client's own cost, not the server's: it is timed separately and
    left out of the latency (kept in the JSON as `client_validation_ms`)."""

    def __init__(self, client: Client, measured: Measured) -> None:
        self.client = client
        self.measured = measured
        self.recording = True
        self._validating = 0.0
        session = client.session
        validate = session.validate_tool_result

        async def timed_validation(name: str, result: CallToolResult) -> None:
            started = time.perf_counter()
            try:
                await validate(name, result)
            finally:
                self._validating += time.perf_counter() - started

        session.validate_tool_result = timed_validation  # type: ignore[method-assign]

    async def _call(self, name: str, arguments: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
        """(latency without the client's validation, that validation, structured result), in ms."""
        self._validating = 0.0
        started = time.perf_counter()
        result = await self.client.call_tool(name, arguments)
        elapsed = (time.perf_counter() - started) * 1000
        if result.is_error:
            raise RuntimeError(f"{name}({arguments}) failed: {result.content}")
        validation = self._validating * 1000
        return elapsed - validation, validation, dict(result.structured_content or {})

    async def call(self, name: str, arguments: dict[str, Any], *, key: str, path: str) -> dict[str, Any]:
        floor, _, _ = await self._call("bench_ping", {})
        elapsed, validation, content = await self._call(name, arguments)
        _, _, calcom = await self._call("bench_calcom", {})
        calls = calcom.get("calls", [])
        if self.recording:
            m = self.measured
            m.floor.append(floor)
            m.latency.setdefault(key, []).append(elapsed)
            m.validation.setdefault(key, []).append(validation)
            m.calcom.setdefault(key, []).append(sum(float(c["ms"]) for c in calls))
            m.requests.setdefault((name, path), []).append(len(calls))
            m.paths.setdefault((name, path), Counter()).update(f"{c['method']} {c['path']}" for c in calls)
        return content


def _booking(start: str, n: int) -> dict[str, Any]:
    return {
        "start": start,
        "attendee_name": f"Bench Caller {n}",
        "attendee_email": f"bench.caller{n}@example.com",
        "to_number": "+14155550100",
        "from_number": f"+1415555{n % 10000:04d}",
        "call_type": "inbound",
        "title": "Bench consultation",
        "label": "bench",
    }


def _other(slots: list[dict[str, Any]], taken: str, n: int) -> str:
    free = [s["start"] for s in slots if s["start"] != taken]
    return str(free[n % len(free)])


async def conversation(caller: Caller, n: int, day: str) -> list[str]:
    """The documented flow: find → (find again) → book → search → find → reschedule → cancel.
    Returns the free starts the first find_slots offered."""
    found = await caller.call("find_slots", {"date": day}, key="find_slots", path="cold")
    await caller.call("find_slots", {"date": day}, key="find_slots_warm", path="warm")
    slots = found["slots"]
    start = str(slots[n % len(slots)]["start"])
    booked = await caller.call("book_appointment", _booking(start, n), key="book_appointment", path="warm")
    appointment_id = booked["appointment"]["id"]
    await caller.call("search_appointments", {"query": f"bench.caller{n}@"}, key="search_appointments", path="any")
    again = await caller.call("find_slots", {"date": day}, key="find_slots", path="cold")
    new_start = _other(again["slots"], start, n)
    await caller.call(
        "reschedule", {"appointment_id": appointment_id, "new_start": new_start}, key="reschedule", path="warm"
    )
    await caller.call("cancel", {"appointment_id": appointment_id}, key="cancel", path="any")
    return [str(s["start"]) for s in slots]


async def cold_round(caller: Caller, n: int, starts: list[str]) -> None:
    """Book and reschedule with nothing in the slot cache (no find_slots first; the last cancel cleared it)."""
    start = starts[n % len(starts)]
    booked = await caller.call("book_appointment", _booking(start, n), key="book_appointment_cold", path="cold")
    appointment_id = booked["appointment"]["id"]
    new_start = starts[(n + 1) % len(starts)]
    await caller.call(
        "reschedule", {"appointment_id": appointment_id, "new_start": new_start}, key="reschedule_cold", path="cold"
    )
    await caller.call("cancel", {"appointment_id": appointment_id}, key="cancel", path="any")


async def exercise(client: Client, iterations: int, cold_rounds: int) -> Measured:
    measured = Measured()
    caller = Caller(client, measured)
    day = next_weekday(3).isoformat()
    caller.recording = False  # one unrecorded round: first-call costs (lazy imports, caches) out of the figures
    starts = await conversation(caller, 10_000, day)
    caller.recording = True
    for n in range(iterations):
        starts = await conversation(caller, n, day)
    for n in range(cold_rounds):
        await cold_round(caller, 20_000 + n, starts)
    return measured


@asynccontextmanager
async def connect(transport: str) -> AsyncIterator[Client]:
    if transport == "memory":
        recorder = CalcomRecorder()
        async with bench_service(recorder) as (service, _sandbox), Client(bench_server(service, recorder)) as client:
            yield client
        return
    with scratch_database() as url:
        if transport == "stdio":
            params = StdioServerParameters(
                command=PYTHON,
                args=["-m", "bench.server", "--transport", "stdio", "--database-url", url],
                env=child_env(),
                cwd=str(ROOT),
            )
            async with Client(params) as client:
                yield client
            return
        port = free_port()
        async with (
            http_server_process(["--transport", "http", "--database-url", url], port, child_env()),
            Client(f"http://127.0.0.1:{port}/mcp") as client,
        ):
            yield client


async def run(
    transports: Iterable[str], iterations: int, cold_rounds: int, commits: int = 200
) -> tuple[list[Row], dict[str, Any]]:
    results: dict[str, Measured] = {}
    for transport in transports:
        say(f"latency: {transport} ({iterations} conversations)")
        async with connect(transport) as client:
            results[transport] = await exercise(client, iterations, cold_rounds)
    # What one durable commit costs on this machine, in the same run: the writes' overhead includes them.
    commit_ms = durable_commit_ms(commits)
    details = _details(results)
    details["durable_commit_ms"] = summary(commit_ms)
    return [_commit_row(commit_ms), *_rows(results)], details


def _commit_row(commit_ms: list[float]) -> Row:
    return Row(
        "floor",
        "durable SQLite commit p50 (WAL, synchronous=FULL)",
        p50(commit_ms),
        "ms",
        target="info",
        note="one fsync'd commit of a small row on this machine, measured after the calls; a booking makes 2, "
        "a reschedule or cancel 3 (the change's lease taken and released, the outcome)",
        shown=f"{p50(commit_ms):.2f} ms (p95 {p95(commit_ms):.2f})",
        extra={"p95": p95(commit_ms), "n": len(commit_ms)},
    )


def _rows(results: dict[str, Measured]) -> list[Row]:
    rows: list[Row] = []
    for transport, m in results.items():
        floor = p50(m.floor)
        rows.append(
            Row(
                "floor",
                f"trivial tool p50 [{transport}]",
                floor,
                "ms",
                note=""
                if transport != "memory"
                else "bench_ping on the product's server, timed before every measured call",
                extra={"p95": p95(m.floor), "n": len(m.floor)},
            )
        )
    for transport, m in results.items():
        floor = p50(m.floor)
        for tool in TOOLS:
            over = m.overhead(tool)
            value = p50(over)
            r = ratio(value, floor)
            target = OVERHEAD_TARGETS[tool]
            rows.append(
                Row(
                    "overhead (latency − Cal.com time)",
                    f"{tool} p50 [{transport}]",
                    value,
                    "ms",
                    reference=floor,
                    reference_label="floor",
                    ratio=r,
                    target=f"≤{target:g}× floor",
                    met=r is not None and r <= target,
                    note=f"{COMMITS[tool]} durable commits" if tool in COMMITS and transport == "memory" else "",
                    shown=f"{value:.2f} ms (p95 {p95(over):.2f})",
                    extra={
                        "p95": p95(over),
                        "latency_p50": p50(m.latency[tool]),
                        "calcom_p50": p50(m.calcom[tool]),
                        "n": len(over),
                    },
                )
            )
    for transport, m in results.items():
        floor = p50(m.floor)
        warm = m.latency.get("find_slots_warm", [])
        value = p50(warm)
        r = ratio(value, floor)
        rows.append(
            Row(
                "find_slots warm",
                f"find_slots warm p50 [{transport}]",
                value,
                "ms",
                reference=floor,
                reference_label="floor",
                ratio=r,
                target=f"≤{WARM_TARGET:g}× floor",
                met=r is not None and r <= WARM_TARGET,
                shown=f"{value:.2f} ms (p95 {p95(warm):.2f})",
                extra={"p95": p95(warm), "calcom_requests": sum(m.requests.get(("find_slots", "warm"), []))},
            )
        )
    rows.extend(_request_rows(results))
    return rows


def _request_rows(results: dict[str, Measured]) -> list[Row]:
    """Every call's count must be within the target: a find_slots after a change that still found its
    answer in the slot cache (0 instead of 1) would show here as a miss."""
    rows: list[Row] = []
    for (tool, path), (minimum, target, why) in REQUEST_TARGETS.items():
        counts = [c for m in results.values() for c in m.requests.get((tool, path), [])]
        if not counts:
            continue
        fewest, most = min(counts), max(counts)
        paths: Counter[str] = Counter()
        for m in results.values():
            paths.update(m.paths.get((tool, path), Counter()))
        if target is None:
            shown_target = "info"
        else:
            shown_target = f"{target[0]}" if target[0] == target[1] else f"{target[0]}–{target[1]}"
        rows.append(
            Row(
                "Cal.com requests per call",
                f"{tool} ({path})",
                most,
                "req",
                reference=minimum,
                reference_label="API min",
                target=shown_target,
                met=None if target is None else target[0] <= fewest and most <= target[1],
                note=why if target is None else "",
                shown=f"{most}" if fewest == most else f"{fewest}–{most}",
                extra={"min": fewest, "max": most, "calls": len(counts), "per_request": dict(paths)},
            )
        )
    return rows


def _details(results: dict[str, Measured]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for transport, m in results.items():
        out[transport] = {
            "floor_ms": summary(m.floor),
            "latency_ms": {k: summary(v) for k, v in m.latency.items()},
            "calcom_ms": {k: summary(v) for k, v in m.calcom.items()},
            "client_validation_ms": {k: summary(v) for k, v in m.validation.items()},
            "overhead_ms": {k: summary(m.overhead(k)) for k in m.latency},
            "calcom_requests": {f"{t} ({p})": v for (t, p), v in m.requests.items()},
        }
    return out
