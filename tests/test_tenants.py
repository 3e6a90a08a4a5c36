"""Tenants in the store (issue 16): administration, isolation of every kind of row between tenants
(on SQLite and PostgreSQL), PostgreSQL's row-level security under an ordinary role, and migration 0006
moving a populated single-business database into the default tenant and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import test_store
from appt_tools.errors import Conflict, InvalidArgument, NotFound
from appt_tools.models import AppointmentStatus, Hold, SearchQuery
from appt_tools.store import Store, _scope, schema
from appt_tools.store.tables import DEFAULT_TENANT_ID, Base, TenantScoped
from helpers import ordinary_role

NOW, add, new_appointment, event_type = (
    test_store.NOW,
    test_store.add,
    test_store.new_appointment,
    test_store.event_type,
)
# The store on every backend, as tests/test_store.py makes it.
migrated_sqlite, db_url, store = test_store.migrated_sqlite, test_store.db_url, test_store.store
S = AppointmentStatus
SCOPED_TABLES = sorted(
    table.name for table in Base.metadata.sorted_tables if "tenant_id" in table.c and table.name != "tenant_numbers"
)


def hold(start_offset: timedelta, hold_id: str) -> Hold:
    start = NOW + start_offset
    return Hold(
        id=hold_id,
        event_type_id=7,
        start=start,
        end=start + timedelta(minutes=30),
        expires_at=NOW + timedelta(minutes=5),
        timezone="UTC",
        created_at=NOW,
    )


async def populate(store: Store, tag: str) -> dict[str, Any]:
    """One of every kind of row for the store's tenant; what was made."""
    start = NOW + timedelta(days=3)
    booked = await add(
        store, {"booking_uid": "uid-shared", "status": S.ACTIVE}, attendee_name=f"Ana {tag}", start=start
    )
    pending = await store.add_appointment(new_appointment(attendee_name=f"Bo {tag}", start=start), now=NOW)
    await store.add_hold(hold(timedelta(days=4), f"hold_{tag}"), now=NOW)
    await store.set_setting("timezone", f"Zone/{tag}")
    await store.replace_event_types([event_type(7, f"Consult {tag}")], now=NOW)
    claim = await store.claim_key("book:key-1", "hash", now=NOW, stale_after=timedelta(minutes=1))
    assert claim.mine
    return {"booked": booked, "pending": pending, "start": start}


@pytest.fixture
async def two(store: Store) -> AsyncIterator[tuple[Store, Store]]:
    """The default tenant's store and a second tenant's, on the same engine."""
    beta = await store.tenants.add("beta", "Beta Clinic", numbers=["+14155550199"], now=NOW)
    yield store, store.for_tenant(beta.id)


# --- administration -------------------------------------------------------------------------------


async def test_a_store_opened_as_always_acts_for_the_default_tenant(store: Store) -> None:
    assert store.tenant_id == DEFAULT_TENANT_ID
    assert store.for_tenant(DEFAULT_TENANT_ID) is store
    assert (await store.tenants.get("default")) is not None


async def test_tenants_are_added_found_by_slug_id_and_number_renamed_and_renumbered(store: Store) -> None:
    admin = store.tenants
    acme = await admin.add(
        "acme-dental", "Acme Dental", numbers=["+14155550101", "+14155550100", "+14155550100"], now=NOW
    )
    assert (acme.slug, acme.name, acme.numbers) == ("acme-dental", "Acme Dental", ("+14155550100", "+14155550101"))
    assert await admin.get("acme-dental") == acme
    assert await admin.get_by_id(acme.id) == acme
    assert await admin.by_number("+14155550101") == acme
    assert await admin.by_number("+14155550999") is None
    assert [t.slug for t in await admin.list()] == ["acme-dental", "default"]

    renamed = await admin.set_name("acme-dental", "Acme Dental & Ortho")
    renumbered = await admin.set_numbers("acme-dental", ["+14155550102"])

    assert renamed.name == "Acme Dental & Ortho"
    assert renumbered.numbers == ("+14155550102",)
    assert await admin.by_number("+14155550100") is None
    assert (await admin.by_number("+14155550102")) == renumbered.model_copy(update={"name": "Acme Dental & Ortho"})


