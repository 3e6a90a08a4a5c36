"""Realistic appointments in bulk, for benchmarks and load tests: `await seed(store, 1_000_000, seed=42)`.

The same `n`, `seed` and `now` give the same rows. Rows go in through the driver's executemany in batches,
under the same constraints as rows the store writes itself, and end up indexed and searchable alike;
each appointment gets its booking uid rows and a `created` history entry, as the store would leave them.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from appt_tools.store import _scope, _search
from appt_tools.store._engine import BEGIN_MODE_OPTION, IMMEDIATE
from appt_tools.store.store import APPOINTMENT_ID_PREFIX, Store
from appt_tools.store.tables import AppointmentRow

BATCH = 5_000  # rows a statement (executemany)
COMMIT_EVERY = 50_000  # rows a transaction
# FTS5's in-memory index while it is filled in one statement: flushed to disk far less often than
# with its default (1 MB), which it is set back to afterwards.
FTS_FILL_HASH_BYTES = 64 * 1024 * 1024
FTS_DEFAULT_HASH_BYTES = 1024 * 1024
SORT_THREADS = 4
YEARS_BACK = 9
YEARS_AHEAD = 1


def _words(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


_FIRST = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret "
    "Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa "
    "George Deborah Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob "
    "Amy Gary Kathleen Nicholas Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin Nicole Scott "
    "Anna Brandon Samantha Benjamin Katherine Samuel Christine Gregory Helen Alexander Debra Patrick Rachel Frank "
    "Carolyn Raymond Janet Jack Maria Dennis Catherine Jerry Heather Tyler Diane Aaron Olivia José Julie Adam Joyce "
    "Nathan Victoria Henry Ruth Zachary Virginia Douglas Lauren Peter Kelly Kyle Christina Noah Joan Ethan Evelyn "
    "Jeremy Judith Walter Andrea Christian Hannah Keith Megan Roger Cheryl Terry Jacqueline Austin Martha Sean "
    "Madison Gerald Teresa Carl Gloria Harold Sara Dylan Janice Arthur Ann Lawrence Kathryn Jordan Abigail Jesse "
    "Sophia Bryan Frances Billy Jean Bruce Alice Gabriel Judy Joe Isabella Logan Julia Alan Grace Juan Amber Albert "
    "Denise Willie Danielle Elijah Marilyn Wayne Beverly Randy Charlotte Vincent Natalie Mason Theresa Roy Diana "
    "Ralph Brittany Bobby Doris Russell Kayla Bradley Alexis Philip Lori Eugene Marie Priya Wei Aiko Søren Zoë Chloé"
)
_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson "
    "Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
    "Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris "
    "Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward "
    "Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders "
    "Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes "
    "Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace "
    "Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall "
    "Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman "
    "Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Muñoz Hunt Hicks Holmes "
    "Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson "
    "Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen "
    "Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado "
    "Ray Delgado Berry Perkins Hoffman Johnston Matthews Peña Richards Willis Carpenter Lawrence Sandoval Østergaard"
)
_MAIL_DOMAINS = _words(
    "gmail.com yahoo.com outlook.com hotmail.com icloud.com aol.com proton.me fastmail.com comcast.net "
    "example.com example.org mail.de web.de orange.fr libero.it"
)
_BUSINESS_KINDS = _words(
    "Dental Clinic|Family Dentistry|Physiotherapy|Hair Studio|Barbershop|Veterinary Clinic|Law Office|Auto Repair|"
    "Tax Advisors|Pediatrics|Dermatology|Chiropractic|Yoga Studio|Spa|Optometry|Orthodontics|Plumbing|Insurance|"
    "Realty|Tutoring|Nail Salon|Massage Therapy|Pet Grooming|Counseling",
    "|",
)
_BUSINESS_NAMES = _words(
    "Acme Bright Sunrise Riverside Maple Oak Harbor Summit Evergreen Lakeside Cedar Pioneer Golden Liberty Westside "
    "Northgate Parkview Willow Silverline Bluebird Cornerstone Heritage Keystone Meadow Redwood Sterling Horizon"
)
_TITLES = _words(
    "Consultation|Follow-up|Initial assessment|Cleaning|Check-up|Second opinion|Quote visit|Treatment session|"
    "Review meeting|Intro call|Annual review|Fitting|Repair estimate|Onboarding|Demo|Emergency visit|Trial lesson|"
    "Haircut|Color and cut|Vaccination|Tax filing|Contract review|Eye exam|Massage 60 min|Adjustment|X-ray",
    "|",
)
_LABELS = (
    "",
    "",
    "",
    "",
    "",
    "vip",
    "new patient",
    "returning",
    "urgent",
    "insurance",
    "referral",
    "follow-up",
    "promo",
)
_TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
)
_CALL_TYPES = ("inbound",) * 6 + ("outbound",) * 3 + ("web",)
_DURATIONS = (15, 30, 30, 30, 45, 60, 60, 90)


@dataclass(frozen=True)
class _Business:
    name: str
    number: str
    timezone: str


def _number(rng: random.Random) -> str:
    """A plausible North American E.164 number."""
    return f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"


def _token(rng: random.Random, size: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(size)).decode().rstrip("=")


def _businesses(rng: random.Random, count: int) -> list[_Business]:
    names = {f"{rng.choice(_BUSINESS_NAMES)} {rng.choice(_BUSINESS_KINDS)}" for _ in range(count * 3)}
    return [_Business(name, _number(rng), rng.choice(_TIMEZONES)) for name in sorted(names)[:count]]


def _status(rng: random.Random, past: bool) -> tuple[str, bool]:
    """(stored status, booked) with the mix a few years of real bookings leave behind."""
    roll = rng.random()
    if roll < 0.03:
        return "failed", False
    if roll < 0.15:
        return "cancelled", True
    if roll < 0.22:
        return "rescheduled", True
    if roll < 0.25 and not past:
        return "pending", True  # awaiting the host's confirmation
    return "active", True


def _rows(n: int, rng: random.Random, now: datetime) -> Iterator[tuple[dict[str, Any], str | None]]:
    businesses = _businesses(rng, 120)
    attendees = [
        (first + " " + last, f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@{rng.choice(_MAIL_DOMAINS)}")
        for first, last in ((rng.choice(_FIRST), rng.choice(_LAST)) for _ in range(max(50, n // 4)))
    ]
    phones = [_number(rng) for _ in range(len(attendees))]
    origin = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=365 * YEARS_BACK)
    quarter_hours = (YEARS_BACK + YEARS_AHEAD) * 365 * 24 * 4
    for _ in range(n):
        business = rng.choice(businesses)
        who = rng.randrange(len(attendees))
        name, email = attendees[who]
        start = origin + timedelta(minutes=15 * rng.randrange(quarter_hours))
        end = start + timedelta(minutes=rng.choice(_DURATIONS))
        created = min(max(start - timedelta(minutes=rng.randint(30, 60 * 24 * 40)), origin), now)
        status, booked = _status(rng, end <= now)
        updated = min(created + timedelta(minutes=rng.randint(0, 60 * 24 * 10)), now)
        call_type = rng.choice(_CALL_TYPES)
        caller, callee = (phones[who], business.number) if call_type != "outbound" else (business.number, phones[who])
        uid = _token(rng, 16) if booked else None
        row = {
            "id": APPOINTMENT_ID_PREFIX + _token(rng, 9),
            "booking_uid": uid,
            "title": rng.choice(_TITLES),
            "description": "",
            "label": rng.choice(_LABELS),
            "attendee_name": name,
            "attendee_email": email,
            "attendee_phone": None,
            "business_name": business.name,
            "to_number": callee,
            "from_number": caller,
            "call_type": call_type,
            "event_type_id": rng.randint(1, 12),
            "start_at": start,
            "end_at": end,
            "timezone": business.timezone,
            "status": status,
            "meeting_url": f"https://app.cal.com/video/{uid}" if uid else None,
            "location": None,
            "cancellation_reason": "Caller asked to cancel" if status == "cancelled" else None,
            "last_error": "Cal.com refused the booking" if status == "failed" else None,
            "created_at": created,
            "updated_at": max(updated, created),
        }
        yield row, uid


async def seed(store: Store, n: int, *, seed: int = 42, now: datetime | None = None) -> None:
    """Insert `n` appointments spread over ten years around `now` (default: the current hour, UTC),
    committed every COMMIT_EVERY rows, then refresh the planner's statistics (and on PostgreSQL
    vacuum). Into an empty store the indexes and search triggers are set aside and made again after
    the rows are in (sorting a million keys once beats a million random inserts into each index), and
    the search index is filled in one statement, with room for more of it in memory at once.

    Commits in batches, each index made in a transaction of its own: on SQLite one transaction of a
    million rows grows a write-ahead log of gigabytes that every read must look through, and copies
    all of it again at the end. The next batch of rows is generated in a thread while the database
    takes the current one. So a seed is not atomic: other connections may see part of the rows, and
    without their indexes until the end. If it fails, the indexes and triggers are made again before
    the error goes up (a killed process leaves them out: seed an empty store afresh)."""
    if n < 0:
        raise ValueError(f"n: must be 0 or more, not {n}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    # The operator's connections: whether the table is empty, and its indexes, concern every tenant.
    writer = _scope.bind(store.engine, _scope.ALL_TENANTS).execution_options(**{BEGIN_MODE_OPTION: IMMEDIATE})
    sqlite = store.engine.dialect.name == "sqlite"
    async with writer.begin() as connection:
        empty = (await connection.scalar(select(AppointmentRow.id).limit(1))) is None
        remake = await _set_aside(connection) if empty else []
    try:
        await _insert(writer, _batches(_rows(n, random.Random(seed), now), sqlite, store.tenant_id))
    finally:
        for statement in remake:
            async with writer.begin() as connection:
                if sqlite:  # CREATE INDEX sorts with helper threads (about a third faster on 2 cores)
                    await connection.exec_driver_sql(f"PRAGMA threads = {SORT_THREADS}")
                await connection.exec_driver_sql(statement)
                if sqlite:
                    await connection.exec_driver_sql("PRAGMA threads = 0")
        if empty and sqlite and _search.FTS_TABLE in " ".join(remake):
            async with writer.begin() as connection:
                await connection.exec_driver_sql(_fts_config("hashsize", FTS_FILL_HASH_BYTES))
                await connection.exec_driver_sql(_search.fts_fill_sql())
                await connection.exec_driver_sql(_fts_config("hashsize", FTS_DEFAULT_HASH_BYTES))
    if sqlite:
        async with writer.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
    else:
        # Outside a transaction, as VACUUM must be: statistics, and the visibility map that lets
        # PostgreSQL count from an index alone (autovacuum would get there, later).
        async with store.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("appointments", "booking_uids", "appointment_history"):
                await autocommit.exec_driver_sql(f"VACUUM ANALYZE {table}")


def _fts_config(option: str, value: int) -> str:
    return f"INSERT INTO {_search.FTS_TABLE} ({_search.FTS_TABLE}, rank) VALUES ('{option}', {value})"


async def _insert(writer: AsyncEngine, batches: Iterator[_Batch]) -> None:
    """Send `batches`, committing every COMMIT_EVERY rows; each next batch is made in a thread
    meanwhile (the driver lets go of the GIL while the database works)."""
    loop = asyncio.get_running_loop()

    def following() -> asyncio.Future[_Batch | None]:
        return loop.run_in_executor(None, next, batches, None)

    upcoming = following()
    done = False
    while not done:
        async with writer.begin() as connection:
            sent = 0
            while sent < COMMIT_EVERY:
                batch = await upcoming
                if batch is None:
                    done = True
                    break
                upcoming = following()
                await batch.send(connection)
                sent += len(batch.appointments)
    await upcoming


async def _set_aside(connection: AsyncConnection) -> list[str]:
    """Drop the appointments table's indexes (not its constraints) and triggers; the SQL that remakes them."""
    if connection.dialect.name == "sqlite":
        found = await connection.execute(
            text(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'appointments' "
                "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type"
            )
        )
        objects = [(str(kind).upper(), str(name), str(sql)) for kind, name, sql in found]
    else:
        found = await connection.execute(
            text(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = 'appointments'::regclass "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
            )
        )
        objects = [("INDEX", str(name), str(sql)) for name, sql in found]
    for kind, name, _sql in objects:
        await connection.exec_driver_sql(f'DROP {kind} "{name}"')
    return [sql for _kind, _name, sql in objects]


