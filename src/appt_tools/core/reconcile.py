"""Keep the store and Cal.com in agreement: reconcile a window, or one appointment on a webhook's word.

Cal.com is the authority on bookings. Each repair writes a history entry ("synced") saying what
changed and why. A webhook is treated as a hint: the appointment it names is re-read from Cal.com,
so redelivered or out-of-order webhooks converge on the same, true state.

Each appointment is checked while holding its change lease (`core.idempotency.changing`), so a repair never
interleaves with a reschedule or cancel of the same appointment. Besides live and unresolved appointments,
a run re-checks those cancelled in the last `RECENTLY_CANCELLED`: a cancel that lost a race (or was
answered "already cancelled" for a booking that lived on under another uid) leaves a record saying
cancelled while Cal.com holds a live booking. Such a record is repaired as its history shows was meant:
cancelled there if a caller cancelled it, else recorded live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from appt_tools.calcom import CalcomClient
from appt_tools.core.idempotency import changing
from appt_tools.core.records import booked_status, booking_fields, history_entry
from appt_tools.core.service import AppointmentService

if TYPE_CHECKING:
    from appt_tools.store import Store
from appt_tools.errors import CalcomAlreadyCancelled, CalcomError, CalcomNotFound, Conflict
from appt_tools.models import Appointment, AppointmentStatus, Booking, SearchQuery

logger = logging.getLogger(__name__)
# What the periodic run looks at: recent past (late cancellations, unknown outcomes) and the future.
PERIODIC_BACK = timedelta(days=2)
PERIODIC_AHEAD = timedelta(days=90)
RECONCILE_LEASE = "reconcile"

# An appointment recorded but not answered for this long belongs to a call that died or timed out.
IN_FLIGHT_GRACE = timedelta(minutes=2)
LIVE = (AppointmentStatus.PENDING, AppointmentStatus.ACTIVE, AppointmentStatus.RESCHEDULED)
MAX_RESCHEDULE_CHAIN = 20
# How far back a cancellation is re-checked against Cal.com. A wrong "cancelled" is made at the moment of
# the cancel, and the periodic run comes every few minutes: a day covers many runs, and a server that was
# down overnight, while each run reads only a day's cancellations, not the whole history.
RECENTLY_CANCELLED = timedelta(days=1)
# How long a check waits for a change in flight on the same appointment before leaving it to the next run.
CHANGE_WAIT_SECONDS = 5.0
WEBHOOK_TRIGGERS = (
    "BOOKING_CREATED",
    "BOOKING_REQUESTED",
    "BOOKING_RESCHEDULED",
    "BOOKING_CANCELLED",
    "BOOKING_REJECTED",
)


@dataclass
class SyncReport:
    checked: int = 0
    repaired: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


class Reconciler:
    """Compares the store with Cal.com and repairs the store. Its collaborators are explicit: the store,
    the Cal.com client, a clock, and `changed`, called whenever a repair changes the calendar (the
    service drops its cached slots). State for one run (Cal.com's bookings fetched in bulk) lives in
    that run's `_Run`, so one Reconciler can serve runs one after another, or at once."""

    def __init__(
        self,
        store: Store,
        calcom: CalcomClient,
        *,
        clock: Callable[[], datetime],
        changed: Callable[[], None] = lambda: None,
        grace: timedelta = IN_FLIGHT_GRACE,
    ) -> None:
        self.store = store
        self.calcom = calcom
        self.clock = clock
        self.changed = changed
        self.grace = grace

    @classmethod
    def of(cls, service: AppointmentService, *, grace: timedelta = IN_FLIGHT_GRACE) -> Reconciler:
        """A reconciler on a service's store, Cal.com client and clock."""
        return cls(service.store, service.calcom, clock=service.now, changed=service.slots_changed, grace=grace)

    async def reconcile(self, start: datetime, end: datetime) -> SyncReport:
        """Compare every live or unresolved appointment starting in [start, end) with Cal.com, and repair."""
        window = (start - timedelta(days=1), end + timedelta(days=1))
        run = _Run(self, await self._bookings_between(*window), window)
        page = 1
        while True:
            found = await self.store.search(
                SearchQuery(statuses=LIVE, start_from=start, start_to=end, page=page, page_size=100),
                now=self.clock(),
            )
            for appointment in found.items:
                await run.check(appointment)
            if page * 100 >= found.total:
                break
            page += 1
        since = self.clock() - RECENTLY_CANCELLED
        for appointment in await self.store.recently_cancelled(since=since, start_from=start, start_to=end):
            await run.check(appointment)
        return run.report

    async def _bookings_between(self, start: datetime, end: datetime) -> dict[str, Booking]:
        """Every Cal.com booking in a window, a page of 250 per request (the fewest requests the API allows)."""
        known: dict[str, Booking] = {}
        skip = 0
        while True:
            page = await self.calcom.list_bookings(
                after_start=start,
                before_end=end,
                status=("upcoming", "past", "cancelled", "unconfirmed"),
                take=250,
                skip=skip,
            )
            known.update((b.uid, b) for b in page.bookings)
            skip += len(page.bookings)
            if not page.bookings or skip >= page.total:
                return known

    async def reconcile_one(self, appointment: Appointment) -> SyncReport:
        run = _Run(self, {}, None)
        await run.check(appointment)
        return run.report

    async def apply_webhook(self, body: Mapping[str, object]) -> SyncReport:
        """Handle a Cal.com webhook: find the appointment it is about and re-read its truth from Cal.com."""
        payload = body.get("payload")
        if body.get("triggerEvent") not in WEBHOOK_TRIGGERS or not isinstance(payload, Mapping):
            return SyncReport()
        appointment = None
        for key in ("uid", "rescheduleUid"):
            uid = payload.get(key)
            if isinstance(uid, str) and uid:
                appointment = await self.store.get_by_booking_uid(uid)
                if appointment is not None:
                    break
        metadata = payload.get("metadata")
        if appointment is None and isinstance(metadata, Mapping):
            ours = metadata.get("appointment_id")
            appointment = await self.store.get_appointment(ours) if isinstance(ours, str) else None
        if appointment is None:
            return SyncReport()  # not a booking made through us
        return await self.reconcile_one(appointment)


class _Run:
    """One reconciliation: what it has fetched from Cal.com, and what it found and repaired."""

    def __init__(self, owner: Reconciler, known: dict[str, Booking], window: tuple[datetime, datetime] | None) -> None:
        self.store = owner.store
        self.calcom = owner.calcom
        self.clock = owner.clock
        self.changed = owner.changed
        self.grace = owner.grace
        self._known = known  # Cal.com's bookings fetched in bulk for this run
        self._window = window  # ...and the span they cover
        self.report = SyncReport()

    async def _booking(self, uid: str) -> Booking:
        return self._known.get(uid) or await self.calcom.get_booking(uid)

    async def _reload(self, appointment_id: str) -> Appointment:
        found = await self.store.get_appointment(appointment_id)
        assert found is not None  # appointments are never deleted
        return found

    async def check(self, appointment: Appointment) -> None:
        self.report.checked += 1
        try:
            async with changing(self.store, appointment.id, self.clock, wait=CHANGE_WAIT_SECONDS):
                appointment = await self._reload(appointment.id)  # as the last change left it
                if appointment.booking_uid is None:
                    await self._resolve_unknown(appointment)
                elif appointment.status is AppointmentStatus.CANCELLED:
                    await self._recheck_cancelled(appointment, appointment.booking_uid)
                else:
                    await self._compare(appointment, appointment.booking_uid)
        except Conflict:
            self.report.unresolved.append(f"{appointment.id}: a change to it was in progress; checked next time")
        except CalcomError as exc:
            self.report.unresolved.append(f"{appointment.id}: Cal.com did not answer ({exc.code}); try again later")

    async def _recheck_cancelled(self, appointment: Appointment, uid: str) -> None:
        """Cancelled here: is its booking (or the one it was moved to) still live in Cal.com?"""
        try:
            booking = await self._booking(uid)
        except CalcomNotFound:
            return  # gone there too: we agree
        hops = 0
        while booking.status == "cancelled" and booking.rescheduled_to_uid and hops < MAX_RESCHEDULE_CHAIN:
            booking = await self._booking(booking.rescheduled_to_uid)
            hops += 1
        if booking.status not in ("accepted", "pending"):
            return
        moved = booking.uid != uid
        if await self._caller_cancelled(appointment.id):
            # A caller cancelled it and was told so: finish that cancel in Cal.com.
            reason = appointment.cancellation_reason or "Cancelled at the caller's request."
            with suppress(CalcomAlreadyCancelled):
                await self.calcom.cancel_booking(booking.uid, reason)
            changes: dict[str, object] = {"booking_uid": booking.uid, "status": AppointmentStatus.CANCELLED}
            changes.update(last_error=None, start=booking.start, end=booking.end)
            detail = (
                f"Reconciled: the cancel had missed booking {booking.uid}, which Cal.com still held "
                f"{booking.status}; cancelled it there."
            )
            await self._write(appointment, changes, "cancelled", detail, from_uid=uid, to_uid=booking.uid)
            self.report.repaired.append(f"{appointment.id}: live in Cal.com as {booking.uid} → cancelled there")
            return
        changes = booking_fields(booking, moved=moved)
        changes["cancellation_reason"] = None
        detail = f"Reconciled: Cal.com holds booking {booking.uid} {booking.status}; the record said cancelled."
        await self._write(appointment, changes, "synced", detail, from_uid=uid, to_uid=booking.uid)
        self.report.repaired.append(f"{appointment.id}: live in Cal.com as {booking.uid} → {changes['status']}")

    async def _caller_cancelled(self, appointment_id: str) -> bool:
        """Whether a caller cancelled it (rather than reconciliation recording a cancel it found in Cal.com)."""
        return any(
            entry.action == "cancelled" and not entry.detail.startswith("Reconciled")
            for entry in await self.store.history(appointment_id)
        )

    async def _resolve_unknown(self, appointment: Appointment) -> None:
        """Recorded, but Cal.com's answer never came: find the booking, or conclude it was never made."""
        if appointment.status is not AppointmentStatus.PENDING:
            return
        if not appointment.last_error and appointment.created_at > self.clock() - self.grace:
            return  # a call is probably still making it
        if self._window is not None and self._window[0] <= appointment.start < self._window[1]:
            candidates = list(self._known.values())
        else:
            page = await self.calcom.list_bookings(
                attendee_email=appointment.attendee_email,
                attendee_name=None if appointment.attendee_email else appointment.attendee_name,
                event_type_id=appointment.event_type_id,
                after_start=appointment.start,
                before_end=appointment.start + timedelta(days=1),
                take=50,
            )
            candidates = list(page.bookings)
        booking = next(
            (
                b
                for b in candidates
                if b.start == appointment.start
                and b.status in ("accepted", "pending")
                and (
                    (b.attendee_email or "").lower() == appointment.attendee_email.lower()
                    if appointment.attendee_email
                    else b.attendee_name == appointment.attendee_name  # Cal.com keeps a placeholder address
                )
            ),
            None,
        )
        if booking is None:
            reason = "Reconciled: Cal.com has no such booking, so it was never made."
            await self._write(appointment, {"status": AppointmentStatus.FAILED, "last_error": reason}, "failed", reason)
            self.report.repaired.append(f"{appointment.id}: never booked in Cal.com → failed")
            return
        owner = await self.store.get_by_booking_uid(booking.uid)
        if owner is not None and owner.id != appointment.id:
            # The booking found is another record's (the same request, recorded twice): this one made none.
            reason = f"Reconciled: same request as {owner.id}, which holds Cal.com booking {booking.uid}."
            await self._write(appointment, {"status": AppointmentStatus.FAILED, "last_error": reason}, "failed", reason)
            self.report.repaired.append(f"{appointment.id}: a second record of {owner.id} → failed")
            return
        await self._write(
            appointment,
            booking_fields(booking),
            "synced",
            f"Reconciled: found in Cal.com (status {booking.status}); the answer had been lost.",
            to_uid=booking.uid,
        )
        self.report.repaired.append(
            f"{appointment.id}: found in Cal.com as {booking.uid} → {booked_status(booking).value}"
        )

    async def _compare(self, appointment: Appointment, uid: str) -> None:
        try:
            booking = await self._booking(uid)
        except CalcomNotFound:
            reason = "Reconciled: the booking no longer exists in Cal.com."
            await self._write(
                appointment, {"status": AppointmentStatus.CANCELLED, "cancellation_reason": reason}, "cancelled", reason
            )
            self.report.repaired.append(f"{appointment.id}: gone from Cal.com → cancelled")
            return
        hops = 0
        while booking.status == "cancelled" and booking.rescheduled_to_uid and hops < MAX_RESCHEDULE_CHAIN:
            booking = await self._booking(booking.rescheduled_to_uid)
            hops += 1
        if booking.uid != uid:
            changes = booking_fields(booking, moved=True)
            detail = f"Reconciled: rescheduled in Cal.com to a new booking ({hops} move(s))."
            await self._write(
                appointment, changes, "rescheduled", detail, from_uid=uid, to_uid=booking.uid, moved=booking
            )
            self.report.repaired.append(f"{appointment.id}: rescheduled in Cal.com {uid} → {booking.uid}")
            appointment = await self._reload(appointment.id)
        if booking.status in ("cancelled", "rejected"):
            if appointment.status is not AppointmentStatus.CANCELLED:
                reason = booking.cancellation_reason or f"{booking.status.capitalize()} in Cal.com."
                detail = f"Reconciled: {booking.status} in Cal.com ({reason})."
                changes = {"status": AppointmentStatus.CANCELLED, "cancellation_reason": reason, "last_error": None}
                await self._write(appointment, changes, "cancelled", detail)
                self.report.repaired.append(f"{appointment.id}: {booking.status} in Cal.com → cancelled")
            return
        wanted = booked_status(booking, moved=appointment.status is AppointmentStatus.RESCHEDULED)
        fields = booking_fields(booking)
        fields.pop("status")
        changes = {k: v for k, v in fields.items() if getattr(appointment, k) != v}
        if appointment.status is not wanted:
            changes["status"] = wanted
        if changes:
            detail = "Reconciled with Cal.com: " + ", ".join(sorted(changes)) + " changed."
            await self._write(appointment, changes, "synced", detail)
            self.report.repaired.append(f"{appointment.id}: {', '.join(sorted(changes))} updated from Cal.com")

    async def _write(
        self,
        appointment: Appointment,
        changes: Mapping[str, object],
        action: str,
        detail: str,
        *,
        from_uid: str | None = None,
        to_uid: str | None = None,
        moved: Booking | None = None,
    ) -> None:
        entry = history_entry(
            self.clock(),
            action,
            detail,
            from_start=appointment.start if moved else None,
            to_start=moved.start if moved else None,
            from_uid=from_uid,
            to_uid=to_uid,
        )
        self.changed()
        await self.store.update_appointment(appointment.id, changes, now=self.clock(), history=entry)


async def settled(service: AppointmentService, appointment: Appointment) -> Appointment:
    """The appointment as Cal.com has it, when the outcome of its last change is unknown (a lost answer:
    `last_error` set on a live appointment): re-read from Cal.com first, so a caller asking "is it
    cancelled?" is not told the state from before the lost change. One Cal.com request, only then; if
    Cal.com does not answer, the stored state (with its `last_error`) is what there is."""
    if not appointment.last_error or appointment.status not in LIVE or not service.calcom_configured:
        return appointment
    await Reconciler.of(service).reconcile_one(appointment)
    return await service.get(appointment.id)


@asynccontextmanager
async def reconciling(service: AppointmentService, every_minutes: float) -> AsyncIterator[None]:
    """Reconcile in the background every `every_minutes` while the server runs (0: never). The first run
    waits a full interval, so starting the server costs no Cal.com request. Of several servers sharing
    the database, one at a time does it (a lease in the store, taken over when its holder stops)."""
    if every_minutes <= 0 or service.settings.calcom_api_key is None:
        yield
        return

    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    interval = timedelta(minutes=every_minutes)

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval.total_seconds())
            now = service.now()
            try:
                # Several servers on one database: the one holding the lease reconciles, the others skip.
                if not await service.store.take_lease(RECONCILE_LEASE, holder, now=now, ttl=interval):
                    continue
                report = await Reconciler.of(service).reconcile(now - PERIODIC_BACK, now + PERIODIC_AHEAD)
            except Exception:  # the server must outlive a failed run; the next one tries again
                logger.exception("periodic reconciliation failed")
                continue
            if report.repaired or report.unresolved:
                logger.warning("reconciled: %d repaired, %d unresolved", len(report.repaired), len(report.unresolved))

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
