"""CalcomClient when Cal.com is slow, failing, rate-limiting or down.

Scripted answers come through an injected httpx2.MockTransport; time is a fake clock that moves only
when the client sleeps or a handler says time passed, so budgets are checked on it, not on the wall.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest

from appt_tools.calcom import CalcomClient
from appt_tools.errors import CalcomNotFound, CalcomRateLimited, CalcomUnavailable
from appt_tools.models import BookingRequest, RateLimit
from test_calcom_client import (
    API_KEY,
    ATTENDEE,
    START,
    Handler,
    Recorder,
    booking_json,
    envelope_error,
    me_json,
    plain_error,
    raising,
    success,
)

Call = Callable[[CalcomClient], Awaitable[Any]]
REQUEST = BookingRequest(start=START, event_type_id=123, **ATTENDEE)
WRITES = [
    pytest.param(lambda c: c.create_booking(REQUEST), id="create"),
    pytest.param(lambda c: c.reschedule_booking("abc", START), id="reschedule"),
    pytest.param(lambda c: c.cancel_booking("abc", "client asked"), id="cancel"),
]


class FakeTime:
    """The client's clock and sleep. `now` moves by what the client sleeps and what handlers spend."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.start = self.now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def elapsed(self) -> float:
        return self.now - self.start


def client_for(recorder: Recorder, time: FakeTime, **options: Any) -> CalcomClient:
    options.setdefault("random", lambda: 0.5)
    return CalcomClient(
        API_KEY,
        "https://cal.test",
        transport=httpx2.MockTransport(recorder),
        clock=time.clock,
        sleep=time.sleep,
        **options,
    )


def hanging(time: FakeTime, phase: str = "read") -> Handler:
    """Cal.com that never answers: each attempt uses up its whole `phase` timeout, then times out."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        time.now += request.extensions["timeout"][phase]
        if phase == "connect":
            raise httpx2.ConnectTimeout("timed out", request=request)
        raise httpx2.ReadTimeout("timed out", request=request)

    return handler


def throttled(reset: int) -> httpx2.Response:
    """Cal.com's throttler answer (NOTES §5): Reset is seconds from now, and there is no Retry-After."""
    return envelope_error(
        429,
        "ThrottlerException",
        "CustomThrottlerGuard - Too many requests. Please try again later.",
        **{
            "X-RateLimit-Limit-Default": "120",
            "X-RateLimit-Remaining-Default": "0",
            "X-RateLimit-Reset-Default": str(reset),
        },
    )


def fine(request: httpx2.Request) -> httpx2.Response:
    """A success answer for /v2/me and for any booking write."""
    return success(me_json()) if request.url.path == "/v2/me" else success(booking_json())


def with_limit(response: httpx2.Response, remaining: int, reset: int) -> httpx2.Response:
    response.headers.update(
        {
            "X-RateLimit-Limit-Default": "120",
            "X-RateLimit-Remaining-Default": str(remaining),
            "X-RateLimit-Reset-Default": str(reset),
        }
    )
    return response


# --- time budgets ------------------------------------------------------------------------------


async def test_a_read_from_a_cal_com_that_never_answers_gives_up_when_its_budget_is_spent() -> None:
    time = FakeTime()
    recorder = Recorder(hanging(time))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.get_booking("abc")
    assert time.elapsed == pytest.approx(8.0)
    assert len(recorder.requests) == 3
    reads = [r.extensions["timeout"]["read"] for r in recorder.requests]
    # Each try gets a share of what is left, so a hung first try still leaves room for more.
    assert reads[0] < 8.0 and reads == sorted(reads, reverse=True)
    assert all(r.extensions["timeout"]["connect"] <= 2.5 for r in recorder.requests)
    assert not caught.value.outcome_unknown


async def test_a_write_to_a_cal_com_that_never_answers_is_sent_once_and_its_outcome_is_unknown() -> None:
    time = FakeTime()
    recorder = Recorder(hanging(time))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.create_booking(REQUEST)
    assert time.elapsed == pytest.approx(10.0)
    assert len(recorder.requests) == 1
    assert caught.value.outcome_unknown and not caught.value.retryable


