"""The sandbox's world: one host, its event types, its bookings and what Cal.com would have sent.

Everything is in memory and asyncio-safe: each read-check-write runs with no `await` inside it, so
it is atomic on the event loop. Booking creation is the one operation that awaits in the middle, as
Cal.com's does: it checks availability, does its slow work (video room, calendar event; here
`before_insert`), then inserts, refusing a second accepted booking with the same idempotency key of
host + start + end (NOTES §6). Only a true race reaches that unique check: 409.

Each change of a booking records the e-mails Cal.com sends (`outbox`) and emits the webhook Cal.com
fires (`webhooks`, NOTES §8): BOOKING_CREATED, BOOKING_REQUESTED, BOOKING_RESCHEDULED,
BOOKING_CANCELLED and BOOKING_REJECTED. `faults` holds what tests ask the HTTP side to do wrong.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from calcom_sandbox.faults import FaultBook, FaultEvent
from calcom_sandbox.payloads import TimeStyle, booking_payload, location_value, reschedule_fields
from calcom_sandbox.problems import (
    MSG_ALREADY_ENDED,
    MSG_CONFLICT,
    MSG_EMAIL_BLOCKED,
    MSG_EMAIL_REQUIRED,
    MSG_HOST_NEEDS_REASON,
    MSG_MISSING_FIELD,
    MSG_MISSING_PHONE,
    MSG_OUT_OF_BOUNDS,
    MSG_PAST,
    MSG_RESCHEDULE_NOTICE,
    MSG_RESERVE_BOOKED,
    MSG_RESERVE_RESERVED,
    MSG_TAKEN,
    MSG_TEAM_TAKEN,
    bad_request,
    not_found,
    plain,
    trpc_bad_request,
    unprocessable,
)
from calcom_sandbox.ratelimit import DEFAULT_BLOCK, RateLimiter
from calcom_sandbox.records import (
    LIVE,
    SERVED_KEPT,
    Attendee,
    BookingQuery,
    BookingRecord,
    BookingState,
    EventTypeDef,
    Host,
    Location,
    Member,
    NewBooking,
    OutboxKind,
    OutboxMessage,
    Reservation,
    Served,
    Team,
    default_event_types,
    default_team_members,
    default_teams,
)
from calcom_sandbox.slots import WEEKDAYS_9_TO_5, Interval, Schedule, WorkingHours, is_free, iso_z
from calcom_sandbox.webhooks import Delivery, WebhookHub

__all__ = [
    "Attendee",
    "BookingQuery",
    "BookingRecord",
    "EventTypeDef",
    "Host",
    "Location",
    "NewBooking",
    "OutboxMessage",
    "SandboxState",
]

_BASE58: Final = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_NO_MAILBOX: Final = "@sms.cal.com"  # Cal.com's faux address for phone-only attendees; never e-mailed
DEFAULT_RATE_LIMIT: Final = 120  # Cal.com's requests a minute per API key (NOTES §5)
PayloadStatus = Literal["ACCEPTED", "PENDING", "CANCELLED", "REJECTED"]


def _system_now() -> datetime:
    return datetime.now(UTC)


class SandboxState:
    """The whole in-memory Cal.com world of one host. `now` is injectable so tests can freeze time."""

    def __init__(
        self,
        api_key: str | None = None,
        host_time_zone: str = "America/New_York",
        now: Callable[[], datetime] | None = None,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        *,
        working_hours: WorkingHours = WEEKDAYS_9_TO_5,
        event_types_need_username: bool = False,
        rate_limit_block: timedelta = DEFAULT_BLOCK,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key or "cal_sandbox_" + secrets.token_hex(16)
        self.now: Callable[[], datetime] = now or _system_now
        self._rate_limit_block = rate_limit_block
        self.host = Host(1, "host", "Sandbox Host", "host@example.com", host_time_zone)
        self.schedule = Schedule(ZoneInfo(host_time_zone), working_hours)
        self.event_types: list[EventTypeDef] = default_event_types()
        self.default_event_type_id: int = self.event_types[0].id
        # The team the account's user belongs to (NOTES §12.14): its members by user id, the user first.
        self.teams: list[Team] = default_teams()
        self.members: dict[int, Member] = {1: Member(self.host, self.schedule)}
        self.members |= {member.user.id: member for member in default_team_members()}
        self.bookings: dict[str, BookingRecord] = {}
        self.outbox: list[OutboxMessage] = []
        self.rate_limiter = RateLimiter(rate_limit, block=rate_limit_block)
        self.faults = FaultBook(self.now)
        self.webhooks = WebhookHub(self.now)
        self.webhook_timeout = webhook_timeout  # seconds each delivery may take
        # Before PR #25178 Cal.com answered GET /v2/event-types without `username` with []; True does that.
        self.event_types_need_username = event_types_need_username
        # Awaited between the availability check and the insert, where Cal.com creates the meeting and the
        # calendar event. Tests put a barrier here to stage the exact race that ends in 409.
        self.before_insert: Callable[[], Awaitable[None]] | None = None
        # Addresses the account blocks (Cal.com's BLACKLISTED_GUEST_EMAILS), lower case.
        self.blocked_emails: set[str] = set()
        # Slot reservations (POST /v2/slots/reservations, NOTES §12.14) by uid: hidden from GET /v2/slots
        # until they lapse; a booking through the API is not stopped by them.
        self.reservations: dict[str, Reservation] = {}
        # The API requests answered, newest last (method, path, status, ms from arrival to the answer,
        # injected latency included): Cal.com's own time for each, as a harness measures a call against it.
        self.served: deque[Served] = deque(maxlen=SERVED_KEPT)
        self._next_booking_id = 1
        self._random = random.Random()

    def reset(self) -> None:
        """Back to the initial state for a harness's next run: the default event types, no bookings,
        e-mails, reservations, faults, blocked addresses or rate-limit counts; the clock where it
        started (a `TravelClock`). The API key, the host and webhook subscriptions stay."""
        restart = getattr(self.now, "restart", None)
        if callable(restart):
            restart()
        self.event_types = default_event_types()
        self.default_event_type_id = self.event_types[0].id
        self.teams = default_teams()
        self.bookings.clear()
        self.outbox.clear()
        self.reservations.clear()
        self.served.clear()
        self.blocked_emails.clear()
        self.rate_limiter = RateLimiter(self.rate_limiter.limit, block=self._rate_limit_block)
        self.faults = FaultBook(self.now)
        self._next_booking_id = 1

    # --- lookups ---------------------------------------------------------------------------------

    def event_type_id(self, slug: str) -> int:
        found = self.event_type_by_slug(slug)
        if found is None:
            raise KeyError(f"no event type with slug {slug!r}")
        return found.id

    def event_type(self, event_type_id: int) -> EventTypeDef | None:
        """The user's own event type or one of their teams'."""
        return next((et for et in self._all_event_types() if et.id == event_type_id), None)

    def team(self, team_id: int) -> Team | None:
        return next((team for team in self.teams if team.id == team_id), None)

    def team_event_type(self, team_slug: str, slug: str) -> EventTypeDef | None:
        team = next((t for t in self.teams if t.slug == team_slug), None)
        return next((et for et in team.event_types if et.slug == slug), None) if team else None

    def user(self, user_id: int) -> Host:
        return self.members[user_id].user

    def organizer(self, booking: BookingRecord) -> Host:
        """The booking's organizer: its first host (a round-robin's assigned member)."""
        return self.user(booking.hosts[0])

    def _all_event_types(self) -> list[EventTypeDef]:
        return self.event_types + [et for team in self.teams for et in team.event_types]

    def event_type_by_slug(self, slug: str) -> EventTypeDef | None:
        return next((et for et in self.event_types if et.slug == slug), None)

    def booking(self, uid: str) -> BookingRecord:
        found = self.bookings.get(uid)
        if found is None:
            raise not_found(f"Booking with uid={uid} was not found in the database")
        return found

    # --- availability ----------------------------------------------------------------------------

    def free_slots(
        self, et: EventTypeDef, start: datetime, end: datetime, length: int, *, ignore_uid: str | None = None
    ) -> list[datetime]:
        """Bookable starts in [start, end]: on the grid, after the minimum notice, clear of live bookings."""
        earliest = self.now() + timedelta(minutes=et.minimum_notice)
        meeting = timedelta(minutes=length)
        reserved = [(r.start, r.end) for r in self.live_reservations()]
        if et.team_id is None:
            busy = self._busy(ignore_uid)
            grid = self.schedule.grid(max(start, earliest), end, meeting, et.step(length))
            starts = [at for at in grid if self._clear(et, at, at + meeting, busy)]
        else:
            starts = self._team_slots(et, max(start, earliest), end, length, ignore_uid)
        return [at for at in starts if not any(lo < at + meeting and at < hi for lo, hi in reserved)]

    # --- team event types (NOTES §12.14) --------------------------------------------------------------

    def _team_slots(
        self, et: EventTypeDef, start: datetime, end: datetime, length: int, ignore_uid: str | None
    ) -> list[datetime]:
        """Each host's free starts, then (packages/features/availability/lib/getUserAvailability.ts and
        packages/trpc/server/routers/viewer/slots/util.ts) a round robin is free when any host is, a
        collective event type only when every host is."""
        meeting = timedelta(minutes=length)
        per_host: list[set[datetime]] = []
        for user_id in et.hosts:
            member = self.members[user_id]
            busy = self._busy_of(user_id, ignore_uid, start, end)
            grid = member.schedule.grid(start, end, meeting, et.step(length))
            per_host.append({at for at in grid if self._clear(et, at, at + meeting, busy)})
        if not per_host:
            return []
        if et.scheduling == "collective":
            return sorted(set.intersection(*per_host))
        return sorted(set.union(*per_host))

    def _host_free(self, user_id: int, et: EventTypeDef, start: datetime, length: int, ignore_uid: str | None) -> bool:
        meeting = timedelta(minutes=length)
        schedule = self.members[user_id].schedule
        on_grid = start in schedule.grid(start, start, meeting, et.step(length))
        busy = self._busy_of(user_id, ignore_uid, start, start + meeting)
        return on_grid and self._clear(et, start, start + meeting, busy)

    def _assign_hosts(
        self, et: EventTypeDef, start: datetime, length: int, ignore_uid: str | None, keep: int | None = None
    ) -> tuple[int, ...]:
        """The hosts of a new team booking, or Cal.com's team 400 (errors.service.ts). Collective: every
        host, all free. Round robin: one free host, the least recently booked for this event type
        (packages/features/bookings/lib/getLuckyUser.ts, `leastRecentlyBookedUser`: a host never booked
        comes first, ties in host order); a reschedule keeps its host while that host is free."""
        free = [user_id for user_id in et.hosts if self._host_free(user_id, et, start, length, ignore_uid)]
        if et.scheduling == "collective":
            if len(free) < len(et.hosts) or not free:
                raise bad_request(MSG_TEAM_TAKEN)
            return tuple(et.hosts)
        if not free:
            raise bad_request(MSG_TEAM_TAKEN)
        if keep in free:
            return (keep,)

        def last_booked(user_id: int) -> tuple[datetime, int]:
            mine = [
                (b.created_at, b.id)
                for b in self.bookings.values()
                if b.event_type_id == et.id and b.hosts[0] == user_id
            ]
            return max(mine, default=(datetime.min.replace(tzinfo=UTC), 0))

        return (min(free, key=last_booked),)

    def _busy_of(self, user_id: int, ignore_uid: str | None, start: datetime, end: datetime) -> list[Interval]:
        """A member's busy intervals: the live bookings they host and their standing appointments."""
        out = self._busy(ignore_uid, user_id)
        member = self.members[user_id]
        zone = member.schedule.zone
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        while day <= last:
            for weekday, opens, closes in member.standing:
                if day.weekday() == weekday:
                    out.append((_at(day, opens, zone), _at(day, closes, zone)))
            day += timedelta(days=1)
        return out

    # --- slot reservations (NOTES §12.14) ----------------------------------------------------------

    def live_reservations(self) -> list[Reservation]:
        now = self.now()
        for uid in [uid for uid, r in self.reservations.items() if r.until <= now]:
            del self.reservations[uid]
        return list(self.reservations.values())

    def reserve(self, et: EventTypeDef, start: datetime, length: int, minutes: int) -> Reservation:
        """Cal.com's `reserveSlot` (slots-2024-09-04 SlotsService): refused (422) when a live booking of the
        event type or another reservation overlaps the time. Like Cal.com it does not check working hours,
        notice or the slot grid. A round-robin event type needs a free host (the sandbox's team check stands
        in for Cal.com's EE `validateRoundRobinSlotAvailability`). Then hidden from everyone's slots."""
        end = start + timedelta(minutes=length)
        if et.scheduling == "roundRobin":
            self._assign_hosts(et, start, length, None)
        else:
            if any(
                b.event_type_id == et.id and b.status in LIVE and b.start < end and start < b.end
                for b in self.bookings.values()
            ):
                raise unprocessable(MSG_RESERVE_BOOKED)
            if any(r.event_type_id == et.id and r.start < end and start < r.end for r in self.live_reservations()):
                raise unprocessable(MSG_RESERVE_RESERVED)
        reservation = Reservation(
            str(uuid.uuid4()),
            et.id,
            start,
            start + timedelta(minutes=length),
            minutes,
            self.now() + timedelta(minutes=minutes),
        )
        self.reservations[reservation.uid] = reservation
        return reservation

    def reservation(self, uid: str) -> Reservation:
        self.live_reservations()
        found = self.reservations.get(uid)
        if found is None:
            raise not_found(f"Reserved slot with uid={uid} not found")
        return found

    def _busy(self, ignore_uid: str | None, user_id: int = 1) -> list[Interval]:
        """The user's accepted bookings, and pending ones of event types whose policy says they block the
        slot (Cal.com's BookingRepository `_findAllExistingBookingsForEventTypeBetween`, NOTES §12.3)."""
        out: list[Interval] = []
        for booking in self.bookings.values():
            if booking.status not in LIVE or booking.uid == ignore_uid or user_id not in booking.hosts:
                continue
            et = self.event_type(booking.event_type_id)
            if booking.status == "pending" and not (et is not None and et.block_unconfirmed):
                continue
            before = timedelta(minutes=et.before_buffer if et else 0)
            after = timedelta(minutes=et.after_buffer if et else 0)
            out.append((booking.start - before, booking.end + after))
        return out

    def _clear(self, et: EventTypeDef, start: datetime, end: datetime, busy: Iterable[Interval]) -> bool:
        before, after = timedelta(minutes=et.before_buffer), timedelta(minutes=et.after_buffer)
        return is_free(start, end, before, after, busy)

    def _check_bookable(
        self, et: EventTypeDef, start: datetime, length: int, ignore_uid: str | None, keep: int | None = None
    ) -> tuple[int, ...]:
        """The hosts of a booking at `start`; Cal.com's 400 for a start in the past, too soon, off the
        slot grid, or not free.

        Real Cal.com accepts an off-grid start inside working hours; the sandbox is stricter on purpose and
        answers with the out-of-bounds text, which tells the caller to book a start from GET /v2/slots.
        """
        now = self.now()
        if start < now:
            raise bad_request(MSG_PAST)
        if start < now + timedelta(minutes=et.minimum_notice):
            raise bad_request(MSG_OUT_OF_BOUNDS)
        if et.team_id is not None:
            return self._assign_hosts(et, start, length, ignore_uid, keep)
        meeting = timedelta(minutes=length)
        end = start + meeting
        within_hours = any(
            opens <= start and end <= closes
            for opens, closes in self.schedule.windows(
                start.astimezone(self.schedule.zone).date() - timedelta(days=1),
                end.astimezone(self.schedule.zone).date(),
            )
        )
        if not within_hours:
            raise bad_request(MSG_TAKEN)
        if start not in self.schedule.grid(start, start, meeting, et.step(length)):
            raise bad_request(MSG_OUT_OF_BOUNDS)
        if not self._clear(et, start, end, self._busy(ignore_uid)):
            raise bad_request(MSG_TAKEN)
        return (self.host.id,)

    # --- booking lifecycle -----------------------------------------------------------------------

    async def create_booking(self, request: NewBooking) -> tuple[BookingRecord, bool]:
        """The booking and whether it is new. An identical repeat of a pending request (same attendee,
        start and event type) gets the existing pending booking back (RegularBookingService.ts
        `getValidBookingFromEventTypeForAttendee`, NOTES §12.3)."""
        et = request.event_type
        self._check_booker_email(request.attendee.email)
        self._check_required_fields(et, request.responses, request.attendee)
        repeat = self._pending_repeat(et, request)
        if repeat is not None:
            return repeat, False
        hosts = self._check_bookable(et, request.start, request.length, None)
        status: BookingState = "pending" if et.requires_confirmation else "accepted"
        await self._slow_work()
        booking = self._insert(
            et,
            request.start,
            request.length,
            status,
            request.attendee,
            request.location,
            guests=list(request.guests),
            metadata=dict(request.metadata),
            responses=dict(request.responses),
            hosts=hosts,
        )
        if status == "pending":
            self._notify(booking, "requested", host_kind="awaiting_approval")
            self._emit("BOOKING_REQUESTED", booking, "PENDING")
        else:
            self._notify(booking, "scheduled")
            self._emit("BOOKING_CREATED", booking, "ACCEPTED")
        return booking, True

    def _pending_repeat(self, et: EventTypeDef, request: NewBooking) -> BookingRecord | None:
        if not et.requires_confirmation:
            return None
        email = request.attendee.email.lower()
        return next(
            (
                b
                for b in self.bookings.values()
                if b.status == "pending"
                and b.event_type_id == et.id
                and b.start == request.start
                and b.attendee.email.lower() == email
            ),
            None,
        )

    def _check_booker_email(self, email: str) -> None:
        """Cal.com's `checkIfBookerEmailIsBlocked` (handleNewBooking, RegularBookingService.ts): a blocked
        address without a verified Cal.com user gets a plain 403 (NOTES §12.7)."""
        if email.lower() in self.blocked_emails:
            raise plain(403, MSG_EMAIL_BLOCKED)

    def _check_required_fields(self, et: EventTypeDef, responses: Mapping[str, object], attendee: Attendee) -> None:
        """bookings.service.ts `hasRequiredBookingFieldsResponses` (NOTES §12.2): each required custom
        field needs a response; a required phone field needs the attendee's phone number; a required
        e-mail question needs a real address, not the placeholder of a phone-only attendee (§12.10)."""
        if et.email_required and attendee.email.endswith(_NO_MAILBOX):
            raise bad_request(MSG_EMAIL_REQUIRED)
        for field in et.booking_fields:
            if not field.required or field.hidden:
                continue
            if field.type == "phone" and field.slug == "attendeePhoneNumber":
                if not attendee.phone_number:
                    raise bad_request(MSG_MISSING_PHONE)
                continue
            if responses.get(field.slug) in (None, "", []):
                raise bad_request(f"{MSG_MISSING_FIELD} {field.slug}")

    async def reschedule_booking(
        self, uid: str, start: datetime, *, reason: str | None, rescheduled_by: str | None, by_host: bool = False
    ) -> BookingRecord:
        """A new booking at `start`, the old one cancelled. `by_host`: the request carries the host's own
        key, so the owner reschedules: no minimum reschedule notice, and a needs-confirmation event type's
        new booking is accepted at once (getRequiresConfirmationFlags.ts `isUserReschedulingOwner`,
        NOTES §12.5)."""
        old = self.booking(uid)
        self._ensure_reschedulable(old)
        et = self.event_type(old.event_type_id)
        if et is None:
            raise not_found(f"Event type with id {old.event_type_id} not found.")
        by_owner = by_host or (rescheduled_by is not None and rescheduled_by.lower() == self.host.email.lower())
        notice = timedelta(minutes=et.minimum_reschedule_notice)
        if not by_owner and notice and self.now() >= old.start - notice:
            raise plain(403, MSG_RESCHEDULE_NOTICE)
        self._check_required_fields(et, old.responses, old.attendee)
        hosts = self._check_bookable(et, start, old.duration, old.uid, keep=old.hosts[0])
        status: BookingState = "pending" if et.requires_confirmation and not by_owner else "accepted"
        await self._slow_work()
        self._ensure_reschedulable(old)  # a concurrent reschedule may have won meanwhile
        responses = dict(old.responses)
        if reason:
            responses["rescheduleReason"] = reason
        new = self._insert(
            et,
            start,
            old.duration,
            status,
            old.attendee,
            old.venue,
            guests=list(old.guests),
            metadata=dict(old.metadata),
            responses=responses,
            ignore_key_of=old.uid,
            hosts=hosts,
        )
        new.rescheduled_from_uid = old.uid
        new.rescheduling_reason = reason
        new.rescheduled_by_email = rescheduled_by
        old.status = "cancelled"
        old.idempotency_key = None
        old.rescheduled_to_uid = new.uid
        old.rescheduled_by_email = rescheduled_by
        old.updated_at = self.now()
        self._notify(new, "rescheduled")
        extra = reschedule_fields(old, rescheduled_by)
        if status == "pending":  # Cal.com's handleNewBooking: not confirmed by default means REQUESTED
            self._emit("BOOKING_REQUESTED", new, "PENDING", extra=extra)
        else:
            self._emit("BOOKING_RESCHEDULED", new, "ACCEPTED", extra=extra)
        return new

    def cancel_booking(self, uid: str, *, reason: str | None, by_host: bool) -> BookingRecord:
        """Cal.com's input service refuses an unknown or cancelled uid in the v2 envelope (PR #22128,
        NOTES §12.1, §12.13); that includes the old uid of a rescheduled booking. A rejected (declined)
        booking can still be cancelled."""
        booking = self.bookings.get(uid)
        if booking is None:
            raise not_found(f"Booking with uid={uid} not found")
        if booking.status == "cancelled":
            raise bad_request(
                f"Can't cancel booking with uid={uid} because it has been cancelled already. Please provide "
                "uid of a booking that is not cancelled."
            )
        now = self.now()
        if booking.end <= now:
            raise plain(400, MSG_ALREADY_ENDED)
        if by_host and not (reason or "").strip():
            raise plain(400, MSG_HOST_NEEDS_REASON)
        had_meeting = booking.status == "accepted"
        booking.status = "cancelled"
        booking.idempotency_key = None
        booking.cancellation_reason = reason
        booking.cancelled_by_email = self.host.email if by_host else None
        booking.updated_at = now
        self._notify(booking, "cancelled")
        # handleCancelBooking.ts builds this payload without the booking's metadata and adds
        # `requestReschedule: false` (NOTES §12.12).
        extra = {"cancellationReason": reason, "cancelledBy": booking.cancelled_by_email, "requestReschedule": False}
        self._emit("BOOKING_CANCELLED", booking, "CANCELLED", has_meeting=had_meeting, extra=extra, with_metadata=False)
        return booking

    def confirm_booking(self, uid: str) -> BookingRecord:
        """The host accepts a pending booking (POST …/confirm): its meeting is made, the attendee told,
        and BOOKING_CREATED fires with status ACCEPTED."""
        booking = self._awaiting_decision(uid)
        booking.status = "accepted"
        booking.location = self._meeting_location(booking.venue, booking.uid)  # the meeting is made now
        booking.updated_at = self.now()
        self._notify(booking, "scheduled")
        self._emit("BOOKING_CREATED", booking, "ACCEPTED", times="millis")
        return booking

    def decline_booking(self, uid: str, *, reason: str | None) -> BookingRecord:
        """The host rejects a pending booking (POST …/decline): the slot is freed, the attendees told,
        and BOOKING_REJECTED fires."""
        booking = self._awaiting_decision(uid)
        booking.status = "rejected"
        booking.idempotency_key = None
        booking.rejection_reason = reason
        booking.updated_at = self.now()
        self._notify(booking, "declined", host=False)
        extra = {"rejectionReason": reason}
        self._emit("BOOKING_REJECTED", booking, "REJECTED", has_meeting=False, times="millis", extra=extra)
        return booking

    def _awaiting_decision(self, uid: str) -> BookingRecord:
        """Cal.com's confirm handler refuses a booking that is already accepted with a tRPC 400; the
        sandbox refuses cancelled and rejected ones the same way (Cal.com does not say)."""
        booking = self.booking(uid)
        if booking.status != "pending":
            raise trpc_bad_request()
        return booking

    def _ensure_reschedulable(self, booking: BookingRecord) -> None:
        if booking.status != "cancelled":
            return
        if booking.rescheduled_to_uid is not None:
            to = booking.rescheduled_to_uid
            raise bad_request(
                f"Can't reschedule booking with uid={booking.uid} because it has been cancelled and "
                f"rescheduled already to booking with uid={to}. You probably want to reschedule {to} instead "
                "by passing it within the request URL."
            )
        raise bad_request(
            f"Can't reschedule booking with uid={booking.uid} because it has been cancelled. Please provide "
            "uid of a booking that is not cancelled."
        )

    async def _slow_work(self) -> None:
        if self.before_insert is not None:
            await self.before_insert()
        else:
            await asyncio.sleep(0)

    def _insert(
        self,
        et: EventTypeDef,
        start: datetime,
        length: int,
        status: BookingState,
        attendee: Attendee,
        location: Location,
        *,
        guests: list[str],
        metadata: dict[str, object],
        responses: dict[str, object],
        ignore_key_of: str | None = None,
        hosts: tuple[int, ...] = (1,),
    ) -> BookingRecord:
        """Insert a booking; an accepted one claims the unique key of organizer + start + end or gets 409."""
        end = start + timedelta(minutes=length)
        organizer = self.user(hosts[0])
        key = None
        if status == "accepted":
            key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{_ms(start)}.{_ms(end)}.{organizer.id}"))
            if any(b.idempotency_key == key and b.uid != ignore_key_of for b in self.bookings.values()):
                raise plain(409, MSG_CONFLICT)
        booking_id = self._next_booking_id
        self._next_booking_id += 1
        now = self.now()
        uid = _short_uuid(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{organizer.username}:{iso_z(start)}:{_ms(now)}:{booking_id}")
        )
        # A video meeting is made only once the booking is accepted; until then `location` is the
        # internal app id such as "integrations:daily" (NOTES §12.4).
        where = self._meeting_location(location, uid) if status == "accepted" else location_value(location)
        notes = responses.get("notes")
        booking = BookingRecord(
            id=booking_id,
            uid=uid,
            event_type_id=et.id,
            title=f"{et.title} between {organizer.name} and {attendee.name}",
            description=notes if isinstance(notes, str) else "",
            start=start,
            end=end,
            status=status,
            attendee=attendee,
            guests=guests,
            venue=location,
            location=where,
            metadata=metadata,
            responses=responses,
            created_at=now,
            updated_at=now,
            idempotency_key=key,
            hosts=hosts,
        )
        self.bookings[uid] = booking
        return booking

    def _meeting_location(self, location: Location, uid: str) -> str:
        if location.type == "address":
            return location.address or ""
        if location.type == "link":
            return location.link or ""
        if location.type == "attendeePhone":
            return location.phone or ""
        if location.integration == "zoom":
            return "https://zoom.us/j/" + "".join(self._random.choice("0123456789") for _ in range(11))
        if location.integration == "google-meet":
            letters = "abcdefghijklmnopqrstuvwxyz"
            parts = ("".join(self._random.choice(letters) for _ in range(n)) for n in (3, 4, 3))
            return "https://meet.google.com/" + "-".join(parts)
        return f"https://app.cal.com/video/{uid}"

    # --- queries ---------------------------------------------------------------------------------

    def query_bookings(self, query: BookingQuery) -> tuple[list[BookingRecord], int]:
        """GET /v2/bookings semantics (NOTES §3.5): the filtered, sorted page and the total."""
        now = self.now()
        team_of = {et.id: team.id for team in self.teams for et in team.event_types}
        matches = [b for b in self.bookings.values() if _matches(b, query, now, team_of)]
        sort = query.sort
        if not sort:
            descending = len(query.statuses) == 1 and query.statuses[0] in ("past", "cancelled")
            sort = (("start", descending),)
        for name, descending in reversed(sort):
            matches.sort(key=_SORT_KEYS[name], reverse=descending)
        return matches[query.skip : query.skip + query.take], len(matches)

    # --- webhooks --------------------------------------------------------------------------------

    def _emit(
        self,
        trigger: str,
        booking: BookingRecord,
        status: PayloadStatus,
        *,
        has_meeting: bool | None = None,
        times: TimeStyle = "seconds",
        extra: Mapping[str, object] | None = None,
        with_metadata: bool = True,
    ) -> None:
        payload = booking_payload(
            booking,
            self.event_type(booking.event_type_id),
            self.organizer(booking),
            status=status,
            has_meeting=status == "ACCEPTED" if has_meeting is None else has_meeting,
            times=times,
            extra=extra,
        )
        if not with_metadata:
            del payload["metadata"]
        self.webhooks.emit(trigger, payload)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery made, in order, each with its exact body, signature and outcome."""
        return self.webhooks.deliveries

    @property
    def webhook_hold(self) -> bool:
        """While True, new deliveries wait for `release_webhooks`."""
        return self.webhooks.hold

    @webhook_hold.setter
    def webhook_hold(self, value: bool) -> None:
        self.webhooks.hold = value

    async def release_webhooks(self, order: Sequence[str] = ()) -> list[Delivery]:
        """Send the held deliveries one at a time: those whose ids are in `order` first, in that order."""
        return await self.webhooks.release(order)

    async def webhooks_settled(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (bounded by default)
        """Wait until every delivery that is not held has been answered (or failed)."""
        await self.webhooks.settled(timeout)

    def redeliver_webhook(self, delivery_id: str) -> Delivery:
        """Send a delivery's exact bytes and signature again (a new Delivery)."""
        return self.webhooks.redeliver(delivery_id)

    # --- faults ----------------------------------------------------------------------------------

    @property
    def fault_log(self) -> list[FaultEvent]:
        """Every injected fault that fired, in order."""
        return self.faults.log

    # --- outbox ----------------------------------------------------------------------------------

    def _notify(
        self, booking: BookingRecord, kind: OutboxKind, *, host_kind: OutboxKind | None = None, host: bool = True
    ) -> None:
        """Record the e-mails Cal.com sends: attendee and guests in their zone, the host in theirs."""
        at = self.now()
        people = [(booking.attendee.email, booking.attendee.time_zone, kind)]
        people += [(guest, booking.attendee.time_zone, kind) for guest in booking.guests]
        if host:
            hosts = [self.user(user_id) for user_id in booking.hosts]
            people += [(user.email, user.time_zone, host_kind or kind) for user in hosts]
        for to, zone, what in people:
            if to.endswith(_NO_MAILBOX):
                continue
            subject = _SUBJECTS[what].format(title=booking.title, date=_when(booking.start, zone))
            self.outbox.append(OutboxMessage(to, what, subject, booking.uid, at))


