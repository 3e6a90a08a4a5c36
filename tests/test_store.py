"""The local store against a real SQLite file and, when a server is reachable, a real PostgreSQL
database (see `backend_url` in conftest.py): the same tests, the same behaviour."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from appt_tools.errors import SlotHeld
from appt_tools.models import (
    SORT_FIELDS,
    Appointment,
    AppointmentStatus,
    EventType,
    HistoryEntry,
    NewAppointment,
    SearchQuery,
    SortField,
)
from appt_tools.store import Store, _finder
from appt_tools.store.seed import seed

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no DST
S = AppointmentStatus


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema, copied for each test (tests/test_migrations.py covers
    making one)."""
    path = tmp_path_factory.mktemp("migrated") / "appt.db"

    async def migrate() -> None:
        async with Store.from_url(f"sqlite+aiosqlite:///{path}"):
            pass  # closing the last connection checkpoints the WAL into the file

    asyncio.run(migrate())
    return path


@pytest.fixture
def db_url(backend_url: str, migrated_sqlite: Path) -> str:
    if backend_url.startswith("sqlite"):
        database = Path(backend_url.split(":///", 1)[1])
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_sqlite, database)
    return backend_url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    async with Store.from_url(db_url) as opened:
        yield opened


_distinct_starts = itertools.count()


def new_appointment(**overrides: Any) -> NewAppointment:
    # Each default start is its own minute: only one unbooked (in-flight) appointment may hold a start.
    offset = timedelta(days=1, minutes=next(_distinct_starts))
    fields: dict[str, Any] = {
        "title": "Consultation",
        "description": "First visit",
        "label": "",
        "attendee_name": "Jane Roe",
        "attendee_email": "jane@example.com",
        "business_name": "Acme Dental",
        "to_number": "+15550000001",
        "from_number": "+15550000002",
        "call_type": "inbound",
        "event_type_id": 7,
        "start": NOW + offset,
        "end": NOW + offset + timedelta(minutes=30),
        "timezone": "America/New_York",
    }
    fields.update(overrides)
    return NewAppointment(**fields)


async def add(
    store: Store,
    changes: Mapping[str, object] | None = None,
    *,
    now: datetime = NOW,
    **fields: Any,
) -> Appointment:
    """Add an appointment, then apply `changes` (e.g. status and booking uid)."""
    appointment = await store.add_appointment(new_appointment(**fields), now=now)
    if changes:
        appointment = await store.update_appointment(appointment.id, changes, now=now)
    return appointment


async def ids_of(store: Store, query: SearchQuery, now: datetime = NOW) -> list[str]:
    page = await store.search(query, now=now)
    return [item.id for item in page.items]


# --- appointments: round trip -------------------------------------------------------------------


async def test_every_field_round_trips_and_datetimes_come_back_aware_utc(store: Store) -> None:
    start = datetime(2030, 3, 1, 9, 15, 30, 123456, tzinfo=KOLKATA)
    created = datetime(2030, 1, 10, 8, 0, tzinfo=KOLKATA)
    added = await store.add_appointment(
        new_appointment(
            title="Crown fitting",
            description="Bring X-rays",
            label="VIP",
            attendee_name="Ravi Kumar",
            attendee_email="ravi@example.in",
            attendee_phone="+919800000003",
            business_name="Smile Clinic",
            to_number="+919800000001",
            from_number="+919800000002",
            call_type="outbound",
            event_type_id=42,
            start=start,
            end=start + timedelta(minutes=45),
            timezone="Asia/Kolkata",
            answers={"topic": "A loose crown", "first-visit": True, "areas": ["upper", "left"]},
            language="hi",
        ),
        now=created,
    )
    updated_at = created + timedelta(hours=1)
    changed = await store.update_appointment(
        added.id,
        {
            "booking_uid": "uid-1",
            "status": "active",
            "meeting_url": "https://cal.com/video/abc",
            "location": "Room 4",
            "host_name": "Dr. Lee and Dr. Patel",
            "host_email": "lee@clinic.example.com, patel@clinic.example.com",
            "cancellation_reason": "n/a",
            "last_error": "timeout once",
        },
        now=updated_at,
    )

    stored = await store.get_appointment(added.id)

    assert stored == changed
    assert stored is not None
    expected = {
        "id": added.id,
        "booking_uid": "uid-1",
        "previous_booking_uids": (),
        "title": "Crown fitting",
        "description": "Bring X-rays",
        "label": "VIP",
        "attendee_name": "Ravi Kumar",
        "attendee_email": "ravi@example.in",
        "attendee_phone": "+919800000003",
        "business_name": "Smile Clinic",
        "to_number": "+919800000001",
        "from_number": "+919800000002",
        "call_type": "outbound",
        "event_type_id": 42,
        "start": start,
        "end": start + timedelta(minutes=45),
        "timezone": "Asia/Kolkata",
        "answers": {"topic": "A loose crown", "first-visit": True, "areas": ["upper", "left"]},
        "language": "hi",
        "status": S.ACTIVE,
        "meeting_url": "https://cal.com/video/abc",
        "location": "Room 4",
        "host_name": "Dr. Lee and Dr. Patel",
        "host_email": "lee@clinic.example.com, patel@clinic.example.com",
        "cancellation_reason": "n/a",
        "last_error": "timeout once",
        "created_at": created,
        "updated_at": updated_at,
    }
    assert stored.model_dump() == expected
    for moment in (stored.start, stored.end, stored.created_at, stored.updated_at):
        assert moment.tzinfo is UTC
    assert stored.start == datetime(2030, 3, 1, 3, 45, 30, 123456, tzinfo=UTC)