@pytest.mark.parametrize(
    ("slug", "numbers", "error", "words"),
    [
        ("Acme", (), InvalidArgument, "not a valid tenant slug"),
        ("-acme", (), InvalidArgument, "not a valid tenant slug"),
        ("a" * 64, (), InvalidArgument, "not a valid tenant slug"),
        ("acme", ("4155550100",), InvalidArgument, "E.164"),
        ("acme", ("+1555",), InvalidArgument, "+1555"),
        ("beta", (), Conflict, "'beta' is already the slug"),
        ("acme", ("+14155550199",), Conflict, "+14155550199 already belongs to tenant 'beta'"),
    ],
)
async def test_adding_a_tenant_refuses_a_bad_or_taken_slug_or_number_and_says_which(
    two: tuple[Store, Store], slug: str, numbers: tuple[str, ...], error: type[Exception], words: str
) -> None:
    store, _beta = two
    with pytest.raises(error) as raised:
        await store.tenants.add(slug, "Acme", numbers=numbers, now=NOW)
    assert words in str(raised.value)
    assert [t.slug for t in await store.tenants.list()] == ["beta", "default"]


async def test_a_number_cannot_be_moved_onto_a_second_tenant(two: tuple[Store, Store]) -> None:
    store, _beta = two
    await store.tenants.add("acme", "Acme", now=NOW)
    with pytest.raises(Conflict, match="already belongs to tenant 'beta'"):
        await store.tenants.set_numbers("acme", ["+14155550199"])
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        await store.tenants.set_name("nobody", "X")


async def test_removing_a_tenant_frees_its_numbers_and_keeps_its_data_until_purged(two: tuple[Store, Store]) -> None:
    store, beta = two
    made = await populate(beta, "B")

    await store.tenants.remove("beta", now=NOW)

    assert await store.tenants.get("beta") is None
    assert await store.tenants.by_number("+14155550199") is None
    removed = await store.tenants.get("beta", include_removed=True)
    assert removed is not None and removed.removed_at == NOW and removed.numbers == ()
    assert await beta.get_appointment(made["booked"].id) == made["booked"]
    with pytest.raises(Conflict, match="removed tenant"):
        await store.tenants.add("beta", "Beta again", now=NOW)

    await store.tenants.remove("beta", now=NOW, purge=True)

    assert await store.tenants.get("beta", include_removed=True) is None
    assert await beta.get_appointment(made["booked"].id) is None
    assert await beta.get_settings() == {}
    assert await beta.list_event_types() == []
    assert await beta.get_key("book:key-1") is None
    assert await beta.get_hold("hold_B") is None
    with pytest.raises(NotFound):
        await store.tenants.remove("beta", now=NOW)


async def test_the_default_tenant_cannot_be_removed(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="default tenant"):
        await store.tenants.remove("default", now=NOW, purge=True)
    assert await store.tenants.get("default") is not None


def test_a_store_refuses_a_tenant_that_is_not_a_positive_id(store: Store) -> None:
    for bad in (0, -1, "beta", True):
        with pytest.raises(ValueError, match="tenant"):
            store.for_tenant(bad)  # type: ignore[arg-type]


# --- isolation --------------------------------------------------------------------------------------


