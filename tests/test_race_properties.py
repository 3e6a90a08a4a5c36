"""A Hypothesis state machine against the sandbox: book (with identical repeats at once), reschedule,
cancel (alone or racing each other) and reconcile, interleaved with Cal.com faults (a 429, a 503 before
acting, an answer lost after acting). After every step, and after a final reconcile, the store and Cal.com
must agree, no booking may be doubled, and no caller may have been told something untrue (issue 13, 9).

Bounded to run in seconds: a handful of examples of a few steps each. Under CI the profile is
derandomized (conftest.py), so a run is repeatable."""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from appt_tools.core.reconcile import Reconciler
from appt_tools.core.service import AppointmentService
from appt_tools.errors import AppError, CalcomRateLimited, CalcomUnavailable, Conflict, SlotUnavailable
from appt_tools.models import Appointment, AppointmentStatus
from appt_tools.runtime import CalcomTarget, open_service
from calcom_sandbox import RunningSandbox, SandboxState, run_sandbox
from calcom_sandbox.faults import Fault
from helpers import BUSINESS_ENV, HOST_TZ, Raw, booking_args, next_weekday

LIVE = ("accepted", "pending")
# Different callers: their own e-mail and number (a repeat is recognised by the caller's numbers).
PEOPLE = (
    {"attendee_email": "ana@example.com", "from_number": "+14155550101"},
    {"attendee_email": "bo@example.com", "from_number": "+14155550102"},
    {"attendee_email": "cy@example.com", "from_number": "+14155550103"},
)
FAULTS = {
    "none": None,
    "rate_limited": Fault("rate_limit", "POST /v2/bookings", seconds=1),
    "down": Fault("status", "POST /v2/bookings", status=503, times=None),
    "answer_lost": Fault("drop", "POST /v2/bookings", phase="after"),
}
MOVE_FAULTS = {
    "none": None,
    "down": Fault("status", "POST /v2/bookings/{uid}/reschedule", status=503, times=None),
    "answer_lost": Fault("drop", "POST /v2/bookings/{uid}/reschedule", phase="after"),
}