async def test_an_appointment_without_e_mail_is_stored_searched_and_sorted_with_the_others(store: Store) -> None:
    with_mail = await add(store, attendee_name="Mia Mail", attendee_email="mia@example.com")
    phone_only = await add(store, attendee_name="Pat Phone", attendee_email=None, attendee_phone="+14155550177")

    stored = await store.get_appointment(phone_only.id)
    by_name = await store.search(SearchQuery(text="pat phone"), now=NOW)
    by_mail = await store.search(SearchQuery(sort_by="attendee_email", descending=True), now=NOW)
    edited = await store.update_appointment(phone_only.id, {"attendee_email": "pat@example.com"}, now=NOW)
    cleared = await store.update_appointment(phone_only.id, {"attendee_email": None}, now=NOW)

    assert stored is not None and stored.attendee_email is None and stored.attendee_phone == "+14155550177"
    assert [a.id for a in by_name.items] == [phone_only.id]
    assert [a.id for a in by_mail.items] == [with_mail.id, phone_only.id]
    assert (edited.attendee_email, cleared.attendee_email) == ("pat@example.com", None)


async def test_a_new_appointment_is_pending_unbooked_with_a_created_history_entry(store: Store) -> None:
    appointment = await add(store)

    assert appointment.status is S.PENDING
    assert appointment.booking_uid is None
    assert appointment.previous_booking_uids == ()
    assert appointment.created_at == appointment.updated_at == NOW
    assert await store.history(appointment.id) == [HistoryEntry(at=NOW, action="created", to_start=appointment.start)]


async def test_appointment_ids_are_apt_prefixed_url_safe_and_unique(store: Store) -> None:
    ids = {(await add(store)).id for _ in range(20)}

    assert len(ids) == 20
    assert all(re.fullmatch(r"apt_[A-Za-z0-9_-]{12}", appointment_id) for appointment_id in ids)


async def test_an_unknown_id_or_booking_uid_finds_nothing(store: Store) -> None:
    assert await store.get_appointment("apt_doesnotexist") is None
    assert await store.get_by_booking_uid("no-such-uid") is None
    assert await store.history("apt_doesnotexist") == []


# --- naive datetimes ---------------------------------------------------------------------------

NAIVE = datetime(2030, 1, 15, 12, 0)


async def _add_naive_now(store: Store, _id: str) -> object:
    return await store.add_appointment(new_appointment(), now=NAIVE)


async def _add_naive_start(store: Store, _id: str) -> object:
    return await store.add_appointment(new_appointment(start=NAIVE, end=NAIVE + timedelta(hours=1)), now=NOW)


async def _update_naive_now(store: Store, appointment_id: str) -> object:
    return await store.update_appointment(appointment_id, {"title": "x"}, now=NAIVE)


async def _update_naive_start(store: Store, appointment_id: str) -> object:
    return await store.update_appointment(appointment_id, {"start": NAIVE}, now=NOW)


async def _update_naive_end_as_text(store: Store, appointment_id: str) -> object:
    return await store.update_appointment(appointment_id, {"end": "2030-01-16T12:00:00"}, now=NOW)


async def _update_naive_history(store: Store, appointment_id: str) -> object:
    entry = HistoryEntry(at=NAIVE, action="updated")
    return await store.update_appointment(appointment_id, {"title": "x"}, now=NOW, history=entry)


async def _update_naive_history_start(store: Store, appointment_id: str) -> object:
    entry = HistoryEntry(at=NOW, action="rescheduled", from_start=NAIVE)
    return await store.update_appointment(appointment_id, {"title": "x"}, now=NOW, history=entry)


async def _search_naive_now(store: Store, _id: str) -> object:
    return await store.search(SearchQuery(), now=NAIVE)


async def _search_naive_from(store: Store, _id: str) -> object:
    return await store.search(SearchQuery(start_from=NAIVE), now=NOW)


async def _search_naive_to(store: Store, _id: str) -> object:
    return await store.search(SearchQuery(start_to=NAIVE), now=NOW)


async def _replace_event_types_naive(store: Store, _id: str) -> object:
    await store.replace_event_types([], now=NAIVE)
    return None


@pytest.mark.parametrize(
    "operation",
    [
        _add_naive_now,
        _add_naive_start,
        _update_naive_now,
        _update_naive_start,
        _update_naive_end_as_text,
        _update_naive_history,
        _update_naive_history_start,
        _search_naive_now,
        _search_naive_from,
        _search_naive_to,
        _replace_event_types_naive,
    ],
)
async def test_a_naive_datetime_is_rejected_with_value_error_and_nothing_changes(
    store: Store, operation: Callable[[Store, str], Any]
) -> None:
    existing = await add(store)

    with pytest.raises(ValueError, match="naive"):
        await operation(store, existing.id)

    assert await store.get_appointment(existing.id) == existing
    assert (await store.search(SearchQuery(), now=NOW)).total == 1
    assert len(await store.history(existing.id)) == 1


# --- appointments: updates and history ------------------------------------------------------------


async def test_an_update_changes_fields_bumps_updated_at_and_records_history(store: Store) -> None:
    appointment = await add(store)
    later = NOW + timedelta(minutes=5)
    entry = HistoryEntry(at=later, action="updated", detail="title and label")

    updated = await store.update_appointment(
        appointment.id, {"title": "Follow-up", "label": "urgent"}, now=later, history=entry
    )

    assert (updated.title, updated.label) == ("Follow-up", "urgent")
    assert updated.created_at == NOW
    assert updated.updated_at == later
    assert updated.model_dump(exclude={"title", "label", "updated_at"}) == appointment.model_dump(
        exclude={"title", "label", "updated_at"}
    )
    assert (await store.history(appointment.id))[-1] == entry


async def test_an_update_without_changes_only_appends_history(store: Store) -> None:
    appointment = await add(store)
    entry = HistoryEntry(at=NOW + timedelta(hours=1), action="synced", detail="no drift")

    unchanged = await store.update_appointment(appointment.id, {}, now=NOW + timedelta(hours=1), history=entry)

    assert unchanged == appointment
    assert await store.history(appointment.id) == [
        HistoryEntry(at=NOW, action="created", to_start=appointment.start),
        entry,
    ]


REFUSE_BOOM = {
    "sqlite": [
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON appointment_history "
        "WHEN NEW.detail = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.detail = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON appointment_history FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
    ],
}


