"""`python -m bench.soak --minutes N [--callers C] [--seed S]`: a soak run, outside the test suite.

Two `appt-tools serve --transport http` processes share one SQLite file and one Cal.com sandbox (in this
process, on loopback, with a rate limit high enough not to be the subject). C concurrent callers talk to
them for N minutes through every surface in turn (MCP over streamable HTTP, /tools, Vapi, Retell): find
slots, book (sometimes the same slot as another caller, sometimes an identical repeat twice at once),
reschedule, cancel, and now and then send hostile input. Every few seconds a Cal.com fault is staged
(5xx before or after acting, a dropped connection after acting, a timeout, a malformed body, a rate-limit
block, latency). Then faults stop, `appt-tools reconcile` settles what was left unknown, and the run is
judged against Cal.com's own state:

    made      appointments callers were told are booked (at least once)
    lost      told booked (the last answer) but Cal.com holds no live booking under the uid given
    doubled   Cal.com live bookings beyond one at the same start, or of the same caller's request twice
    untrue    told cancelled while Cal.com's booking lives on, or told X while the store says Y
    5xx       HTTP answers 500 and above, on any surface
    memory    each server's resident memory: at start, each minute, peak, end; and its trend over the second
              half of the run, judged flat when it grows by less than FLAT_MIB (2 MiB) in that half

Everything stays on 127.0.0.1; the temporary database is removed at the end. Bounded: at most 60 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import PYTHON, ROOT, child_env, say, serve_http
from calcom_sandbox import Fault, SandboxState, run_sandbox

KEY = "k_soak_0123456789abcdefghijklmnop"
VAPI_SECRET = "vapi-soak-0123456789abcdef"
RETELL_KEY = "key_retell_soak_0123456789"
MAX_MINUTES = 60
SURFACES = ("mcp", "tools", "vapi", "retell")
LIVE = ("accepted", "pending")  # Cal.com's live booking states
TOLD_LIVE = ("active", "pending", "rescheduled")  # ours
# An answer that leaves the outcome open (Cal.com's answer was lost): the caller was told "not sure yet".
UNSURE = ("calcom_unavailable", "in_progress", "change_in_progress", "slot_in_progress")
# Cal.com faults staged during the run, one at a time, each spoiling one request to the endpoint named.
FAULTS = (
    Fault("status", "POST /v2/bookings", phase="before", status=503),
    Fault("status", "POST /v2/bookings", phase="after", status=502),
    Fault("drop", "POST /v2/bookings", phase="after"),
    Fault("malformed", "POST /v2/bookings", phase="after", body="truncated"),
    Fault("timeout", "POST /v2/bookings", phase="after", seconds=12),
    Fault("status", "POST /v2/bookings/{uid}/reschedule", phase="after", status=503),
    Fault("drop", "POST /v2/bookings/{uid}/cancel", phase="after"),
    Fault("status", "GET /v2/slots", phase="before", status=500),
    Fault("latency", "*", seconds=2),
    Fault("rate_limit", "*", seconds=3),
)
HOSTILE = (
    ("find_slots", {"date": "9999-12-31"}),
    ("search_appointments", {"page": 10**30}),
    ("search_appointments", {"query": "nul\x00here"}),
    ("book_appointment", {"start": "2030-01-01T10:00:00Z", "attendee_name": "A\x1bB"}),
    ("get_appointment", {"appointment_id": "\udc80"}),
    ("list_event_types", {"refresh": 1}),
)


@dataclass
class Told:
    """The last thing callers were told about one appointment."""

    status: str
    uid: str | None
    start: str
    email: str


@dataclass
class Tally:
    told: dict[str, Told] = field(default_factory=dict)
    made: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    documented_5xx: list[str] = field(default_factory=list)  # 502/503: Cal.com failed (staged), said so
    hostile_accepted: list[str] = field(default_factory=list)

    def heard(self, surface: str, tool: str, args: dict[str, Any], ok: bool, body: dict[str, Any], status: int) -> None:
        code = "ok" if ok else str(body.get("code", "?"))
        self.answers[f"{tool}:{code}"] += 1
        if status >= 500 or code == "internal_error":  # MCP and Vapi carry even a 500 in a 200
            (
                self.documented_5xx
                if status in (502, 503) and code in (*UNSURE, "calcom_rate_limited")
                else self.server_errors
            ).append(f"{surface} {tool} {status} {json.dumps(body)[:200]}")
        known = self.told.get(str(args.get("appointment_id")))
        if not ok and code in UNSURE and known is not None:
            known.status = "unknown"  # told the change may or may not have happened: reconcile settles it
        appointment = body.get("appointment") if ok else None
        if isinstance(appointment, dict) and tool in ("book_appointment", "reschedule", "cancel", "get_appointment"):
            told = Told(
                appointment["status"],
                appointment.get("booking_uid"),
                appointment["start"],
                appointment["attendee_email"],
            )
            self.told[appointment["id"]] = told
            if tool == "book_appointment" and told.status in TOLD_LIVE:
                self.made.add(appointment["id"])


Call = Callable[[str, dict[str, Any]], Awaitable[tuple[bool, dict[str, Any]]]]


class Caller:
    """One caller on one surface; `call` answers (ok, result or error view) and records it in the tally."""

    def __init__(self, surface: str, base: str, http: httpx2.AsyncClient, tally: Tally) -> None:
        self.surface, self.base, self.http, self.tally = surface, base, http, tally
        self.mcp: Client | None = None
        self.calls = 0

    async def call(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        self.calls += 1
        try:
            ok, body, status = await getattr(self, f"_{self.surface}")(tool, args)
        except Exception as exc:  # our own client failing (a timeout, a body it cannot send): not an answer
            self.tally.answers[f"{tool}:client_{type(exc).__name__}"] += 1
            known = self.tally.told.get(str(args.get("appointment_id")))
            if known is not None:
                known.status = "unknown"  # it hung up before the answer: it was told nothing about the change
            return False, {"code": "client_error"}
        self.tally.heard(self.surface, tool, args, ok, body, status)
        return ok, body

    async def _tools(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any], int]:
        response = await self.http.post(f"{self.base}/tools/{tool}", content=_json(args), headers=_headers(KEY))
        body = response.json()
        return response.status_code == 200, body if response.status_code == 200 else body["error"], response.status_code

    async def _vapi(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any], int]:
        message = {
            "message": {
                "type": "tool-calls",
                "toolCallList": [
                    {"id": f"c{self.calls}", "type": "function", "function": {"name": tool, "arguments": args}}
                ],
            }
        }
        response = await self.http.post(
            f"{self.base}/vapi/tool-calls",
            content=_json(message),
            headers={"Content-Type": "application/json", "X-Vapi-Secret": VAPI_SECRET},
        )
        if response.status_code != 200:
            return False, response.json().get("error", {}), response.status_code
        [answer] = response.json()["results"]
        if "result" in answer:
            return True, json.loads(answer["result"]), 200
        return False, json.loads(answer["error"]), 200

    async def _retell(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any], int]:
        # Each request its own call id, as Retell's are: a signature is accepted once (a replay is refused).
        raw = _json({"name": tool, "call": {"call_id": f"soak-{id(self)}-{self.calls}"}, "args": args})
        stamp = str(int(time.time() * 1000))
        digest = hmac.new(RETELL_KEY.encode(), raw + stamp.encode(), hashlib.sha256).hexdigest()
        response = await self.http.post(
            f"{self.base}/retell/functions",
            content=raw,
            headers={"Content-Type": "application/json", "X-Retell-Signature": f"v={stamp},d={digest}"},
        )
        body = response.json()
        return "error" not in body, body.get("error", body), response.status_code

    async def _mcp(self, tool: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any], int]:
        assert self.mcp is not None
        result = await self.mcp.call_tool(tool, args)
        if result.is_error:
            text = result.content[0].text if result.content else "{}"  # type: ignore[union-attr]
            try:
                return False, json.loads(text), 200
            except ValueError:
                return False, {"code": "protocol_error", "message": text[:200]}, 200
        return True, dict(result.structured_content or {}), 200


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()  # ASCII: a lone surrogate travels as its \\u escape


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _weekdays(count: int) -> list[date]:
    days, day = [], date.today() + timedelta(days=2)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


async def conversation(caller: Caller, rng: random.Random, days: list[date], number: int) -> None:
    """One caller's visit: find, book (maybe twice at once), then maybe move it, maybe cancel it."""
    if rng.random() < 0.05:
        # The MCP client cannot even send a lone surrogate (it encodes UTF-8 strictly): the others can.
        sendable = [h for h in HOSTILE if caller.surface != "mcp" or "\udc80" not in "".join(map(str, h[1].values()))]
        tool, args = rng.choice(sendable)
        ok, _ = await caller.call(tool, args)
        if ok:
            caller.tally.hostile_accepted.append(f"{tool} {args!r}"[:120])
        return
    ok, found = await caller.call("find_slots", {"date": rng.choice(days).isoformat()})
    slots = found.get("slots") or [] if ok else []
    if not slots:
        return
    slot = slots[0] if rng.random() < 0.3 else rng.choice(slots)  # the first slot is contested on purpose
    args = {
        "start": slot["start"],
        "attendee_name": f"Soak Caller {number}",
        "attendee_email": f"caller{number}@example.com",
        "to_number": "+14155550100",
        "from_number": f"+1415555{number % 10000:04d}",
        "call_type": "inbound",
        "title": "Soak visit",
    }
    if rng.random() < 0.15:  # an identical repeat, at the same moment, without a key: both must hear one booking
        (ok, booked), (ok2, again) = await asyncio.gather(
            caller.call("book_appointment", args), caller.call("book_appointment", args)
        )
        if ok and ok2 and booked["appointment"]["id"] != again["appointment"]["id"]:
            caller.tally.answers["repeat:two_appointments"] += 1
        if not ok and ok2:
            ok, booked = ok2, again
    else:
        ok, booked = await caller.call("book_appointment", args)
    if not ok:
        return
    appointment_id = booked["appointment"]["id"]
    roll = rng.random()
    if roll < 0.35 and len(slots) > 1:
        other = rng.choice([s for s in slots if s["start"] != slot["start"]])
        await caller.call("reschedule", {"appointment_id": appointment_id, "new_start": other["start"]})
    if rng.random() < 0.35:
        await caller.call("cancel", {"appointment_id": appointment_id, "reason": "Soak: no longer needed"})
    if rng.random() < 0.3:
        await caller.call("get_appointment", {"appointment_id": appointment_id})