async def test_the_budgets_follow_the_timeout_given_to_the_client() -> None:
    time = FakeTime()
    async with client_for(Recorder(hanging(time)), time, timeout=5.0) as client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
        # Reads get 80% of it; a retry that could not finish in what is left is not started.
        assert 3.0 < time.elapsed <= 4.0
        time.start = time.now
        with pytest.raises(CalcomUnavailable):
            await client.cancel_booking("abc", "client asked")
        assert time.elapsed == pytest.approx(5.0)


async def test_a_write_whose_connection_never_opens_is_tried_again_and_reports_nothing_was_sent() -> None:
    time = FakeTime()
    recorder = Recorder(hanging(time, "connect"))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.create_booking(REQUEST)
    assert len(recorder.requests) == 3
    assert time.elapsed < 10.0
    assert not caught.value.outcome_unknown and caught.value.retryable


async def test_an_answer_that_never_ends_is_cut_off_at_the_budget_even_if_the_transport_ignores_timeouts() -> None:
    async def never(request: httpx2.Request) -> httpx2.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    # Real time here: the budget is enforced around the attempt, not only by httpx2's timeouts.
    client = CalcomClient(API_KEY, "https://cal.test", transport=httpx2.MockTransport(never), read_timeout=0.2)
    async with asyncio.timeout(5), client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.me()
    assert caught.value.status is None


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(plain_error(503, "Service Unavailable"), id="503"),
        pytest.param(plain_error(500, "Internal server error"), id="500"),
        pytest.param(raising(httpx2.ReadTimeout("timed out")), id="read timeout"),
        pytest.param(raising(httpx2.ConnectError("refused")), id="connection refused"),
        pytest.param(raising(httpx2.RemoteProtocolError("server disconnected")), id="dropped connection"),
        pytest.param(httpx2.Response(200, text="<html>maintenance</html>"), id="malformed body"),
        pytest.param(success({"id": 7}), id="incomplete body"),
    ],
)
async def test_a_read_is_tried_again_after_a_failure_that_may_pass_and_then_succeeds(
    failure: httpx2.Response | Handler,
) -> None:
    time = FakeTime()
    recorder = Recorder(failure, success(me_json()))
    async with client_for(recorder, time) as client:
        profile = await client.me()
    assert profile.username == "host"
    assert len(recorder.requests) == 2
    assert len(time.sleeps) == 1


async def test_a_read_that_keeps_failing_gives_the_last_failure_after_its_attempts() -> None:
    time = FakeTime()
    recorder = Recorder(plain_error(503, "Service Unavailable"))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.slots(123, START, START.replace(hour=12))
    assert len(recorder.requests) == 3
    assert caught.value.status == 503


@pytest.mark.parametrize("call", WRITES)
@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(raising(httpx2.ReadTimeout("timed out")), id="read timeout"),
        pytest.param(raising(httpx2.RemoteProtocolError("server disconnected")), id="dropped connection"),
        pytest.param(plain_error(500, "Internal server error"), id="500"),
        pytest.param(plain_error(503, "Service Unavailable"), id="503"),
    ],
)
async def test_a_write_is_never_repeated_once_it_may_have_reached_cal_com(
    failure: httpx2.Response | Handler, call: Call
) -> None:
    time = FakeTime()
    recorder = Recorder(failure, success(booking_json()))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await call(client)
    assert len(recorder.requests) == 1
    assert caught.value.outcome_unknown and not caught.value.retryable
    assert caught.value.code == "calcom_unavailable"


@pytest.mark.parametrize("call", WRITES)
async def test_a_write_is_tried_again_when_its_connection_was_never_made(call: Call) -> None:
    time = FakeTime()
    recorder = Recorder(
        raising(httpx2.ConnectError("refused")),
        raising(httpx2.ConnectTimeout("timed out")),
        success(booking_json(status="cancelled")),
    )
    async with client_for(recorder, time) as client:
        booking = await call(client)
    assert booking.uid == "qKcFyCSn9qfuj1Ba435EXE"
    assert len(recorder.requests) == 3
    assert len({r.content for r in recorder.requests}) == 1


