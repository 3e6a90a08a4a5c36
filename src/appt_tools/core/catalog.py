"""The business's event types (the kinds of meeting that can be booked), synced from Cal.com.

They are read from memory on every call; the store's copy (which a sync in another process may have
replaced) is read again when the memory is older than EVENT_TYPES_TTL_SECONDS.

A sync (`/v2/me`, then `/v2/event-types`) is never run twice at once: callers while one is in flight
share it. A server starts the sync it needs in the background (`start`), so the set-up reads do not land
on the first caller; a call that arrives before it ends waits for that same sync, and if it failed (it is
logged, never fatal) the next call that needs event types tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from time import monotonic
from typing import TYPE_CHECKING

from appt_tools import validation
from appt_tools.calcom import CalcomClient
from appt_tools.config import Settings
from appt_tools.errors import InvalidArgument, NotConfigured
from appt_tools.models import EventType, HostProfile

if TYPE_CHECKING:  # the store (and SQLAlchemy) is imported when one is opened, not to list the tools
    from appt_tools.store import Store

logger = logging.getLogger(__name__)

EVENT_TYPES_TTL_SECONDS = 30.0
NOT_CONFIGURED = (
    "Cal.com is not configured: set APPT_TOOLS_CALCOM_API_KEY (or run 'appt-tools settings set calcom_api_key …'), "
    "or start with --sandbox to try it without an account."
)


class EventTypeCatalog:
    def __init__(
        self,
        store: Store,
        calcom: Callable[[], CalcomClient | None],
        settings: Callable[[], Settings],
        clock: Callable[[], datetime],
        on_host: Callable[[HostProfile], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._calcom = calcom
        self._settings = settings
        self._clock = clock
        self._on_host = on_host  # told whose account each sync read (the service adopts its time zone)
        self._memory: tuple[list[EventType], float] | None = None  # (types, monotonic time read)
        self._sync: tuple[CalcomClient, asyncio.Task[tuple[list[EventType], HostProfile]]] | None = None
        self._start: asyncio.Task[None] | None = None

    async def refresh(self, client: CalcomClient) -> tuple[list[EventType], HostProfile]:
        """Sync the event types from Cal.com (and say whose they are). While a sync on this client is in
        flight, callers share it instead of sending the same requests again."""
        current = self._sync
        if current is not None and current[0] is client and not current[1].done():
            task = current[1]
        else:
            task = asyncio.create_task(self._fetch(client))
            task.add_done_callback(_retrieve)
            self._sync = (client, task)
        # Shielded: a caller that gives up (its call cancelled) leaves the sync running for the others.
        return await asyncio.shield(task)

    async def _fetch(self, client: CalcomClient) -> tuple[list[EventType], HostProfile]:
        me = await client.me()
        types = await client.event_types(me.username)
        await self._store.replace_event_types(types, now=self._clock())
        self._memory = (types, monotonic())
        if self._on_host is not None:
            await self._on_host(me)
        return types, me

    def start(self, client: CalcomClient) -> None:
        """At server start: begin, in the background, the Cal.com reads the server needs before its first
        call (whose account and its time zone, the event types), unless the store already has them.
        Calls arriving meanwhile wait for it (`ready`); a failure is logged, and the next call retries."""
        if self._start is None or self._start.done():
            self._start = asyncio.create_task(self._warm(client))

    async def _warm(self, client: CalcomClient) -> None:
        try:
            types = await self._store.list_event_types()
            if types and self._settings().timezone is not None:
                self._memory = (types, monotonic())
                return
            await self.refresh(client)
        except Exception as exc:  # never fatal: the next call that needs event types syncs again
            logger.warning(
                "could not read the event types from Cal.com at start (%s: %s); the next call that needs them "
                "will try again",
                type(exc).__name__,
                getattr(exc, "message", None) or exc,
            )

    async def ready(self) -> None:
        """Wait for the start-up sync if it is still running (at once otherwise); it never raises."""
        start = self._start
        if start is not None and not start.done():
            await asyncio.shield(start)

    async def aclose(self) -> None:
        """Stop a start-up sync or a sync still in flight (the server is closing)."""
        tasks = [t for t in (self._start, self._sync[1] if self._sync else None) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def synced(self) -> list[EventType]:
        """What the last sync stored (from any process), without asking Cal.com (after the start-up sync,
        if it is still running)."""
        await self.ready()
        return await self._store.list_event_types()

    async def all(self) -> list[EventType]:
        """The synced event types: from memory, from the store when that is stale, or from Cal.com when
        none were ever synced (a start-up sync still running is waited for, not repeated)."""
        await self.ready()
        cached = self._memory
        if cached is not None and monotonic() - cached[1] < EVENT_TYPES_TTL_SECONDS:
            return list(cached[0])
        types = await self._store.list_event_types()
        client = self._calcom()
        if not types and client is not None:
            return (await self.refresh(client))[0]
        self._memory = (types, monotonic())
        return list(types)

    async def pick(self, event_type_id: int | None) -> EventType:
        """The event type asked for, else the configured default, else the first one not hidden."""
        types = await self.all()
        if not types:
            raise NotConfigured(NOT_CONFIGURED)
        wanted = event_type_id if event_type_id is not None else self._settings().event_type_id
        if wanted is None:
            return next((t for t in types if not t.hidden), types[0])
        for candidate in types:
            if candidate.id == wanted:
                return candidate
        known = "; ".join(f"{t.id} ({t.title}, {t.length_minutes} min)" for t in types)
        raise InvalidArgument("event_type_id", f"unknown event type {wanted}; known event types: {known}.")

    def duration(self, event_type: EventType, requested: int | None) -> int:
        """The meeting's length: the one asked for if the event type offers it, else the default."""
        requested = validation.duration("duration_minutes", requested)
        options = event_type.length_options or (event_type.length_minutes,)
        if requested is None:
            configured = self._settings().duration_minutes
            return configured if configured in options else event_type.length_minutes
        if requested not in options:
            allowed = ", ".join(str(o) for o in options)
            raise InvalidArgument(
                "duration_minutes", f"{event_type.title} can be {allowed} minutes long, not {requested}."
            )
        return requested


def _retrieve(task: asyncio.Task[object]) -> None:
    """A sync whose every caller gave up still ends with its error retrieved (no 'never retrieved' noise)."""
    if not task.cancelled():
        task.exception()
