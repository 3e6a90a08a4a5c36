"""The booking conversation under every Cal.com fault the sandbox can stage, with a printed table:
faults tried, bookings made, lost (must be 0), doubled (must be 0), caller told the truth (must be all)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.config import resolve
from appt_tools.core.reconcile import Reconciler
from appt_tools.core.service import AppointmentService
from appt_tools.errors import AppError, CalcomUnavailable
from appt_tools.models import Appointment, AppointmentStatus, SearchQuery
from calcom_sandbox import Fault
from helpers import BUSINESS_ENV, Raw, booking_args, next_weekday

BOOK = "POST /v2/bookings"
FAULTS: list[tuple[str, Sequence[Fault]]] = [
    ("none", []),
    ("latency 1.5 s on the booking", [Fault("latency", BOOK, seconds=1.5)]),
    ("500 before booking", [Fault("status", BOOK, status=500)]),
    ("500 after booking", [Fault("status", BOOK, phase="after", status=500)]),
    ("502 before booking", [Fault("status", BOOK, status=502)]),
    ("503 before booking", [Fault("status", BOOK, status=503)]),
    ("timeout before booking", [Fault("timeout", BOOK, seconds=30)]),
    ("timeout after booking", [Fault("timeout", BOOK, phase="after", seconds=30)]),
    ("connection dropped before booking", [Fault("drop", BOOK)]),
    ("connection dropped after booking", [Fault("drop", BOOK, phase="after")]),
    ("429 with a 1 s block", [Fault("rate_limit", BOOK, seconds=1)]),
    ("truncated body after booking", [Fault("malformed", BOOK, phase="after", body="truncated")]),
    ("not JSON before booking", [Fault("malformed", BOOK, body="not_json")]),
    ("slots 503 once (read retried)", [Fault("status", "GET /v2/slots", status=503)]),
    ("slots time out once", [Fault("timeout", "GET /v2/slots", seconds=30)]),
    (
        "answer lost and look-up down",
        [Fault("drop", BOOK, phase="after"), Fault("status", "GET /v2/bookings", status=503, times=None)],
    ),
    ("Cal.com down (every request 503)", [Fault("status", "*", status=503, times=None)]),
]


@dataclass
class Row:
    fault: str
    first_answer: str
    made: int
    lost: int
    doubled: int
    truthful: bool


def _live(sandbox: Any, email: str) -> list[Any]:
    return [
        b for b in sandbox.state.bookings.values() if b.status in ("accepted", "pending") and b.attendee.email == email
    ]


def _heard(answer: Appointment | AppError) -> str:
    if isinstance(answer, Appointment):
        return "booked"
    if isinstance(answer, CalcomUnavailable):
        return "not confirmed yet" if answer.outcome_unknown else "nothing booked"
    return answer.code


def _truthful(answer: Appointment | AppError, in_calcom: int) -> bool:
    """Did the caller hear something true at the moment of the answer?"""
    if isinstance(answer, Appointment):
        return answer.booking_uid is not None and in_calcom == 1
    if isinstance(answer, CalcomUnavailable) and answer.outcome_unknown:
        return True  # "not confirmed yet": true whatever Cal.com did
    return in_calcom == 0  # any other error says, or implies, that nothing was booked


async def _conversation(service: AppointmentService, sandbox: Any, name: str, faults: Sequence[Fault], n: int) -> Row:
    email = f"caller{n}@example.com"
    found = None
    for _ in range(2):  # a caller's assistant asks again if the calendar hiccups
        try:
            found = await Raw(service).find_slots(day=(next_weekday() + timedelta(days=n // 8)).isoformat())
            break
        except CalcomUnavailable:
            sandbox.state.faults.clear()
    assert found is not None
    for fault in faults:
        sandbox.state.faults.add(fault)
    args = booking_args(found.slots[n % 8].start.isoformat(), attendee_email=email, idempotency_key=f"call-{n}")
    try:
        answer: Appointment | AppError = await Raw(service).book(**args)
    except AppError as exc:
        answer = exc
    truthful = _truthful(answer, len(_live(sandbox, email)))
    sandbox.state.faults.clear()
    await asyncio.sleep(0.25)  # past the breaker's cool-down, in the row where Cal.com was down
    if isinstance(answer, AppError) and answer.code != "slot_unavailable":
        with contextlib.suppress(AppError):  # the assistant retries with the same key once Cal.com answers
            await Raw(service).book(**args)
    now = service.now()
    await Reconciler.of(service).reconcile(now - timedelta(days=1), now + timedelta(days=30))
    in_calcom = _live(sandbox, email)
    page = await service.store.search(SearchQuery(text=email, page_size=100), now=datetime.now(UTC))
    ours = [a for a in page.items if a.status in (AppointmentStatus.ACTIVE, AppointmentStatus.PENDING)]
    agree = {b.uid for b in in_calcom} == {a.booking_uid for a in ours}
    return Row(
        fault=name,
        first_answer=_heard(answer),
        made=len(in_calcom),
        lost=0 if agree else max(1, abs(len(in_calcom) - len(ours))),
        doubled=max(0, len(in_calcom) - 1),
        truthful=truthful,
    )


def _table(rows: list[Row]) -> str:
    head = f"{'fault':<36} {'caller first heard':<20} {'made':>4} {'lost':>4} {'doubled':>7} {'truthful':>8}"
    lines = [head, "-" * len(head)]
    lines += [
        f"{r.fault:<36} {r.first_answer:<20} {r.made:>4} {r.lost:>4} {r.doubled:>7} {'yes' if r.truthful else 'NO':>8}"
        for r in rows
    ]
    lines.append(
        f"{len(rows)} faults tried: {sum(r.made for r in rows)} bookings made, {sum(r.lost for r in rows)} lost, "
        f"{sum(r.doubled for r in rows)} doubled, caller told the truth {sum(r.truthful for r in rows)}/{len(rows)}"
    )
    return "\n".join(lines)


async def test_no_fault_loses_or_doubles_a_booking_or_misleads_the_caller(
    sandbox, db_url, capsys: pytest.CaptureFixture[str]
):
    from appt_tools.store import Store

    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    async with (
        Store.from_url(db_url) as store,
        # A tight budget keeps the run short; the breaker only opens in the "Cal.com down" row.
        CalcomClient(
            sandbox.api_key, sandbox.base_url, timeout=2.5, breaker_threshold=6, breaker_cooldown=0.2
        ) as client,
    ):
        service = AppointmentService(store, client, resolve({}, env))
        rows = [await _conversation(service, sandbox, name, faults, n) for n, (name, faults) in enumerate(FAULTS)]
    table = _table(rows)
    with capsys.disabled():
        print("\n" + table)
    assert all(r.lost == 0 for r in rows), table
    assert all(r.doubled == 0 for r in rows), table
    assert all(r.truthful for r in rows), table
    assert all(r.made == 1 for r in rows), table  # each ends booked once: the retry, or the reconcile, finishes it
