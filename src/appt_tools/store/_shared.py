"""What instances sharing one database tell each other, through rows of the settings table they already
share (internal rows, like the leases): no other service.

- The slot-change counter (`internal.slot_changes`): bumped by every change of the calendar an instance
  makes or hears of (a booking, reschedule, cancellation, a Cal.com webhook). On SQLite an instance reads
  it (one primary-key read) before answering from its warm slots; on PostgreSQL the same transaction
  also sends `NOTIFY appt_tools_slots`, which every instance LISTENs for on a connection of its own
  (`follow_changes`), so none needs to read it.
- Cal.com request budgets (`internal.calcom_budget.<sha-256 of the key>`): "<window start> <requests
  claimed>", for `calcom/_budget.py`. The key itself is never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from appt_tools.store import _locks
from appt_tools.store.tables import SettingRow

logger = logging.getLogger(__name__)

CHANGES_KEY = "internal.slot_changes"
BUDGET_PREFIX = "internal.calcom_budget."
CHANNEL = "appt_tools_slots"
_NOTIFY = text("SELECT pg_notify(:channel, :origin)")
# The listening connection is checked this often (a dropped network otherwise goes unnoticed).
PING_SECONDS = 15.0
RECONNECT_FIRST = 0.5
RECONNECT_CAP = 30.0


def setting_row(session: Session, key: str) -> SettingRow | None:
    """The row `key` of the session's tenant (the tenant's filter is added by the store's sessions)."""
    return session.scalar(select(SettingRow).where(SettingRow.key == key))


def bump_changes(session: Session, origin: str) -> int:
    """Count one change of the calendar (and, on PostgreSQL, notify every listener at commit)."""
    _locks.hold(session, f"setting:{CHANGES_KEY}")
    row = setting_row(session, CHANGES_KEY)
    count = (int(row.value) if row is not None else 0) + 1
    if row is None:
        session.add(SettingRow(key=CHANGES_KEY, value=str(count)))
    else:
        row.value = str(count)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL, "origin": origin})
    return count


def claim_budget(
    session: Session, key_id: str, want: int, *, limit: int, window: float, now: float
) -> tuple[int, int, float]:
    """Claim up to `want` of the key's requests in its current window (a new window if the last has
    ended): (granted, still unclaimed, seconds until the window ends)."""
    key = BUDGET_PREFIX + key_id
    _locks.hold(session, f"setting:{key}")
    row = setting_row(session, key)
    start, used = float("-inf"), 0
    if row is not None:
        first, _, count = row.value.partition(" ")
        start, used = float(first), int(count)
    if now >= start + window or now < start - window:  # ended (or a clock gone far back)
        start, used = now, 0
    granted = max(0, min(want, limit - used))
    if granted:
        value = f"{start!r} {used + granted}"
        if row is None:
            session.add(SettingRow(key=key, value=value))
        else:
            row.value = value
    return granted, max(0, limit - used - granted), start + window - now


async def follow_changes(
    engine: AsyncEngine, on_change: Callable[[str], None], on_live: Callable[[bool], None]
) -> None:
    """On PostgreSQL, until cancelled: LISTEN for slot changes on a connection of its own and call
    `on_change(origin)` for each; `on_live(True)` once listening (changes missed before may have been
    lost: the caller treats it as a change), `on_live(False)` when the connection drops, then connect
    again, backing off exponentially. Elsewhere it returns at once (no pushes: read the counter)."""
    if engine.dialect.name != "postgresql":
        return
    delay = RECONNECT_FIRST
    while True:
        try:
            await _listen(engine, on_change, on_live)
            delay = RECONNECT_FIRST
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("slot-change listener: %s: %s; connecting again in %.1f s", type(exc).__name__, exc, delay)
        on_live(False)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_CAP)


async def _listen(engine: AsyncEngine, on_change: Callable[[str], None], on_live: Callable[[bool], None]) -> None:
    dropped = asyncio.Event()

    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        on_change(payload)

    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's own connection: LISTEN needs it
        driver.add_termination_listener(lambda _conn: dropped.set())
        await driver.add_listener(CHANNEL, heard)
        on_live(True)
        try:
            while not dropped.is_set():
                try:
                    await asyncio.wait_for(dropped.wait(), PING_SECONDS)
                except TimeoutError:
                    await asyncio.wait_for(driver.execute("SELECT 1"), PING_SECONDS)
        finally:
            on_live(False)
            # The connection was this listener's alone: closed, never handed back to the pool still listening.
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.invalidate())
    raise ConnectionError("the listening connection was closed")


class ChangeFeed:
    """One LISTEN connection per engine, whatever the number of tenants following it: each tenant's warm
    slots follow their changes, and a connection each would hold the pool (15 by default) for as many
    tenants as are open. Each follower gets every payload (`Store.follow_slot_changes` keeps its own
    tenant's) and every change of the connection's state; the connection closes with the last follower."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._followers: dict[int, tuple[Callable[[str], None], Callable[[bool], None]]] = {}
        self._next = 0
        self._live = False
        self._task: asyncio.Task[None] | None = None

    async def follow(self, on_change: Callable[[str], None], on_live: Callable[[bool], None]) -> None:
        """`follow_changes` for one follower, until cancelled (returns at once where nothing is pushed)."""
        if self._engine.dialect.name != "postgresql":
            return
        token, self._next = self._next, self._next + 1
        self._followers[token] = (on_change, on_live)
        if self._live:
            on_live(True)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(follow_changes(self._engine, self._heard, self._state))
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            del self._followers[token]
            if not self._followers and self._task is not None:
                task, self._task, self._live = self._task, None, False
                task.cancel()
                await asyncio.shield(asyncio.gather(task, return_exceptions=True))

    def _heard(self, payload: str) -> None:
        for on_change, _ in list(self._followers.values()):
            on_change(payload)

    def _state(self, live: bool) -> None:
        self._live = live
        for _, on_live in list(self._followers.values()):
            on_live(live)


def wall_clock() -> float:
    """Seconds since the epoch: budget windows are shared between machines, so not a monotonic clock."""
    return time.time()