async def test_the_update_and_its_history_entry_commit_or_fail_together(store: Store) -> None:
    appointment = await add(store)
    async with store.engine.begin() as connection:
        for statement in REFUSE_BOOM[connection.dialect.name]:
            await connection.exec_driver_sql(statement)

    with pytest.raises(DBAPIError, match="boom"):
        await store.update_appointment(
            appointment.id,
            {"title": "Never saved", "status": "failed"},
            now=NOW + timedelta(minutes=1),
            history=HistoryEntry(at=NOW + timedelta(minutes=1), action="failed", detail="boom"),
        )

    assert await store.get_appointment(appointment.id) == appointment
    assert len(await store.history(appointment.id)) == 1


@pytest.mark.parametrize("field", ["id", "created_at", "updated_at", "previous_booking_uids", "colour"])
async def test_an_update_of_an_unknown_or_unchangeable_field_raises_value_error(store: Store, field: str) -> None:
    appointment = await add(store)

    with pytest.raises(ValueError, match=field):
        await store.update_appointment(appointment.id, {field: "x"}, now=NOW)

    assert await store.get_appointment(appointment.id) == appointment


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "completed"},
        {"status": S.COMPLETED},
        {"status": "done"},
        {"call_type": "fax"},
        {"title": None},
        {"event_type_id": "seven"},
    ],
)
async def test_an_update_with_an_invalid_value_raises_value_error(store: Store, changes: dict[str, object]) -> None:
    appointment = await add(store)

    with pytest.raises(ValueError):
        await store.update_appointment(appointment.id, changes, now=NOW)

    assert await store.get_appointment(appointment.id) == appointment


async def test_an_update_of_an_unknown_appointment_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.update_appointment("apt_doesnotexist", {"title": "x"}, now=NOW)


async def test_a_reschedule_keeps_the_id_and_old_booking_uids_still_find_it(store: Store) -> None:
    appointment = await add(store, {"booking_uid": "uid-1", "status": "active"})
    new_start = appointment.start + timedelta(days=2)
    later = NOW + timedelta(hours=1)
    entry = HistoryEntry(
        at=later,
        action="rescheduled",
        from_start=appointment.start,
        to_start=new_start,
        from_booking_uid="uid-1",
        to_booking_uid="uid-2",
    )

    moved = await store.update_appointment(
        appointment.id,
        {
            "booking_uid": "uid-2",
            "status": S.RESCHEDULED,
            "start": new_start,
            "end": new_start + timedelta(hours=1),
        },
        now=later,
        history=entry,
    )
    moved_again = await store.update_appointment(appointment.id, {"booking_uid": "uid-3"}, now=later)

    assert moved.id == moved_again.id == appointment.id
    assert (moved.booking_uid, moved.previous_booking_uids) == ("uid-2", ("uid-1",))
    assert (moved_again.booking_uid, moved_again.previous_booking_uids) == ("uid-3", ("uid-1", "uid-2"))
    assert moved.start == new_start
    for uid in ("uid-1", "uid-2", "uid-3"):
        assert await store.get_by_booking_uid(uid) == moved_again
    assert (await store.history(appointment.id))[-1] == entry


async def test_clearing_the_booking_uid_keeps_every_earlier_uid(store: Store) -> None:
    appointment = await add(store, {"booking_uid": "uid-1"})

    cleared = await store.update_appointment(appointment.id, {"booking_uid": None, "status": "failed"}, now=NOW)

    assert cleared.booking_uid is None
    assert cleared.previous_booking_uids == ("uid-1",)
    assert await store.get_by_booking_uid("uid-1") == cleared


async def test_a_booking_uid_of_another_appointment_is_refused(store: Store) -> None:
    first = await add(store, {"booking_uid": "uid-1"})
    second = await add(store, {"booking_uid": "uid-2"})
    await store.update_appointment(first.id, {"booking_uid": "uid-9"}, now=NOW)

    with pytest.raises(ValueError, match="uid-1"):
        await store.update_appointment(second.id, {"booking_uid": "uid-1"}, now=NOW)

    assert await store.get_by_booking_uid("uid-1") == await store.get_appointment(first.id)
    assert await store.get_appointment(second.id) == second


async def test_history_is_returned_oldest_first(store: Store) -> None:
    appointment = await add(store)
    for minutes, action in ((3, "cancelled"), (1, "booked"), (2, "updated")):
        at = NOW + timedelta(minutes=minutes)
        await store.update_appointment(appointment.id, {}, now=at, history=HistoryEntry(at=at, action=action))

    actions = [entry.action for entry in await store.history(appointment.id)]

    assert actions == ["created", "booked", "updated", "cancelled"]


async def test_concurrent_updates_from_two_stores_on_one_file_all_land(store: Store, db_url: str) -> None:
    appointment = await add(store)
    async with Store.from_url(db_url) as other:

        async def touch(target: Store, n: int) -> None:
            at = NOW + timedelta(seconds=n)
            entry = HistoryEntry(at=at, action="updated", detail=str(n))
            await target.update_appointment(appointment.id, {"last_error": str(n)}, now=at, history=entry)

        await asyncio.gather(*(touch(store if n % 2 else other, n) for n in range(1, 21)))

    assert len(await store.history(appointment.id)) == 21


# --- search: text ----------------------------------------------------------------------------

TEXT_FIELDS = [
    "title",
    "attendee_name",
    "attendee_email",
    "business_name",
    "label",
    "to_number",
    "from_number",
]


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_text_search_matches_a_case_insensitive_substring_of_each_field(store: Store, field: str) -> None:
    value = "+1555987654" if field.endswith("_number") else "xxZebRAyy"
    needle = "5598765" if field.endswith("_number") else "zEBra"
    fields: dict[str, Any] = {field: value}
    target = await add(store, **fields)
    await add(store)

    assert await ids_of(store, SearchQuery(text=needle)) == [target.id]


async def test_text_search_ignores_fields_outside_its_list(store: Store) -> None:
    await add(store, description="zebra", timezone="Europe/Zebra")

    assert await ids_of(store, SearchQuery(text="zebra")) == []


async def test_blank_text_does_not_filter(store: Store) -> None:
    await add(store)

    assert (await store.search(SearchQuery(text="   "), now=NOW)).total == 1