async def test_an_unreadable_answer_to_a_write_is_not_repeated_and_says_to_look_it_up() -> None:
    time = FakeTime()
    recorder = Recorder(httpx2.Response(201, text="<html>oops</html>"), success(booking_json()))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.create_booking(REQUEST)
    assert len(recorder.requests) == 1
    assert caught.value.outcome_unknown and caught.value.status == 201


async def test_refusals_are_not_tried_again() -> None:
    time = FakeTime()
    recorder = Recorder(envelope_error(404, "NotFoundException", "no such booking"))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomNotFound):
            await client.get_booking("abc")
    assert len(recorder.requests) == 1
    assert time.sleeps == []


async def test_back_off_is_full_jitter_under_an_exponential_cap() -> None:
    time = FakeTime()
    recorder = Recorder(plain_error(503, "Service Unavailable"))
    rng = random.Random(20500905)
    async with client_for(
        recorder, time, max_attempts=8, read_timeout=60.0, breaker_threshold=10, random=rng.random
    ) as client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
    caps = [min(2.0, 0.25 * 2**k) for k in range(7)]
    assert len(time.sleeps) == 7
    assert all(0 <= pause < cap for pause, cap in zip(time.sleeps, caps, strict=True)), time.sleeps
    assert len(set(time.sleeps)) == 7


@pytest.mark.parametrize(("draw", "expected"), [(0.0, []), (0.999, [0.24975, 0.4995])])
async def test_jitter_reaches_from_no_wait_to_just_under_the_cap(draw: float, expected: list[float]) -> None:
    time = FakeTime()
    async with client_for(Recorder(plain_error(503, "down")), time, random=lambda: draw) as client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
    assert time.sleeps == pytest.approx(expected)


# --- 429 and pacing ----------------------------------------------------------------------------


@pytest.mark.parametrize("call", [pytest.param(lambda c: c.me(), id="read"), *WRITES])
async def test_a_429_that_resets_within_the_budget_is_waited_out_and_tried_again(call: Call) -> None:
    # A 429 comes from the throttler guard before any handler runs, so even a write was not done.
    time = FakeTime()
    recorder = Recorder(throttled(reset=2), fine)
    async with client_for(recorder, time) as client:
        await call(client)
    assert time.sleeps == [2.0]
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("call", [pytest.param(lambda c: c.me(), id="read"), *WRITES])
async def test_a_429_that_resets_after_the_budget_is_raised_at_once_with_its_wait(call: Call) -> None:
    time = FakeTime()
    recorder = Recorder(throttled(reset=60), success(me_json()))
    async with client_for(recorder, time) as client:
        with pytest.raises(CalcomRateLimited) as caught:
            await call(client)
        assert client.last_rate_limit == RateLimit(limit=120, remaining=0, reset_seconds=60)
        # The block holds every call of this client: the next one is refused without a request.
        with pytest.raises(CalcomRateLimited) as again:
            await client.me()
    assert caught.value.retry_after == 60 and caught.value.retryable
    assert 58 <= (again.value.retry_after or 0) <= 60
    assert time.elapsed == 0 and time.sleeps == []
    assert len(recorder.requests) == 1


async def test_the_121st_request_in_a_minute_waits_for_the_window_instead_of_tripping_the_block() -> None:
    time = FakeTime()
    sent_at: list[float] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent_at.append(time.now)
        return success(me_json())

    async with client_for(Recorder(answer), time) as client:
        for _ in range(120):
            await client.me()
        time.now += 55.0
        await client.me()
    assert len(sent_at) == 121
    assert sent_at[120] - sent_at[0] >= 60.0
    assert sum(time.sleeps) <= 8.0


