"""When to try a Cal.com request again, and for how long a caller may be kept waiting.

A voice caller waits in silence, so every call has one time budget covering pacing waits, connect,
read, back-off and retries; each attempt's timeouts come from what is left of it.

Retries never risk a duplicate:
- a read (GET) is tried again after a 5xx, a timeout, a connection error or an unreadable body;
- a write (POST) only when its request certainly never left (`_errors.never_sent`), or after a 429,
  which Cal.com's throttler sends before any handler runs, so nothing was done;
- a 429 waits out Cal.com's own `X-RateLimit-Reset` when that fits in the budget, else it is raised.
Back-off is exponential with full jitter. All of it runs through the shared `Pacer` and
`CircuitBreaker` of the client, and the key's budget shared between instances (`_budget`) if it has one.

A background call (the warm slots' refresh, `core/warm.py`) yields to callers: it is tried once, never
waits for the pacer, is refused at once while the breaker is not closed (the half-open probe is a
caller's), and is not sent at all while a quarter or less of the minute's requests are left, so a caller
never waits behind one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx2

from appt_tools.calcom import _errors, _wire
from appt_tools.calcom._breaker import CircuitBreaker
from appt_tools.calcom._budget import SharedBudget
from appt_tools.calcom._pacing import Pacer

_T = TypeVar("_T")

Send = Callable[[httpx2.Timeout], Awaitable[httpx2.Response]]
"""One HTTP attempt with the given timeouts; the body is read before it returns."""
Read = Callable[[httpx2.Response], _T]
"""The answer as a value; raises a `CalcomError` for an error status, `MalformedResponse` if unreadable."""

# No attempt is started with less time than this left: it could not finish.
MIN_ATTEMPT = 0.5
# Connecting (TLS included) is quick when Cal.com is up, so a stuck connect leaves time for a retry.
CONNECT_TIMEOUT = 2.5
# A read that is not the last try gets this share of what is left, so a hung answer leaves room.
READ_SHARE = 0.6
BACKOFF_BASE = 0.25
BACKOFF_CAP = 2.0
# A background call is sent only while more than this share of the rate limit is left for callers.
CALLERS_SHARE = 0.25

# Failures that say Cal.com is down, for the breaker. Others (a bad URL, an unsupported scheme) are ours.
_DOWN = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)


class CallPolicy:
    """Runs each client call under its time budget, with retries, pacing and the circuit breaker."""

    def __init__(
        self,
        *,
        read_budget: float,
        write_budget: float,
        max_attempts: int,
        pacer: Pacer,
        breaker: CircuitBreaker,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        budget: SharedBudget | None = None,
    ) -> None:
        if read_budget <= 0 or write_budget <= 0 or max_attempts < 1:
            raise ValueError(
                f"budgets must be positive and max_attempts >= 1, got {read_budget}, {write_budget}, {max_attempts}"
            )
        self._budgets = read_budget, write_budget
        self._max_attempts = max_attempts
        self._pacer = pacer
        self._breaker = breaker
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._budget = budget

    async def call(self, method: str, send: Send, read: Read[_T], *, background: bool = False) -> _T:
        """The value of the first usable answer; else the last failure, raised. `background`: see above."""
        safe = _errors.is_safe(method)
        deadline = self._clock() + self._budgets[0 if safe else 1]
        last: httpx2.Response | httpx2.TransportError | None = None
        if background and self._spare() <= self._pacer.limit * CALLERS_SHARE:
            raise _errors.kept_for_callers()
        for attempt in range(1 if background else self._max_attempts):
            if last is not None:
                throttled = isinstance(last, httpx2.Response) and last.status_code == 429
                pause = 0.0 if throttled else self._backoff(attempt)
                if pause + MIN_ATTEMPT > deadline - self._clock():
                    break
                if pause:
                    await self._sleep(pause)
            if not await self._admit(deadline, retry=last is not None, background=background):
                break
            left = deadline - self._clock()
            final = attempt == self._max_attempts - 1 or not safe
            try:
                response = await _send_within(send, left if final else min(left, max(left * READ_SHARE, MIN_ATTEMPT)))
            except httpx2.TransportError as exc:
                if isinstance(exc, _DOWN):
                    self._breaker.failed()
                else:
                    self._breaker.abandoned()
                last = exc
                if _errors.never_sent(exc) or (safe and isinstance(exc, _DOWN)):
                    continue
                raise
            except BaseException:
                self._breaker.abandoned()
                raise
            self._pacer.observe(response.headers)
            last = response
            if response.status_code >= 500:
                self._breaker.failed()
                if safe:
                    continue
                break
            self._breaker.succeeded()
            if response.status_code == 429:
                limit = _wire.rate_limit(response.headers)
                if limit is None:
                    break
                self._pacer.hold(limit.reset_seconds)
                if limit.reset_seconds + MIN_ATTEMPT > deadline - self._clock():
                    break
                continue
            try:
                return read(response)
            except _wire.MalformedResponse as exc:
                if not safe:
                    raise _errors.malformed(str(exc), status=response.status_code, method=method) from None
        return _give_up(last, read, method=method)

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(retry-1))) before the `retry`-th retry."""
        return self._random() * min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (retry - 1))

    def _spare(self) -> int:
        """Requests that could go now, by this client's pacer and the key's shared budget."""
        room = self._pacer.headroom()
        return room if self._budget is None else min(room, self._budget.left)

    async def _admit(self, deadline: float, *, retry: bool, background: bool = False) -> bool:
        """Pass the breaker, then wait for the pacer. A first attempt they refuse raises; a retry gets False.
        A background call waits for neither: it is refused at once."""
        if background and not self._breaker.closed:  # the half-open probe is left to a caller
            raise _errors.circuit_open(max(self._breaker.open_for(), MIN_ATTEMPT))
        refused_for = self._breaker.admit()
        if refused_for > 0:
            if retry:
                return False
            raise _errors.circuit_open(refused_for)
        try:
            too_long = await self._pace(deadline, background=background)
        except BaseException:
            self._breaker.abandoned()  # cancelled while waiting: a half-open probe must not stay taken
            raise
        if too_long:
            self._breaker.abandoned()
            if retry:
                return False
            raise _errors.paced(too_long)
        return True

    async def _pace(self, deadline: float, *, background: bool = False) -> float:
        """Wait until the pacer and the shared budget let a request go, and count it: 0.0. A wait the time
        budget cannot hold (any wait, for a background call): that wait."""
        while True:
            while (wait := self._pacer.wait()) > 0:
                if background or wait + MIN_ATTEMPT > deadline - self._clock():
                    return wait
                await self._sleep(wait)
            wait = 0.0 if self._budget is None else await self._budget.take()
            if wait <= 0:
                break
            if background or wait + MIN_ATTEMPT > deadline - self._clock():
                return wait
            await self._sleep(wait)
        self._pacer.sent()
        return 0.0


async def _send_within(send: Send, seconds: float) -> httpx2.Response:
    """One attempt that cannot outlive `seconds`: httpx2's timeouts bound each connect and read,
    and this bounds the whole (a body that trickles in would otherwise keep going)."""
    timeout = httpx2.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT), pool=min(seconds, CONNECT_TIMEOUT))
    try:
        async with asyncio.timeout(seconds):
            return await send(timeout)
    except httpx2.HTTPError:
        raise
    except TimeoutError:
        raise httpx2.ReadTimeout("the time budget ran out before Cal.com answered") from None


def _give_up(last: httpx2.Response | httpx2.TransportError | None, read: Read[_T], *, method: str) -> _T:
    """Out of attempts, time, or leave to retry: the last failure, as if it were the only one."""
    if isinstance(last, httpx2.TransportError):
        raise last
    assert last is not None, "a first attempt either gets an answer or raises"
    try:
        return read(last)
    except _wire.MalformedResponse as exc:
        raise _errors.malformed(str(exc), status=last.status_code, method=method) from None
