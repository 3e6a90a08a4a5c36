"""The use cases behind every surface: find slots, book, reschedule, cancel, search, update.

`AppointmentService` wires the parts together and is what the surfaces hold; each part reads in one
sitting: `slots.py` (free times), `booking.py` (the booking path and its guards against doubles),
`changes.py` (reschedule, cancel, corrections), `catalog.py` (event types), `idempotency.py`,
`reconcile.py` (store ↔ Cal.com). It takes typed requests (`requests.py`): the surfaces parse.

Its settings and Cal.com client are read-only to everyone but the runtime that owns them
(`appt_tools.runtime`), which changes both together through `reconfigure`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar
from zoneinfo import ZoneInfo

from appt_tools import validation
from appt_tools.calcom import CalcomClient
from appt_tools.config import Settings
from appt_tools.core.booking import Booker
from appt_tools.core.catalog import NOT_CONFIGURED, EventTypeCatalog
from appt_tools.core.changes import Changes
from appt_tools.core.decisions import Decisions
from appt_tools.core.holds import Holds
from appt_tools.core.idempotency import IdempotentCalls, changing
from appt_tools.core.parts import Parts
from appt_tools.core.records import history_entry
from appt_tools.core.requests import BookingDraft, Cancellation, Edit, HoldRequest, Move, SearchRequest, SlotRequest
from appt_tools.core.slot_cache import SlotCache
from appt_tools.core.slots import SlotFinder, local_day
from appt_tools.core.warm import WarmSlots
from appt_tools.errors import InvalidArgument, NotConfigured
from appt_tools.models import (
    Appointment,
    AppointmentStatus,
    EventType,
    HistoryAction,
    HistoryEntry,
    Hold,
    HostProfile,
    SearchPage,
    SearchQuery,
    SlotSearch,
)

if TYPE_CHECKING:  # the store (and SQLAlchemy) is imported when one is opened, not to list the tools
    from appt_tools.store import Store

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class AppointmentService:
    _rehearsed: ClassVar[bool] = False  # `start_sync`'s rehearsal has run in this process

    def __init__(self, store: Store, calcom: CalcomClient | None, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._calcom = calcom
        self._settings = settings
        self._clock = clock
        self._rehearsal: asyncio.Task[None] | None = None  # `start_sync`'s warm-up (`_rehearse`)
        self.catalog = EventTypeCatalog(
            store, lambda: self._calcom, lambda: self._settings, clock, on_host=self._adopt_host_timezone
        )
        self.warm = WarmSlots(store, lambda: self._calcom, self.catalog, lambda: self._settings, clock)
        self.slots = SlotFinder(
            self.catalog,
            lambda: self.calcom,
            clock,
            lambda: self.timezone,
            held=lambda lo, hi: store.live_holds(lo, hi, now=clock()),
            warm=self.warm,
            busy=lambda lo, hi, changes: store.busy(lo, hi, now=clock(), changes=changes),
        )
        keys = IdempotentCalls(store, clock, load=self.get)
        parts = Parts(store, lambda: self.calcom, self.catalog, self.slots, keys, clock)
        self.holds = Holds(parts, self._hold_defaults)
        self._booker = Booker(parts, self._business, self.holds)
        self._changes = Changes(parts, lambda: self.timezone)
        self._decisions = Decisions(parts)

    def now(self) -> datetime:
        return self._clock()

    def _business(self) -> tuple[str, str]:
        """The defaults a booking takes from the business: its time zone and its name."""
        return self.timezone, self._settings.business_name

    def _hold_defaults(self) -> tuple[str, int]:
        """What a hold takes from the settings: the business's time zone and how many minutes it lasts."""
        return self.timezone, self._settings.hold_minutes

    # --- settings and the Cal.com client (owned by the runtime) -------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def timezone(self) -> str:
        return self._settings.timezone or "UTC"

    @property
    def calcom(self) -> CalcomClient:
        if self._calcom is None:
            raise NotConfigured(NOT_CONFIGURED)
        return self._calcom

    @property
    def calcom_configured(self) -> bool:
        return self._calcom is not None

    def reconfigure(self, settings: Settings, calcom: CalcomClient | None = None, *, new_client: bool = False) -> None:
        """For the runtime only: settings changed (and, with `new_client`, the Cal.com client, whose
        predecessor the runtime closes). Cached slots came from the old client, so they are dropped."""
        self._settings = settings
        if new_client:
            self._calcom = calcom
            self.slots.changed()

    @property
    def slot_cache(self) -> SlotCache:
        return self.slots.cache

    def slots_changed(self) -> None:
        self.slots.changed()

    # --- event types --------------------------------------------------------------------------

    async def refresh_event_types(self) -> list[EventType]:
        """Sync event types from Cal.com (adopting the host's time zone if none is configured)."""
        types, _me = await self.catalog.refresh(self.calcom)
        return types

    def start_sync(self) -> None:
        """At server start: the Cal.com reads the first call would need, in the background (see
        `EventTypeCatalog.start`). Without a Cal.com key there is nothing to read."""
        if self._calcom is not None:
            self.catalog.start(self._calcom)
        if not AppointmentService._rehearsed:  # what it loads serves the whole process (every tenant)
            AppointmentService._rehearsed = True
            self._rehearsal = asyncio.get_running_loop().create_task(self._rehearse())

    async def _rehearse(self) -> None:
        """At server start, what the first calls would otherwise pay for (about 30 ms in all, measured with
        `bench --only conversation`): the validators' imports (`validation.rehearse`, in a worker thread) and
        the store's first statements of a find, a booking and a search, compiled by reading. Nothing is
        written; a failure only means the first caller pays, so it is logged and forgotten."""
        try:
            await asyncio.to_thread(validation.rehearse)
            now = self._clock()
            await self.store.slot_changes()
            await self.store.busy(now, now + timedelta(hours=1), now=now)
            await self.store.live_at(now)
            await self.store.get_appointment("apt_rehearsal")
            await self.search(SearchRequest(text="rehearsal@example.com"))
        except Exception as exc:
            logger.debug("start-up rehearsal: %s", exc)

    async def stop(self) -> None:
        """Stop what `start_sync` and `start_warm` began (the server is closing). The rehearsal is let
        finish (a few reads): cancelled, its worker thread would still open the database file."""
        if self._rehearsal is not None:
            await asyncio.gather(self._rehearsal, return_exceptions=True)
        await self.warm.aclose()
        await self.catalog.aclose()

    def start_warm(self) -> None:
        """At server start: keep the free slots of the event types in use warm, in the background
        (core/warm.py), until the service closes. Waits for the start-up sync before its first read."""
        self.warm.start()

    async def _adopt_host_timezone(self, me: HostProfile) -> None:
        """After each sync: with no time zone configured, the Cal.com host's becomes the business's."""
        if self._settings.timezone is None:
            await self.store.set_setting("timezone", me.time_zone)
            self._settings = self._settings.model_copy(update={"timezone": me.time_zone})

    async def list_event_types(self) -> list[EventType]:
        return await self.catalog.all()

    async def event_type(self, event_type_id: int | None) -> EventType:
        return await self.catalog.pick(event_type_id)

    # --- the use cases ------------------------------------------------------------------------

    async def find_slots(self, request: SlotRequest) -> SlotSearch:
        await self.catalog.ready()  # the time zone may come from the start-up sync
        return await self.slots.find(request)

    async def book(self, draft: BookingDraft) -> Appointment:
        await self.catalog.ready()  # the time zone may come from the start-up sync
        return await self._booker.book(self._with_language(draft))

    async def book_with_corrections(self, draft: BookingDraft) -> tuple[Appointment, tuple[str, ...]]:
        """The booking, and the fields a repeat of a live booking corrected (see `Booker._correct`)."""
        return await self._booker.book_with_corrections(self._with_language(draft))

    def _with_language(self, draft: BookingDraft) -> BookingDraft:
        """The invite's language: the booking's own, else the business's default."""
        return draft if draft.language is not None else replace(draft, language=self._settings.language)

    async def confirm(self, appointment_id: str) -> Appointment:
        """The host accepts a pending booking in Cal.com (the attendee is told)."""
        appointment = await self.get(appointment_id)
        async with changing(self.store, appointment.id, self._clock) as current:  # one at a time (core/changes.py)
            return await self._decisions.confirm(current or await self.get(appointment.id))

    async def decline(self, appointment_id: str, reason: str | None = None) -> Appointment:
        """The host turns down a pending booking in Cal.com (the attendee is told); it ends cancelled."""
        appointment = await self.get(appointment_id)
        async with changing(self.store, appointment.id, self._clock) as current:
            return await self._decisions.decline(current or await self.get(appointment.id), reason)

    async def hold(self, request: HoldRequest) -> Hold:
        return await self.holds.hold(request)

    async def release_hold(self, hold_id: str) -> Hold:
        return await self.holds.release(hold_id)

    async def reschedule(self, move: Move) -> Appointment:
        await self.catalog.ready()  # the time zone may come from the start-up sync
        return await self._changes.reschedule(move)

    async def cancel(self, cancellation: Cancellation) -> Appointment:
        return await self._changes.cancel(cancellation)

    async def update(self, appointment_id: str, edit: Edit) -> Appointment:
        await self.catalog.ready()  # the time zone may come from the start-up sync
        return await self._changes.update(appointment_id, edit)

    async def get(self, appointment_id: str) -> Appointment:
        return await self._changes.get(appointment_id)

    async def note(self, appointment_id: str, action: HistoryAction, detail: str) -> Appointment:
        """Add a line to an appointment's history (once: a repeat of the same line is not added again)."""
        if any(h.action == action and h.detail == detail for h in await self.store.history(appointment_id)):
            found = await self.store.get_appointment(appointment_id)
            assert found is not None
            return found
        return await self.store.update_appointment(
            appointment_id, {}, now=self._clock(), history=history_entry(self._clock(), action, detail)
        )

    async def history(self, appointment_id: str) -> list[HistoryEntry]:
        return await self.store.history(appointment_id)

    async def search(self, request: SearchRequest) -> SearchPage:
        """Search the store; local days are read in the business's time zone."""
        await self.catalog.ready()
        tz = ZoneInfo(self.timezone)
        lo = local_day(request.date_from, tz)[0] if request.date_from else None
        hi = local_day(request.date_to, tz)[1] if request.date_to else None
        if lo is not None and hi is not None and hi <= lo:
            raise InvalidArgument("date_to", "must be on or after date_from.")
        statuses = request.statuses or tuple(s for s in AppointmentStatus if s is not AppointmentStatus.FAILED)
        query = SearchQuery(
            text=_phone_digits(request.text) if request.text else None,
            statuses=statuses,
            label=request.label,
            host=request.host,
            call_type=request.call_type,
            phone=request.phone,
            start_from=lo,
            start_to=hi,
            sort_by=request.sort_by,
            descending=request.descending,
            page=request.page,
            page_size=request.page_size,
        )
        return await self.store.search(query, now=self._clock())


def _phone_digits(query: str) -> str:
    """'(415) 555-0123' → '4155550123', so a number typed any way finds the stored E.164 form."""
    if not re.fullmatch(r"\+?[\d\s().-]+", query) or sum(c.isdigit() for c in query) < 4:
        return query
    return ("+" if query.startswith("+") else "") + "".join(c for c in query if c.isdigit())
