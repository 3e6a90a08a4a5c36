"""One Cal.com request budget per API key, shared by every instance that uses the key.

Cal.com counts requests per API key, not per process, so instances that each paced themselves to 120 a
minute would together send several times that. The shared budget is a ledger (`BudgetLedger`) the
runtime supplies, backed by the database the instances already share (this package does not know
which): one row per key, named by a hash of the key (never the key), holding the current window's
start and how many of its requests were claimed. A client claims its requests from it in small
batches (`SharedBudget`), the next one in the background while the last requests of the current one are
spent, so a caller waits for the ledger only on the first request of a window; a batch not used before
its window ends is lost, which wastes at most a batch per instance a window.

The ledger's window is fixed (it starts at the first claim after the last one ended) and a margin
longer than Cal.com's, whose window starts when it receives the first request. Every client also
keeps its own sliding-window `Pacer` and reads Cal.com's `X-RateLimit-*` headers, as before.

A ledger that fails (the database unreachable) never stops a call: the client falls back to pacing
alone, with a warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

# Requests claimed per write: a twenty-fourth of the limit (5 of Cal.com's 120), at least one.
BATCH_SHARE = 24
# When a client has this many claimed requests left or fewer, it claims the next batch in the background,
# so that a caller rarely waits for the ledger's write: only the first request of a window does.
REFILL_AT = 1
# A caller waits at most this long for a claim: then its request goes (paced by the client alone) and is
# counted against the claim when it lands.
CLAIM_WAIT = 0.5
# The ledger's window is this much longer than Cal.com's (its window starts on receipt, after our claim).
MARGIN = 1.0


@dataclass(frozen=True)
class Grant:
    """The answer to one claim: requests granted, requests still unclaimed in the window after it,
    and seconds until the window ends."""

    granted: int
    left: int
    resets_in: float


class BudgetLedger(Protocol):
    async def claim(self, key_id: str, want: int, *, limit: int, window: float) -> Grant:
        """Claim up to `want` requests of the key's current window (a new one if the last has ended)."""
        ...


def key_id(api_key: str) -> str:
    """What the ledger knows a key by: its SHA-256, hex. The key itself is never stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class SharedBudget:
    """A client's share of its key's budget: requests claimed from the ledger, spent one per request.

    A caller never waits long for the ledger: one claim is in flight at a time, shared by whoever needs it,
    and a claim slower than CLAIM_WAIT lets the request go (paced by the client alone); it is counted
    against the claim when that lands."""

    def __init__(
        self, ledger: BudgetLedger, api_key: str, limit: int, window: float, *, clock: Callable[[], float]
    ) -> None:
        self._ledger = ledger
        self._key = key_id(api_key)
        self._limit = limit
        self._window = window + MARGIN
        self._clock = clock
        self._batch = max(1, limit // BATCH_SHARE)
        self._tokens = 0
        self._until = float("-inf")  # when the claimed tokens' window ends
        self._spent_until = float("-inf")  # the ledger had none left in this window until then
        self._left = limit  # unclaimed requests in the window, as of the last claim
        self._owed = 0  # requests sent while a claim was slow, taken from the next grant
        self._claim: asyncio.Task[bool] | None = None

    @property
    def left(self) -> int:
        """Requests this client may still send in the window without waiting: its own unspent ones plus
        what the ledger had unclaimed at the last claim (an estimate: other instances claim meanwhile)."""
        if self._clock() >= self._until:
            return self._limit  # the window this client knew has ended
        return max(0, self._tokens) + self._left

    async def take(self) -> float:
        """Spend one request: 0.0 when it may go now, else seconds until the key's window ends."""
        while True:
            now = self._clock()
            if self._tokens > 0 and now < self._until:
                self._tokens -= 1
                if self._tokens <= REFILL_AT and self._left > 0 and (self._claim is None or self._claim.done()):
                    self._claim = asyncio.create_task(self._claim_batch())  # the next batch, before it is needed
                return 0.0
            if now < self._spent_until:
                return self._spent_until - now
            if self._claim is None or self._claim.done():
                self._claim = asyncio.create_task(self._claim_batch())
            try:
                async with asyncio.timeout(CLAIM_WAIT):
                    claimed = await asyncio.shield(self._claim)
            except TimeoutError:
                self._owed += 1
                return 0.0
            if not claimed:
                return 0.0

    async def _claim_batch(self) -> bool:
        """Claim a batch; False when the ledger failed (the client then paces alone)."""
        try:
            grant = await self._ledger.claim(
                self._key, self._batch + self._owed, limit=self._limit, window=self._window
            )
        except Exception as exc:  # the database failing must not stop a call
            logger.warning(
                "could not claim Cal.com requests from the shared budget (%s: %s); pacing this process alone",
                type(exc).__name__,
                exc,
            )
            return False
        now = self._clock()
        until = now + grant.resets_in
        # Requests still unspent are kept when the grant is of the same window (a refill claimed ahead of
        # need); a new window's grant replaces them.
        kept = max(0, self._tokens) if now < self._until and abs(until - self._until) < MARGIN else 0
        self._until = until
        self._left = grant.left
        self._tokens = kept + grant.granted - self._owed
        self._owed = max(0, -self._tokens)
        if grant.granted <= 0:
            self._spent_until = self._until
        return True

    async def aclose(self) -> None:
        """Stop a claim still in flight (the client is closing)."""
        if self._claim is not None and not self._claim.done():
            self._claim.cancel()
            await asyncio.gather(self._claim, return_exceptions=True)