async def test_a_tenant_cannot_read_search_change_or_cancel_another_tenants_rows(two: tuple[Store, Store]) -> None:
    a, b = two
    made = await populate(a, "A")
    booked, pending = made["booked"], made["pending"]

    assert await b.get_appointment(booked.id) is None
    assert await b.get_by_booking_uid("uid-shared") is None
    assert await b.live_at(made["start"]) == []
    assert await b.history(booked.id) == []
    queries = (SearchQuery(), SearchQuery(text="Ana A"), SearchQuery(text="An"), SearchQuery(statuses=[S.ACTIVE]))
    for query in queries:
        page = await b.search(query, now=NOW)
        assert (page.total, page.items) == (0, ())
    assert (await b.search(SearchQuery(phone="+15550000002"), now=NOW)).items == ()
    assert (
        await b.recently_cancelled(since=NOW - timedelta(days=1), start_from=NOW, start_to=NOW + timedelta(days=9))
        == []
    )
    for appointment in (booked, pending):
        with pytest.raises(KeyError):
            await b.update_appointment(appointment.id, {"attendee_name": "Mallory"}, now=NOW)
        with pytest.raises(KeyError):
            await b.update_appointment(appointment.id, {"status": S.CANCELLED}, now=NOW)
    assert await b.get_hold("hold_A") is None
    assert await b.delete_hold("hold_A") is None
    assert await b.live_holds(NOW, NOW + timedelta(days=9), now=NOW) == []
    assert await b.get_settings() == {}
    assert await b.list_event_types() == []
    assert await b.get_event_type(7) is None
    assert await b.get_key("book:key-1") is None
    with pytest.raises(KeyError):
        await b.finish_key("book:key-1", now=NOW, appointment_id=booked.id)

    # A is as it was.
    assert await a.get_appointment(booked.id) == booked
    assert await a.get_appointment(pending.id) == pending
    assert (await a.search(SearchQuery(), now=NOW)).total == 2
    assert await a.get_hold("hold_A") is not None
    assert (await a.get_settings())["timezone"] == "Zone/A"
    assert [t.title for t in await a.list_event_types()] == ["Consult A"]
    key = await a.get_key("book:key-1")
    assert key is not None and not key.done


async def test_what_is_unique_is_unique_per_tenant(two: tuple[Store, Store]) -> None:
    a, b = two
    made_a = await populate(a, "A")
    # The same booking uid, the same start in flight, the same event type id, setting and idempotency
    # key, and an overlapping hold: each tenant has its own.
    made_b = await populate(b, "B")

    assert (await a.get_by_booking_uid("uid-shared")) == made_a["booked"]
    assert (await b.get_by_booking_uid("uid-shared")) == made_b["booked"]
    assert [h.id for h in await b.live_holds(NOW, NOW + timedelta(days=9), now=NOW)] == ["hold_B"]
    assert (await a.get_settings())["timezone"] == "Zone/A"
    assert (await b.get_settings())["timezone"] == "Zone/B"
    assert [t.title for t in await b.list_event_types()] == ["Consult B"]
    assert [t.title for t in await a.list_event_types()] == ["Consult A"]
    for store, tag in ((a, "A"), (b, "B")):
        page = await store.search(SearchQuery(text="ana"), now=NOW)
        assert [item.attendee_name for item in page.items] == [f"Ana {tag}"]
    await b.set_setting("timezone", None)
    assert (await a.get_settings())["timezone"] == "Zone/A"


# --- row-level security (PostgreSQL) -----------------------------------------------------------------


