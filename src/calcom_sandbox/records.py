"""The sandbox's plain data: the host, event types, bookings, e-mails and booking queries.

No behaviour lives here; `state.py` owns the rules that change these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from calcom_sandbox.slots import Schedule

BookingState = Literal["accepted", "pending", "cancelled", "rejected"]
OutboxKind = Literal["scheduled", "requested", "awaiting_approval", "rescheduled", "cancelled", "declined"]
LIVE: Final[frozenset[str]] = frozenset({"accepted", "pending"})


@dataclass(frozen=True)
class Host:
    id: int
    username: str
    name: str
    email: str
    time_zone: str


@dataclass(frozen=True)
class Location:
    """Where a meeting happens: a video integration (`cal-video`, `zoom`, `google-meet`), an address,
    (deprecated `meetingUrl` on create) the caller's own link, or a call to the attendee's phone (`phone`:
    the number the booking gave)."""

    type: Literal["integration", "address", "link", "attendeePhone"]
    integration: str | None = None
    address: str | None = None
    link: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class BookingField:
    """A custom booking question of an event type (`bookingFields` in GET /v2/event-types)."""

    slug: str
    type: str  # Cal.com's field types: text, textarea, select, radio, checkbox, boolean, phone, number…
    label: str
    required: bool = False
    options: tuple[str, ...] = ()
    hidden: bool = False


@dataclass(frozen=True)
class EventTypeDef:
    id: int
    slug: str
    title: str
    length: int
    locations: tuple[Location, ...]
    description: str = ""
    length_options: tuple[int, ...] = ()
    requires_confirmation: bool = False
    # `requiresConfirmationWillBlockSlot` (`confirmationPolicy.blockUnconfirmedBookingsInBooker`): only then
    # does a pending booking make its slot busy (NOTES §12.3).
    block_unconfirmed: bool = False
    booking_fields: tuple[BookingField, ...] = ()
    requires_authentication: bool = False  # `bookingRequiresAuthentication`
    minimum_reschedule_notice: int = 0  # minutes before the start within which only the organizer may reschedule
    before_buffer: int = 0
    after_buffer: int = 0
    minimum_notice: int = 60
    slot_interval: int | None = None
    hidden: bool = False
    # The default `email` booking question is required (Cal.com's default). False: optional, so a caller
    # can book with a phone number alone (NOTES §12.10), as a voice business sets it up.
    email_required: bool = True
    # A team event type (NOTES §12.14): its team, how its hosts are scheduled (Cal.com's output
    # `schedulingType`: "roundRobin" or "collective") and its hosts' user ids, in priority order.
    team_id: int | None = None
    scheduling: Literal["roundRobin", "collective"] | None = None
    hosts: tuple[int, ...] = ()

    def step(self, length: int) -> timedelta:
        """Slot interval: the event type's own, else the meeting length."""
        return timedelta(minutes=self.slot_interval or length)


def default_event_types() -> list[EventTypeDef]:
    video = Location("integration", integration="cal-video")
    return [
        EventTypeDef(
            1001,
            "consultation",
            "Consultation",
            30,
            (video,),
            "A 30-minute consultation on Cal Video.",
            email_required=False,
        ),
        EventTypeDef(
            1002,
            "quick-call",
            "Quick call",
            15,
            (Location("integration", integration="zoom"),),
            "15 minutes on Zoom.",
        ),
        EventTypeDef(
            1003,
            "product-demo",
            "Product demo",
            60,
            (Location("integration", integration="google-meet"),),
            "A one-hour demo on Google Meet, with 10 minutes free before and after.",
            before_buffer=10,
            after_buffer=10,
        ),
        EventTypeDef(
            1004,
            "in-person-visit",
            "In-person visit",
            45,
            (Location("address", address="350 Fifth Avenue, New York, NY 10118"),),
            "A visit at our office. Book at least 4 hours ahead.",
            minimum_notice=240,
        ),
        EventTypeDef(
            1005,
            "intro-call",
            "Intro call (needs confirmation)",
            30,
            (video,),
            "The host confirms each request before it is booked.",
            requires_confirmation=True,
        ),
        EventTypeDef(
            1006,
            "flexible-session",
            "Flexible session",
            30,
            (video,),
            "15, 30 or 60 minutes on Cal Video.",
            length_options=(15, 30, 60),
        ),
        EventTypeDef(
            1007,
            "strategy-session",
            "Strategy session",
            45,
            (video,),
            "45 minutes on Cal Video; tell us what you want to discuss.",
            booking_fields=(
                BookingField("topic", "textarea", "What would you like to discuss?", required=True),
                BookingField("first-visit", "boolean", "Is this your first session with us?"),
            ),
        ),
        EventTypeDef(
            1008,
            "phone-call",
            "Phone call",
            20,
            (Location("attendeePhone"),),
            "We call you at your number.",
            booking_fields=(
                BookingField("attendeePhoneNumber", "phone", "Phone number", required=True),
                BookingField(
                    "service",
                    "radio",
                    "Which service is this about?",
                    required=True,
                    options=("Billing", "Repairs", "New installation"),
                ),
            ),
        ),
    ]


