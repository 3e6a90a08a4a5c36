"""The errors the sandbox answers with, in Cal.com's two body shapes (NOTES §4).

    Problem                 an HTTP error; `plain` picks the body shape
    ├── envelope (default)  {"status":"error","timestamp","path","error":{code,message,details}}
    │                       (tRPC errors from Cal.com's shared handlers: code "TRPCError", no details)
    └── plain               {"statusCode":N,"message":"…"}: errors from Cal.com's shared booking core

The world (`state.py`) raises these directly: in a Cal.com stand-in, the HTTP answer *is* the behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# Verbatim Cal.com texts (NOTES §3, §4; Cal.com's ErrorsBookingsService_2024_08_13 and handleCancelBooking).
MSG_TAKEN: Final = "User either already has booking at this time or is not available"
MSG_TEAM_TAKEN: Final = "One of the hosts either already has booking at this time or is not available"
MSG_PAST: Final = "Attempting to book a meeting in the past."
MSG_OUT_OF_BOUNDS: Final = (
    "The event type can't be booked at the \"start\" time provided. This could be because it's too soon "
    "(violating the minimum booking notice) or too far in the future (outside the event's scheduling "
    "window). Try fetching available slots first using the GET /v2/slots endpoint and then make a booking "
    'with "start" time equal to one of the available slots: https://cal.com/docs/api-reference/v2/slots'
)
MSG_CONFLICT: Final = "booking_conflict_error"
# slots-2024-09-04 SlotsService.reserveSlot and checkSlotOverlap (422).
MSG_RESERVE_BOOKED: Final = "Can't reserve a slot if the event is already booked."
MSG_RESERVE_RESERVED: Final = "This time slot is already reserved by another user. Please choose a different time."
# The old plain text of handleCancelBooking.ts; since PR #22128 the v2 input service answers first (§12.1).
MSG_ALREADY_CANCELLED: Final = "This booking has already been cancelled."
# 403s that are not about the key (NOTES §12.7): checkIfBookerEmailIsBlocked.ts, validateRescheduleRestrictions.ts,
# and bookings.service.ts `checkBookingRequiresAuthentication`.
MSG_EMAIL_BLOCKED: Final = "Cannot use this email to create the booking."
MSG_RESCHEDULE_NOTICE: Final = "Rescheduling is not allowed within the minimum notice period before the event"
MSG_NEEDS_AUTH: Final = "This event type requires authentication. Please provide valid credentials."
MSG_NOT_AUTHORIZED_TO_BOOK: Final = (
    "You are not authorized to book this event type. You must be the event type owner, a host, a team "
    "admin/owner, or an organization admin/owner."
)
# bookings.service.ts `hasRequiredBookingFieldsResponses` (NOTES §12.2).
MSG_MISSING_FIELD: Final = "Missing required booking field response:"
# getBookingResponsesSchema.ts: a required field without a response is `{<field>}error_required_field`,
# joined as the e-mail's validation error is (NOTES §12.9); here, an attendee without a real e-mail.
MSG_EMAIL_REQUIRED: Final = "responses - {email}error_required_field, "
MSG_MISSING_PHONE: Final = "Missing attendee phone number. It is required by the event type's booking fields."
MSG_HOST_NEEDS_REASON: Final = "Cancellation reason is required when you are the host"
MSG_ALREADY_ENDED: Final = "Cannot cancel a booking that has already ended"
MSG_NO_AUTH: Final = (
    "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or "
    "OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers"
)
MSG_INVALID_KEY: Final = "CustomThrottlerGuard - Invalid API Key"
MSG_INVALID_TOKEN: Final = "ApiAuthStrategy - Invalid Access Token"
MSG_THROTTLED: Final = "CustomThrottlerGuard - Too many requests. Please try again later."
MSG_INTERNAL: Final = "Internal server error"
# Cal.com's TRPCExceptionFilter replaces a tRPC BAD_REQUEST's own message with this one.
MSG_TRPC_BAD_REQUEST: Final = "Bad request: Please check your request data and try again"

# Nest exception class and reason phrase per status, as the envelope's `error.code` and `details.error`.
_NEST: Final[dict[int, tuple[str, str]]] = {
    400: ("BadRequestException", "Bad Request"),
    401: ("UnauthorizedException", "Unauthorized"),
    403: ("ForbiddenException", "Forbidden"),
    404: ("NotFoundException", "Not Found"),
    409: ("ConflictException", "Conflict"),
    422: ("UnprocessableEntityException", "Unprocessable Entity"),
    429: ("ThrottlerException", "Too Many Requests"),
    500: ("InternalServerErrorException", "Internal Server Error"),
}


class Problem(Exception):
    """An HTTP error answer. `details` replaces the Nest response body in the envelope when given."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        plain: bool = False,
        details: object | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.plain = plain
        self.details = details
        self.code = code  # set for a tRPC error, whose envelope carries no details

    def body(self, *, path: str, timestamp: str) -> dict[str, object]:
        if self.plain:
            return {"statusCode": self.status, "message": self.message}
        if self.code is not None:
            error = {"code": self.code, "message": self.message}
            return {"status": "error", "timestamp": timestamp, "path": path, "error": error}
        code, reason = _NEST.get(self.status, ("HttpException", "Error"))
        details = self.details
        if details is None:
            details = {"message": self.message, "error": reason, "statusCode": self.status}
        return {
            "status": "error",
            "timestamp": timestamp,
            "path": path,
            "error": {"code": code, "message": self.message, "details": details},
        }