@pytest.mark.parametrize(
    ("text", "expected_title"),
    [("%", "100% sure"), ("0%", "100% sure"), ("_", "a_b"), ("a_b", "a_b"), ("/", "a/b"), ("\\", "a\\b")],
)
async def test_like_wildcards_and_escape_characters_in_text_match_literally(
    store: Store, text: str, expected_title: str
) -> None:
    by_title = {
        title: (await add(store, title=title)).id for title in ("100% sure", "1000 sure", "a_b", "axb", "a/b", "a\\b")
    }

    assert await ids_of(store, SearchQuery(text=text)) == [by_title[expected_title]]


@pytest.mark.parametrize("needle", ["q", "Qu", "QUI", "quince", "ce q", "ince Qu"])
async def test_short_and_long_text_find_the_same_substring(store: Store, needle: str) -> None:
    # Under three characters no trigram index applies and the text is scanned: the same answer.
    target = await add(store, title="Quince Quarterly")
    await add(store, title="Apple")

    assert await ids_of(store, SearchQuery(text=needle)) == [target.id]


async def test_ascii_letters_match_in_any_case_and_other_letters_as_typed(store: Store) -> None:
    zoe = await add(store, attendee_name="ZOË Muñoz")

    assert await ids_of(store, SearchQuery(text="zoË muñoz")) == [zoe.id]
    assert await ids_of(store, SearchQuery(text="Ë")) == [zoe.id]
    assert await ids_of(store, SearchQuery(text="ë")) == []
    assert await ids_of(store, SearchQuery(text="zoë")) == []


async def test_text_search_follows_changes_to_searched_fields(store: Store) -> None:
    appointment = await add(store, title="Walrus tusk check", label="")

    await store.update_appointment(appointment.id, {"title": "Otter checkup", "label": "Aquarium"}, now=NOW)

    assert await ids_of(store, SearchQuery(text="walrus")) == []
    assert await ids_of(store, SearchQuery(text="otter")) == [appointment.id]
    assert await ids_of(store, SearchQuery(text="quarium")) == [appointment.id]


# --- search: status ---------------------------------------------------------------------------


async def _status_zoo(store: Store) -> dict[str, Appointment]:
    past, future = NOW - timedelta(days=1), NOW + timedelta(days=1)
    cases: dict[str, tuple[datetime, dict[str, object]]] = {
        "pending_unbooked_past": (past, {}),
        "pending_unbooked_future": (future, {}),
        "pending_booked_future": (future, {"booking_uid": "u-pbf"}),
        "pending_booked_past": (past, {"booking_uid": "u-pbp"}),
        "active_future": (future, {"booking_uid": "u-af", "status": "active"}),
        "active_past": (past, {"booking_uid": "u-ap", "status": "active"}),
        "active_ends_now": (NOW - timedelta(minutes=30), {"booking_uid": "u-an", "status": "active"}),
        "rescheduled_future": (future, {"booking_uid": "u-rf", "status": "rescheduled"}),
        "rescheduled_past": (past, {"booking_uid": "u-rp", "status": "rescheduled"}),
        "cancelled_past": (past, {"booking_uid": "u-cp", "status": "cancelled"}),
        "cancelled_future": (future, {"booking_uid": "u-cf", "status": "cancelled"}),
        "failed_past": (past, {"status": "failed"}),
    }
    # A distinct second each: two unbooked (in-flight) appointments may not share a start.
    return {
        name: await add(store, changes, start=start + timedelta(seconds=n), end=start + timedelta(minutes=30))
        for n, (name, (start, changes)) in enumerate(cases.items())
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.COMPLETED, {"pending_booked_past", "active_past", "active_ends_now", "rescheduled_past"}),
        (S.ACTIVE, {"active_future"}),
        (S.RESCHEDULED, {"rescheduled_future"}),
        (S.PENDING, {"pending_unbooked_past", "pending_unbooked_future", "pending_booked_future"}),
        (S.CANCELLED, {"cancelled_past", "cancelled_future"}),
        (S.FAILED, {"failed_past"}),
    ],
)
async def test_status_filter_uses_the_effective_status_with_completed_derived(
    store: Store, status: AppointmentStatus, expected: set[str]
) -> None:
    zoo = await _status_zoo(store)

    found = set(await ids_of(store, SearchQuery(statuses=(status,), page_size=100)))

    assert found == {zoo[name].id for name in expected}
    assert found == {a.id for a in zoo.values() if a.effective_status(NOW) is status}


async def test_several_statuses_are_alternatives(store: Store) -> None:
    zoo = await _status_zoo(store)

    page = await store.search(SearchQuery(statuses=(S.ACTIVE, S.FAILED, S.ACTIVE)), now=NOW)

    assert {item.id for item in page.items} == {zoo["active_future"].id, zoo["failed_past"].id}
    assert page.total == 2


async def test_search_returns_the_stored_status_not_the_effective_one(store: Store) -> None:
    zoo = await _status_zoo(store)

    page = await store.search(SearchQuery(statuses=(S.COMPLETED,), text="", page_size=100), now=NOW)

    assert zoo["active_past"].id in {item.id for item in page.items}
    assert S.COMPLETED not in {item.status for item in page.items}


# --- search: other filters ------------------------------------------------------------------


async def test_label_filter_is_exact_and_case_insensitive(store: Store) -> None:
    vip = await add(store, label="VIP")
    await add(store, label="VIP plus")
    await add(store, label="")

    assert await ids_of(store, SearchQuery(label="vip")) == [vip.id]


async def test_call_type_filter_is_exact(store: Store) -> None:
    web = await add(store, call_type="web")
    await add(store, call_type="inbound")
    await add(store, call_type="outbound")

    assert await ids_of(store, SearchQuery(call_type="web")) == [web.id]


async def test_start_range_includes_its_start_and_excludes_its_end(store: Store) -> None:
    base = datetime(2030, 2, 1, 0, 0, tzinfo=UTC)
    by_day = {
        day: (await add(store, start=base + timedelta(days=day), end=base + timedelta(days=day, hours=1))).id
        for day in range(5)
    }
    # The bounds are given in another zone: 2030-02-01T05:30+05:30 is 2030-02-01T00:00Z.
    query = SearchQuery(
        start_from=(base + timedelta(days=1)).astimezone(KOLKATA),
        start_to=(base + timedelta(days=3)).astimezone(KOLKATA),
    )

    assert await ids_of(store, query) == [by_day[1], by_day[2]]


