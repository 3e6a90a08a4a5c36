"""The HTTP status of each error: one table for the plain tool routes and the dashboard."""

from __future__ import annotations

from appt_tools.errors import (
    AppError,
    CalcomError,
    CalcomRateLimited,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    NotConfigured,
    NotFound,
    SlotHeld,
    SlotUnavailable,
    StoreBusy,
)


def http_status(error: AppError) -> int:
    """The HTTP status of a failed plain call. Broken requests are 400; a request that parsed but
    carries a wrong argument is 422, so a client can tell the two apart."""
    if isinstance(error, InvalidArgument):  # invalid_argument, locked_field
        return 422
    if isinstance(error, NotFound):  # appointment_not_found, unknown_tool, event_type_not_found
        return 404
    if isinstance(error, Conflict | SlotUnavailable | SlotHeld):  # already_cancelled, slot_unavailable, slot_held…
        return 409
    if isinstance(error, NotConfigured | StoreBusy):
        return 503
    if isinstance(error, CalcomRateLimited):
        return 429
    if isinstance(error, CalcomUnavailable):
        # A write whose outcome is unknown is a 502, not a 503 that a proxy might retry blindly.
        return 503 if error.retryable and not error.outcome_unknown else 502
    if isinstance(error, CalcomError):  # calcom_auth_failed, calcom_rejected…: our upstream refused us
        return 502
    return 400
