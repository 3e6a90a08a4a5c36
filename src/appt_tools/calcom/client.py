"""The Cal.com API v2 client: one shared HTTP connection pool, domain models in and out."""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx2

from appt_tools.calcom import _errors, _wire
from appt_tools.calcom._breaker import CircuitBreaker
from appt_tools.calcom._budget import BudgetLedger, SharedBudget
from appt_tools.calcom._pacing import Pacer
from appt_tools.calcom._policy import CallPolicy
from appt_tools.models import (
    Booking,
    BookingPage,
    BookingRequest,
    EventType,
    HostProfile,
    RateLimit,
    Slot,
    Team,
    Webhook,
)

# `cal-api-version` per endpoint family, keyed by the path segment after /v2/ (NOTES §2). A
# missing or wrong value silently reaches a legacy controller, so it is set per request from this
# table and never on the client as a whole. None: the family accepts any version, send none.
API_VERSIONS: Final[Mapping[str, str | None]] = {
    "bookings": "2024-08-13",
    "slots": "2024-09-04",
    "event-types": "2024-06-14",
    "me": None,
    "webhooks": None,
    "teams": None,
}

BOOKING_STATUS_FILTERS: Final = frozenset({"upcoming", "recurring", "past", "cancelled", "unconfirmed"})
_MAX_TAKE: Final = 250

_T = TypeVar("_T")


