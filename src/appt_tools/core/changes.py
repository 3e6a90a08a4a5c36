"""Changing an appointment: reschedule and cancel (in Cal.com, then in the store) and corrections to our
own record. Each reads top to bottom: find it, check it can still change, ask Cal.com, record the outcome.

An unknown outcome (Cal.com's answer lost) leaves the appointment as it was with `last_error` saying so;
a retry first looks in Cal.com for what the lost call did.

Changes to one appointment run one at a time, across every process sharing the database (`core.idempotency.changing`: a
per-appointment lease in the store). Each change reads the appointment again once it holds the lease, so a
cancel that waited for a reschedule cancels the new booking, and a reschedule that waited for a cancel hears
that it is cancelled. Reconciliation, and the host's confirm and decline, take the same lease.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from appt_tools import validation
from appt_tools.core import questions
from appt_tools.core.booking import record_unknown
from appt_tools.core.idempotency import changing
from appt_tools.core.parts import Parts, UseCase
from appt_tools.core.records import booking_fields, history_entry
from appt_tools.core.requests import Cancellation, Edit, Move
from appt_tools.errors import (
    CalcomAlreadyCancelled,
    CalcomError,
    CalcomRejected,
    CalcomSlotTaken,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    NotFound,
)
from appt_tools.models import AnswerValue, Appointment, AppointmentStatus, Booking

DEFAULT_CANCEL_REASON = "Cancelled at the caller's request."
# Cal.com moves of one booking that a cancel follows through `rescheduledToUid` before giving up.
_MAX_MOVES_FOLLOWED = 5


class Changes(UseCase):
    def __init__(self, parts: Parts, timezone: Callable[[], str]) -> None:
        super().__init__(parts)
        self._timezone = timezone

    async def get(self, appointment_id: str) -> Appointment:
        """By appointment id, or by any Cal.com booking uid it has had."""
        key = (appointment_id or "").strip()
        if not key or len(key) > 100:
            raise InvalidArgument(
                "appointment_id",
                "must be an appointment id or booking uid of at most 100 characters; e.g. 'apt_3kq9x2mz7w1b'.",
            )
        found = await self._store.get_appointment(key) or await self._store.get_by_booking_uid(key)
        if found is None:
            raise NotFound(
                f"No appointment has id {key!r}. Use search_appointments to find it by name, e-mail or phone.",
                code="appointment_not_found",
            )
        return found

    # --- reschedule -------------------------------------------------------------------------

    async def reschedule(self, move: Move) -> Appointment:
        appointment = await self.get(move.appointment_id)
        when = move.new_start.astimezone(UTC)
        validation.in_future("new_start", when, self._clock(), tz_name=move.timezone or self._timezone())

        # Checked before anything is written; Cal.com keeps the first booking's answers on a move (the
        # reschedule body has no `bookingFieldsResponses`), so new ones are our record's alone.
        event_type = await self._catalog.pick(appointment.event_type_id)
        answers = questions.check(event_type, move.answers, kept=appointment.answers)

        async def work(scoped: object) -> Appointment:
            async with changing(self._store, appointment.id, self._clock) as current:
                # Another change may have finished while this one waited: act on what it left.
                moved = await self._reschedule(current or await self.get(appointment.id), when, move.reason)
                return await self._record_answers(moved, answers)

        payload = {
            "appointment_id": appointment.id,
            "new_start": when.isoformat(),
            "reason": move.reason,
            "answers": answers,
        }
        return await self._keys.run("reschedule", move.idempotency_key, payload, work=work, resume=work)

    async def _record_answers(self, appointment: Appointment, answers: dict[str, AnswerValue]) -> Appointment:
        if answers == appointment.answers:
            return appointment
        changed = ", ".join(
            sorted(
                k for k in answers.keys() | appointment.answers.keys() if answers.get(k) != appointment.answers.get(k)
            )
        )
        return await self._store.update_appointment(
            appointment.id,
            {"answers": answers},
            now=self._clock(),
            history=history_entry(self._clock(), "updated", f"Answers changed: {changed}."),
        )

    async def _reschedule(self, appointment: Appointment, when: datetime, why: str | None) -> Appointment:
        uid = self._ensure_live(appointment, "reschedule")
        if appointment.last_error:
            # An earlier attempt's answer was lost: it may have moved the booking already.
            moved = await self._find_rescheduled(uid)
            if moved is not None:
                if moved.start == when:
                    return await self._record_moved(appointment, moved, why)
                earlier = "Moved by an earlier attempt whose answer was lost."
                appointment = await self._record_moved(appointment, moved, earlier)
                uid = moved.uid
        if when == appointment.start:
            raise InvalidArgument("new_start", "the appointment is already at that time; choose a different one.")
        event_type = await self._catalog.pick(appointment.event_type_id)
        length = int((appointment.end - appointment.start).total_seconds() // 60)
        # Cal.com decides whether `when` is free as it moves the booking (one round trip); alternatives are
        # looked up only if it refuses. Another caller's hold is ours to enforce (Cal.com's API does not).
        await self._slots.ensure_not_held(event_type, when, length)
        for _ in range(_MAX_MOVES_FOLLOWED + 1):
            try:
                booking = await self._calcom().reschedule_booking(uid, when, reason=why)
                break
            except CalcomAlreadyCancelled:
                # Cancelled in Cal.com meanwhile, or moved there (NOTES §12.1): record what Cal.com holds.
                live = await self._moved_to(uid)
                if live is None:
                    await self._record_cancelled_in_calcom(appointment, uid)
                    raise Conflict(
                        "It was cancelled in Cal.com, so it cannot be rescheduled. Book a new one instead.",
                        code="not_reschedulable",
                    ) from None
                appointment = await self._record_moved(appointment, live, "Moved in Cal.com; found when rescheduling.")
                if live.start == when:
                    return appointment
                uid = live.uid
            except CalcomSlotTaken as exc:
                raise await self._slots.refused(event_type, when, length, cause=exc, rescheduling=uid) from exc
            except CalcomUnavailable as exc:
                moved = await self._find_rescheduled(uid)
                if moved is None:
                    await record_unknown(self._store, appointment, exc, self._clock())
                    raise CalcomUnavailable(
                        "The calendar did not confirm the new time, so the appointment may still be at the old time. "
                        "Do not try again yet; check it with get_appointment in a minute.",
                        status=exc.status,
                        retryable=False,
                        outcome_unknown=True,
                    ) from exc
                booking = moved
                break
        else:
            raise CalcomRejected(
                f"Cal.com moved this booking more than {_MAX_MOVES_FOLLOWED} times, so it was not rescheduled here. "
                f"Move booking {uid} in Cal.com itself; the appointment follows on the next sync."
            )
        return await self._record_moved(appointment, booking, why)

    async def _record_cancelled_in_calcom(self, appointment: Appointment, uid: str) -> None:
        reason = "Cancelled in Cal.com; found when rescheduling."
        await self._record_cancelled(appointment, uid, reason, reason)

    async def _record_cancelled(self, appointment: Appointment, uid: str, reason: str, detail: str) -> Appointment:
        """Cal.com's booking `uid` is cancelled: so is the appointment, `reason` kept, `detail` in its history."""
        try:
            return await self._store.update_appointment(
                appointment.id,
                {"status": AppointmentStatus.CANCELLED, "cancellation_reason": reason, "last_error": None},
                now=self._clock(),
                history=history_entry(self._clock(), "cancelled", detail, from_uid=uid),
            )
        finally:
            self._slots.changed()  # after our write: telling the other instances is a write too

    async def _record_moved(self, appointment: Appointment, booking: Booking, why: str | None) -> Appointment:
        try:
            return await self._store.update_appointment(
                appointment.id,
                booking_fields(booking, moved=True),
                now=self._clock(),
                history=history_entry(
                    self._clock(),
                    "rescheduled",
                    why or "Rescheduled.",
                    from_start=appointment.start,
                    to_start=booking.start,
                    from_uid=appointment.booking_uid,
                    to_uid=booking.uid,
                ),
            )
        finally:
            self._slots.changed()  # after our write: telling the other instances is a write too

    async def _moved_to(self, uid: str) -> Booking | None:
        """The booking a cancelled `uid` was moved to in Cal.com, or None if it was simply cancelled.
        Errors are raised: without the answer, a live booking could be left behind."""
        old = await self._calcom().get_booking(uid)
        if old.rescheduled_to_uid is None:
            return None
        return await self._calcom().get_booking(old.rescheduled_to_uid)

    async def _find_rescheduled(self, old_uid: str) -> Booking | None:
        try:
            old = await self._calcom().get_booking(old_uid)
            return await self._calcom().get_booking(old.rescheduled_to_uid) if old.rescheduled_to_uid else None
        except CalcomError:
            return None

    # --- cancel -----------------------------------------------------------------------------

    async def cancel(self, cancellation: Cancellation) -> Appointment:
        appointment = await self.get(cancellation.appointment_id)
        why = cancellation.reason or DEFAULT_CANCEL_REASON

        async def work(scoped: object) -> Appointment:
            async with changing(self._store, appointment.id, self._clock) as current:
                # Another change may have finished while this one waited: act on what it left.
                return await self._cancel(current or await self.get(appointment.id), why)

        payload = {"appointment_id": appointment.id, "reason": why}
        return await self._keys.run("cancel", cancellation.idempotency_key, payload, work=work, resume=work)

    async def _cancel(self, appointment: Appointment, why: str) -> Appointment:
        """Cancel the booking in Cal.com, then in the store. Cal.com may have it cancelled already (NOTES
        §12.1): cancelled there, that is done; moved there (the old uid is cancelled, `rescheduledToUid` is
        the live booking), the move is recorded and the live booking is what gets cancelled."""
        uid = self._ensure_live(appointment, "cancel")
        for _ in range(_MAX_MOVES_FOLLOWED + 1):
            try:
                await self._calcom().cancel_booking(uid, why)
                detail = why
                break
            except CalcomAlreadyCancelled:
                live = await self._moved_to(uid)
                if live is None:
                    detail = f"{why} (Cal.com already had it cancelled.)"
                    break
                appointment = await self._record_moved(appointment, live, "Moved in Cal.com; found when cancelling.")
                uid = live.uid
            except CalcomUnavailable as exc:
                if not exc.outcome_unknown:
                    raise
                await record_unknown(self._store, appointment, exc, self._clock())
                raise CalcomUnavailable(
                    "The calendar did not confirm the cancellation, so it may or may not be cancelled yet. Do not "
                    "tell the caller it is cancelled: check it with get_appointment in a minute.",
                    status=exc.status,
                    retryable=False,
                    outcome_unknown=True,
                ) from exc
        else:
            raise CalcomRejected(
                f"Cal.com moved this booking more than {_MAX_MOVES_FOLLOWED} times, so it was not cancelled here. "
                f"Cancel booking {uid} in Cal.com itself; the appointment follows on the next sync."
            )
        return await self._record_cancelled(appointment, uid, why, detail)

    # --- our own fields ---------------------------------------------------------------------

    async def update(self, appointment_id: str, edit: Edit) -> Appointment:
        """Correct our record's own fields (Cal.com is not re-notified). The surfaces refuse the locked
        fields (to/from numbers, call type, booking uid): an `Edit` cannot carry them."""
        given = edit.given()
        if not given:
            fields = ", ".join(vars(edit))
            raise InvalidArgument("changes", f"nothing to update; pass at least one of {fields}.")
        appointment = await self.get(appointment_id)
        changed = {k: v for k, v in given.items() if getattr(appointment, k) != v}
        if not changed:
            return appointment
        detail = "; ".join(f"{k}: {getattr(appointment, k)!r} → {v!r}" for k, v in changed.items())
        return await self._store.update_appointment(
            appointment.id, changed, now=self._clock(), history=history_entry(self._clock(), "updated", detail)
        )

    def _ensure_live(self, appointment: Appointment, action: str) -> str:
        """The booking uid of an appointment that can still be changed, or a Conflict saying why not."""
        status = appointment.effective_status(self._clock())
        if status is AppointmentStatus.CANCELLED:
            if action == "cancel":
                raise Conflict("It is already cancelled; nothing to do.", code="already_cancelled")
            raise Conflict(
                "It was cancelled, and a cancelled appointment cannot be rescheduled. Book a new one instead.",
                code="not_reschedulable",
            )
        if status is AppointmentStatus.FAILED:
            raise Conflict(
                "It was never booked in Cal.com (the booking failed), so it cannot be changed.",
                code="not_booked",
            )
        if status is AppointmentStatus.COMPLETED:
            raise Conflict("It has already taken place, so it cannot be changed.", code="already_ended")
        if appointment.booking_uid is None:
            raise Conflict(
                "Its booking is not confirmed by Cal.com yet; try again in a minute.",
                code="not_confirmed",
                retryable=True,
            )
        return appointment.booking_uid