@pytest.fixture
async def ordinary_role_url(store: Store) -> AsyncIterator[str]:
    """A login role that is neither superuser nor BYPASSRLS, allowed to use the store's tables: its
    connection URL. Row-level security applies to it."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    async with ordinary_role(store.engine) as url:
        yield url


async def test_every_scoped_table_forces_row_level_security(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    statement = text(
        "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity "
        "AND relnamespace = current_schema()::regnamespace ORDER BY relname"
    )
    async with store.engine.connect() as connection:
        forced = list((await connection.execute(statement)).scalars())
    assert forced == SCOPED_TABLES
    assert set(SCOPED_TABLES) == {table.__tablename__ for table in TenantScoped.__subclasses__()}  # type: ignore[attr-defined]


async def test_a_raw_query_in_a_transaction_of_tenant_a_sees_none_of_tenant_bs_rows(
    two: tuple[Store, Store], ordinary_role_url: str
) -> None:
    a, b = two
    await populate(a, "A")
    await populate(b, "B")
    ordinary = Store.from_url(ordinary_role_url)
    try:
        engine = ordinary.engine
        # A new connection that names no tenant sees nothing.
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SELECT count(*) FROM appointments")).scalar_one() == 0
        # The store's own scoping, bypassed: plain SQL on a connection that only names the tenant.
        for tenant, other in ((a.tenant_id, b.tenant_id), (b.tenant_id, a.tenant_id)):
            async with _scope.bind(engine, tenant).begin() as connection:
                for table in SCOPED_TABLES:
                    seen = (await connection.exec_driver_sql(f"SELECT tenant_id FROM {table}")).scalars().all()
                    assert seen and set(seen) == {tenant}, table
                    changed = await connection.exec_driver_sql(
                        f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = {other}"
                    )
                    assert changed.rowcount == 0, table
                    deleted = await connection.exec_driver_sql(f"DELETE FROM {table} WHERE tenant_id = {other}")
                    assert deleted.rowcount == 0, table
        # Writing a row for another tenant is refused by the policy's check.
        with pytest.raises(DBAPIError, match="row-level security"):
            async with _scope.bind(engine, a.tenant_id).begin() as connection:
                await connection.exec_driver_sql(
                    f"INSERT INTO settings (tenant_id, key, value) VALUES ({b.tenant_id}, 'x', 'y')"
                )
        # The operator's transaction sees every tenant.
        async with _scope.bind(engine, _scope.ALL_TENANTS).begin() as connection:
            assert (await connection.exec_driver_sql("SELECT count(*) FROM appointments")).scalar_one() == 4
    finally:
        await ordinary.aclose()


async def test_the_store_works_under_row_level_security_as_an_ordinary_role(
    two: tuple[Store, Store], ordinary_role_url: str
) -> None:
    a, b = two
    made = await populate(a, "A")
    ordinary = Store.from_url(ordinary_role_url)
    try:
        beta = await ordinary.tenants.get("beta")
        assert beta is not None and beta.id == b.tenant_id
        ordinary_b = ordinary.for_tenant(beta.id)
        made_b = await populate(ordinary_b, "B")
        assert await ordinary.get_appointment(made["booked"].id) == made["booked"]
        assert await ordinary_b.get_appointment(made["booked"].id) is None
        assert (await ordinary_b.search(SearchQuery(text="ana"), now=NOW)).items == (made_b["booked"],)
        # The same pooled connection serving A, then B, then A again names each in turn.
        for store, booked in ((ordinary, made["booked"]), (ordinary_b, made_b["booked"]), (ordinary, made["booked"])):
            assert (await store.search(SearchQuery(), now=NOW)).total == 2
            assert await store.get_by_booking_uid("uid-shared") == booked
    finally:
        await ordinary.aclose()


# --- migration 0006 ---------------------------------------------------------------------------------

_ROWS_0005 = [
    "INSERT INTO appointments (id, booking_uid, title, description, label, attendee_name, attendee_email, "
    "attendee_phone, business_name, to_number, from_number, call_type, event_type_id, start_at, end_at, timezone, "
    "status, meeting_url, location, host_name, host_email, cancellation_reason, last_error, created_at, updated_at, "
    "answers, language) VALUES "
    "('apt_one', 'uid-1', 'Walrus tusk check', 'd', 'VIP', 'Old Timer', 'old@example.com', '+15550000003', 'Acme', "
    "'+15550000001', '+15550000002', 'inbound', 7, '2030-01-20 09:00:00', '2030-01-20 09:30:00', 'UTC', 'active', "
    "'https://m', 'Room 1', 'Dr. Lee', 'lee@example.com', NULL, NULL, '2030-01-01 00:00:00', '2030-01-02 00:00:00', "
    "'{\"notes\": \"x\"}', 'es'), "
    "('apt_two', NULL, 'Second', '', '', 'New Comer', '', NULL, '', '+15550000001', '+15550000004', 'web', 8, "
    "'2030-01-21 09:00:00', '2030-01-21 09:30:00', 'UTC', 'pending', NULL, NULL, '', NULL, NULL, 'boom', "
    "'2030-01-01 00:00:00', '2030-01-01 00:00:00', '{}', NULL)",
    "INSERT INTO booking_uids (appointment_id, uid, created_at) VALUES ('apt_one', 'uid-0', '2030-01-01 00:00:00'), "
    "('apt_one', 'uid-1', '2030-01-01 00:00:01')",
    "INSERT INTO appointment_history (appointment_id, at, action, detail, from_start, to_start, from_booking_uid, "
    "to_booking_uid) VALUES ('apt_one', '2030-01-01 00:00:00', 'created', '', NULL, '2030-01-20 09:00:00', NULL, NULL), "
    "('apt_one', '2030-01-02 00:00:00', 'rescheduled', 'moved', '2030-01-19 09:00:00', '2030-01-20 09:00:00', 'uid-0', "
    "'uid-1')",
    "INSERT INTO event_types (id, title, slug, length_minutes, length_options, description, location_type, "
    "location_integration, location_address, requires_confirmation, hidden, email_required, questions, team_id, "
    "team_name, scheduling_type, synced_at) VALUES (7, 'Consult', 'consult', 30, '[15, 30]', '', NULL, NULL, NULL, "
    "false, false, true, '[]', 3, 'Team', 'ROUND_ROBIN', '2030-01-01 00:00:00')",
    "INSERT INTO settings (key, value) VALUES ('timezone', 'America/New_York'), ('internal.lease.x', 'me 2030')",
    "INSERT INTO idempotency_keys (key, request_hash, appointment_id, done, error, created_at, updated_at) VALUES "
    "('book:k', 'h', 'apt_one', true, NULL, '2030-01-01 00:00:00', '2030-01-01 00:00:00')",
    "INSERT INTO holds (id, event_type_id, start_at, end_at, expires_at, timezone, reservation_uid, created_at) "
    "VALUES ('hold_1', 7, '2030-01-22 09:00:00', '2030-01-22 09:30:00', '2030-01-01 00:05:00', 'UTC', 'r-1', "
    "'2030-01-01 00:00:00')",
]


async def _rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every scoped table, as the database gives it back, in a stable order."""
    found = {}
    async with _scope.bind(store.engine, _scope.ALL_TENANTS).connect() as connection:
        for table in SCOPED_TABLES:
            result = await connection.exec_driver_sql(f"SELECT * FROM {table}")
            found[table] = sorted((dict(row._mapping) for row in result), key=repr)
    return found