class CalcomClient:
    """Talks to Cal.com API v2 with an API key; raises `appt_tools.errors.CalcomError` subclasses.

    Use as an async context manager (or call `aclose`). `last_rate_limit` holds the most recent
    `X-RateLimit-*` reading; it keeps its value when a response carries none.

    Built for a caller on the phone (see `_policy`): each call ends within its time budget,
    `timeout` seconds for a write and `read_timeout` (default 80% of it) for a read, pacing waits
    and retries included. Reads are retried up to `max_attempts` times; a write only when it
    certainly never reached Cal.com, so nothing is booked twice. Requests are paced to `rate_limit`
    per `rate_window` seconds, per client instance and, given a `budget` ledger, across every client
    (every process) claiming from it for the same key (`_budget`). After
    `breaker_threshold` failures in a row (timeouts, connection errors, 5xx) calls fail at once
    for `breaker_cooldown` seconds, then one probe is let through. `transport` is the innermost
    HTTP transport; `clock`, `sleep` and `random` are seams for tests.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.cal.com",
        *,
        timeout: float = 10.0,
        read_timeout: float | None = None,
        max_attempts: int = 3,
        rate_limit: int = 120,
        rate_window: float = 60.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        budget: BudgetLedger | None = None,
    ) -> None:
        self._api_key = api_key
        # Every path below starts with /v2; the Platform docs give the API URL with /v2 included
        # (NOTES §1), so accept either form rather than request /v2/v2/….
        self._base_url = base_url.rstrip("/").removesuffix("/v2")
        self._pacer = Pacer(rate_limit, rate_window, clock=clock)
        self._budget = None if budget is None else SharedBudget(budget, api_key, rate_limit, rate_window, clock=clock)
        self._policy = CallPolicy(
            read_budget=read_timeout if read_timeout is not None else 0.8 * timeout,
            write_budget=timeout,
            max_attempts=max_attempts,
            pacer=self._pacer,
            breaker=CircuitBreaker(breaker_threshold, breaker_cooldown, clock=clock),
            clock=clock,
            sleep=sleep,
            random=random,
            budget=self._budget,
        )
        # Each attempt sets its own timeouts from what is left of its call's budget.
        self._http = httpx2.AsyncClient(
            base_url=self._base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"CalcomClient(base_url={self._base_url!r})"

    @property
    def last_rate_limit(self) -> RateLimit | None:
        return self._pacer.last

    @property
    def rate_limit(self) -> int:
        """Requests this client allows itself per rate window (a minute unless told otherwise)."""
        return self._pacer.limit

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._budget is not None:
            await self._budget.aclose()
        await self._http.aclose()

    # --- endpoints ------------------------------------------------------------------------------

    async def me(self) -> HostProfile:
        """The Cal.com user that owns the API key."""
        return await self._call(_wire.me, "GET", "/v2/me")

    async def event_types(self, username: str) -> list[EventType]:
        """That user's event types (hidden ones only when the key is the owner's)."""
        return await self._call(_wire.event_types, "GET", "/v2/event-types", params={"username": username})

    async def teams(self) -> list[Team]:
        """The teams the key's user is a member of."""
        return await self._call(_wire.teams, "GET", "/v2/teams")

    async def team_event_types(self, team_id: int) -> list[EventType]:
        """A team's event types (round robin, collective, managed), each with its team and scheduling type."""
        return await self._call(_wire.event_types, "GET", f"/v2/teams/{int(team_id)}/event-types")

    async def slots(
        self,
        event_type_id: int,
        start: datetime,
        end: datetime,
        *,
        time_zone: str | None = None,
        duration_minutes: int | None = None,
        booking_uid_to_reschedule: str | None = None,
        background: bool = False,
    ) -> list[Slot]:
        """Free slots of an event type starting in [start, end), in UTC, sorted by start. `background`: for
        no caller (the warm slots' refresh): tried once, and not sent at all rather than wait (`_policy`)."""
        params = {
            "eventTypeId": str(event_type_id),
            "start": _utc(start, "start"),
            "end": _utc(end, "end"),
            "format": "range",
        }
        if time_zone is not None:
            params["timeZone"] = time_zone
        if duration_minutes is not None:
            params["duration"] = str(duration_minutes)
        if booking_uid_to_reschedule is not None:
            params["bookingUidToReschedule"] = booking_uid_to_reschedule
        length = timedelta(minutes=duration_minutes) if duration_minutes is not None else None
        found = await self._call(
            lambda body: _wire.slots(body, default_length=length),
            "GET",
            "/v2/slots",
            params=params,
            background=background,
        )
        # Cal.com widens a midnight `end` to 23:59:59 of that day and has returned slots outside
        # the range (NOTES §3.1, §9.3), so keep only what was asked for.
        return [slot for slot in found if start <= slot.start < end]

    async def create_booking(self, request: BookingRequest) -> Booking:
        """Book a slot. A taken slot raises `CalcomSlotTaken`."""
        attendee: dict[str, str] = {"name": request.attendee_name, "timeZone": request.attendee_time_zone}
        if request.attendee_email:
            attendee["email"] = request.attendee_email
        if request.attendee_phone:
            attendee["phoneNumber"] = request.attendee_phone
        if request.language:
            attendee["language"] = request.language
        payload: dict[str, Any] = {
            "start": _utc(request.start, "start"),
            "eventTypeId": request.event_type_id,
            "attendee": attendee,
        }
        if request.length_minutes is not None:
            payload["lengthInMinutes"] = request.length_minutes
        if request.metadata:
            payload["metadata"] = dict(request.metadata)
        if request.answers:
            payload["bookingFieldsResponses"] = dict(request.answers)
        if request.call_attendee_at:
            payload["location"] = {"type": "attendeePhone", "phone": request.call_attendee_at}
        return await self._call(_wire.booking, "POST", "/v2/bookings", json=payload)

    async def list_bookings(
        self,
        *,
        attendee_email: str | None = None,
        attendee_name: str | None = None,
        event_type_id: int | None = None,
        after_start: datetime | None = None,
        before_end: datetime | None = None,
        status: Sequence[str] = (),
        take: int = 100,
        skip: int = 0,
    ) -> BookingPage:
        """The key owner's bookings, filtered (attendee email matches exactly), one page."""
        if not 1 <= take <= _MAX_TAKE or skip < 0:
            raise ValueError(f"take must be 1..{_MAX_TAKE} and skip >= 0, got take={take} skip={skip}")
        unknown = sorted(set(status) - BOOKING_STATUS_FILTERS)
        if unknown:
            raise ValueError(f"unknown status filter(s) {unknown}; use {sorted(BOOKING_STATUS_FILTERS)}")
        params = {"take": str(take), "skip": str(skip)}
        if attendee_email is not None:
            params["attendeeEmail"] = attendee_email
        if attendee_name is not None:
            params["attendeeName"] = attendee_name
        if event_type_id is not None:
            params["eventTypeId"] = str(event_type_id)
        if after_start is not None:
            params["afterStart"] = _utc(after_start, "after_start")
        if before_end is not None:
            params["beforeEnd"] = _utc(before_end, "before_end")
        if status:
            params["status"] = ",".join(status)
        return await self._call(_wire.booking_page, "GET", "/v2/bookings", params=params)

    async def get_booking(self, uid: str) -> Booking:
        """One booking by uid; `CalcomNotFound` if Cal.com has none."""
        return await self._call(_wire.booking, "GET", f"/v2/bookings/{_segment(uid)}")

    async def reschedule_booking(self, uid: str, start: datetime, *, reason: str | None = None) -> Booking:
        """Move a booking. Cal.com makes a NEW booking (new uid) and cancels the old one (NOTES §3.3)."""
        payload = {"start": _utc(start, "start")}
        if reason is not None:
            payload["reschedulingReason"] = reason
        path = f"/v2/bookings/{_segment(uid)}/reschedule"
        new = await self._call(_wire.booking, "POST", path, json=payload)
        if new.rescheduled_from_uid is None:
            new = new.model_copy(update={"rescheduled_from_uid": uid})
        return new

    async def cancel_booking(self, uid: str, reason: str) -> Booking:
        """Cancel a booking. The host must give a reason (NOTES §3.4); the booking comes back cancelled."""
        payload = {"cancellationReason": reason}
        return await self._call(_wire.booking, "POST", f"/v2/bookings/{_segment(uid)}/cancel", json=payload)

    async def reserve_slot(
        self, event_type_id: int, start: datetime, *, length_minutes: int | None, minutes: int
    ) -> str:
        """Hide `start` from other bookers of Cal.com's booking page for `minutes` (NOTES §12.14; a direct
        API booking is not stopped). The reservation's uid, to release it."""
        payload: dict[str, Any] = {
            "eventTypeId": event_type_id,
            "slotStart": _utc(start, "start"),
            "reservationDuration": minutes,
        }
        if length_minutes is not None:
            payload["slotDuration"] = length_minutes
        return await self._call(_wire.reservation_uid, "POST", "/v2/slots/reservations", json=payload)

    async def release_reservation(self, uid: str) -> None:
        """End a reservation early (`CalcomNotFound` if Cal.com has none by that uid, e.g. expired)."""
        await self._call(_wire.success, "DELETE", f"/v2/slots/reservations/{_segment(uid)}")

    async def confirm_booking(self, uid: str) -> Booking:
        """Accept a pending booking as the host (NOTES §3.9); Cal.com tells the attendee."""
        return await self._call(_wire.booking, "POST", f"/v2/bookings/{_segment(uid)}/confirm")

    async def decline_booking(self, uid: str, reason: str | None = None) -> Booking:
        """Turn down a pending booking as the host; it becomes `rejected` and the attendee is told."""
        payload = {"reason": reason} if reason else {}
        return await self._call(_wire.booking, "POST", f"/v2/bookings/{_segment(uid)}/decline", json=payload)

    async def webhooks(self) -> list[Webhook]:
        """The key owner's user-level webhooks (NOTES §8)."""
        return await self._call(_wire.webhooks, "GET", "/v2/webhooks", params={"take": "250"})

    async def create_webhook(self, url: str, triggers: Sequence[str], secret: str) -> Webhook:
        payload = {"subscriberUrl": url, "active": True, "triggers": list(triggers), "secret": secret}
        return await self._call(_wire.webhook, "POST", "/v2/webhooks", json=payload)

    async def update_webhook(self, webhook_id: str, url: str, triggers: Sequence[str], secret: str) -> Webhook:
        payload = {"subscriberUrl": url, "active": True, "triggers": list(triggers), "secret": secret}
        return await self._call(_wire.webhook, "PATCH", f"/v2/webhooks/{_segment(webhook_id)}", json=payload)

    async def delete_webhook(self, webhook_id: str) -> Webhook:
        return await self._call(_wire.webhook, "DELETE", f"/v2/webhooks/{_segment(webhook_id)}")

    # --- plumbing -------------------------------------------------------------------------------

    async def _call(
        self,
        mapper: Callable[[object], _T],
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        background: bool = False,
    ) -> _T:
        """Send one request under the retry policy and map its body; every failure becomes a `CalcomError`."""
        version = API_VERSIONS[path.split("/")[2]]
        headers = {"cal-api-version": version} if version is not None else {}

        async def send(limits: httpx2.Timeout) -> httpx2.Response:
            return await self._http.request(method, path, params=params, json=json, headers=headers, timeout=limits)

        def read(response: httpx2.Response) -> _T:
            if not response.is_success:
                raise _errors.error_from_response(response, method=method, secret=self._api_key)
            try:
                body = response.json()
            except ValueError:
                raise _wire.MalformedResponse("the body is not JSON") from None
            return mapper(body)

        try:
            return await self._policy.call(method, send, read, background=background)
        except httpx2.HTTPError as exc:
            raise _errors.error_from_transport(exc, method=method, secret=self._api_key) from None


def _utc(value: datetime, name: str) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the only form Cal.com reads the same everywhere (NOTES §3)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(uid: str) -> str:
    if not uid:
        raise ValueError("booking uid must not be empty")
    return quote(uid, safe="")