@dataclass
class _Batch:
    """Rows ready to go in, in the database's own formats, sent with the driver's executemany."""

    sqlite: bool
    tenant_id: int
    appointments: list[tuple[Any, ...]] = field(default_factory=list)
    uids: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def _time(self, value: datetime) -> object:
        # as UTCDateTime stores it (the rows' datetimes are UTC already)
        naive = (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None)
        return naive.isoformat(sep=" ", timespec="microseconds") if self.sqlite else naive

    def add(self, row: dict[str, Any], uid: str | None) -> None:
        times = {column: self._time(row[column]) for column in _TIMES}
        row = {
            "answers": "{}",
            "language": None,
            "host_name": "",
            "host_email": None,
            "tenant_id": self.tenant_id,
            **row,
        }  # seeded calls answered no questions
        at = times["created_at"]
        self.appointments.append(tuple(times[c] if c in times else row[c] for c in _APPOINTMENT_COLUMNS))
        self.history.append((row["id"], at, "created", "", times["start_at"], self.tenant_id))
        if uid is not None:
            self.uids.append((row["id"], uid, at, self.tenant_id))

    async def send(self, connection: AsyncConnection) -> None:
        for table, columns, rows in (
            ("appointments", _APPOINTMENT_COLUMNS, self.appointments),
            ("booking_uids", ("appointment_id", "uid", "created_at", "tenant_id"), self.uids),
            (
                "appointment_history",
                ("appointment_id", "at", "action", "detail", "to_start", "tenant_id"),
                self.history,
            ),
        ):
            if rows:
                marks = ", ".join("?" if self.sqlite else f"${i}" for i in range(1, len(columns) + 1))
                statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                await connection.exec_driver_sql(statement, rows)


def _batches(rows: Iterator[tuple[dict[str, Any], str | None]], sqlite: bool, tenant_id: int) -> Iterator[_Batch]:
    while True:
        batch = _Batch(sqlite, tenant_id)
        for row, uid in itertools.islice(rows, BATCH):
            batch.add(row, uid)
        if not batch.appointments:
            return
        yield batch


_TIMES = ("start_at", "end_at", "created_at", "updated_at")
# PostgreSQL computes `search_document` itself (it is not on SQLite at all).
_APPOINTMENT_COLUMNS = tuple(column.name for column in AppointmentRow.__table__.columns if column.computed is None)