async def test_filters_combine_and_total_counts_the_whole_filter(store: Store) -> None:
    same = {"start": NOW + timedelta(days=1), "end": NOW + timedelta(days=1, hours=1)}
    booked = (({"booking_uid": f"u-{n}"}) for n in itertools.count())
    matching = [
        (await add(store, next(booked), label="vip", call_type="web", title=f"Zebra {n}", **same)).id for n in range(4)
    ]
    await add(store, next(booked), label="vip", call_type="inbound", title="Zebra x", **same)
    await add(store, next(booked), label="other", call_type="web", title="Zebra y", **same)
    await add(store, next(booked), label="vip", call_type="web", title="Lion", **same)

    page = await store.search(SearchQuery(text="zebra", label="VIP", call_type="web", page_size=2), now=NOW)

    assert page.total == 4
    # Same start everywhere, so the id tiebreaker decides the order.
    assert [item.id for item in page.items] == sorted(matching)[:2]


# --- search: sorting and pages ----------------------------------------------------------------


def _sort_key(appointment: Appointment, field: SortField, now: datetime = NOW) -> object:
    """The value a sort orders by: for status, the status shown (an ended booking is completed)."""
    if field == "status":
        return appointment.effective_status(now).value
    return getattr(appointment, field)


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("field", SORT_FIELDS)
async def test_search_sorts_by_every_field_with_id_breaking_ties(
    store: Store, field: SortField, descending: bool
) -> None:
    rows = [
        ("Banana", "Carl", "carl@x.io", "Delta", "b", "web", 3, {"booking_uid": "s1", "status": "active"}),
        ("apple", "Anna", "anna@x.io", "Alpha", "a", "inbound", 1, {}),
        ("Cherry", "Bea", "bea@x.io", "", "b", "outbound", 5, {"status": "failed"}),
        (
            "Banana",
            "anna",
            "Anna@x.io",
            "Charlie",
            "",
            "web",
            2,
            {"booking_uid": "s2", "status": "cancelled"},
        ),
        (
            "Date",
            "Dan",
            "dan@x.io",
            "Alpha",
            "a",
            "inbound",
            2,
            {"booking_uid": "s3", "status": "rescheduled"},
        ),
        ("Elder", "Eve", "eve@x.io", "Bravo", "c", "outbound", 4, {}),
    ]
    added = []
    for n, (title, name, email, business, label, call_type, day, changes) in enumerate(rows):
        start = NOW + timedelta(days=day)
        created = NOW - timedelta(hours=len(rows) - n) if n % 2 else NOW - timedelta(hours=n)
        appointment = await add(
            store,
            now=created,
            title=title,
            attendee_name=name,
            attendee_email=email,
            business_name=business,
            label=label,
            call_type=call_type,
            start=start,
            end=start + timedelta(minutes=15 * (7 - n)),
        )
        later = NOW + timedelta(minutes=(n * 7) % 5)
        added.append(await store.update_appointment(appointment.id, changes or {"last_error": None}, now=later))
    expected = sorted(added, key=lambda a: (_sort_key(a, field), a.id), reverse=descending)

    found = await ids_of(store, SearchQuery(sort_by=field, descending=descending, page_size=100))

    assert found == [a.id for a in expected]


async def test_sorting_by_status_sorts_by_the_status_shown(store: Store) -> None:
    ended = await add(
        store, {"booking_uid": "done", "status": "active"}, start=NOW - timedelta(hours=2), end=NOW - timedelta(hours=1)
    )
    ahead = await add(
        store,
        {"booking_uid": "ahead", "status": "active"},
        start=NOW + timedelta(hours=1),
        end=NOW + timedelta(hours=2),
    )
    cancelled = await add(store, {"booking_uid": "gone", "status": "cancelled"}, start=NOW - timedelta(hours=5))
    unbooked = await add(store, start=NOW - timedelta(hours=3), end=NOW - timedelta(hours=2))  # never completes

    ascending = await ids_of(store, SearchQuery(sort_by="status", page_size=10))
    descending = await ids_of(store, SearchQuery(sort_by="status", descending=True, page_size=10))

    # active < cancelled < completed < pending: the ended booking sorts as completed, not as active
    assert ascending == [ahead.id, cancelled.id, ended.id, unbooked.id]
    assert descending == ascending[::-1]


async def test_pages_are_stable_disjoint_and_cover_everything(store: Store) -> None:
    same_start = NOW + timedelta(days=1)
    all_ids = {
        (await add(store, {"booking_uid": f"u-{n}"}, start=same_start, end=same_start + timedelta(hours=1))).id
        for n in range(7)
    }

    pages = [await store.search(SearchQuery(page=page, page_size=3), now=NOW) for page in (1, 2, 3, 4)]

    assert [len(page.items) for page in pages] == [3, 3, 1, 0]
    assert {page.total for page in pages} == {7}
    assert [(page.page, page.page_size) for page in pages] == [(1, 3), (2, 3), (3, 3), (4, 3)]
    seen = [item.id for page in pages for item in page.items]
    assert seen == sorted(all_ids)


@pytest.mark.parametrize("query", [SearchQuery(page=0), SearchQuery(page_size=0)])
async def test_a_page_or_page_size_below_one_is_refused(store: Store, query: SearchQuery) -> None:
    with pytest.raises(ValueError):
        await store.search(query, now=NOW)


async def test_search_results_carry_previous_booking_uids(store: Store) -> None:
    appointment = await add(store, {"booking_uid": "old"})
    await store.update_appointment(appointment.id, {"booking_uid": "new"}, now=NOW)

    (item,) = (await store.search(SearchQuery(), now=NOW)).items

    assert (item.booking_uid, item.previous_booking_uids) == ("new", ("old",))


