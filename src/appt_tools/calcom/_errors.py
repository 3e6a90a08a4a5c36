"""HTTP status and transport failure → the `Calcom*` errors of `appt_tools.errors`, in one place.

Cal.com answers errors in two body shapes (NOTES §4): the v2 envelope
`{"status":"error","error":{"code","message","details"?}}` and the plain Nest body
`{"statusCode":N,"message":"…"}` thrown by its shared booking core. Both are read here.

A write (POST) that failed after its request may have reached Cal.com is `outcome_unknown`: Cal.com
has no idempotency key (NOTES §6), so the message says to look it up before trying again.

Only a 401 means the API key was refused. A 403 is Cal.com refusing one action with a key that works
(NOTES §12.7): a blocked attendee e-mail, an event type only its owner may book, a reschedule inside the
minimum notice; each has its own error. "Already cancelled" has two wordings (NOTES §12.1): the old
plain one of handleCancelBooking.ts and the v2 input service's envelope, both `CalcomAlreadyCancelled`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import httpx2

from appt_tools.calcom import _wire
from appt_tools.errors import (
    CalcomAlreadyCancelled,
    CalcomAuthError,
    CalcomBookingRestricted,
    CalcomEmailBlocked,
    CalcomError,
    CalcomForbidden,
    CalcomNotFound,
    CalcomRateLimited,
    CalcomRejected,
    CalcomRescheduleTooLate,
    CalcomSlotTaken,
    CalcomTimeOutOfBounds,
    CalcomUnavailable,
)

# What Cal.com says when the time is no longer free (NOTES §4, §6): the availability check (400),
# the idempotency-key race (409), a full seated slot (409), and a reservation of a time already booked or
# reserved (422, slots-2024-09-04 `SlotsService.reserveSlot` and `checkSlotOverlap`).
_SLOT_TAKEN_MARKERS = (
    "already has booking",
    "not available",
    "booking_conflict_error",
    "booking_seats_full_error",
    "no more seats left",
    "event is already booked",
    "already reserved by another user",
)
# Cal.com's two wordings of "already cancelled": handleCancelBooking.ts (plain) and, since PR #22128,
# the v2 input service (envelope): "Can't cancel booking with uid=… because it has been cancelled already…".
# booking_time_out_of_bounds_error (NOTES §4): a start too soon, too far ahead or off the grid.
_OUT_OF_BOUNDS_MARKERS = ("can't be booked at the", "booking_time_out_of_bounds")
_ALREADY_CANCELLED_MARKERS = ("has already been cancelled", "has been cancelled already")
# The 403s that are not about the key (NOTES §12.7), by what Cal.com says.
_EMAIL_BLOCKED_MARKERS = ("cannot use this email", "attendee email has been blocked")
_RESTRICTED_MARKERS = ("not authorized to book this event type", "requires authentication")
_RESCHEDULE_NOTICE_MARKERS = ("minimum notice period",)
_MAX_MESSAGE = 300


def error_from_response(response: httpx2.Response, *, method: str, secret: str) -> CalcomError:
    """The domain error for a non-2xx Cal.com response. `secret` is scrubbed from the message."""
    status = response.status_code
    said = _redact(_message(response), secret)
    if status == 429:
        limit = _wire.rate_limit(response.headers)
        wait = f" Try again in about {_seconds(limit.reset_seconds)}." if limit else ""
        return CalcomRateLimited(
            f"Cal.com rate limit reached: {said.rstrip('. ')}.{wait}",
            retry_after=limit.reset_seconds if limit else None,
        )
    if status == 401:
        return CalcomAuthError(f"Cal.com refused the API key ({status}): {said}", status=status)
    if status == 403:
        return _forbidden(said)
    if status == 404:
        return CalcomNotFound(f"Cal.com found no such resource: {said}", status=status)
    if status == 400 and _says(said, _ALREADY_CANCELLED_MARKERS):
        return CalcomAlreadyCancelled(
            f"The booking has already been cancelled in Cal.com, so there is nothing left to cancel. Cal.com said: {said}",
            status=status,
        )
    if status == 400 and _says(said, _OUT_OF_BOUNDS_MARKERS):
        return CalcomTimeOutOfBounds(f"Cal.com does not take bookings at that time: {said}", status=status)
    if status in (400, 409, 422) and _says(said, _SLOT_TAKEN_MARKERS):
        return CalcomSlotTaken(f"That time is no longer available on Cal.com: {said}", status=status)
    if 400 <= status < 500:
        return CalcomRejected(f"Cal.com rejected the request ({status}): {said}", status=status)
    # A 5xx can come after the booking was written (a failing notification or calendar sync).
    return _unavailable(f"Cal.com failed ({status}): {said}", method=method, maybe_done=True, status=status)


def _forbidden(said: str) -> CalcomForbidden:
    """A 403: Cal.com accepted the key but will not do this. Each known kind says what to do next."""
    if _says(said, _EMAIL_BLOCKED_MARKERS):
        return CalcomEmailBlocked(
            "This e-mail address is blocked by the business in Cal.com; ask the caller for another one "
            f"(for example name@example.com) and book with that. Cal.com said: {said}",
            status=403,
        )
    if _says(said, _RESTRICTED_MARKERS):
        return CalcomBookingRestricted(
            "This event type only takes bookings from its owner, hosts or admins in Cal.com, and the API key "
            "belongs to someone else. Use the event type owner's API key, or turn off the event type's "
            f"booker authentication in Cal.com. Cal.com said: {said}",
            status=403,
        )
    if _says(said, _RESCHEDULE_NOTICE_MARKERS):
        return CalcomRescheduleTooLate(
            "It is too close to the start to move this booking (the event type's minimum reschedule notice in "
            f"Cal.com). Offer to cancel it and book a new time instead, or ask the business. Cal.com said: {said}",
            status=403,
        )
    return CalcomForbidden(
        f"Cal.com does not allow this (403), though the API key itself works. Cal.com said: {said}. "
        "Check the event type's settings in Cal.com, or ask the business.",
        status=403,
    )


def _says(said: str, markers: tuple[str, ...]) -> bool:
    lowered = said.lower()
    return any(marker in lowered for marker in markers)


def error_from_transport(exc: httpx2.HTTPError, *, method: str, secret: str) -> CalcomUnavailable:
    """A timeout or connection failure. For a POST that may have been sent, the message says the
    outcome is unknown; one that certainly never left (see `never_sent`) changed nothing."""
    if isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout):
        what = "Could not connect to Cal.com in time"
    elif isinstance(exc, httpx2.TimeoutException):
        what = "Cal.com did not answer in time"
    else:
        what = f"Could not talk to Cal.com ({type(exc).__name__}: {_redact(str(exc), secret) or 'no detail'})"
    return _unavailable(what, method=method, maybe_done=not never_sent(exc))


def never_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached Cal.com: no connection was ever made for it."""
    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)


