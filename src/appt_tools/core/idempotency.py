"""Idempotency keys: a repeated call with the same key gets the first call's result, never a second booking.

A key is claimed in the store (atomically, across processes) before any work. A repeat waits while the
first call is in flight, replays its outcome once done, and, after an unknown outcome (the first call's
Cal.com answer was lost), resumes: the `resume` it is given looks in Cal.com before acting again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from time import monotonic
from typing import TYPE_CHECKING

from appt_tools.errors import AppError, CalcomUnavailable, Conflict, InvalidArgument, from_record, to_record
from appt_tools.models import Appointment, AppointmentStatus

if TYPE_CHECKING:  # the store (and SQLAlchemy) is imported when one is opened, not to list the tools
    from appt_tools.store import Store

# How long a call waits for another one doing the same booking (same key, or same slot in flight).
PEER_WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05
# A claimed key untouched this long belongs to a call that died (a crash): it is taken over.
KEY_STALE_AFTER = timedelta(minutes=2)


class IdempotentCalls:
    def __init__(
        self, store: Store, clock: Callable[[], datetime], *, load: Callable[[str], Awaitable[Appointment]]
    ) -> None:
        self._store = store
        self._clock = clock
        self._load = load

    async def run(
        self,
        tool: str,
        key: str | None,
        payload: Mapping[str, object],
        *,
        work: Callable[[str | None], Awaitable[Appointment]],
        resume: Callable[[Appointment], Awaitable[Appointment]],
    ) -> Appointment:
        """Run `work` once per idempotency key. A repeat gets the first call's result (waiting while it is
        in flight); after an unknown outcome the repeat `resume`s, which looks in Cal.com before acting."""
        if key is None:
            return await work(None)
        scoped = f"{tool}:{key}"
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        deadline = monotonic() + PEER_WAIT_SECONDS
        while True:
            claim = await self._store.claim_key(scoped, digest, now=self._clock(), stale_after=KEY_STALE_AFTER)
            if claim.record.request_hash != digest:
                raise InvalidArgument(
                    "idempotency_key", "was already used for a different request; use a new key for each new request."
                )
            if claim.mine:
                break
            if claim.record.done:
                return await self._replay(claim.record.error, claim.record.appointment_id)
            if monotonic() >= deadline:
                raise Conflict(
                    "The same request is still being processed; try again in a moment.",
                    code="in_progress",
                    retryable=True,
                )
            await asyncio.sleep(POLL_SECONDS)
        try:
            linked = claim.record.appointment_id
            existing = await self._store.get_appointment(linked) if linked else None
            if existing is not None and existing.status is AppointmentStatus.FAILED:
                existing = None  # that attempt definitely booked nothing: try afresh
            appointment = await (resume(existing) if existing is not None else work(scoped))
        except CalcomUnavailable:
            await self._store.release_key(scoped)  # the outcome is unknown: a repeat resumes and looks first
            raise
        except AppError as exc:
            await self._store.finish_key(scoped, now=self._clock(), error=to_record(exc))
            raise
        await self._store.finish_key(scoped, now=self._clock(), appointment_id=appointment.id)
        return appointment

    async def _replay(self, error: Mapping[str, object] | None, appointment_id: str | None) -> Appointment:
        if error is not None:
            raise from_record(error)  # exactly the first answer: its kind, message and alternatives
        if appointment_id is None:
            raise Conflict("The first call with this key did not finish; use a new key.", code="in_progress")
        return await self._load(appointment_id)


# A change's hold on its appointment: longer than any one change takes (each Cal.com call ends within
# its 10 s budget, a cancel makes at most a dozen), short enough that a crashed holder frees it soon.
CHANGE_LEASE_TTL = timedelta(minutes=2)


@asynccontextmanager
async def changing(
    store: Store, appointment_id: str, clock: Callable[[], datetime], *, wait: float = PEER_WAIT_SECONDS
) -> AsyncIterator[Appointment | None]:
    """Hold appointment `appointment_id` for one change: other changes to it (any process) wait up to
    `wait` seconds for it, then hear Conflict `change_in_progress` (retryable). Yields the appointment as
    it is once held (None if it is gone), read with the lease in one transaction."""
    name, holder = f"change:{appointment_id}", secrets.token_hex(8)
    deadline = monotonic() + wait
    await store.written(name)  # a change of this process that just answered gives the lease back now
    while True:
        taken, current = await store.lease_appointment(name, holder, appointment_id, now=clock(), ttl=CHANGE_LEASE_TTL)
        if taken:
            break
        if monotonic() >= deadline:
            raise Conflict(
                "Another change to this appointment is being made right now; try again in a moment, then check "
                "it with get_appointment.",
                code="change_in_progress",
                retryable=True,
            )
        await asyncio.sleep(POLL_SECONDS)
    try:
        yield current
    finally:
        # Given back once the answer is on its way (the caller does not wait for the commit): the next change
        # of this process is handed it (`Store.written`), one elsewhere sees it free within a poll. Should it
        # be lost, it lapses after CHANGE_LEASE_TTL.
        store.after_answer(store.release_lease(name, holder), f"giving back the lease on {appointment_id}", key=name)
