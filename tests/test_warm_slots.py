"""Warm slots (core/warm.py): find_slots in the next days answers from memory with no Cal.com request and
says how fresh it is; our own changes, Cal.com's webhooks and other instances' changes (PostgreSQL NOTIFY,
SQLite's change counter) make it read again; its refresh backs off when Cal.com fails and never reaches
a caller. And the Cal.com budget of one key, shared by the instances on one database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from pydantic import SecretStr

from appt_tools import config
from appt_tools.calcom import CalcomClient
from appt_tools.core.requests import SlotRequest
from appt_tools.core.service import AppointmentService
from appt_tools.errors import CalcomRateLimited, CalcomUnavailable, InvalidArgument, SlotUnavailable
from appt_tools.models import Booking, BookingRequest
from appt_tools.runtime import CalcomTarget, StoredBudget, open_service
from appt_tools.store import Store
from appt_tools.surfaces import arguments
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from calcom_sandbox import Fault, RunningSandbox, SandboxState, run_sandbox
from helpers import BUSINESS_ENV, Raw, booking_args, next_weekday
from test_calcom_client import API_KEY, me_json, success
from test_http_app import serving
from test_startup_sync import LOG_EVERY_REQUEST

SECRET = "whsec-warm-0123456789abcdef"


def _key(sandbox: RunningSandbox) -> tuple[int, None]:
    """The warm copy of the default event type (one length)."""
    return (sandbox.state.default_event_type_id, None)


def _slot_requests(sandbox: RunningSandbox, since: int = 0) -> list[str]:
    return [f"{e.method} {e.path}" for e in sandbox.state.fault_log[since:] if e.kind == "latency"]


async def _until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def _warm(sandbox: RunningSandbox, url: str, **env: str) -> AsyncIterator[AppointmentService]:
    """A service on `url` and the sandbox, keeping slots warm, once its first warm copy is in."""
    environ = {
        **BUSINESS_ENV,
        "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id),
        "APPT_TOOLS_CALCOM_WEBHOOK_SECRET": SECRET,
        **env,
    }
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with open_service(database_url=url, environ=environ, calcom=target) as service:
        service.start_sync()
        service.start_warm()
        await _until(lambda: service.warm.refreshes >= 1)
        yield service


async def _find(service: AppointmentService, day: str) -> tuple[list[datetime], str]:
    found = await service.find_slots(SlotRequest(day=datetime.fromisoformat(day).date()))
    assert found.fresh_as_of is not None
    return [s.start for s in found.slots], found.fresh_as_of.isoformat()


async def test_warm_find_slots_costs_no_calcom_request_and_says_how_fresh_it_is(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        day = next_weekday()
        found = await service.find_slots(SlotRequest(day=day))
        assert found.slots
        assert _slot_requests(sandbox) == []  # answered from memory
        assert found.fresh_as_of is not None and found.fresh_as_of <= datetime.now(UTC)
        assert datetime.now(UTC) - found.fresh_as_of < timedelta(seconds=60)
        # The same times Cal.com gives when asked now.
        lo, hi = found.window_start, found.window_end
        live = await service.calcom.slots(sandbox.state.default_event_type_id, lo, hi)
        assert [s.start for s in found.slots] == [s.start for s in live]
        # Past the warm window (14 days; the same weekday 3 weeks on): asked of Cal.com, as before.
        before = len(sandbox.state.fault_log)
        far = await service.find_slots(SlotRequest(day=day + timedelta(days=21)))
        assert _slot_requests(sandbox, before) == ["GET /v2/slots"]
        assert far.fresh_as_of is not None and far.fresh_as_of > found.fresh_as_of


async def test_live_holds_are_subtracted_from_a_warm_answer(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0].start
        await service.hold(arguments.hold_request(start=first.isoformat()))
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        again = await service.find_slots(SlotRequest(day=day))
        assert _slot_requests(sandbox) == []
        assert again.slots and first not in [s.start for s in again.slots]


async def test_a_booking_on_our_server_refreshes_the_warm_copy(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0].start
        refreshes = service.warm.refreshes
        await Raw(service).book(**booking_args(first.isoformat()))
        # Read again at once, not in a minute.
        await _until(lambda: service.warm.refreshes > refreshes and service.warm.covers(_key(sandbox)))
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        found = await service.find_slots(SlotRequest(day=day))
        assert _slot_requests(sandbox) == []
        assert found.slots and first not in [s.start for s in found.slots]


def _signed(body: bytes) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Cal-Signature-256": signature}


async def test_a_calcom_webhook_refreshes_the_warm_copy(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0].start
        # Booked in Cal.com itself (its booking page, another app): our warm copy does not know.
        booked = await _walk_in(sandbox, first)
        assert first in (await _find(service, day.isoformat()))[0]  # still offered: Cal.com would refuse it
        refreshes = service.warm.refreshes
        body = json.dumps(
            {
                "triggerEvent": "BOOKING_CREATED",
                "createdAt": datetime.now(UTC).isoformat(),
                "payload": {"uid": booked.uid, "status": "ACCEPTED"},
            }
        ).encode()
        settings = HttpSettings(credentials=Credentials(calcom_webhook_secret=SecretStr(SECRET)))
        async with serving(service, settings) as client:
            answer = await client.post("/webhooks/calcom", content=body, headers=_signed(body))
            assert answer.status_code == 200, answer.text
        await _until(lambda: service.warm.refreshes > refreshes and service.warm.covers(_key(sandbox)))
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        slots, _ = await _find(service, day.isoformat())
        assert _slot_requests(sandbox) == []
        assert slots and first not in slots


async def test_the_refresh_backs_off_while_calcom_fails_and_no_caller_hears_of_it(sandbox, db_url, caplog):
    async with _warm(sandbox, db_url) as service:
        sandbox.state.faults.add(Fault("status", "GET /v2/slots", times=None, status=503))
        refreshes = service.warm.refreshes
        service.slots_changed()  # read again now: Cal.com answers 503 from here on
        await asyncio.sleep(5.0)
        tries = sum(1 for e in sandbox.state.fault_log if e.kind == "status" and e.path == "/v2/slots")
        # Backing off (about 1-2 s, then 2-4 s, ...): 3 tries at most in 5 s. Without it, one a second.
        assert 1 <= tries <= 3, tries
        assert service.warm.refreshes == refreshes
        assert "backing off" in caplog.text
        # Cal.com answers again: a caller's find_slots asks it (the warm copy is stale) and is answered.
        sandbox.state.faults.clear()
        found = await service.find_slots(SlotRequest(day=next_weekday()))
        assert found.slots


async def test_the_refresh_leaves_the_rate_limit_to_callers(sandbox, db_url):
    async with _warm(sandbox, db_url, APPT_TOOLS_CALCOM_RATE_LIMIT="12") as service:
        # 5 requests so far (the start-up sync's 4, the first warm read); callers use 5 more: 2 of 12 left,
        # fewer than the quarter kept for callers, so the refresh is skipped, not queued.
        for _ in range(5):
            await service.calcom.me()
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        service.slots_changed()
        await asyncio.sleep(1.5)
        assert "GET /v2/slots" not in _slot_requests(sandbox)
        # The caller's own call still goes at once, from the requests left.
        started = time.monotonic()
        found = await service.find_slots(SlotRequest(day=next_weekday()))
        assert found.slots and time.monotonic() - started < 2.0


# --- several instances on one database ----------------------------------------------------------


async def _two_instances_agree(sandbox: RunningSandbox, url: str) -> None:
    async with _warm(sandbox, url) as one, _warm(sandbox, url) as two:
        if one.store.pushes_changes:
            await _until(lambda: one.warm.listening and two.warm.listening)
        day = next_weekday()
        first = (await one.find_slots(SlotRequest(day=day))).slots[0].start
        assert first in (await _find(two, day.isoformat()))[0]
        await Raw(one).book(**booking_args(first.isoformat()))
        booked_at = time.monotonic()
        while first in (await _find(two, day.isoformat()))[0]:
            assert time.monotonic() - booked_at < 1.0, "the other instance still offers the booked time"
            await asyncio.sleep(0.02)
        # And the other instance is warm again, without the booked time, with no request of its own.
        await _until(lambda: two.warm.covers(_key(sandbox)))
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        slots, _ = await _find(two, day.isoformat())
        assert _slot_requests(sandbox) == [] and first not in slots


async def test_two_instances_on_one_postgresql_a_booking_on_one_leaves_the_others_slots_within_a_second(
    sandbox, postgres_url
):
    await _two_instances_agree(sandbox, postgres_url)


async def test_two_instances_on_one_sqlite_file_agree_through_the_change_counter(sandbox, db_url):
    await _two_instances_agree(sandbox, db_url)


async def test_the_listener_reconnects_after_its_connection_drops(sandbox, postgres_url, postgres_database):
    async with _warm(sandbox, postgres_url) as one, _warm(sandbox, postgres_url) as two:
        await _until(lambda: one.warm.listening and two.warm.listening)
        await postgres_database.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        await _until(lambda: not two.warm.listening, 5)
        await _until(lambda: two.warm.listening, 10)
        day = next_weekday()
        first = (await one.find_slots(SlotRequest(day=day))).slots[0].start
        await _until(lambda: two.warm.covers(_key(sandbox)))
        assert first in (await _find(two, day.isoformat()))[0]
        await Raw(one).book(**booking_args(first.isoformat()))
        booked_at = time.monotonic()
        while first in (await _find(two, day.isoformat()))[0]:
            assert time.monotonic() - booked_at < 1.0
            await asyncio.sleep(0.02)


# --- the Cal.com budget shared between instances ------------------------------------------------


async def test_two_clients_on_one_database_together_stay_within_the_limit(backend_url):
    url = backend_url
    limit = 10
    async with run_sandbox(SandboxState(rate_limit=limit)) as sandbox, Store.from_url(url) as store:
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        # Each client would allow itself the whole limit; short budgets, so a wait for the window is refused.
        clients = [
            CalcomClient(sandbox.api_key, sandbox.base_url, rate_limit=limit, timeout=2.0, budget=StoredBudget(store))
            for _ in range(2)
        ]
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            outcomes = await asyncio.gather(
                *(client.me() for client in clients for _ in range(limit)), return_exceptions=True
            )
        sent = len(_slot_requests(sandbox))
        assert sent <= limit, f"{sent} requests reached Cal.com in one minute; its limit is {limit}"
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, CalcomRateLimited) and o.status is None for o in refused), refused  # never a 429
        assert len(outcomes) - len(refused) == sent == limit
        # The database knows the key by its hash only.
        stored = json.dumps(await store.get_settings()) + str(await _internal_rows(store))
        assert sandbox.api_key not in stored


async def _internal_rows(store: Store) -> list[str]:
    from sqlalchemy import select

    from appt_tools.store.tables import SettingRow

    async with store.engine.connect() as connection:
        return [f"{k}={v}" for k, v in await connection.execute(select(SettingRow.key, SettingRow.value))]


# --- background calls yield to callers (calcom/_policy.py) --------------------------------------


async def test_a_background_call_never_takes_the_breakers_probe_and_sends_nothing_while_it_is_open():
    sent: list[str] = []
    answers = iter([503, 200, 200])

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        status = next(answers)
        return success(me_json()) if status == 200 else httpx2.Response(status, json={"message": "down"})

    async def no_wait(_seconds: float) -> None:
        return None

    client = CalcomClient(
        API_KEY,
        "https://cal.test",
        transport=httpx2.MockTransport(handler),
        max_attempts=1,
        breaker_threshold=1,
        breaker_cooldown=0.0,
        sleep=no_wait,
    )
    async with client:
        with pytest.raises(CalcomUnavailable):
            await client.me()  # 503: the breaker opens (and, with no cool-down, half-opens at once)
        with pytest.raises(CalcomUnavailable, match="not answering"):
            await client.slots(1, datetime.now(UTC), datetime.now(UTC) + timedelta(days=1), background=True)
        assert sent == ["/v2/me"]  # the background call sent nothing
        assert (await client.me()).username  # the caller is the probe, and gets through
        assert sent == ["/v2/me", "/v2/me"]


async def test_a_background_call_is_not_sent_while_few_requests_are_left():
    sent: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        answer = success(me_json())
        answer.headers.update(
            {
                "X-RateLimit-Limit-Default": "120",
                "X-RateLimit-Remaining-Default": "2",
                "X-RateLimit-Reset-Default": "50",
            }
        )
        return answer

    async with CalcomClient(API_KEY, "https://cal.test", transport=httpx2.MockTransport(handler)) as client:
        await client.me()  # Cal.com says 2 of 120 are left this minute
        with pytest.raises(CalcomRateLimited, match="kept for callers"):
            await client.slots(1, datetime.now(UTC), datetime.now(UTC) + timedelta(days=1), background=True)
        assert sent == ["/v2/me"]
        await client.me()  # a caller's call still goes
        assert sent == ["/v2/me", "/v2/me"]


def test_the_warm_settings_have_friendly_bounds():
    assert config.parse_setting("slots_warm_days", "0") == 0  # off
    assert config.parse_setting("slots_fresh_seconds", " 90 ") == 90
    with pytest.raises(InvalidArgument, match=r"'31' is not a whole number of days \(0 turns it off\) from 0 to 30"):
        config.parse_setting("slots_warm_days", "31")
    with pytest.raises(InvalidArgument, match=r"from 10 to 3600, e\.g\. 60"):
        config.parse_setting("slots_fresh_seconds", "5")
    settings = config.resolve({}, {"APPT_TOOLS_SLOTS_WARM_DAYS": "7"})
    assert (settings.slots_warm_days, settings.slots_fresh_seconds) == (7, 60)


async def _walk_in(sandbox: RunningSandbox, start: datetime) -> Booking:
    """A booking made in Cal.com directly, with no webhook: our warm copy does not hear of it."""
    async with CalcomClient(sandbox.api_key, sandbox.base_url) as other:
        return await other.create_booking(
            BookingRequest(
                event_type_id=sandbox.state.default_event_type_id,
                start=start,
                attendee_name="Walk In",
                attendee_email="walk.in@example.com",
                attendee_time_zone="America/New_York",
            )
        )


async def test_a_stale_warm_offer_costs_one_refused_booking_with_fresh_alternatives(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0].start
        await _walk_in(sandbox, first)
        assert first in (await _find(service, day.isoformat()))[0]  # stale, within the freshness bound
        with pytest.raises(SlotUnavailable) as refused:
            await Raw(service).book(**booking_args(first.isoformat()))
        assert refused.value.taken and refused.value.alternatives
        assert first not in [s.start for s in refused.value.alternatives]
        live = [b for b in sandbox.state.bookings.values() if b.start == first and b.status in ("accepted", "pending")]
        assert len(live) == 1  # the walk-in's only: nothing booked on the stale copy's word
        await _until(lambda: service.warm.covers(_key(sandbox)))  # the refusal made it read again
        assert first not in (await _find(service, day.isoformat()))[0]


async def test_many_changes_at_once_are_counted_in_a_few_writes_and_the_last_is_never_lost(sandbox, db_url):
    async with _warm(sandbox, db_url) as service:
        before = await service.store.slot_changes()
        for _ in range(50):  # a reconciliation repairing 50 appointments
            service.slots_changed()
        await _until(lambda: service.warm.covers(_key(sandbox)))
        counted = await service.store.slot_changes() - before
        assert 1 <= counted <= 2, counted  # one write in flight, one more for what came in meanwhile
        service.slots_changed()
        await _until(lambda: service.warm.covers(_key(sandbox)))
        assert await service.store.slot_changes() == before + counted + 1


async def test_a_hold_of_a_warm_free_time_costs_one_calcom_request(sandbox, db_url):
    """The warm copy saw the time free: the hold only asks Cal.com to reserve it (issue 15: one round trip)."""
    async with _warm(sandbox, db_url) as service:
        first = (await service.find_slots(SlotRequest(day=next_weekday()))).slots[0].start
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        hold = await service.hold(arguments.hold_request(start=first.isoformat()))
        assert _slot_requests(sandbox) == ["POST /v2/slots/reservations"]
        assert hold.reservation_uid in sandbox.state.reservations


async def test_a_hold_of_a_time_booked_since_the_warm_copy_is_refused_with_fresh_alternatives(sandbox, db_url):
    """Cal.com's reservation refuses a time booked since the copy was read (422): the caller hears it was
    just taken, with times free now; no hold is left in the store."""
    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0].start
        await _walk_in(sandbox, first)
        with pytest.raises(SlotUnavailable) as refused:
            await service.hold(arguments.hold_request(start=first.isoformat()))
        assert refused.value.taken and refused.value.alternatives
        assert first not in [s.start for s in refused.value.alternatives]
        assert await service.store.live_holds(first, first + timedelta(minutes=30), now=datetime.now(UTC)) == []
        assert sandbox.state.reservations == {}


async def test_a_time_whose_booking_is_unconfirmed_is_not_offered_until_it_settles(sandbox, db_url):
    """A booking whose outcome Cal.com has not confirmed (pending, no uid: a lost answer, or one being made
    right now) may hold the time: offering it would only end in "another booking is still waiting"."""
    from test_store import new_appointment

    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        first = (await service.find_slots(SlotRequest(day=day))).slots[0]
        unsure = await service.store.add_appointment(
            new_appointment(start=first.start, end=first.end, event_type_id=sandbox.state.default_event_type_id),
            now=datetime.now(UTC),
        )
        sandbox.state.faults.add(LOG_EVERY_REQUEST)
        hidden = await service.find_slots(SlotRequest(day=day))
        assert _slot_requests(sandbox) == []  # still from the warm copy
        assert hidden.slots and first.start not in [s.start for s in hidden.slots]
        with pytest.raises(SlotUnavailable):  # nor can it be held
            await service.hold(arguments.hold_request(start=first.start.isoformat()))
        await service.store.update_appointment(unsure.id, {"status": "failed"}, now=datetime.now(UTC))
        assert first.start in [s.start for s in (await service.find_slots(SlotRequest(day=day))).slots]


async def test_every_tenant_follows_its_changes_through_one_listening_connection(postgres_url):
    """A deployment may serve hundreds of tenants: a LISTEN connection each would hold the whole pool (15
    by default) and stall every request. One connection serves them all; each hears its own changes."""
    async with Store.from_url(postgres_url) as store:
        now = datetime.now(UTC)
        tenants = [await store.tenants.add(f"shop-{n}", f"Shop {n}", now=now) for n in range(40)]
        heard: dict[int, list[str]] = {t.id: [] for t in tenants}
        live: set[int] = set()

        def follower(tenant_id: int) -> asyncio.Task[None]:
            return asyncio.create_task(
                store.for_tenant(tenant_id).follow_slot_changes(
                    heard[tenant_id].append, lambda up, t=tenant_id: live.add(t) if up else live.discard(t)
                )
            )

        followers = [follower(t.id) for t in tenants]
        await _until(lambda: len(live) == len(tenants))
        assert store.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        await store.for_tenant(tenants[7].id).slots_changed("instance-a")
        await _until(lambda: heard[tenants[7].id] == ["instance-a"])
        await asyncio.sleep(0.2)
        assert all(not got for tenant_id, got in heard.items() if tenant_id != tenants[7].id)
        assert await store.for_tenant(tenants[8].id).slot_changes() == 0  # and the store still answers
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await _until(lambda: store.engine.pool.checkedout() == 0)  # type: ignore[attr-defined]


async def test_a_warm_find_slots_is_one_glance_on_sqlite(sandbox, db_url):
    """The change counter (SQLite: other instances' changes are not pushed) and the busy times are read
    together, from the event loop's own connection (`store/_glance.py`): one read transaction, no
    SQLAlchemy statement and no worker-thread hop, for the call voice assistants make most."""
    from sqlalchemy import event

    async with _warm(sandbox, db_url) as service:
        day = next_weekday()
        await service.find_slots(SlotRequest(day=day))  # once, so nothing is first-time below
        if service._rehearsal is not None:  # the process's start-up reads (the first service's): not this call's
            await service._rehearsal
        sent: list[str] = []
        glance = service.store._pool.glance
        assert glance is not None
        glanced: list[object] = []
        read = glance._read

        def counted(work):  # type: ignore[no-untyped-def]
            found = read(work)
            glanced.append(found)
            return found

        def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            sent.append(statement)

        for engine in service.store.statement_engines:
            event.listen(engine, "before_cursor_execute", record)
        glance._read = counted  # type: ignore[method-assign]
        try:
            sandbox.state.faults.add(LOG_EVERY_REQUEST)
            found = await service.find_slots(SlotRequest(day=day))
        finally:
            glance._read = read  # type: ignore[method-assign]
            for engine in service.store.statement_engines:
                event.remove(engine, "before_cursor_execute", record)
        assert found.slots and _slot_requests(sandbox) == []
        assert sent == []
        assert len(glanced) == 1 and glanced[0] is not None
