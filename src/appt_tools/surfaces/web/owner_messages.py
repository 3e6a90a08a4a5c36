"""Errors in words a business owner understands, placed next to the field they are about.

The service's own messages are used as they are (one set of validation rules and wording for every
surface), with the field name taken off the front. The few written for an assistant on a call (a
taken slot, Cal.com trouble) are said here for a person at a screen instead."""

from __future__ import annotations

from typing import Any

from appt_tools.errors import AppError, CalcomUnavailable, InvalidArgument, SlotUnavailable
from appt_tools.surfaces.statuses import http_status
from appt_tools.surfaces.web.form import FormProblems
from appt_tools.surfaces.web.present import slot_choice

# The drawer's inputs for the service's field names; a time is always chosen in the slot picker.
FIELDS = {"new_start": "start", "date": "date", "timezone": "start"}
BY_CODE = {
    "appointment_not_found": "That appointment no longer exists. Reload the page.",
    "calcom_not_configured": "Cal.com is not set up yet: add your Cal.com API key in Settings.",
    "calcom_auth_failed": "Cal.com refused the API key. Check it in Settings (Test connection says more).",
    "calcom_rate_limited": "Cal.com is getting too many requests right now. Wait a minute and try again.",
    "slot_held": "Another booking for that time is being made right now. Try again in a moment.",
    "in_progress": "This change is still being made. Wait a moment, then reload.",
    "not_confirmed": "Cal.com has not confirmed this booking yet. Try again in a minute.",
}


def problem(error: AppError, tz: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and `{"error": {...}}` body the dashboard's script shows."""
    field: str | None = None
    message = error.message
    alternatives: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    if isinstance(error, FormProblems):
        field, message, fields = error.field, error.message, error.fields
    elif isinstance(error, InvalidArgument):
        field = FIELDS.get(error.field, error.field)
        message = _sentence(message.removeprefix(f"{error.field}: "))
    if isinstance(error, SlotUnavailable):
        field = "start"
        alternatives = [slot_choice(s, tz) for s in error.alternatives]
        opening = "Someone else just took that time." if error.taken else "That time is not free."
        offer = " Pick one of the nearest free times below." if alternatives else " Try another day."
        message = opening + offer
    elif isinstance(error, CalcomUnavailable):
        message = (
            "Cal.com did not confirm in time, so it is not certain this went through. Do not try again yet: "
            "the appointment is checked with Cal.com automatically; reload in a few minutes."
            if error.outcome_unknown
            else "Cal.com is not answering right now, so nothing was changed. Try again in a minute."
        )
    elif error.code in BY_CODE:
        message = BY_CODE[error.code]
    body: dict[str, Any] = {"code": error.code, "message": message}
    if field is not None:
        body["field"] = field
    if fields:
        body["fields"] = fields
    if alternatives:
        body["alternatives"] = alternatives
    return http_status(error), {"error": body}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
