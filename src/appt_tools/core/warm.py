"""Free slots already warm: find_slots answers from memory, with no Cal.com request, inside the window.

The server keeps, for the default event type and for the event types find_slots was asked about in the
last RECENT, the free slots of the next `slots_warm_days` days (one `GET /v2/slots` per event type and
length for the whole window), and reads them again in the background before they are older than
`slots_fresh_seconds` (the freshness bound: a copy older than that is never served), and at once after
any change to the calendar: our own bookings, reschedules, cancellations and releases, a Cal.com webhook,
or another instance's change.

Instances sharing a database agree through it (`Store.slots_changed`): every change bumps a counter row,
on PostgreSQL in a transaction that also sends NOTIFY, which each instance LISTENs for (`_follow`); on
SQLite (or while the listener is down) the counter is read before answering from memory, one primary-key
read. Either way a copy read before a change is never served after the change is known.

What is served is "free when read from Cal.com at `fresh_as_of`". Cal.com decides at booking: a time
taken since is refused there and the caller is offered fresh alternatives; nothing is ever booked on this
copy's word. Live holds are subtracted by the caller (`SlotFinder`), as for any answer.

The refresh never costs a caller anything: its requests are background calls (`calcom/_policy.py`: tried
once, refused rather than queued when a quarter or less of the rate limit is left, or when the circuit
breaker is open), a refused or failed round backs off exponentially (also when Cal.com is slow), and its
failures are logged, never raised: find_slots then asks Cal.com itself, as without a warm copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from appt_tools.calcom import CalcomClient
from appt_tools.config import Settings
from appt_tools.core.catalog import EventTypeCatalog
from appt_tools.errors import AppError, CalcomRateLimited
from appt_tools.models import Slot

if TYPE_CHECKING:
    from appt_tools.store import Store

logger = logging.getLogger(__name__)

Key = tuple[int, int | None]
"""An event type's id and the length asked of Cal.com (None: the event type's own)."""

RECENT = timedelta(minutes=30)  # an event type asked about this recently is kept warm
MAX_KEYS = 8  # at most this many event types (and lengths) besides the default
REFRESH_SHARE = 0.75  # a copy is read again once this share of the freshness bound has passed
MIN_GAP = 0.25  # seconds between two reads of one event type, however many changes come in between
# After a change, the read waits this long: the changing call has usually answered its caller by then (a
# booking releases its hold's reservation after it is made: one more Cal.com round trip), and the changes
# of one call (a reschedule makes several) are read once. The copy is stale, never served, meanwhile.
SETTLE = 0.5
ANNOUNCE_AFTER = 0.02  # seconds: the changing call's answer goes out first (as `Store.after_answer`'s writes)
SLOW = 3.0  # seconds: a read slower than this backs off as a failure does (the copy is kept)
BACKOFF_FIRST = 2.0
BACKOFF_CAP = 300.0
SKIPPED_WAIT = 5.0  # a round skipped to leave the rate limit to callers is tried again after this
IDLE = 30.0  # nothing to keep warm (no Cal.com key, warming off): look again after this


@dataclass(frozen=True)
class _Copy:
    lo: datetime
    hi: datetime
    slots: tuple[Slot, ...]
    read_at: datetime  # when Cal.com was asked (the service's clock): fresh_as_of
    generation: int  # changes known to this instance when it was asked
    counter: int | None  # the database's change counter then (None: read while pushes were live)


class WarmSlots:
    def __init__(
        self,
        store: Store,
        calcom: Callable[[], CalcomClient | None],
        catalog: EventTypeCatalog,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._calcom = calcom
        self._catalog = catalog
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._origin = secrets.token_hex(8)  # this instance, in the notifications it sends
        self._copies: dict[Key, _Copy] = {}
        self._used: dict[Key, datetime] = {}
        self._tried: dict[Key, float] = {}
        self._generation = 0
        self._live = False  # hearing other instances' changes pushed (PostgreSQL LISTEN)
        self._changed_at = float("-inf")  # monotonic: the last change heard of
        self._failures = 0
        self._resume_at = float("-inf")  # monotonic: no refresh before this (backing off)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # the announcement being written, if any
        self._unannounced = False  # a change not yet counted in the database
        self._loop: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self.refreshes = 0  # Cal.com reads made (for tests and the bench)

    # --- answering ----------------------------------------------------------------------------

    async def get(
        self, key: Key, lo: datetime, hi: datetime, *, changes: int | None = None
    ) -> tuple[list[Slot], datetime] | None:
        """The free slots starting in [lo, hi) and when they were read, if a copy still fresh and read
        after every known change covers that window; else None (the caller asks Cal.com). `changes`: the
        database's change counter, when the caller has just read it (`reads_counter`); else read here."""
        self._used[key] = self._clock()
        copy = self._copies.get(key)
        if copy is None:
            self._wake.set()  # an event type not kept yet: warm it from now on
            return None
        if not self._may_serve(copy, lo, hi):
            return None
        if not self._live:  # changes are not pushed to us: the database's counter says if there were any
            try:
                counter = changes if changes is not None else await self._store.slot_changes()
            except Exception as exc:
                logger.warning("warm slots: could not read the change counter (%s); asking Cal.com", exc)
                return None
            if counter != copy.counter:
                self._heard()
                return None
        return [s for s in copy.slots if lo <= s.start < hi], copy.read_at

    def saw_free(self, key: Key, start: datetime) -> bool:
        """Whether the last copy of `key` (fresh or not) had `start` free: Cal.com refusing it since means
        it was just taken."""
        copy = self._copies.get(key)
        return copy is not None and any(s.start == start for s in copy.slots)

    def needs_counter(self, key: Key, lo: datetime, hi: datetime) -> bool:
        """Whether `get(key, lo, hi)` would read the database's change counter: a copy that may answer is
        kept and other instances' changes are not pushed to this one. Then the caller reads it along with
        what it reads anyway, and passes it as `changes`."""
        copy = self._copies.get(key)
        return not self._live and copy is not None and self._may_serve(copy, lo, hi)

    def _may_serve(self, copy: _Copy, lo: datetime, hi: datetime) -> bool:
        """Everything but the change counter says `copy` may answer for [lo, hi)."""
        return (
            self._loop is not None
            and copy.generation == self._generation
            and copy.lo <= lo
            and hi <= copy.hi
            and self._clock() - copy.read_at < self._fresh()
        )

    @property
    def listening(self) -> bool:
        """Whether other instances' changes are pushed to this one (PostgreSQL LISTEN is up)."""
        return self._live

    def covers(self, key: Key) -> bool:
        """Whether a copy of `key` read after every change known here is kept, and no change of ours is
        still being announced (fresh or not): for tests and the bench."""
        copy = self._copies.get(key)
        return copy is not None and copy.generation == self._generation and all(t.done() for t in self._tasks)

    # --- changes ------------------------------------------------------------------------------

    def changed(self) -> None:
        """This instance changed the calendar (or heard of a change from Cal.com): every copy is stale;
        read them again at once, and tell the other instances through the database."""
        self._heard()
        self._unannounced = True
        if any(not t.done() for t in self._tasks):  # an announcement is being written: it writes once more
            return
        try:
            task = asyncio.get_running_loop().create_task(self._announce())
        except RuntimeError:  # no event loop (a synchronous caller): nothing to tell anyone
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _heard(self) -> None:
        self._generation += 1
        self._changed_at = self._monotonic()
        self._wake.set()

    async def _announce(self) -> None:
        """Count the changes in the database, one write at a time (a reconciliation may report hundreds),
        once the changing call's answer has gone out (`Store.after_answer`'s reason)."""
        await asyncio.sleep(ANNOUNCE_AFTER)
        while self._unannounced:
            self._unannounced = False
            try:
                await self._store.slots_changed(self._origin)
            except Exception as exc:  # never a caller's problem: other instances catch up within the bound
                logger.warning(
                    "warm slots: could not tell other instances of a change (%s: %s)", type(exc).__name__, exc
                )
                return

    def _on_change(self, origin: str) -> None:
        if origin != self._origin:
            self._heard()

    def _on_live(self, live: bool) -> None:
        self._live = live
        self._heard()  # changes may have been missed while not listening

    # --- the background refresh ---------------------------------------------------------------

    def start(self) -> None:
        """Begin keeping slots warm (a server's start); `aclose` stops it."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run())
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow())

    async def aclose(self) -> None:
        """Stop the refresh and the listener; wait for announcements still being written."""
        tasks = [t for t in (self._loop, self._follower) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = self._follower = None
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _follow(self) -> None:
        try:
            await self._store.follow_slot_changes(self._on_change, self._on_live)
        except Exception as exc:
            logger.warning("warm slots: not hearing other instances' changes (%s); reading the counter instead", exc)

    async def _run(self) -> None:
        await self._catalog.ready()
        while True:
            self._wake.clear()
            try:
                delay = await self._round()
            except Exception:  # a bug must not end warming for good, nor reach a caller
                logger.exception("warm slots: refresh round failed")
                delay = self._back_off()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _round(self) -> float:
        """Read again the copies that are due; seconds until the next round."""
        client, days = self._calcom(), self._settings().slots_warm_days
        if client is None or days <= 0:
            self._copies.clear()
            return IDLE
        wait = self._resume_at - self._monotonic()
        if wait > 0:
            return wait
        keys = await self._keys()
        for key in list(self._copies):
            if key not in keys:
                del self._copies[key]
        next_due = self._fresh().total_seconds() * REFRESH_SHARE
        for key in keys:
            due_in = self._due_in(key)
            if due_in <= 0:
                outcome = await self._refresh(client, key, timedelta(days=days))
                if outcome > 0:
                    return outcome
                due_in = self._due_in(key)
            next_due = min(next_due, due_in)
        return max(next_due, 0.05)

    def _due_in(self, key: Key) -> float:
        """Seconds until `key` should be read again (0 or less: now)."""
        now = self._monotonic()
        gap = max(self._tried.get(key, float("-inf")) + MIN_GAP, self._changed_at + SETTLE) - now
        copy = self._copies.get(key)
        if copy is None or copy.generation != self._generation:
            return gap
        age = (self._clock() - copy.read_at).total_seconds()
        return max(gap, self._fresh().total_seconds() * REFRESH_SHARE - age)

    async def _keys(self) -> list[Key]:
        """The default event type's key, then those asked about recently, newest first."""
        keys: list[Key] = []
        try:
            default = await self._catalog.pick(None)
            length = self._catalog.duration(default, None)
            keys.append((default.id, length if default.length_options else None))
        except AppError:
            pass  # no event types yet: only what callers asked about
        since = self._clock() - RECENT
        for key, _ in sorted(self._used.items(), key=lambda item: item[1], reverse=True):
            if self._used[key] < since:
                del self._used[key]
            elif key not in keys and len(keys) <= MAX_KEYS:
                keys.append(key)
        return keys

    async def _refresh(self, client: CalcomClient, key: Key, days: timedelta) -> float:
        """Read `key`'s window from Cal.com: 0.0 when done, else seconds to wait before trying again."""
        self._tried[key] = self._monotonic()
        # Our own changes are counted first, so the counter read below includes them.
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        generation = self._generation
        counter = None if self._live else await self._store.slot_changes()
        lo = self._clock()
        began = self._monotonic()
        try:
            slots = await client.slots(key[0], lo, lo + days, duration_minutes=key[1], background=True)
        except CalcomRateLimited as exc:
            logger.info("warm slots: refresh skipped (%s)", exc.message)
            return SKIPPED_WAIT
        except Exception as exc:
            logger.warning(
                "warm slots: could not read event type %s from Cal.com (%s: %s); backing off",
                key[0],
                type(exc).__name__,
                getattr(exc, "message", None) or exc,
            )
            return self._back_off()
        self.refreshes += 1
        self._copies[key] = _Copy(lo, lo + days, tuple(slots), lo, generation, counter)
        if self._monotonic() - began > SLOW:
            return self._back_off()
        self._failures = 0
        return 0.0

    def _back_off(self) -> float:
        """After a failed or slow read: wait exponentially longer (with jitter) before the next one."""
        self._failures += 1
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** (self._failures - 1)) * (0.5 + random.random() / 2)
        self._resume_at = self._monotonic() + delay
        return delay

    def _fresh(self) -> timedelta:
        return timedelta(seconds=self._settings().slots_fresh_seconds)
