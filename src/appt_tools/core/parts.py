"""What the use cases share, built once by the service: the store, the Cal.com client in use (a function,
since the runtime may swap the client while running), the event types, the free slots, idempotency
keys and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from appt_tools.calcom import CalcomClient
from appt_tools.core.catalog import EventTypeCatalog
from appt_tools.core.idempotency import IdempotentCalls
from appt_tools.core.slots import SlotFinder

if TYPE_CHECKING:
    from appt_tools.store import Store


@dataclass(frozen=True)
class Parts:
    store: Store
    calcom: Callable[[], CalcomClient]
    catalog: EventTypeCatalog
    slots: SlotFinder
    keys: IdempotentCalls
    clock: Callable[[], datetime]


class UseCase:
    """A use case's view of the shared parts."""

    def __init__(self, parts: Parts) -> None:
        self._store = parts.store
        self._calcom = parts.calcom
        self._catalog = parts.catalog
        self._slots = parts.slots
        self._keys = parts.keys
        self._clock = parts.clock