async def test_a_request_over_the_pace_that_cannot_wait_within_its_budget_is_refused_at_once() -> None:
    time = FakeTime()
    recorder = Recorder(success(me_json()))
    async with client_for(recorder, time, rate_limit=10, rate_window=60.0) as client:
        for _ in range(10):
            await client.me()
        with pytest.raises(CalcomRateLimited) as caught:
            await client.me()
    assert len(recorder.requests) == 10
    assert caught.value.status is None
    assert 60 <= (caught.value.retry_after or 0) <= 61
    assert time.sleeps == []


async def test_when_cal_com_says_none_remain_the_next_call_waits_for_its_reset() -> None:
    time = FakeTime()
    recorder = Recorder(with_limit(success(me_json()), remaining=0, reset=3), success(me_json()))
    async with client_for(recorder, time) as client:
        await client.me()
        await client.me()
    assert time.sleeps == [3.0]
    assert len(recorder.requests) == 2


async def test_when_cal_com_says_none_remain_for_longer_than_the_budget_the_next_call_is_refused() -> None:
    time = FakeTime()
    recorder = Recorder(with_limit(success(me_json()), remaining=0, reset=45))
    async with client_for(recorder, time) as client:
        await client.me()
        with pytest.raises(CalcomRateLimited) as caught:
            await client.create_booking(REQUEST)
    assert caught.value.retry_after == 45
    assert len(recorder.requests) == 1


# --- circuit breaker ---------------------------------------------------------------------------


async def test_the_breaker_opens_after_failures_in_a_row_fails_fast_then_lets_one_probe_through() -> None:
    time = FakeTime()
    down = raising(httpx2.ConnectError("refused"))
    recorder = Recorder(down, down, down, success(me_json()))
    async with client_for(recorder, time, max_attempts=1, breaker_threshold=3, breaker_cooldown=30.0) as client:
        for _ in range(3):
            with pytest.raises(CalcomUnavailable):
                await client.me()
        with pytest.raises(CalcomUnavailable) as fast:
            await client.create_booking(REQUEST)
        assert len(recorder.requests) == 3
        assert time.elapsed == 0
        assert not fast.value.outcome_unknown and fast.value.retryable

        time.now += 29.0
        with pytest.raises(CalcomUnavailable):
            await client.me()
        assert len(recorder.requests) == 3

        time.now += 1.0
        assert (await client.me()).username == "host"
        await client.me()
    assert len(recorder.requests) == 5


async def test_a_failed_probe_opens_the_breaker_for_another_cooldown() -> None:
    time = FakeTime()
    down = plain_error(502, "Bad gateway")
    recorder = Recorder(down, down, success(me_json()))
    async with client_for(recorder, time, max_attempts=1, breaker_threshold=1, breaker_cooldown=30.0) as client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
        time.now += 30.0
        with pytest.raises(CalcomUnavailable) as probe:
            await client.me()
        assert probe.value.status == 502
        time.now += 29.0
        with pytest.raises(CalcomUnavailable) as fast:
            await client.me()
        assert fast.value.status is None
        time.now += 1.0
        await client.me()
    assert len(recorder.requests) == 3


async def test_while_the_probe_is_out_other_calls_fail_fast() -> None:
    time = FakeTime()
    probing, release = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            return plain_error(503, "down")
        probing.set()
        await release.wait()
        return success(me_json())

    client = CalcomClient(
        API_KEY,
        "https://cal.test",
        transport=httpx2.MockTransport(answer),
        max_attempts=1,
        breaker_threshold=1,
        clock=time.clock,
        sleep=time.sleep,
    )
    async with asyncio.timeout(5), client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
        time.now += 30.0
        probe = asyncio.create_task(client.me())
        await probing.wait()
        with pytest.raises(CalcomUnavailable):
            await client.me()
        release.set()
        assert (await probe).username == "host"
        await client.me()
    assert len(sent) == 3


