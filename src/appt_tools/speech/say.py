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
from appt_tools.models import Appointment, AppointmentStatus, EventType, Slot
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
    "not_pending": "That booking isn't waiting for the host, so there is nothing to confirm or decline.",
    "already_confirmed": "The host has already confirmed that booking.",
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


def booked(a: Appointment, tz: str, corrected: Sequence[str] = (), event_type: EventType | None = None) -> str:
    """What was booked, with whom (a team's member Cal.com assigned: "with Dr. Lee") and where (a call to
    the caller's number, the address, or the e-mailed link); a phone-only booking says nothing about
    e-mail: no confirmation is sent to the caller then."""
    when = spoken.when(a.start, tz)
    if event_type is not None and event_type.team_id is not None and _fit(a.host_name) and len(a.host_name or "") <= 60:
        when = f"{when} with {a.host_name}"
    if corrected:
        fixed = spoken.join(list(dict.fromkeys(_CORRECTED[name] for name in corrected)))
        return sentence(f"I've corrected {fixed} on your booking for {when}.")
    if event_type is not None and event_type.phone_call and a.location:
        where = f"; they will call you at {spoken.phone(a.location)}"
    elif event_type is not None and event_type.location_type == "address" and _fit(a.location):
        where = f" at {a.location}"
    else:
        where = ""
    mail = bool(a.attendee_email)
    if a.status is AppointmentStatus.PENDING:
        if where:
            told = "; you'll get an e-mail" if mail else ""
            return sentence(f"I've requested {when}{where} once the host confirms it{told}.")
        if not mail:
            return sentence(f"I've requested {when}; the host still has to confirm it.")
        return sentence(
            f"I've requested {when}; the host still has to confirm it, and the e-mail with the meeting link "
            "comes once it's confirmed."
        )
    if not mail:
        return sentence(f"You're booked for {when}{where}.")
    return sentence(f"You're booked for {when}{where}. A confirmation is on its way to your e-mail.")


def _fit(text: str | None) -> bool:
    """Business text (an address) that can be read aloud as it is."""
    return bool(text) and not problems(text or "") and len(text or "") <= 100


def confirmed(a: Appointment, tz: str) -> str:
    return sentence(f"The appointment on {spoken.when(a.start, tz)} is confirmed, and the attendee has been told.")


def declined(a: Appointment, tz: str) -> str:
    return sentence(f"The request for {spoken.when(a.start, tz)} is declined, and the attendee has been told.")


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


def rescheduled(a: Appointment, tz: str, event_type: EventType | None = None) -> str:
    when = spoken.when(a.start, tz)
    if event_type is not None and event_type.team_id is not None and _fit(a.host_name) and len(a.host_name or "") <= 60:
        when = f"{when} with {a.host_name}"
    return sentence(f"Done, it's moved to {when}. An updated invite is on its way.")


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
        ask = getattr(err, "ask", None)  # a missing answer: the business's own question
        if isinstance(ask, str) and _fit(ask):
            return sentence(ask)
        fields = [e["field"] for e in getattr(err, "errors", ())] or [err.field]
        prompt = next((FIELD_PROMPTS[f] for f in fields if f in FIELD_PROMPTS), None)
        if prompt is None and any(f.startswith("answers.") for f in fields):
            return "I need one more detail for this booking."
        return prompt or NOT_FOR_THE_CALLER
    if err.code in ERROR_SAYS:
        return ERROR_SAYS[err.code]
    return (
        "Sorry, something went wrong on my side; let me try that again."
        if err.retryable
        else "Sorry, something went wrong on my side."
    )
