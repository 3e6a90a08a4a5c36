"""Pacing: keep one API key under Cal.com's rate limit instead of tripping its 60-second block.

Cal.com allows 120 requests per 60 s per API key and blocks the key for 60 s from the first request
over (NOTES §5). The `Pacer` keeps a sliding log of the requests this client sent, so no 60-s span
holds more than the limit, and it also obeys Cal.com's own count: once `X-RateLimit-Remaining` hits
0, nothing more is sent until `X-RateLimit-Reset` seconds have passed.

The log is per process (per client instance); processes sharing one key also share a budget through
their database (`_budget.SharedBudget`), and every process reads Cal.com's Remaining/Reset headers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from appt_tools.calcom import _wire
from appt_tools.models import RateLimit

# Cal.com's window starts when it receives the first request, a little after we sent it.
_MARGIN = 1.0


class Pacer:
    """Decides how long the next request must wait; shared by every call of one client."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float]) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit must be at least 1 request per positive window, got {limit}/{window}s")
        self.limit = limit
        self._window = window + _MARGIN
        self._clock = clock
        self._sent: deque[float] = deque()
        self._server_remaining = 0
        self._server_reset_at = float("-inf")
        self.last: RateLimit | None = None

    def wait(self) -> float:
        """Seconds until a request may be sent; 0 when it may go now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self._window:
            self._sent.popleft()
        waits = [0.0]
        if len(self._sent) >= self.limit:
            waits.append(self._sent[len(self._sent) - self.limit] + self._window - now)
        if self._server_remaining <= 0:
            waits.append(self._server_reset_at - now)
        return max(waits)

    def headroom(self) -> int:
        """Requests that could go now without waiting, by our log and by Cal.com's last count."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self._window:
            self._sent.popleft()
        room = self.limit - len(self._sent)
        if now < self._server_reset_at:
            room = min(room, self._server_remaining)
        return room

    def sent(self) -> None:
        """Count a request that is going out now."""
        self._sent.append(self._clock())
        self._server_remaining -= 1

    def observe(self, headers: Mapping[str, str]) -> RateLimit | None:
        """Read the `X-RateLimit-*` headers of any answer; the tightest named limit counts."""
        reading = _wire.rate_limit(headers)
        if reading is not None:
            self.last = reading
            self._server_remaining = reading.remaining
            self._server_reset_at = self._clock() + reading.reset_seconds
        return reading

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (Cal.com said 429 and when the block ends)."""
        self._server_remaining = 0
        self._server_reset_at = max(self._server_reset_at, self._clock() + seconds)