@dataclass(frozen=True)
class Member:
    """A team member: the user, their own weekly working hours, and their standing appointments
    (weekday, local start, local end; busy every week) as the calendar they already have."""

    user: Host
    schedule: Schedule
    standing: tuple[tuple[int, time, time], ...] = ()


@dataclass(frozen=True)
class Team:
    id: int
    slug: str
    name: str
    members: tuple[int, ...]  # user ids; the account's own user is one of them
    event_types: tuple[EventTypeDef, ...]


TEAM_ID: Final = 501
ROUND_ROBIN_ID: Final = 2001
COLLECTIVE_ID: Final = 2002


def default_team_members() -> list[Member]:
    """The two colleagues of the account's user (id 1) in the clinic team: Dr. Lee works mornings in New
    York and sees a standing patient on Monday 9:00-10:00; Dr. Patel works afternoons from Chicago
    (12:00-18:00 New York time) with a standing Wednesday 11:00-12:00 (her time)."""
    lee = Host(2, "dr-lee", "Dr. Lee", "lee@clinic.example.com", "America/New_York")
    patel = Host(3, "dr-patel", "Dr. Patel", "patel@clinic.example.com", "America/Chicago")
    return [
        Member(
            lee,
            Schedule(ZoneInfo(lee.time_zone), {d: ((time(8), time(14)),) for d in range(5)}),
            ((0, time(9), time(10)),),
        ),
        Member(
            patel,
            Schedule(ZoneInfo(patel.time_zone), {d: ((time(11), time(17)),) for d in range(5)}),
            ((2, time(11), time(12)),),
        ),
    ]


def default_teams() -> list[Team]:
    """One team of three (the account's user and Dr. Lee and Dr. Patel) with a round-robin check-up
    (any of the three) and a collective case review (Dr. Lee and Dr. Patel together)."""
    video = Location("integration", integration="cal-video")
    return [
        Team(
            TEAM_ID,
            "riverside-clinic",
            "Riverside Clinic",
            (1, 2, 3),
            (
                EventTypeDef(
                    ROUND_ROBIN_ID,
                    "check-up",
                    "Check-up",
                    30,
                    (video,),
                    "30 minutes with whichever of our doctors is free.",
                    team_id=TEAM_ID,
                    scheduling="roundRobin",
                    hosts=(2, 3, 1),
                ),
                EventTypeDef(
                    COLLECTIVE_ID,
                    "case-review",
                    "Case review",
                    60,
                    (video,),
                    "An hour with Dr. Lee and Dr. Patel together.",
                    team_id=TEAM_ID,
                    scheduling="collective",
                    hosts=(2, 3),
                ),
            ),
        )
    ]


@dataclass(frozen=True)
class Reservation:
    """A slot reservation (NOTES §12.14): hidden from GET /v2/slots until `until`."""

    uid: str
    event_type_id: int
    start: datetime
    end: datetime
    minutes: int
    until: datetime


@dataclass
class Attendee:
    name: str
    email: str
    time_zone: str
    language: str = "en"
    phone_number: str | None = None


@dataclass
class BookingRecord:
    id: int
    uid: str
    event_type_id: int
    title: str
    description: str
    start: datetime
    end: datetime
    status: BookingState
    attendee: Attendee
    guests: list[str]
    venue: Location
    location: str
    metadata: dict[str, object]
    responses: dict[str, object]
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None
    cancellation_reason: str | None = None
    cancelled_by_email: str | None = None
    rescheduling_reason: str | None = None
    rescheduled_by_email: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    rejection_reason: str | None = None
    hosts: tuple[int, ...] = (1,)  # user ids Cal.com assigned, the organizer first

    @property
    def duration(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


@dataclass(frozen=True)
class NewBooking:
    """A create request that passed validation."""

    event_type: EventTypeDef
    start: datetime
    length: int
    attendee: Attendee
    location: Location
    guests: tuple[str, ...] = ()
    metadata: dict[str, object] = field(default_factory=dict)
    responses: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxMessage:
    to: str
    kind: OutboxKind
    subject: str
    booking_uid: str
    at: datetime


SERVED_KEPT: Final = 10_000  # API requests whose timing the sandbox keeps (GET /_sandbox/served)


@dataclass(frozen=True)
class Served:
    """One API request answered: Cal.com's own time for it, from arrival to the answer."""

    method: str
    path: str
    status: int
    ms: float


@dataclass(frozen=True)
class BookingQuery:
    statuses: tuple[str, ...] = ()
    attendee_email: str | None = None
    attendee_name: str | None = None
    booking_uid: str | None = None
    event_type_ids: tuple[int, ...] = ()
    after_start: datetime | None = None
    before_end: datetime | None = None
    after_created_at: datetime | None = None
    before_created_at: datetime | None = None
    after_updated_at: datetime | None = None
    before_updated_at: datetime | None = None
    team_ids: tuple[int, ...] | None = None  # a team filter: only bookings of these teams' event types
    sort: tuple[tuple[str, bool], ...] = ()  # (field, descending), most significant first
    take: int = 100
    skip: int = 0
