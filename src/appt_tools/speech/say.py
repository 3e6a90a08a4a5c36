"""`say`: the one sentence a text-to-speech engine reads to the caller, for every result and error.

Rules (checked by `problems`, enforced by `sentence`): at most 200 characters, on one line; times in
words in the business's zone ("Tuesday, November 24 at 3 PM"); no ISO dates, ids, URLs or markdown.
Caller-supplied text (titles, names) never goes in, so nothing a caller typed can break the rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from appt_tools.errors import AppError, InvalidArgument, SlotUnavailable
from appt_tools.models import Appointment, AppointmentStatus, Slot
from appt_tools.speech import spoken

LIMIT = 200
_FORBIDDEN = {
    "an ISO date or time": re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|T\d{2}:"),
    "a URL": re.compile(r"https?://|www\.|\.com/", re.IGNORECASE),
    "an id": re.compile(r"\bapt_|\b[1-9A-HJ-NP-Za-km-z]{16,}\b"),
    "markdown": re.compile(r"[*_`#\[\]|<>]"),
}
STATUS_WORDS = {
    AppointmentStatus.PENDING: "waiting for the host to confirm",
    AppointmentStatus.ACTIVE: "confirmed",
    AppointmentStatus.RESCHEDULED: "confirmed at its new time",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.COMPLETED: "already past",
    AppointmentStatus.FAILED: "not booked",
}
# Only what a caller can answer: their name, their e-mail, a day or time, their time zone. Never the
# business's numbers, ids or the call's own facts: those are the assistant's to fix (see `error`).
FIELD_PROMPTS = {
    "attendee_email": "Could you spell your e-mail address for me again?",
    "attendee_name": "Could you tell me your name again?",
    "start": "I need a different time for that; which day and time would suit you?",
    "new_start": "I need a different time for that; which day and time would suit you?",
    "date": "Which day would you like?",
    "timezone": "Which time zone are you in?",
}
ERROR_SAYS = {
    "appointment_not_found": "I couldn't find that appointment.",
    "already_cancelled": "That appointment is already cancelled.",
    "not_reschedulable": "That appointment was cancelled, so I can't move it, but I can book a new one.",
    "already_ended": "That appointment has already taken place.",
    "not_booked": "That booking never went through, so there is nothing to change.",
    "not_confirmed": "That booking isn't confirmed yet; let me check again in a moment.",
    "calcom_unavailable": "The calendar isn't answering right now; please give me a moment.",
    "calcom_rate_limited": "The calendar is busy right now; please hold on a moment while I try again.",
    "change_in_progress": "That appointment is being changed right now; please hold on a moment while I check.",
    "in_progress": "That is still going through; please hold on a moment while I check.",
    "slot_in_progress": "Someone else is booking that time right now; please hold on a moment while I check.",
    "calcom_not_configured": "I can't reach the booking calendar right now, so I can't book this.",
    "calcom_auth_failed": "I can't reach the booking calendar right now, so I can't book this.",
    "calcom_already_cancelled": "That appointment is already cancelled.",
    "calcom_email_blocked": "That e-mail address can't be used for bookings here; do you have another one?",
    "calcom_booking_restricted": "I can't book this kind of appointment from here; the business will book it for you.",
    "calcom_reschedule_too_late": "It's too close to the time to move it now; I can cancel it and book a new time.",
    "calcom_forbidden": "The calendar won't let me do that; the business can help you with it.",
    "unknown_tool": "Sorry, I can't do that from here.",
}
NOT_FOR_THE_CALLER = "One moment, I need to fix a detail on my side."


def problems(text: str) -> list[str]:
    """Why `text` is not fit to be read aloud (empty when it is)."""
    found = [f"contains {name}" for name, pattern in _FORBIDDEN.items() if pattern.search(text)]
    if len(text) > LIMIT:
        found.append(f"is {len(text)} characters long")
    if "\n" in text or not text.strip():
        found.append("is not one line of text")
    return found


def sentence(text: str) -> str:
    """Collapse whitespace and keep within the limit, cutting at a word and ending cleanly."""
    text = " ".join(text.split())
    if len(text) <= LIMIT:
        return text
    cut = text[: LIMIT - 1].rsplit(" ", 1)[0].rstrip(",;")
    return cut + "…"


def slots(found: Sequence[Slot], tz: str, *, day_asked: datetime, later: bool) -> str:
    times = [s.start for s in found]
    asked = spoken.day(day_asked, tz)
    if later and times:
        return sentence(f"Nothing is free on {asked}. The next free times are {spoken.choices(times[:3], tz)}.")
    if later:
        return sentence(f"Nothing is free on {asked} or in the two weeks after it.")
    if len(times) <= 3:
        return sentence(f"I have {spoken.choices(times, tz)}.")
    return sentence(f"I have {len(times)} free times, the first being {spoken.choices(times[:3], tz)}.")


def booked(a: Appointment, tz: str, corrected: Sequence[str] = ()) -> str:
    """A phone-only booking says nothing about e-mail: no confirmation is sent to the caller then."""
    when = spoken.when(a.start, tz)
    if corrected:
        fixed = spoken.join(list(dict.fromkeys(_CORRECTED[name] for name in corrected)))
        return sentence(f"I've corrected {fixed} on your booking for {when}.")
    if a.status is AppointmentStatus.PENDING:
        mail = ", and you'll get an e-mail" if a.attendee_email else ""
        return sentence(f"I've requested {when}; the host still has to confirm it{mail}.")
    if a.attendee_email is None:
        return sentence(f"You're booked for {when}.")
    return sentence(f"You're booked for {when}. A confirmation is on its way to your e-mail.")


_CORRECTED = {
    "attendee_name": "your name",
    "attendee_email": "your e-mail",
    "title": "the details",
    "description": "the details",
    "label": "the details",
}


def held(start: datetime, minutes: int, tz: str) -> str:
    return sentence(f"I'm holding {spoken.when(start, tz)} for you for {minutes} minutes; shall I book it?")


def released(start: datetime, tz: str) -> str:
    return sentence(f"I've let go of {spoken.when(start, tz)}.")


def rescheduled(a: Appointment, tz: str) -> str:
    return sentence(f"Done, it's moved to {spoken.when(a.start, tz)}. An updated invite is on its way.")


def cancelled(a: Appointment, tz: str) -> str:
    return sentence(f"The appointment on {spoken.when(a.start, tz)} is cancelled.")


def updated() -> str:
    return "I've updated the appointment details."


def appointment(a: Appointment, tz: str, now: datetime) -> str:
    status = STATUS_WORDS[a.effective_status(now)]
    return sentence(f"The appointment on {spoken.when(a.start, tz)} is {status}.")


def search(
    total: int, first: Appointment | None, tz: str, now: datetime, *, exact: bool = True, shown: int | None = None
) -> str:
    """`shown`: how many are on this page (a page past the last shows none of the `total`)."""
    if shown == 0 and total > 0:
        return f"There's nothing more to list; I found {'more than ' if not exact else ''}{total:,} matching appointments in all."
    if not exact:
        return f"I found more than {total:,} matching appointments."
    if total == 0:
        return "I couldn't find any matching appointments."
    if total == 1 and first is not None:
        status = STATUS_WORDS[first.effective_status(now)]
        return sentence(f"I found one appointment, on {spoken.when(first.start, tz)}, and it is {status}.")
    return f"I found {total:,} matching appointments."


def event_types(titles: Sequence[str], lengths: Sequence[int]) -> str:
    if not titles:
        return "No meeting types are set up yet."
    offered = [f"{title} ({length} minutes)" for title, length in zip(titles, lengths, strict=True)][:4]
    return sentence("We offer " + spoken.join(offered) + ".")


def error(err: AppError, tz: str) -> str:
    if isinstance(err, SlotUnavailable):
        opening = "That time was just taken." if err.taken else "That time isn't available."
        if not err.alternatives:
            return f"{opening} Nothing is free close to it; shall I look at another day?"
        return sentence(f"{opening} I can offer {spoken.choices([s.start for s in err.alternatives], tz)} instead.")
    if isinstance(err, InvalidArgument):
        fields = [e["field"] for e in getattr(err, "errors", ())] or [err.field]
        return next((FIELD_PROMPTS[f] for f in fields if f in FIELD_PROMPTS), NOT_FOR_THE_CALLER)
    if err.code in ERROR_SAYS:
        return ERROR_SAYS[err.code]
    return (
        "Sorry, something went wrong on my side; let me try that again."
        if err.retryable
        else "Sorry, something went wrong on my side."
    )
