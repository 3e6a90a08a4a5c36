"""The one error hierarchy every layer raises and every surface renders.

    AppError                      code, message (for the model to act on), retryable
    ├── InvalidArgument           invalid_argument: a field is wrong; `field` names it
    │   └── LockedField           locked_field: to/from numbers, call type, booking uid
    ├── NotFound                  appointment_not_found / event_type_not_found
    ├── Conflict                  already_cancelled, not_reschedulable
    ├── SlotUnavailable           slot_unavailable: carries the nearest free alternatives
    ├── SlotHeld                  slot_held: another booking for that start is in flight (internal)
    ├── NotConfigured             calcom_not_configured: no API key
    └── CalcomError               any failure talking to Cal.com
        ├── CalcomAuthError       calcom_auth_failed (401: the API key was refused; nothing else)
        ├── CalcomForbidden       calcom_forbidden (403: the key works, this action is not allowed)
        │   ├── CalcomEmailBlocked        calcom_email_blocked: the business blocks the attendee's e-mail
        │   ├── CalcomBookingRestricted   calcom_booking_restricted: only the event type's owner, hosts
        │   │                             or admins may book it, and the key is someone else's
        │   └── CalcomRescheduleTooLate   calcom_reschedule_too_late: inside the minimum reschedule notice
        ├── CalcomNotFound        calcom_not_found (404)
        ├── CalcomRejected        calcom_rejected (other 4xx: Cal.com refused the request)
        │   └── CalcomAlreadyCancelled    calcom_already_cancelled: the booking is cancelled in Cal.com
        │                                 already (a uid Cal.com moved is cancelled too; see its
        │                                 `rescheduledToUid`)
        ├── CalcomSlotTaken       calcom_slot_taken (400 "already has booking", 409 conflict)
        │   └── CalcomTimeOutOfBounds  calcom_time_out_of_bounds (400: too soon, too far, off the grid)
        ├── CalcomRateLimited     calcom_rate_limited (429), retry_after seconds
        └── CalcomUnavailable     calcom_unavailable (5xx, timeouts, connection errors)

Messages never contain the Cal.com API key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from appt_tools.models import Slot

T = TypeVar("T")


class AppError(Exception):
    code: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class InvalidArgument(AppError):
    """`field` and the message name the first problem; `errors` lists every one found in the call
    (`{"field", "message"}` each, the first included), so one answer can name them all."""

    code = "invalid_argument"

    def __init__(self, field: str, message: str, *, ask: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.ask = ask  # the business's own question to put to the caller, for a missing answer
        self.errors: list[dict[str, str]] = [{"field": field, "message": message}]

    @classmethod
    def every(cls, problems: Sequence[InvalidArgument]) -> InvalidArgument:
        """One error naming every problem: the first one's class, field and message, and all of them in `errors`."""
        first = problems[0]
        if len(problems) == 1:
            return first
        combined = type(first).__new__(type(first))
        AppError.__init__(combined, first.message, code=first.code)
        combined.field = first.field
        combined.ask = getattr(first, "ask", None)
        combined.errors = [entry for problem in problems for entry in problem.errors]
        return combined


