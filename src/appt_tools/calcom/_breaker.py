"""A circuit breaker, so a caller hears "the calendar is not answering" at once, not after a wait.

    closed ──(threshold failures in a row)──▶ open ──(cooldown passes)──▶ half-open
      ▲                                        ▲                              │
      └───────────(the probe succeeds)─────────┴────(the probe fails)─────────┘

A failure is an answer that says Cal.com is down: a timeout, a connection error or a 5xx. Any other
answer, a 4xx or a 429 included, shows Cal.com is up and resets the count. Half-open lets exactly one
request through as a probe; the others are refused until it ends.
"""

from __future__ import annotations

from collections.abc import Callable

# What a refused caller is told to wait while a probe is out: it ends within one call's budget.
_PROBE_WAIT = 5.0


class CircuitBreaker:
    """Counts consecutive failures of one client's requests and stops them for a cool-down."""

    def __init__(self, threshold: int, cooldown: float, *, clock: Callable[[], float]) -> None:
        if threshold < 1 or cooldown < 0:
            raise ValueError(f"breaker needs threshold >= 1 and cooldown >= 0, got {threshold} and {cooldown}")
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    def admit(self) -> float:
        """0 when a request may go now (in half-open, as the probe); else seconds to wait."""
        if self._open_until is None:
            return 0.0
        if self._probing:
            return _PROBE_WAIT
        left = self._open_until - self._clock()
        if left > 0:
            return left
        self._probing = True
        return 0.0

    @property
    def closed(self) -> bool:
        """Whether requests flow normally (not open, not probing)."""
        return self._open_until is None

    def open_for(self) -> float:
        """Seconds until the breaker lets a probe through (0 when closed or due); no side effect."""
        if self._open_until is None:
            return 0.0
        return _PROBE_WAIT if self._probing else max(0.0, self._open_until - self._clock())

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._open_until = self._clock() + self._cooldown
            self._probing = False

    def abandoned(self) -> None:
        """An admitted request ended without a verdict (cancelled, or never sent): free the probe."""
        self._probing = False