async def _migrate(store: Store, step: Any, revision: str) -> None:
    async with _scope.bind(store.engine, _scope.ALL_TENANTS).begin() as connection:
        await connection.run_sync(step, revision)


async def test_a_populated_0005_database_moves_into_the_default_tenant_and_back_with_nothing_lost(
    empty_url: str,
) -> None:
    store = Store.from_url(empty_url)
    try:
        await _migrate(store, schema.upgrade, "0005_teams")
        async with store.engine.begin() as connection:
            for statement in _ROWS_0005:
                await connection.exec_driver_sql(statement)
        before = await _rows(store)
        assert all(before.values())

        await store.create_schema()

        assert await store.schema_revision() == schema.head()
        after = await _rows(store)
        for table, rows in after.items():
            assert {row.pop("tenant_id") for row in rows} == {DEFAULT_TENANT_ID}, table
            for row in rows:
                row.pop("search_document", None)  # PostgreSQL's own (migration 0006_search_document)
            assert rows == before[table], table
        default = await store.tenants.get("default")
        assert default is not None and default.id == DEFAULT_TENANT_ID
        # The store acts for the default tenant on them, search index included.
        assert (await store.get_appointment("apt_one")) is not None
        assert (await store.get_settings()) == {"timezone": "America/New_York"}
        assert [a.id for a in (await store.search(SearchQuery(text="walrus"), now=NOW)).items] == ["apt_one"]
        # A new tenant gets ids from after the default one.
        assert (await store.tenants.add("beta", "Beta", now=NOW)).id == DEFAULT_TENANT_ID + 1
        await store.tenants.remove("beta", now=NOW, purge=True)

        await _migrate(store, schema.downgrade, "0005_teams")

        assert await store.schema_revision() == "0005_teams"
        assert await _rows(store) == before
    finally:
        await store.aclose()


async def test_going_below_0006_is_refused_while_another_tenant_has_data(empty_url: str) -> None:
    async with Store.from_url(empty_url) as store:
        beta = await store.tenants.add("beta", "Beta", now=NOW)
        await store.for_tenant(beta.id).set_setting("timezone", "UTC")
        with pytest.raises(RuntimeError, match="purge them first"):
            await _migrate(store, schema.downgrade, "0005_teams")
        assert await store.schema_revision() == schema.head()


def test_the_scoped_tables_are_those_of_a_business() -> None:
    assert SCOPED_TABLES == [
        "appointment_history",
        "appointments",
        "booking_uids",
        "event_types",
        "holds",
        "idempotency_keys",
        "settings",
    ]