async def caller_loop(
    index: int, surface: str, base: str, deadline: float, tally: Tally, days: list[date], seed: int
) -> None:
    rng = random.Random(seed * 1000 + index)
    async with httpx2.AsyncClient(timeout=40) as http:
        caller = Caller(surface, base, http, tally)
        number = index * 100_000
        while time.monotonic() < deadline:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if surface == "mcp":
                        mcp_http = await stack.enter_async_context(
                            httpx2.AsyncClient(headers=_headers(KEY), timeout=40)
                        )
                        caller.mcp = await stack.enter_async_context(
                            Client(streamable_http_client(f"{base}/mcp", http_client=mcp_http))
                        )
                    while time.monotonic() < deadline:
                        number += 1
                        await conversation(caller, rng, days, number)
            except* httpx2.HTTPError as failed:
                # The MCP client's own connection failed (e.g. no answer within its 40 s on a loaded machine),
                # which ends its session: not an answer; the caller goes on in a new session.
                tally.answers[f"mcp session:client_{type(failed.exceptions[0]).__name__}"] += 1


async def stage_faults(state: SandboxState, deadline: float, seed: int, fired: Counter[str]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        fault = rng.choice(FAULTS)
        state.faults.add(fault)
        fired[f"{fault.kind} {fault.endpoint} {fault.phase}"] += 1
        await asyncio.sleep(rng.uniform(2.0, 6.0))
    state.faults.clear()


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# The memory line is flat when, over the second half of the run (once imports, pools and caches have
# warmed up), a server's resident memory grows by less than this (the least-squares trend of one sample a
# second, so one noisy sample does not decide it).
FLAT_MIB = 2.0


@dataclass(frozen=True)
class MemoryTrend:
    growth_mib: float  # over the second half, from the trend line
    per_minute_mib: float
    flat: bool


def memory_trend(points: list[tuple[float, float]]) -> MemoryTrend:
    """The trend of (seconds, MiB) samples over the second half of their span, and whether it is flat."""
    if len(points) < 2:
        return MemoryTrend(0.0, 0.0, True)
    middle = (points[0][0] + points[-1][0]) / 2
    half = [(t, rss) for t, rss in points if t >= middle]
    if len(half) < 2:
        half = points[-2:]
    n = len(half)
    mean_t = sum(t for t, _ in half) / n
    mean_rss = sum(rss for _, rss in half) / n
    spread = sum((t - mean_t) ** 2 for t, _ in half)
    slope = sum((t - mean_t) * (rss - mean_rss) for t, rss in half) / spread if spread else 0.0  # MiB a second
    growth = slope * (half[-1][0] - half[0][0])
    return MemoryTrend(growth, slope * 60, growth < FLAT_MIB)


async def sample_memory(pids: list[int], stop: asyncio.Event, samples: dict[int, list[tuple[float, float]]]) -> None:
    started = time.monotonic()
    while not stop.is_set():
        for pid in pids:
            rss = _rss_mib(pid)
            if rss is not None:
                samples[pid].append((time.monotonic() - started, rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def judge(database: str, state: SandboxState, tally: Tally) -> dict[str, Any]:
    from appt_tools.models import AppointmentStatus, SearchQuery
    from appt_tools.store import Store

    bookings = state.bookings

    def live_end(uid: str | None) -> Any:
        """The booking a uid leads to (following reschedules), or None."""
        hops = 0
        record = bookings.get(uid or "")
        while record is not None and record.rescheduled_to_uid and hops < 20:
            record, hops = bookings.get(record.rescheduled_to_uid), hops + 1
        return record

    lost, untrue = [], []
    async with Store.from_url(database) as store:
        stored = {}
        page = 1
        while True:
            query = SearchQuery(statuses=tuple(AppointmentStatus), page=page, page_size=100)
            found = await store.search(query, now=datetime.now(UTC))
            stored.update({a.id: a for a in found.items})
            if len(found.items) < 100:  # `total` is exact only up to 1,000: read until a short page
                break
            page += 1
    for appointment_id, told in tally.told.items():
        record = live_end(told.uid)
        live = record is not None and record.status in LIVE
        if told.status in TOLD_LIVE and not live:
            lost.append(
                f"{appointment_id}: told {told.status} as {told.uid}; Cal.com: {record.status if record else 'none'}"
            )
        if told.status == "cancelled" and live:
            untrue.append(f"{appointment_id}: told cancelled; Cal.com holds {record.uid if record else '?'} live")
        mine = stored.get(appointment_id)
        if mine is None:
            untrue.append(f"{appointment_id}: told {told.status}; the store has no such appointment")
        elif told.status != "unknown" and (mine.status.value in TOLD_LIVE) != (told.status in TOLD_LIVE):
            untrue.append(f"{appointment_id}: told {told.status}; the store says {mine.status.value}")
    by_start = Counter(r.start for r in bookings.values() if r.status in LIVE)
    by_request = Counter((r.start, r.attendee.email) for r in bookings.values() if r.status in LIVE)
    doubled = sum(n - 1 for n in by_start.values() if n > 1) + sum(n - 1 for n in by_request.values() if n > 1)
    known = {a.booking_uid for a in stored.values() if a.booking_uid}
    orphans = [r.uid for r in bookings.values() if r.status in LIVE and r.uid not in known]
    disagree = [
        f"{a.id}: store {a.status.value}, Cal.com {live_end(a.booking_uid).status}"  # type: ignore[union-attr]
        for a in stored.values()
        if a.booking_uid
        and live_end(a.booking_uid) is not None
        and (a.status.value in TOLD_LIVE) != (live_end(a.booking_uid).status in LIVE)  # type: ignore[union-attr]
    ]
    return {
        "lost": lost,
        "doubled": doubled,
        "untrue": untrue,
        "orphans": orphans,
        "store_vs_calcom": disagree,
        "calcom_live": sum(1 for r in bookings.values() if r.status in LIVE),
    }


async def soak(minutes: float, callers: int, seed: int, keep_logs: Path | None = None) -> int:
    minutes = min(minutes, MAX_MINUTES)
    tally, fired = Tally(), Counter[str]()
    with tempfile.TemporaryDirectory(prefix="appt-soak-") as tmp:
        database = f"sqlite+aiosqlite:///{Path(tmp) / 'soak.db'}"
        state = SandboxState(host_time_zone="America/New_York", rate_limit=1_000_000)
        async with run_sandbox(state) as sandbox:
            env = child_env(
                APPT_TOOLS_DATABASE_URL=database,
                APPT_TOOLS_CALCOM_API_KEY=sandbox.api_key,
                APPT_TOOLS_CALCOM_BASE_URL=sandbox.base_url,
                APPT_TOOLS_EVENT_TYPE_ID=str(state.default_event_type_id),
                APPT_TOOLS_TIMEZONE="America/New_York",
                APPT_TOOLS_HTTP_API_KEYS=KEY,
                APPT_TOOLS_VAPI_SECRET=VAPI_SECRET,
                APPT_TOOLS_RETELL_API_KEY=RETELL_KEY,
                APPT_TOOLS_CALCOM_RATE_LIMIT="10000",
                APPT_TOOLS_RECONCILE_MINUTES="1",
                APPT_TOOLS_REQUEST_LOG="json",
            )
            async with serve_http(env, 2, logs=Path(tmp)) as bases:
                pids = [pid for _, pid in bases]
                samples: dict[int, list[tuple[float, float]]] = {pid: [] for pid in pids}
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_memory(pids, stop, samples))
                days = _weekdays(40)
                deadline = time.monotonic() + minutes * 60
                say(
                    f"soak: {minutes:g} min, {callers} callers on {len(bases)} servers ({', '.join(SURFACES)}), seed {seed}"
                )
                faults = asyncio.create_task(stage_faults(state, deadline, seed, fired))
                await asyncio.gather(
                    *(
                        caller_loop(
                            i, SURFACES[i % len(SURFACES)], bases[i % len(bases)][0], deadline, tally, days, seed
                        )
                        for i in range(callers)
                    )
                )
                await faults
                state.faults.clear()
                say("soak: callers done; reconciling what was left unknown")
                reconcile = await asyncio.create_subprocess_exec(
                    PYTHON, "-m", "appt_tools", "reconcile", "--grace-seconds", "0",
                    cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                reconciled = (await reconcile.communicate())[0].decode(errors="replace").strip()
                stop.set()
                await sampler
                request_lines = sum(
                    1 for n in range(len(bases)) for line in (Path(tmp) / f"server{n}.log").read_text().splitlines()
                    if line.startswith('{"time"')
                )  # fmt: skip
                logs = [(Path(tmp) / f"server{n}.log").read_text() for n in range(len(bases))]
                tracebacks = sum(log.count("Traceback") for log in logs)
                if keep_logs is not None:
                    keep_logs.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (the run is over)
                    for n, log in enumerate(logs):
                        (keep_logs / f"server{n}.log").write_text(log)
                    (keep_logs / "reconcile.log").write_text(reconciled)
            verdict = await judge(database, state, tally)
    _report(minutes, callers, tally, fired, verdict, samples, reconciled, request_lines, tracebacks)
    bad = len(verdict["lost"]) + verdict["doubled"] + len(verdict["untrue"]) + len(tally.server_errors)
    return 1 if bad else 0


def _report(
    minutes: float,
    callers: int,
    tally: Tally,
    fired: Counter[str],
    verdict: dict[str, Any],
    samples: dict[int, list[tuple[float, float]]],
    reconciled: str,
    request_lines: int,
    tracebacks: int,
) -> None:
    calls = sum(tally.answers.values())
    print(f"soak: {minutes:g} minutes, {callers} concurrent callers, 2 server processes on one SQLite file")
    print(
        f"calls answered     {calls}  (request-log lines written: {request_lines}; tracebacks in server logs: {tracebacks})"
    )
    print(f"faults staged      {sum(fired.values())}  ({', '.join(f'{k} ×{v}' for k, v in sorted(fired.items()))})")
    print(f"reconcile          {reconciled.splitlines()[-1] if reconciled else '(no output)'}")
    print(f"made               {len(tally.made)}")
    print(f"lost               {len(verdict['lost'])}")
    print(f"doubled            {verdict['doubled']}")
    print(f"untrue answers     {len(verdict['untrue'])}")
    print(
        f"5xx                {len(tally.server_errors)}  (besides {len(tally.documented_5xx)} × 502/503 on /tools saying Cal.com failed under a staged fault, as documented)"
    )
    print(f"hostile accepted   {len(tally.hostile_accepted)}")
    print(f"orphans in Cal.com {len(verdict['orphans'])}  (live bookings no appointment points at)")
    print(f"store ≠ Cal.com    {len(verdict['store_vs_calcom'])}")
    for n, points in enumerate(samples.values()):
        if not points:
            continue
        per_minute = [rss for t, rss in points if int(t) % 60 == 0] or [points[0][1]]
        line = " ".join(f"{rss:.0f}" for rss in per_minute)
        peak = max(rss for _, rss in points)
        print(
            f"memory server {n}    start {points[0][1]:.0f} MiB, peak {peak:.0f} MiB, end {points[-1][1]:.0f} MiB; each minute: {line}"
        )
        trend = memory_trend(points)
        judged = "flat" if trend.flat else "GROWING"
        print(
            f"memory trend {n}     second half {trend.growth_mib:+.1f} MiB ({trend.per_minute_mib:+.2f} MiB/min): "
            f"{judged} (flat: under {FLAT_MIB:g} MiB over the second half)"
        )
    answers = ", ".join(f"{k} {v}" for k, v in sorted(tally.answers.items()))
    print(f"answers            {answers}")
    for title, items in (
        ("lost", verdict["lost"]),
        ("untrue", verdict["untrue"]),
        ("5xx", tally.server_errors),
        ("hostile accepted", tally.hostile_accepted),
        ("store ≠ Cal.com", verdict["store_vs_calcom"]),
    ):
        for item in items[:10]:
            print(f"  {title}: {item}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help=f"how long the callers call (at most {MAX_MINUTES})")
    parser.add_argument("--callers", type=int, default=12, help="concurrent callers, spread over the surfaces")
    parser.add_argument("--seed", type=int, default=1, help="makes the callers' choices and the faults repeatable")
    parser.add_argument("--logs", type=Path, default=None, help="keep the servers' and reconcile's logs in this folder")
    args = parser.parse_args()
    if not 0 < args.minutes <= MAX_MINUTES or not 1 <= args.callers <= 200:
        parser.error(f"--minutes must be above 0 and at most {MAX_MINUTES}; --callers from 1 to 200")
    sys.exit(asyncio.run(soak(args.minutes, args.callers, args.seed, args.logs)))


if __name__ == "__main__":
    main()