async def test_a_probe_cancelled_midway_leaves_the_next_call_free_to_probe() -> None:
    time = FakeTime()
    sent: list[str] = []
    probing = asyncio.Event()

    async def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            return plain_error(503, "down")
        if len(sent) == 2:
            probing.set()
            await asyncio.Event().wait()
        return success(me_json())

    client = CalcomClient(
        API_KEY,
        "https://cal.test",
        transport=httpx2.MockTransport(answer),
        max_attempts=1,
        breaker_threshold=1,
        clock=time.clock,
        sleep=time.sleep,
    )
    async with asyncio.timeout(5), client:
        with pytest.raises(CalcomUnavailable):
            await client.me()
        time.now += 30.0
        probe = asyncio.create_task(client.me())
        await probing.wait()
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert (await client.me()).username == "host"
    assert len(sent) == 3


async def test_refusals_and_rate_limits_do_not_open_the_breaker() -> None:
    time = FakeTime()
    recorder = Recorder(
        envelope_error(404, "NotFoundException", "no such booking"),
        envelope_error(404, "NotFoundException", "no such booking"),
        throttled(reset=1),
        success(booking_json()),
    )
    async with client_for(recorder, time, max_attempts=1, breaker_threshold=2) as client:
        for _ in range(2):
            with pytest.raises(CalcomNotFound):
                await client.get_booking("abc")
        with pytest.raises(CalcomRateLimited):
            await client.get_booking("abc")
        await client.get_booking("abc")
    assert len(recorder.requests) == 4


async def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    time = FakeTime()
    down = plain_error(500, "Internal server error")
    recorder = Recorder(down, down, success(me_json()), down, down, success(me_json()))
    async with client_for(recorder, time, max_attempts=1, breaker_threshold=3) as client:
        for expect_ok in (False, False, True, False, False, True):
            if expect_ok:
                await client.me()
            else:
                with pytest.raises(CalcomUnavailable):
                    await client.me()
    assert len(recorder.requests) == 6


async def test_a_read_whose_tries_open_the_breaker_stops_and_reports_cal_coms_failure() -> None:
    time = FakeTime()
    recorder = Recorder(plain_error(503, "Service Unavailable"))
    async with client_for(recorder, time, breaker_threshold=2) as client:
        with pytest.raises(CalcomUnavailable) as caught:
            await client.me()
    assert len(recorder.requests) == 2
    assert caught.value.status == 503


# --- the shared budget (calcom/_budget.py) ------------------------------------------------------


class _SlowLedger:
    """A ledger whose claims take `delay` seconds (a busy database); it grants what is asked within a
    fixed window of `limit`."""

    def __init__(self, limit: int, delay: float) -> None:
        self.limit, self.delay, self.claimed, self.claims = limit, delay, 0, 0

    async def claim(self, key_id: str, want: int, *, limit: int, window: float) -> Any:
        from appt_tools.calcom._budget import Grant

        self.claims += 1
        await asyncio.sleep(self.delay)
        granted = min(want, self.limit - self.claimed)
        self.claimed += granted
        return Grant(granted, self.limit - self.claimed, 60.0)


async def test_the_next_batch_is_claimed_before_it_is_needed_so_callers_wait_once_a_window() -> None:
    from appt_tools.calcom._budget import SharedBudget

    ledger = _SlowLedger(limit=120, delay=0.05)
    loop = asyncio.get_running_loop()
    budget = SharedBudget(ledger, "key", limit=120, window=60.0, clock=loop.time)
    waited = []
    for _ in range(40):  # eight batches of five, one request at a time as callers send them
        started = loop.time()
        assert await budget.take() == 0.0
        waited.append(loop.time() - started)
        await asyncio.sleep(0.06)  # between calls: a refill claimed in the background lands meanwhile
    assert waited[0] >= 0.05  # the first request of the window waits for the first claim
    assert max(waited[1:]) < 0.04  # no other does
    assert ledger.claimed <= 40 + 2 * 5  # never more than a batch claimed ahead of what was spent
    assert ledger.claims >= 8
    await budget.aclose()
