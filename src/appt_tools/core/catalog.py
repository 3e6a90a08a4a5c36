"""The business's event types (the kinds of meeting that can be booked), synced from Cal.com.

They are read from memory on every call; the store's copy (which a sync in another process may have
replaced) is read again when the memory is older than EVENT_TYPES_TTL_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable
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
    ) -> None:
        self._store = store
        self._calcom = calcom
        self._settings = settings
        self._clock = clock
        self._memory: tuple[list[EventType], float] | None = None  # (types, monotonic time read)

    async def refresh(self, client: CalcomClient) -> tuple[list[EventType], HostProfile]:
        """Sync the event types from Cal.com (and say whose they are)."""
        me = await client.me()
        types = await client.event_types(me.username)
        await self._store.replace_event_types(types, now=self._clock())
        self._memory = (types, monotonic())
        return types, me

    async def synced(self) -> list[EventType]:
        """What the last sync stored (from any process), without asking Cal.com."""
        return await self._store.list_event_types()

    async def all(self) -> list[EventType]:
        """The synced event types: from memory, from the store when that is stale, or from Cal.com when
        none were ever synced."""
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
