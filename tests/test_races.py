"""Nothing untrue under races and rate limits (issue 13, findings 1-3): changes to one appointment run one
after the other, identical repeats always join the first booking, and a rate-limited Cal.com is reported
as such, never as a taken slot or a 500. Each test runs on SQLite and, when a server answers, PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx2

from appt_tools.core.reconcile import Reconciler
from appt_tools.core.records import history_entry
from appt_tools.core.service import AppointmentService
from appt_tools.errors import AppError, CalcomRateLimited, Conflict
from appt_tools.models import AppointmentStatus
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.speech.results import ErrorView
from calcom_sandbox import RunningSandbox
from calcom_sandbox.faults import Fault
from dashboard_support import served
from helpers import BUSINESS_ENV, Raw, booking_args, next_weekday

LIVE = ("accepted", "pending")


@asynccontextmanager
async def _services(sandbox: RunningSandbox, url: str, count: int = 1) -> AsyncIterator[list[AppointmentService]]:
    """`count` services on one database, each with its own store and Cal.com client (as processes have)."""
    env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(open_service(database_url=url, environ=env, calcom=target))
            for _ in range(count)
        ]


async def _slots(service: AppointmentService, count: int) -> list[str]:
    found: list[str] = []
    after = 2
    while len(found) < count:
        day = next_weekday(after)
        found += [s.start.isoformat() for s in (await Raw(service).find_slots(day=day.isoformat())).slots]
        after = (day - next_weekday(0)).days + 1
    return found[:count]


def _caller(i: int, prefix: str = "c") -> dict[str, str]:
    """Caller `i`'s own e-mail and number: a different caller, not a repeat (repeats match on numbers)."""
    return {"attendee_email": f"{prefix}{i}@example.com", "from_number": f"+1415555{1000 + i:04d}"}


def _live(sandbox: RunningSandbox, email: str) -> list[Any]:
    return [b for b in sandbox.state.bookings.values() if b.status in LIVE and b.attendee.email == email]


# --- finding 1: reschedule racing cancel -------------------------------------------------------------


async def test_a_reschedule_and_a_cancel_at_once_run_one_after_the_other(sandbox, backend_url):
    async with _services(sandbox, backend_url, 2) as (one, other):
        slots = await _slots(one, 8)
        for round_ in range(4):
            email = f"race{round_}@example.com"
            booked = await Raw(one).book(**booking_args(slots[2 * round_], attendee_email=email))
            moved, cancelled = await asyncio.gather(
                Raw(one if round_ % 2 else other).reschedule(booked.id, slots[2 * round_ + 1]),
                Raw(other if round_ % 2 else one).cancel(booked.id),
                return_exceptions=True,
            )
            # The cancel always wins in the end: it ran first, or after the move and cancelled the new booking.
            assert not isinstance(cancelled, BaseException), cancelled
            assert cancelled.status is AppointmentStatus.CANCELLED
            if isinstance(moved, BaseException):  # ran second, and was told the truth
                assert isinstance(moved, Conflict) and moved.code == "not_reschedulable", moved
            else:
                assert cancelled.booking_uid == moved.booking_uid  # the cancel saw the move
            final = await one.get(booked.id)
            assert final.status is AppointmentStatus.CANCELLED
            assert _live(sandbox, email) == [], "the store says cancelled, so Cal.com must hold nothing live"


async def test_reconcile_cancels_a_booking_a_callers_cancel_missed(service, sandbox):
    booked = await Raw(service).book(**booking_args((await _slots(service, 1))[0]))
    # The record a lost race left: cancelled for the caller, while Cal.com holds the booking live.
    await service.store.update_appointment(
        booked.id,
        {"status": AppointmentStatus.CANCELLED, "cancellation_reason": "Caller cancelled."},
        now=service.now(),
        history=history_entry(service.now(), "cancelled", "Caller cancelled."),
    )
    assert len(_live(sandbox, booked.attendee_email)) == 1
    report = await Reconciler.of(service, grace=timedelta(0)).reconcile(
        service.now() - timedelta(days=1), service.now() + timedelta(days=30)
    )
    assert len(report.repaired) == 1, report
    assert _live(sandbox, booked.attendee_email) == []
    assert (await service.get(booked.id)).status is AppointmentStatus.CANCELLED
    last = (await service.history(booked.id))[-1]
    assert last.action == "cancelled" and last.detail.startswith("Reconciled") and booked.booking_uid in last.detail
    again = await Reconciler.of(service, grace=timedelta(0)).reconcile(
        service.now() - timedelta(days=1), service.now() + timedelta(days=30)
    )
    assert again.repaired == []  # repaired once, then they agree