# Cal.com's English e-mail subjects for each kind.
_SUBJECTS: Final[dict[OutboxKind, str]] = {
    "scheduled": "Confirmed: {title} at {date}",
    "requested": "Booking Submitted: {title} at {date}",
    "awaiting_approval": "Awaiting Approval: {title} at {date}",
    "rescheduled": "Rescheduled: {title} at {date}",
    "cancelled": "Cancelled: {title} at {date}",
    "declined": "Declined: {title} at {date}",
}

_SORT_KEYS: Final[dict[str, Callable[[BookingRecord], datetime]]] = {
    "start": lambda b: b.start,
    "end": lambda b: b.end,
    "createdAt": lambda b: b.created_at,
    "updatedAt": lambda b: b.updated_at,
}


def _matches(booking: BookingRecord, query: BookingQuery, now: datetime, team_of: Mapping[int, int]) -> bool:
    if query.team_ids is not None and team_of.get(booking.event_type_id) not in query.team_ids:
        return False
    if query.statuses and not any(_has_status(booking, status, now) for status in query.statuses):
        return False
    checks: Sequence[bool] = (
        query.attendee_email is None or booking.attendee.email == query.attendee_email,
        query.attendee_name is None or booking.attendee.name == query.attendee_name,
        query.booking_uid is None or booking.uid == query.booking_uid,
        not query.event_type_ids or booking.event_type_id in query.event_type_ids,
        query.after_start is None or booking.start >= query.after_start,
        query.before_end is None or booking.end <= query.before_end,
        query.after_created_at is None or booking.created_at >= query.after_created_at,
        query.before_created_at is None or booking.created_at <= query.before_created_at,
        query.after_updated_at is None or booking.updated_at >= query.after_updated_at,
        query.before_updated_at is None or booking.updated_at <= query.before_updated_at,
    )
    return all(checks)


def _has_status(booking: BookingRecord, status: str, now: datetime) -> bool:
    live = booking.status not in ("cancelled", "rejected")
    if status == "upcoming":
        return live and booking.end >= now
    if status == "past":
        return live and booking.end <= now
    if status == "cancelled":
        return not live
    if status == "unconfirmed":
        return booking.status == "pending" and booking.end >= now
    return False  # "recurring": the sandbox has no recurring event types


def _when(start: datetime, zone: str) -> str:
    local = start.astimezone(ZoneInfo(zone))
    return f"{local:%H:%M} {local:%A}, {local:%B} {local.day}, {local.year} ({zone})"


def _at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _short_uuid(value: uuid.UUID) -> str:
    """The `short-uuid` package's flickrBase58 form of a UUID, left-padded to 22 characters."""
    number = value.int
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58[remainder])
    return "".join(reversed(digits)).rjust(22, _BASE58[0])