async def test_an_appointment_and_its_booking_uids_are_read_in_one_statement_and_many_in_two(store: Store) -> None:
    start = NOW + timedelta(days=5)
    booked = []
    for n in range(3):
        changes = {"booking_uid": f"uid-{n}-a", "status": S.ACTIVE}
        appointment = await add(store, changes, start=start, end=start + timedelta(minutes=30))
        for later in ("b", "c"):
            appointment = await store.update_appointment(appointment.id, {"booking_uid": f"uid-{n}-{later}"}, now=NOW)
        booked.append(appointment)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(statement)

    for engine in store.statement_engines:
        event.listen(engine, "before_cursor_execute", record)
    glance, store._pool.glance = store._pool.glance, None  # SQLAlchemy's (tests/test_glance.py counts the glance's)
    try:
        counted = []
        for read in (
            lambda: store.get_appointment(booked[0].id),
            lambda: store.get_by_booking_uid("uid-0-a"),
            lambda: _by_id(store.live_at(start)),
        ):
            sent.clear()
            found = await read()
            counted.append((found, len(sent)))
    finally:
        store._pool.glance = glance
        for engine in store.statement_engines:
            event.remove(engine, "before_cursor_execute", record)

    assert counted == [(booked[0], 1), (booked[0], 2), (sorted(booked, key=lambda a: a.id), 2)]
    assert booked[0].previous_booking_uids == ("uid-0-a", "uid-0-b")


async def _by_id(appointments: Awaitable[list[Appointment]]) -> list[Appointment]:
    return sorted(await appointments, key=lambda a: a.id)


# --- search: against a reference ------------------------------------------------------------


def _ascii_lower(text: str) -> str:
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def _expected(appointments: list[Appointment], query: SearchQuery, now: datetime = NOW) -> list[Appointment]:
    """What `search` must find, by the definition: a filter and a sort in Python."""
    text = _ascii_lower((query.text or "").strip())
    found = [
        a
        for a in appointments
        if (not query.statuses or a.effective_status(now) in query.statuses)
        and (not text or any(text in _ascii_lower(getattr(a, field)) for field in TEXT_FIELDS))
        and (query.label is None or _ascii_lower(a.label) == _ascii_lower(query.label))
        and (query.call_type is None or a.call_type == query.call_type)
        and (query.start_from is None or a.start >= query.start_from)
        and (query.start_to is None or a.start < query.start_to)
    ]
    return sorted(found, key=lambda a: (_sort_key(a, query.sort_by, now), a.id), reverse=query.descending)


async def _crowd(store: Store, size: int = 29) -> list[Appointment]:
    """`size` appointments over every stored status, booked or not, past or future, with repeats."""
    crowd = []
    for n in range(size):
        start = NOW + timedelta(hours=(n * 37) % 50 - 25, seconds=n)
        status = ("pending", "active", "rescheduled", "cancelled", "failed")[n % 5]
        booked = n % 3 != 0 and status != "failed"
        changes: dict[str, object] = {"status": status, **({"booking_uid": f"b-{n}"} if booked else {})}
        crowd.append(
            await add(
                store,
                changes,
                title=("Cleaning", "Check-up", "cleaning deluxe")[n % 3],
                attendee_name=("Ana Ruiz", "Bo Chen", "ana maria")[n % 3],
                attendee_email=f"person{n % 4}@example.com",
                label=("", "VIP", "vip", "new")[n % 4],
                call_type=("inbound", "outbound", "web")[n % 3],
                start=start,
                end=start + timedelta(minutes=30 + n),
            )
        )
    return crowd


QUERIES = [
    SearchQuery(),
    SearchQuery(statuses=tuple(s for s in S if s is not S.FAILED)),
    SearchQuery(statuses=(S.COMPLETED,), sort_by="title", descending=True),
    SearchQuery(statuses=(S.ACTIVE, S.PENDING), sort_by="end"),
    SearchQuery(statuses=(S.COMPLETED, S.CANCELLED, S.ACTIVE), sort_by="attendee_name"),
    SearchQuery(text="clean", sort_by="start", descending=True),
    SearchQuery(text="an", statuses=(S.COMPLETED, S.PENDING, S.RESCHEDULED, S.CANCELLED, S.ACTIVE)),
    SearchQuery(text="person1", statuses=(S.CANCELLED,)),
    SearchQuery(text="RUIZ", statuses=(S.COMPLETED, S.FAILED), sort_by="created_at"),
    SearchQuery(text="ruiz", statuses=tuple(s for s in S if s is not S.FAILED), descending=True),
    SearchQuery(label="vip", sort_by="status"),
    SearchQuery(sort_by="status"),
    SearchQuery(sort_by="status", descending=True, statuses=(S.COMPLETED, S.ACTIVE, S.PENDING)),
    SearchQuery(text="clean", sort_by="status"),
    SearchQuery(text="cleaning deluxe", sort_by="status", descending=True),
    SearchQuery(call_type="web", statuses=(S.COMPLETED,), sort_by="call_type", descending=True),
    SearchQuery(start_from=NOW - timedelta(hours=10), start_to=NOW + timedelta(hours=10), sort_by="updated_at"),
]


@pytest.fixture(params=["as shipped", "small thresholds"])
def thresholds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test as shipped, and again with the plans for many matches taken at a few: totals capped
    at 3 (a page past them walks the sort order), more than 8 FTS5 candidates broad, and texts of
    more than one trigram looked up by their rarest one and checked by LIKE."""
    if request.param == "small thresholds":
        monkeypatch.setattr(_finder, "TOTAL_CAP", 3)
        monkeypatch.setattr(_finder, "LISTED", 8)
        monkeypatch.setattr(_finder, "PROBED", 1)
        monkeypatch.setattr(_finder, "RAREST", 1)


def _total(matches: int, query: SearchQuery) -> tuple[int, bool]:
    """What a page says of `matches` matches: (total, total_exact), exact up to the cap or the page's end."""
    bound = max(_finder.TOTAL_CAP, query.page * query.page_size)
    return (matches, True) if matches <= bound else (bound, False)