async def test_reconcile_records_a_live_booking_it_had_itself_marked_cancelled(service, sandbox):
    booked = await Raw(service).book(**booking_args((await _slots(service, 1))[0]))
    detail = "Reconciled: cancelled in Cal.com (a stale answer)."
    await service.store.update_appointment(
        booked.id,
        {"status": AppointmentStatus.CANCELLED},
        now=service.now(),
        history=history_entry(service.now(), "cancelled", detail),
    )
    report = await Reconciler.of(service).reconcile(service.now(), service.now() + timedelta(days=30))
    assert len(report.repaired) == 1, report
    assert (await service.get(booked.id)).status is AppointmentStatus.ACTIVE  # nobody asked to cancel it
    assert len(_live(sandbox, booked.attendee_email)) == 1
    assert (await service.history(booked.id))[-1].action == "synced"


# --- finding 2: identical repeats without a key ------------------------------------------------------


async def _repeat_rounds(services: list[AppointmentService], sandbox: RunningSandbox, rounds: int, calls: int) -> None:
    slots = await _slots(services[0], rounds)
    for round_ in range(rounds):
        args = booking_args(slots[round_], attendee_email=f"repeat{round_}@example.com")
        outcomes = await asyncio.gather(
            *(Raw(services[i % len(services)]).book(**args) for i in range(calls)), return_exceptions=True
        )
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert refused == [], f"{len(refused)} of {calls} identical calls were refused: {refused[:3]}"
        assert len({o.id for o in outcomes if not isinstance(o, BaseException)}) == 1
        assert len(_live(sandbox, str(args["attendee_email"]))) == 1


async def test_identical_repeats_at_once_all_join_the_first_booking(sandbox, backend_url):
    async with _services(sandbox, backend_url) as services:
        await _repeat_rounds(services, sandbox, rounds=3, calls=30)


async def test_identical_repeats_across_two_services_on_one_database_all_join(sandbox, backend_url):
    async with _services(sandbox, backend_url, 2) as services:
        await _repeat_rounds(services, sandbox, rounds=2, calls=30)


# --- finding 3: Cal.com's rate limit ----------------------------------------------------------------


async def test_under_a_rate_limit_every_caller_hears_rate_limited_and_the_slot_stays_free(sandbox, backend_url):
    async with _services(sandbox, backend_url, 2) as (service, later):
        start = (await _slots(service, 1))[0]
        sandbox.state.faults.add(Fault("rate_limit", "POST /v2/bookings", times=None, seconds=30))
        outcomes = await asyncio.gather(
            *(Raw(service).book(**booking_args(start, **_caller(i))) for i in range(30)),
            return_exceptions=True,
        )
        kinds = [type(o).__name__ for o in outcomes]
        assert all(isinstance(o, CalcomRateLimited) for o in outcomes), kinds
        for error in outcomes:
            assert isinstance(error, AppError)
            view = ErrorView.of(error, service.timezone)
            assert view.code == "calcom_rate_limited" and view.retryable
            assert view.retry_after_seconds is not None and 0 < view.retry_after_seconds <= 30
            assert "hold on" in view.say and "taken" not in view.say
        assert [b for b in sandbox.state.bookings.values() if b.status in LIVE] == []
        # No claim is left holding the slot: every attempt is recorded as failed, none in flight.
        page = await Raw(service).search(status=["pending", "active", "failed"], page_size=100)
        assert {a.status for a in page.items} == {AppointmentStatus.FAILED}
        sandbox.state.faults.clear()
        sandbox.state.rate_limiter.reset()
        booked = await Raw(later).book(**booking_args(start))  # `service` itself waits out the 30 s it was told
        assert booked.status is AppointmentStatus.ACTIVE


async def test_through_tools_a_naturally_rate_limited_burst_gets_no_500_and_no_false_taken(service, sandbox):
    """Cal.com's own limiter (20 a minute here), 30 callers at once on one slot through real HTTP, 4 rounds."""
    slots = await _slots(service, 4)
    sandbox.state.rate_limiter.limit = 20
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=60) as client:
        for round_, start in enumerate(slots):
            sandbox.state.rate_limiter.reset()
            calls = [
                client.post("/tools/book_appointment", json=booking_args(start, **_caller(i, f"n{round_}.")))
                for i in range(30)
            ]
            answers = await asyncio.gather(*calls)
            statuses = [a.status_code for a in answers]
            assert all(s < 500 for s in statuses), statuses
            at = datetime.fromisoformat(start)
            live = [b for b in sandbox.state.bookings.values() if b.status in LIVE and b.start == at]
            assert len(live) <= 1 and statuses.count(200) == len(live)
            for answer in answers:
                if answer.status_code == 200:
                    continue
                error = answer.json()["error"]
                if error["code"] == "calcom_rate_limited":
                    assert answer.status_code == 429 and error["retryable"] and error["retry_after_seconds"] >= 1
                    assert "hold on" in error["say"]
                else:
                    assert live or "taken" not in error["say"], f"told taken, Cal.com holds nothing then: {error}"