def throttled() -> Problem:
    """429 from the throttler: a ThrottlerException built from a string, so Nest's `getResponse()`, which
    the filter puts in `details`, is that string (NOTES §12.11)."""
    return Problem(429, MSG_THROTTLED, details=MSG_THROTTLED)


def bad_request(message: str) -> Problem:
    return Problem(400, message)


def unprocessable(message: str) -> Problem:
    return Problem(422, message)


def not_found(message: str) -> Problem:
    return Problem(404, message)


def plain(status: int, message: str) -> Problem:
    return Problem(status, message, plain=True)


def trpc_bad_request() -> Problem:
    """A tRPC BAD_REQUEST from Cal.com's shared handlers (confirm, decline), as its filter writes it."""
    return Problem(400, MSG_TRPC_BAD_REQUEST, code="TRPCError")


@dataclass(frozen=True)
class FieldError:
    """One class-validator error, as Cal.com's per-endpoint pipes flatten it into `message`."""

    prop: str
    constraints: tuple[str, ...] = ()
    children: tuple[FieldError, ...] = ()


def format_field_errors(errors: Sequence[FieldError]) -> str:
    """Cal.com's `formatErrors`: `"<prop> property is wrong,<constraints> <children>"` joined by `", "`.

    The space after each item (even with no children) is part of the real format.
    """
    return ", ".join(
        f"{e.prop} property is wrong,{', '.join(e.constraints)} {format_field_errors(e.children)}" for e in errors
    )


def invalid_fields(errors: Sequence[FieldError]) -> Problem:
    """400 from a per-endpoint pipe (bookings, reschedule, cancel, slots): one flat message."""
    return bad_request(format_field_errors(errors))


def invalid_query(errors: Sequence[tuple[str, dict[str, str]]]) -> Problem:
    """400 from Cal.com's global ValidationPipe: a generic message, the class-validator errors
    (property and constraint name -> message) under `details.errors`."""
    details = {
        "errors": [{"property": prop, "children": [], "constraints": dict(constraints)} for prop, constraints in errors]
    }
    return Problem(400, "Bad Request Exception", details=details)


def unknown_property(prop: str) -> FieldError:
    return FieldError(prop, (f"property {prop} should not exist",))