@pytest.mark.usefixtures("thresholds")
async def test_every_page_and_total_match_a_sort_of_the_whole_result(store: Store) -> None:
    crowd = await _crowd(store)
    for query, page_size in itertools.product(QUERIES, (4, 10)):
        expected = [a.id for a in _expected(crowd, query)]
        pages = -(-len(expected) // page_size) + 1  # and one past the end

        found = [
            await store.search(query.model_copy(update={"page": page, "page_size": page_size}), now=NOW)
            for page in range(1, pages + 1)
        ]

        assert [(page.total, page.total_exact) for page in found] == [
            _total(len(expected), query.model_copy(update={"page": page, "page_size": page_size}))
            for page in range(1, pages + 1)
        ], (query, page_size)
        assert [[item.id for item in page.items] for page in found] == [
            expected[i : i + page_size] for i in range(0, pages * page_size, page_size)
        ], (query, page_size)


# Status filters that take every way of counting: none, a few small cells, most rows (counted as the
# rest subtracted from the whole), completed alone, everything.
STATUS_SETS = [
    (),
    *((status,) for status in S),
    (S.COMPLETED, S.CANCELLED),
    (S.ACTIVE, S.PENDING),
    (S.COMPLETED, S.FAILED, S.RESCHEDULED),
    tuple(s for s in S if s is not S.FAILED),
    tuple(s for s in S if s is not S.COMPLETED),
    tuple(S),
]


async def test_totals_are_exact_for_every_combination_of_statuses(store: Store) -> None:
    crowd = await _crowd(store, size=17)
    for size in range(len(S) + 1):
        for statuses in itertools.combinations(S, size):
            query = SearchQuery(statuses=statuses)
            assert (await store.search(query, now=NOW)).total == len(_expected(crowd, query)), statuses


@pytest.mark.usefixtures("thresholds")
async def test_totals_with_text_are_exact_for_every_way_of_counting_statuses(store: Store) -> None:
    crowd = await _crowd(store, size=17)
    for text, statuses in itertools.product(("an", "clean", "ruiz"), STATUS_SETS):
        query = SearchQuery(statuses=statuses, text=text)
        found = await store.search(query, now=NOW)
        assert (found.total, found.total_exact) == _total(len(_expected(crowd, query)), query), (text, statuses)


# --- concurrency: one winner, on every backend -------------------------------------------------------


async def test_concurrent_claims_of_one_key_give_it_to_exactly_one(store: Store, db_url: str) -> None:
    async with Store.from_url(db_url) as other:
        claims = await asyncio.gather(
            *(
                (store if n % 2 else other).claim_key("book:k1", "hash", now=NOW, stale_after=timedelta(minutes=5))
                for n in range(8)
            )
        )

    assert sum(claim.mine for claim in claims) == 1
    assert {claim.record.created_at for claim in claims} == {NOW}


async def test_concurrent_bookings_of_one_start_leave_one_in_flight_and_the_rest_slot_held(
    store: Store, db_url: str
) -> None:
    start = NOW + timedelta(days=3)
    async with Store.from_url(db_url) as other:
        outcomes = await asyncio.gather(
            *(
                (store if n % 2 else other).add_appointment(
                    new_appointment(start=start, end=start + timedelta(hours=1)), now=NOW
                )
                for n in range(6)
            ),
            return_exceptions=True,
        )

    booked = [outcome for outcome in outcomes if isinstance(outcome, Appointment)]
    held = [outcome for outcome in outcomes if isinstance(outcome, SlotHeld)]
    assert len(booked) == 1
    assert len(held) == 5
    assert {error.holder_id for error in held} == {booked[0].id}


async def test_a_finished_key_keeps_its_outcome_as_json(store: Store) -> None:
    await store.claim_key("k", "h", now=NOW, stale_after=timedelta(minutes=5))
    error = {"code": "calcom_rejected", "retryable": False, "detail": {"fields": ["start", "email"], "n": 2}}

    await store.finish_key("k", now=NOW + timedelta(seconds=1), error=error)

    record = await store.get_key("k")
    assert record is not None
    assert (record.done, record.error, record.updated_at) == (True, error, NOW + timedelta(seconds=1))


# --- the benchmark seed ----------------------------------------------------------------------------


async def _schema_objects(store: Store) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            found = await connection.exec_driver_sql(  # leaving out ANALYZE's statistics
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name"
            )
        else:
            found = await connection.exec_driver_sql(
                "SELECT c.relname, c.relkind, pg_get_indexdef(c.oid) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1"
            )
        return [tuple(row) for row in found]


async def _everything(store: Store) -> list[Appointment]:
    pages = [await store.search(SearchQuery(page=n, page_size=100), now=NOW) for n in range(1, 5)]
    return [item for page in pages for item in page.items]


async def test_seed_makes_searchable_appointments_and_leaves_the_schema_as_it_was(store: Store) -> None:
    before = await _schema_objects(store)

    await seed(store, 300, seed=3, now=NOW)

    assert await _schema_objects(store) == before  # indexes and triggers set aside, then made again
    appointments = await _everything(store)
    assert len(appointments) == 300
    assert {S.COMPLETED, S.ACTIVE, S.RESCHEDULED, S.CANCELLED, S.FAILED} <= {
        a.effective_status(NOW) for a in appointments
    }
    assert min(a.start for a in appointments) < NOW - timedelta(days=5 * 365) < NOW < max(a.start for a in appointments)
    surname = appointments[7].attendee_name.split()[-1]
    for query in (SearchQuery(text=surname), SearchQuery(text=surname, statuses=(S.COMPLETED, S.CANCELLED))):
        page = await store.search(query, now=NOW)
        expected = _expected(appointments, query)
        assert (page.total, [a.id for a in page.items]) == (len(expected), [a.id for a in expected[:10]])
    booked = next(a for a in appointments if a.booking_uid is not None)
    assert await store.get_by_booking_uid(booked.booking_uid or "") == booked
    assert [entry.action for entry in await store.history(booked.id)] == ["created"]


async def test_seed_adds_to_a_store_that_has_appointments(store: Store) -> None:
    mine = await add(store, title="Walrus tusk check")

    await seed(store, 40, seed=4, now=NOW)

    appointments = await _everything(store)
    assert len(appointments) == 41
    other = next(a for a in appointments if a.id != mine.id)
    assert await ids_of(store, SearchQuery(text=other.attendee_email)) == [
        a.id for a in _expected(appointments, SearchQuery(text=other.attendee_email))[:10]
    ]
    assert await ids_of(store, SearchQuery(text="walrus")) == [mine.id]


async def test_seed_gives_the_same_appointments_for_the_same_seed(tmp_path: Path) -> None:
    seeded = []
    for name in ("a", "b"):
        async with Store.from_url(f"sqlite+aiosqlite:///{tmp_path / name}.db") as store:
            await seed(store, 25, seed=5, now=NOW)
            seeded.append(await _everything(store))

    assert seeded[0] == seeded[1]


# --- event types and settings ----------------------------------------------------------------


def event_type(event_type_id: int, title: str, **overrides: Any) -> EventType:
    fields: dict[str, Any] = {"slug": title.lower().replace(" ", "-"), "length_minutes": 30}
    fields.update(overrides)
    return EventType(id=event_type_id, title=title, **fields)


async def test_replacing_event_types_upserts_the_given_ones_and_deletes_the_rest(store: Store) -> None:
    await store.replace_event_types([event_type(1, "Old"), event_type(2, "Kept")], now=NOW)
    kept = event_type(
        2,
        "Kept renamed",
        length_minutes=45,
        length_options=(15, 45, 60),
        description="Longer",
        location_type="integration",
        location_integration="cal-video",
        location_address="1 Main St",
        requires_confirmation=True,
        hidden=True,
    )
    added = event_type(3, "Added")

    await store.replace_event_types([kept, added], now=NOW + timedelta(hours=1))

    assert await store.list_event_types() == [added, kept]
    assert await store.get_event_type(2) == kept
    assert await store.get_event_type(1) is None


async def test_replacing_with_no_event_types_empties_them(store: Store) -> None:
    await store.replace_event_types([event_type(1, "One")], now=NOW)

    await store.replace_event_types([], now=NOW)

    assert await store.list_event_types() == []


async def test_duplicate_event_type_ids_are_refused_and_nothing_changes(store: Store) -> None:
    await store.replace_event_types([event_type(1, "One")], now=NOW)

    with pytest.raises(ValueError, match="duplicate"):
        await store.replace_event_types([event_type(2, "Two"), event_type(2, "Deux")], now=NOW)

    assert await store.list_event_types() == [event_type(1, "One")]


async def test_settings_are_set_overwritten_and_deleted(store: Store) -> None:
    assert await store.get_settings() == {}

    await store.set_setting("timezone", "Europe/Paris")
    await store.set_setting("business_name", "Acme")
    await store.set_setting("timezone", "Asia/Tokyo")
    assert await store.get_settings() == {"timezone": "Asia/Tokyo", "business_name": "Acme"}

    await store.set_setting("business_name", None)
    await store.set_setting("never_set", None)
    assert await store.get_settings() == {"timezone": "Asia/Tokyo"}


async def test_a_setting_made_once_is_the_same_for_every_store_on_the_database(store: Store, db_url: str) -> None:
    made = iter(f"value-{n}" for n in range(100))
    async with Store.from_url(db_url) as other:
        values = await asyncio.gather(
            *((store if n % 2 else other).setting_once("internal.secret", lambda: next(made)) for n in range(8))
        )

    assert len(set(values)) == 1
    assert await store.setting_once("internal.secret", lambda: "another") == values[0]


async def test_a_lease_has_one_holder_until_it_expires(store: Store, db_url: str) -> None:
    ttl = timedelta(minutes=15)
    async with Store.from_url(db_url) as other:
        taken = await asyncio.gather(
            *((store if n % 2 else other).take_lease("job", f"holder-{n}", now=NOW, ttl=ttl) for n in range(6))
        )
    assert sum(taken) == 1
    winner = f"holder-{taken.index(True)}"

    assert await store.take_lease("job", winner, now=NOW + ttl / 2, ttl=ttl)  # its holder renews it
    assert not await store.take_lease("job", "someone-else", now=NOW + ttl, ttl=ttl)
    assert await store.take_lease("job", "someone-else", now=NOW + ttl * 2, ttl=ttl)  # expired: taken over
    assert not await store.take_lease("job", winner, now=NOW + ttl * 2, ttl=ttl)
    assert await store.take_lease("other-job", winner, now=NOW, ttl=ttl)  # leases are independent


# --- schema, files, connections ----------------------------------------------------------------


async def test_creating_the_schema_again_is_harmless_and_keeps_data(store: Store) -> None:
    appointment = await add(store)

    await store.create_schema()
    await store.create_schema()

    assert await store.get_appointment(appointment.id) == appointment


async def test_a_second_store_on_the_same_file_reads_what_the_first_wrote(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dirs' / 'appt.db'}"
    async with Store.from_url(url) as first:
        appointment = await add(first, {"booking_uid": "uid-1", "status": "active"})
        await first.set_setting("k", "v")

    assert (tmp_path / "nested" / "dirs" / "appt.db").is_file()
    async with Store.from_url(url) as second:
        assert await second.get_appointment(appointment.id) == appointment
        assert await second.get_by_booking_uid("uid-1") == appointment
        assert await second.get_settings() == {"k": "v"}


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'appt.db'}")
    async with store, store.engine.connect() as connection:
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
        foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        busy_timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()

    assert (journal, foreign_keys) == ("wal", 1)
    assert busy_timeout is not None and busy_timeout > 0


async def test_a_booking_uid_row_for_a_missing_appointment_violates_the_foreign_key(store: Store) -> None:
    with pytest.raises(DBAPIError):
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO booking_uids (appointment_id, uid, created_at) "
                "VALUES ('apt_missing', 'u', '2030-01-01 00:00:00')"
            )


# `SearchQuery.phone` (issue 12, item 2): an exact match on either number.
async def test_phone_matches_either_number_exactly(store: Store) -> None:
    called = await add(store, to_number="+14155550123", from_number="+15550000002")
    calling = await add(store, to_number="+15550000001", from_number="+14155550123")
    await add(store, to_number="+15550000001", from_number="+141555501234")  # contains it, is not it
    await add(store, to_number="+15550000001", from_number="+15550000002", attendee_name="+14155550123")
    found = await ids_of(store, SearchQuery(phone="+14155550123"))
    assert sorted(found) == sorted([called.id, calling.id])
    assert await ids_of(store, SearchQuery(phone="+14155550199")) == []
    page = await store.search(SearchQuery(phone="+14155550123", call_type="inbound", page_size=10), now=NOW)
    assert page.total == 2