class Races(RuleBasedStateMachine):
    appointments = Bundle("appointments")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.folder = tempfile.TemporaryDirectory()
        self.sandbox, self.service = self.run(self._open())
        self.slots: list[str] = self.run(self._free_slots())
        self.told: list[str] = []  # what went wrong, for the final assertion's message

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    async def _open(self) -> tuple[RunningSandbox, AppointmentService]:
        state = SandboxState(host_time_zone=HOST_TZ, rate_limit=100_000)
        sandbox = await self.stack.enter_async_context(run_sandbox(state))
        env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
        target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
        url = f"sqlite+aiosqlite:///{Path(self.folder.name) / 'appt.db'}"
        service = await self.stack.enter_async_context(open_service(database_url=url, environ=env, calcom=target))
        return sandbox, service

    async def _free_slots(self) -> list[str]:
        found = await Raw(self.service).find_slots(day=next_weekday(3).isoformat())
        return [s.start.isoformat() for s in found.slots[:6]]

    def teardown(self) -> None:
        try:
            self.sandbox.state.faults.clear()
            self.run(self._reconcile())
            self.store_and_calcom_agree(settled_only=False)
        finally:
            self.run(self.stack.aclose())
            self.loop.close()
            self.folder.cleanup()

    # --- what Cal.com holds ------------------------------------------------------------------------

    def _calcom(self, uid: str) -> Any:
        return self.sandbox.state.bookings.get(uid)

    def _live_at(self, start: str) -> list[Any]:
        return [
            b
            for b in self.sandbox.state.bookings.values()
            if b.status in LIVE and b.start == datetime.fromisoformat(start)
        ]

    def _arm(self, fault: Fault | None) -> None:
        self.sandbox.state.faults.clear()
        if fault is not None:
            self.sandbox.state.faults.add(fault)

    # --- the rules ---------------------------------------------------------------------------------

    @rule(
        target=appointments,
        slot=st.integers(0, 5),
        who=st.integers(0, 2),
        repeats=st.integers(1, 3),
        fault=st.sampled_from(sorted(FAULTS)),
    )
    def book(self, slot: int, who: int, repeats: int, fault: str) -> Any:
        start, caller = self.slots[slot], PEOPLE[who]
        email = caller["attendee_email"]
        others_before = [b for b in self._live_at(start) if b.attendee.email != email]
        self._arm(FAULTS[fault])
        outcomes = self.run(
            _together(*(Raw(self.service).book(**booking_args(start, **caller)) for _ in range(repeats)))
        )
        self._arm(None)
        booked = [o for o in outcomes if isinstance(o, Appointment)]
        assert len({a.id for a in booked}) <= 1, f"identical repeats got different appointments: {booked}"
        for outcome in outcomes:
            self._truthful_booking_answer(outcome, start, email, others_before)
        return booked[0].id if booked else None

    def _truthful_booking_answer(self, outcome: object, start: str, email: str, others: list[Any]) -> None:
        if isinstance(outcome, Appointment):
            held = self._calcom(outcome.booking_uid or "")
            assert held is not None and held.status in LIVE, f"told booked, Cal.com holds {held}"
            return
        assert isinstance(outcome, AppError), f"not an answer but a crash (a 500): {outcome!r}"
        if isinstance(outcome, SlotUnavailable) and outcome.taken:
            rivals = [b for b in self._live_at(start) if b.attendee.email != email]
            assert rivals or others, "told 'just taken' although nobody else holds that time in Cal.com"
        elif isinstance(outcome, SlotUnavailable):
            assert self._live_at(start) or others, "told 'not available' for a time nobody holds"
        elif isinstance(outcome, CalcomRateLimited):
            assert outcome.retryable and outcome.retry_after is not None
        else:
            assert isinstance(outcome, CalcomUnavailable | Conflict), f"unexpected answer {outcome!r}"

    @rule(appointment=appointments, slot=st.integers(0, 5), fault=st.sampled_from(sorted(MOVE_FAULTS)))
    def reschedule(self, appointment: str | None, slot: int, fault: str) -> None:
        if appointment is None:
            return
        self._arm(MOVE_FAULTS[fault])
        outcome = self.run(_attempt(Raw(self.service).reschedule(appointment, self.slots[slot])))
        self._arm(None)
        if isinstance(outcome, Appointment):
            held = self._calcom(outcome.booking_uid or "")
            assert held is not None and held.status in LIVE and held.start == outcome.start
        else:
            assert isinstance(outcome, AppError), f"not an answer but a crash (a 500): {outcome!r}"

    @rule(appointment=consumes(appointments), also_move=st.booleans(), slot=st.integers(0, 5))
    def cancel(self, appointment: str | None, also_move: bool, slot: int) -> None:
        if appointment is None:
            return
        calls = [Raw(self.service).cancel(appointment)]
        if also_move:  # a reschedule racing the cancel of the same appointment
            calls.append(Raw(self.service).reschedule(appointment, self.slots[slot]))
        cancelled, *_ = self.run(_together(*calls))
        if isinstance(cancelled, Appointment):
            assert cancelled.status is AppointmentStatus.CANCELLED
            for uid in (cancelled.booking_uid, *cancelled.previous_booking_uids):
                held = self._calcom(uid or "")
                assert held is None or held.status not in LIVE, f"told cancelled, Cal.com holds {uid} {held.status}"
        else:
            assert isinstance(cancelled, AppError), f"not an answer but a crash (a 500): {cancelled!r}"

    @rule()
    def reconcile(self) -> None:
        self.run(self._reconcile())
        self.store_and_calcom_agree(settled_only=False)

    async def _reconcile(self) -> None:
        now = self.service.now()
        await Reconciler.of(self.service, grace=timedelta(0)).reconcile(
            now - timedelta(days=1), now + timedelta(days=30)
        )

    # --- after every step ----------------------------------------------------------------------------

    @invariant()
    def store_and_calcom_agree_now(self) -> None:
        self.store_and_calcom_agree(settled_only=True)

    def store_and_calcom_agree(self, *, settled_only: bool) -> None:
        """Every settled appointment matches its Cal.com booking, and every live Cal.com booking belongs to
        exactly one appointment. `settled_only`: leave out appointments whose last answer was lost."""
        page = self.run(
            Raw(self.service).search(status=["pending", "active", "rescheduled", "cancelled", "failed"], page_size=100)
        )
        owners: dict[str, str] = {}
        unsettled = False
        for appointment in page.items:
            if appointment.last_error and appointment.status is AppointmentStatus.PENDING:
                assert settled_only, f"reconcile left {appointment.id} unresolved: {appointment.last_error}"
                unsettled = True
                continue
            if appointment.booking_uid is None:
                continue
            owners[appointment.booking_uid] = appointment.id
            held = self._calcom(appointment.booking_uid)
            assert held is not None, f"{appointment.id}: booking {appointment.booking_uid} unknown to Cal.com"
            if appointment.status is AppointmentStatus.CANCELLED:
                assert held.status not in LIVE, f"{appointment.id} says cancelled, Cal.com holds it {held.status}"
            elif appointment.last_error is None:
                assert held.status in LIVE, f"{appointment.id} says {appointment.status}, Cal.com {held.status}"
                assert held.start == appointment.start
        if unsettled:
            return
        for booking in self.sandbox.state.bookings.values():
            if booking.status in LIVE:
                assert booking.uid in owners, f"Cal.com booking {booking.uid} belongs to no appointment (doubled?)"


async def _together(*calls: Any) -> list[object]:
    """Run `calls` at once on this loop; each one's answer, or the exception it raised."""
    return list(await asyncio.gather(*(_attempt(call) for call in calls)))


async def _attempt(call: Any) -> object:
    try:
        return await call
    except Exception as exc:  # an AppError is an answer; anything else is reported as the crash it is
        return exc


Races.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_races_tell_the_truth = Races.TestCase