class Problems:
    """Collects InvalidArguments so a call is refused once, naming every bad field (`check` each part,
    then `raise_any`)."""

    def __init__(self) -> None:
        self.found: list[InvalidArgument] = []

    def check(self, parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except InvalidArgument as exc:
            self.found.append(exc)
            return None

    def add(self, problem: InvalidArgument) -> None:
        self.found.append(problem)

    def raise_any(self) -> None:
        if self.found:
            raise InvalidArgument.every(self.found)


class LockedField(InvalidArgument):
    code = "locked_field"


class NotFound(AppError):
    code = "not_found"


class Conflict(AppError):
    code = "conflict"


class SlotUnavailable(AppError):
    code = "slot_unavailable"

    def __init__(self, message: str, alternatives: Sequence[Slot] = (), *, taken: bool = False) -> None:
        super().__init__(message)
        self.alternatives = tuple(alternatives)
        self.taken = taken  # Cal.com refused it just now (a race), rather than it never being free


class SlotHeld(AppError):
    """Another booking for this start is in flight right now (the store's guard, before Cal.com is asked).
    `holder_id` is None when it was held a moment ago and has settled since (look again)."""

    code = "slot_held"
    retryable = True

    def __init__(self, holder_id: str | None) -> None:
        super().__init__("Another booking for this time is being made right now; try again in a moment.")
        self.holder_id = holder_id


class BookingUidOwned(ValueError):
    """The store's refusal to give a Cal.com booking uid to a second appointment: `owner_id` holds it."""

    def __init__(self, uid: str, owner_id: str) -> None:
        super().__init__(f"booking_uid: {uid!r} already belongs to appointment {owner_id}")
        self.owner_id = owner_id


class StoreBusy(AppError):
    """The database stayed locked by other writers past the wait (SQLite's busy timeout): nothing was
    decided by this call's failed statement; a repeat is safe (keys and twin detection join it)."""

    code = "store_busy"
    retryable = True


class NotConfigured(AppError):
    code = "calcom_not_configured"


class CalcomError(AppError):
    """Cal.com answered with an error or could not be reached. `status` is the HTTP status, if any."""

    code = "calcom_error"

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class CalcomAuthError(CalcomError):
    code = "calcom_auth_failed"


class CalcomForbidden(CalcomError):
    """calcom_forbidden: Cal.com accepted the API key but refuses this action (403). The message says why
    in Cal.com's words; it is not a key problem, so the key must not be changed because of it."""

    code = "calcom_forbidden"


class CalcomEmailBlocked(CalcomForbidden):
    """calcom_email_blocked: the business has blocked the attendee's e-mail address in Cal.com; another
    address is needed."""

    code = "calcom_email_blocked"


class CalcomBookingRestricted(CalcomForbidden):
    """calcom_booking_restricted: the event type requires authentication, and only its owner, hosts or
    team/organisation admins may book it; the API key belongs to someone else."""

    code = "calcom_booking_restricted"


class CalcomRescheduleTooLate(CalcomForbidden):
    """calcom_reschedule_too_late: the booking starts within the event type's minimum reschedule notice,
    inside which only the organizer may move it."""

    code = "calcom_reschedule_too_late"


class CalcomNotFound(CalcomError):
    code = "calcom_not_found"


class CalcomRejected(CalcomError):
    code = "calcom_rejected"


class CalcomAlreadyCancelled(CalcomRejected):
    """calcom_already_cancelled: Cal.com has this booking cancelled already, either by an earlier cancel
    or because it was moved (the moved-from uid is cancelled; the live booking is its `rescheduledToUid`).
    Recognised in both of Cal.com's wordings, so callers never match message text."""

    code = "calcom_already_cancelled"


class CalcomSlotTaken(CalcomError):
    code = "calcom_slot_taken"


class CalcomTimeOutOfBounds(CalcomSlotTaken):
    """Cal.com will not book this start at all: too soon (minimum notice), too far ahead (booking window),
    or off its slot grid; never free, rather than just taken."""

    code = "calcom_time_out_of_bounds"


class CalcomRateLimited(CalcomError):
    code = "calcom_rate_limited"
    retryable = True

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CalcomUnavailable(CalcomError):
    """5xx, timeout or connection failure. `outcome_unknown`: a write may have been carried out
    anyway, so look it up before retrying it."""

    code = "calcom_unavailable"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, status=status, retryable=retryable)
        self.outcome_unknown = outcome_unknown


class ServiceUnavailable(AppError):
    """The service could not be opened (the database, the settings): no tool can run until a restart."""

    code = "service_unavailable"


def to_record(error: AppError) -> dict[str, object]:
    """An error as JSON, to be raised again exactly as it was (an idempotent replay): its class, message
    and every attribute (a refused slot's alternatives included)."""
    record: dict[str, object] = {"type": type(error).__name__, "code": error.code, "retryable": error.retryable}
    record.update(vars(error))
    if isinstance(error, SlotUnavailable):
        record["alternatives"] = [slot.model_dump(mode="json") for slot in error.alternatives]
    return record


def from_record(record: Mapping[str, object]) -> AppError:
    """The error `to_record` wrote. A record of an older form (code, message, retryable) comes back as a
    plain AppError with that code."""
    kinds = {cls.__name__: cls for cls in _descendants(AppError)}
    cls = kinds.get(str(record.get("type")), AppError)
    error = cls.__new__(cls)
    Exception.__init__(error, str(record.get("message", "")))
    for name, value in record.items():
        if name != "type":
            setattr(error, name, value)
    if isinstance(error, SlotUnavailable):
        raw = record.get("alternatives")
        error.alternatives = tuple(Slot.model_validate(s) for s in raw) if isinstance(raw, list) else ()
    return error


def _descendants(cls: type[AppError]) -> list[type[AppError]]:
    return [cls, *(d for sub in cls.__subclasses__() for d in _descendants(sub))]