def is_safe(method: str) -> bool:
    """A method whose repetition changes nothing on Cal.com."""
    return method.upper() in ("GET", "HEAD", "OPTIONS")


def circuit_open(wait: float) -> CalcomUnavailable:
    """Cal.com failed several times in a row and the client is not calling it for a while."""
    return CalcomUnavailable(
        "The calendar is not answering right now (Cal.com failed several times in a row), so nothing was "
        f"sent to it. Try again in about {_seconds(wait)}."
    )


def paced(wait: float) -> CalcomRateLimited:
    """Sending now would exceed Cal.com's rate limit, and waiting would exceed the time budget."""
    return CalcomRateLimited(
        f"Too many calendar requests in the last minute, so nothing was sent. Try again in about {_seconds(wait)}.",
        status=None,
        retry_after=float(math.ceil(wait)),
    )


def kept_for_callers() -> CalcomRateLimited:
    """A background request was not sent: the rate limit's remaining requests are kept for callers."""
    return CalcomRateLimited(
        "Not sent: few calendar requests are left this minute and they are kept for callers.", status=None
    )


def malformed(detail: str, *, status: int, method: str) -> CalcomUnavailable:
    """A 2xx whose body is not what Cal.com documents. A write it answered was likely carried out."""
    what = f"Cal.com sent a response we could not read ({detail})"
    return _unavailable(what, method=method, maybe_done=True, status=status)


def _message(response: httpx2.Response) -> str:
    """Cal.com's own words from either error shape, falling back to the status text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        error = body.get("error")
        if body.get("status") == "error" and isinstance(error, dict):
            parts = list(_texts(error.get("message")))
            details = error.get("details")
            if isinstance(details, dict):
                # The global ValidationPipe says only "Bad Request Exception" and puts the
                # reasons in details.errors[*].constraints.
                parts += [p for p in _texts(details.get("errors")) if p not in parts]
        else:
            parts = list(_texts(body.get("message")))
    text = "; ".join(parts) or response.reason_phrase or "no message"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _texts(value: object) -> Iterator[str]:
    """Strings from a message, a list of messages, or class-validator ValidationErrors."""
    if isinstance(value, str) and value.strip():
        yield value.strip()
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        constraints = value.get("constraints")
        if isinstance(constraints, dict):
            yield from _texts(list(constraints.values()))
        yield from _texts(value.get("children"))


def _unavailable(what: str, *, method: str, maybe_done: bool, status: int | None = None) -> CalcomUnavailable:
    if is_safe(method):
        return CalcomUnavailable(what, status=status)
    if not maybe_done:
        return CalcomUnavailable(f"{what}; nothing was sent, so nothing was changed", status=status)
    return CalcomUnavailable(
        f"{what}; the request may still have been carried out, so look it up before retrying",
        status=status,
        retryable=False,
        outcome_unknown=True,
    )


def _seconds(wait: float) -> str:
    whole = math.ceil(wait)
    return "a second" if whole <= 1 else f"{whole} seconds"


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text
