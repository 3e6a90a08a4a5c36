"""The dashboard over real HTTP, without a browser: every page and endpoint, sign-in, CSRF and
origin refusals, settings (the key write-only and masked), all on the sandbox and a SQLite file."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from appt_tools.core.service import AppointmentService
from appt_tools.models import NewAppointment
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.surfaces.auth import CredentialChecker, Credentials
from appt_tools.surfaces.http.app import HttpSettings
from appt_tools.surfaces.web.appointments import page_numbers
from appt_tools.surfaces.web.pages import _next
from appt_tools.surfaces.web.session import Sessions
from calcom_sandbox import RunningSandbox
from dashboard_support import browsing, csrf_of, served
from helpers import Raw, booking_args, next_weekday

KEY = "k_live_0123456789abcdefghijDASH"
OTHER = "k_live_0123456789abcdefghijOTHR"
CALCOM_KEY = "cal_live_dashboard_0123456789_secret"


async def _first_slot(service: AppointmentService, day: date, index: int = 0) -> str:
    found = await Raw(service).find_slots(day=day.isoformat())
    return found.slots[index].start.isoformat()


async def _book(service: AppointmentService, day: date, index: int = 0, **overrides: object) -> str:
    args: dict[str, Any] = booking_args(await _first_slot(service, day, index), **overrides)
    booked = await Raw(service).book(**args)
    return booked.id


async def _page(client: httpx2.AsyncClient, path: str = "/?view=table") -> tuple[httpx2.Response, str]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response, csrf_of(response.text)


def _json(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


# --- pages, open on loopback -----------------------------------------------------------------


async def test_pages_render_with_security_headers_and_a_session(service: AppointmentService) -> None:
    day = next_weekday()
    await _book(service, day)
    async with browsing(service) as client:
        response, token = await _page(client)
        assert "Teeth cleaning" in response.text and "Ana Ruiz" in response.text
        assert 'class="badge active"' in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        session = response.headers.get_list("set-cookie")
        cookie = next(c for c in session if c.startswith("appt_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert len(token) >= 32
        calendar = await client.get(f"/calendar?month={day:%Y-%m}")
        assert calendar.status_code == 200 and f'data-date="{day.isoformat()}"' in calendar.text
        assert "Teeth cleaning" in calendar.text
        settings = await client.get("/settings")
        assert settings.status_code == 200 and "Test connection" in settings.text
        css = await client.get("/static/app.css")
        assert css.status_code == 200 and "badge" in css.text
        js = await client.get("/static/app.js")
        assert js.status_code == 200 and "X-CSRF-Token" in js.text


async def test_the_last_view_is_remembered_for_the_session(service: AppointmentService) -> None:
    async with browsing(service) as client:
        await client.get("/calendar")
        again = await client.get("/", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == "/calendar"
        table = await client.get("/?view=table", follow_redirects=False)
        assert table.status_code == 200 and 'id="table-controls"' in table.text
        assert (await client.get("/", follow_redirects=False)).status_code == 200


async def test_a_foreign_host_is_refused_while_open(service: AppointmentService) -> None:
    async with browsing(service) as client:
        for path in ("/", "/app/table", "/settings"):
            refused = await client.get(path, headers={"Host": "evil.example"})
            assert refused.status_code == 403, path


# --- the table -------------------------------------------------------------------------------


async def test_table_searches_sorts_pages_and_keeps_cancelled_rows(service: AppointmentService) -> None:
    day = next_weekday()
    first = await _book(service, day, 0, title="Alpha filling", attendee_name="Zed Alpha", label="vip")
    second = await _book(
        service, day, 2, title="Beta cleaning", attendee_name="Amy Beta", attendee_email="amy@example.com"
    )
    third = await _book(service, day, 4, title="Gamma check", attendee_name="Bo Gamma", attendee_email="bo@example.com")
    await Raw(service).cancel(third)
    async with browsing(service) as client:
        html = (await client.get("/app/table")).text
        assert _rows(html) == [first, second, third]
        assert 'data-status="cancelled"' in html and "3 appointments" in html
        desc = (await client.get("/app/table?sort=start&order=desc")).text
        assert _rows(desc) == [third, second, first]
        by_name = (await client.get("/app/table?sort=attendee_name")).text
        assert _rows(by_name) == [second, third, first]
        for text, expected in (
            ("beta", [second]),
            ("zed", [first]),
            ("vip", [first]),
            ("Acme", [first, second, third]),
        ):
            found = (await client.get("/app/table", params={"q": text})).text
            assert _rows(found) == expected, text
        assert "No appointments match." in (await client.get("/app/table?q=nobody")).text
        paged = (await client.get("/app/table?page_size=10&page=1")).text
        assert "Page 1 of 1" in paged
        active = (await client.get("/app/table?status=active")).text
        assert _rows(active) == [first, second]
        bad = await client.get("/app/table?status=bogus")
        assert bad.status_code == 200 and "is not a status" in bad.text
        # a page past the end shows the last page instead
        assert "Page 1 of 1" in (await client.get("/app/table?page=9")).text
        # header links sort ascending first, then reverse
        assert 'data-query="q=&amp;' not in html
        assert "sort=start&amp;order=desc" in html


async def _past(service: AppointmentService, days_ago: int, title: str, *, booked: bool = True) -> str:
    """An appointment that has ended `days_ago` days ago, written to the store as a sync would."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    added = await service.store.add_appointment(
        NewAppointment(
            title=title,
            attendee_name="Old Client",
            attendee_email="old@example.com",
            to_number="+14155550100",
            from_number="+14155550123",
            call_type="web",
            event_type_id=1,
            start=start,
            end=start + timedelta(minutes=30),
            timezone="UTC",
        ),
        now=start - timedelta(days=1),
    )
    changes = {"status": "active", "meeting_url": "https://cal.example/video/old"}
    if booked:
        changes["booking_uid"] = f"uid-{title}"
    await service.store.update_appointment(added.id, changes, now=start - timedelta(days=1))
    return added.id


async def test_the_table_starts_today_with_past_and_all_one_click_away(service: AppointmentService) -> None:
    day = next_weekday()
    soon = await _book(service, day, 0, title="Soon")
    later = await _book(service, day + timedelta(days=7), 1, title="Later")
    old = await _past(service, 3, "Old")
    older = await _past(service, 30, "Older")
    async with browsing(service) as client:
        upcoming, _ = await _page(client, "/")
        assert _rows(upcoming.text) == [soon, later]  # from today, soonest first
        assert 'aria-current="true">Upcoming' in upcoming.text and 'id="jump-today"' in upcoming.text
        past = (await client.get("/app/table?when=past")).text
        assert _rows(past) == [old, older]  # latest first
        assert _rows((await client.get("/app/table?when=all")).text) == [older, old, soon, later]
        between = (await client.get(f"/app/table?when=all&date_from={day.isoformat()}&date_to={day.isoformat()}")).text
        assert _rows(between) == [soon]
        backwards = (await client.get(f"/app/table?date_from={day.isoformat()}&date_to=2020-01-01")).text
        assert _rows(backwards) == [] and "The To date is before the From date" in backwards
        nonsense = await client.get("/app/table?date_from=someday")
        assert nonsense.status_code == 200 and "is not a date: pick one in the calendar" in nonsense.text
        # no Join on a meeting that has ended; the table still says it ended
        assert "Join" not in past and ">Ended<" in past
        # an empty search offers to clear it, keeping the view
        empty = (await client.get("/app/table?when=past&q=nobody")).text
        assert "No appointments match." in empty and 'id="clear-search"' in empty
        assert 'data-query="when=past&amp;sort=start&amp;order=desc&amp;page=1&amp;page_size=25"' in empty
        # the ended booking shows, and sorts, as completed
        by_status = (await client.get("/app/table?when=all&sort=status")).text
        # Active before Completed; within one status the order is the index's (by id), not by time.
        ordered = _rows(by_status)
        assert set(ordered[:2]) == {soon, later} and set(ordered[2:]) == {old, older}
        assert by_status.count('class="badge completed"') == 2


async def test_page_numbers_show_the_ends_and_the_neighbours() -> None:
    assert page_numbers(1, 1) == [1]
    assert page_numbers(1, 3) == [1, 2, 3]
    assert page_numbers(6, 20) == [1, None, 4, 5, 6, 7, 8, None, 20]
    assert page_numbers(20, 20) == [1, None, 18, 19, 20]


async def test_actions_are_named_for_their_appointment(service: AppointmentService) -> None:
    day = next_weekday()
    await _book(service, day, 0, title="Sales call", attendee_name="Ana Ruiz")
    async with browsing(service) as client:
        html = (await client.get("/app/table")).text
        named = f"Sales call with Ana Ruiz, {day:%b} {day.day}"
        assert f'aria-label="Edit {named}"' in html and f'aria-label="Cancel {named}"' in html
        assert f'aria-label="Sales call: edit {named}"' in html  # the title opens the drawer too


async def test_every_problem_in_the_drawer_at_once_and_national_numbers_accepted(
    service: AppointmentService,
) -> None:
    day = next_weekday()
    async with browsing(service) as client:
        _, token = await _page(client)
        empty = await client.post("/app/appointments", json={}, headers=_json(token))
        assert empty.status_code == 422
        error = empty.json()["error"]
        assert set(error["fields"]) == {"attendee_name", "attendee_email", "to_number", "from_number", "start"}
        assert error["message"] == "5 fields need a look: each says what is wrong."
        assert error["fields"]["attendee_name"] == "Enter the attendee's name, e.g. Ana Ruiz."
        slots = (await client.get("/app/slots", params={"date": day.isoformat()})).json()["slots"]
        body = {
            "attendee_name": "Wen Li",
            "attendee_email": "wen@example.com",
            "to_number": "(415) 555-0134",
            "from_number": "415.555.0199",
            "business_name": "Li Dental",
            "start": slots[0]["start"],
            "idempotency_key": "dashboard-national-1",
        }
        short = await client.post("/app/appointments", json={**body, "to_number": "555-01"}, headers=_json(token))
        assert short.status_code == 422 and set(short.json()["error"]["fields"]) == {"to_number"}
        assert "is not a valid phone number in US" in short.json()["error"]["fields"]["to_number"]
        created = await client.post("/app/appointments", json=body, headers=_json(token))
        assert created.status_code == 201, created.text
        booked = await service.get(created.json()["appointment"]["id"])
        assert (booked.to_number, booked.from_number, booked.business_name) == (
            "+14155550134",
            "+14155550199",
            "Li Dental",
        )
        shown = (await client.get(f"/app/appointments/{booked.id}")).json()["appointment"]
        assert shown["booking_uid"] == booked.booking_uid and shown["where_kind"] == "link"


async def test_without_cal_com_new_appointment_says_what_to_set_up(tmp_path: Path) -> None:
    async with (
        open_service(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}", environ={}) as bare,
        browsing(bare) as client,
    ):
        page, _ = await _page(client)
        assert 'data-configured="false"' in page.text
        assert 'id="drawer-setup"' in page.text and 'href="/settings" id="drawer-setup-link"' in page.text


# --- slots, create, edit, move, cancel ---------------------------------------------------------


async def test_a_large_table_says_more_than_and_pages_past_the_count(service: AppointmentService) -> None:
    from appt_tools.store.seed import seed

    await seed(service.store, 1_500, seed=7)
    async with browsing(service) as client:
        first, _ = await _page(client, "/?view=table&when=all")
        assert "More than 1,000 appointments" in first.text and 'id="next-page"' in first.text
        far, _ = await _page(client, "/?view=table&when=all&page=120&page_size=10")  # rows 1,191–1,200: past the count
        assert len(_rows(far.text)) == 10 and 'id="next-page"' in far.text and "Page 120<" in far.text


async def test_slots_for_a_day_and_the_next_free_day_when_none(service: AppointmentService) -> None:
    day = next_weekday()
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    async with browsing(service) as client:
        free = (await client.get("/app/slots", params={"date": day.isoformat()})).json()
        assert free["empty"] is False and free["slots"][0]["time"] == "9:00 AM"
        assert free["slots"][0]["start"].startswith(day.isoformat())
        none = (await client.get("/app/slots", params={"date": saturday.isoformat()})).json()
        assert none["empty"] is True and none["slots"] == []
        assert none["next_date"] == (saturday + timedelta(days=2)).isoformat()
        assert none["message"].startswith("Nothing is free on Saturday")
        assert "The next free day is Monday" in none["message"]
        missing = await client.get("/app/slots")
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "date"
        past = await client.get("/app/slots", params={"date": "2020-01-06"})
        assert past.status_code == 422 and past.json()["error"]["message"].startswith("That time is already past")


async def test_create_edit_move_and_cancel_through_the_service(service: AppointmentService) -> None:
    day = next_weekday()
    async with browsing(service) as client:
        _, token = await _page(client)
        slots = (await client.get("/app/slots", params={"date": day.isoformat()})).json()["slots"]
        body = {
            "title": "Web booking",
            "attendee_name": "Wen Li",
            "attendee_email": "not-an-email",
            "to_number": "+14155550100",
            "from_number": "+14155550123",
            "start": slots[1]["start"],
            "description": "From the dashboard",
            "label": "walk-in",
            "idempotency_key": "dashboard-test-1",
        }
        bad = await client.post("/app/appointments", json=body, headers=_json(token))
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["field"] == "attendee_email" and error["message"].startswith(
            "'not-an-email' is not a valid e-mail"
        )
        no_time = await client.post("/app/appointments", json={**body, "start": None}, headers=_json(token))
        # every problem at once, each at its field
        assert no_time.status_code == 422 and set(no_time.json()["error"]["fields"]) == {"attendee_email", "start"}
        created = await client.post(
            "/app/appointments", json={**body, "attendee_email": "wen@example.com"}, headers=_json(token)
        )
        assert created.status_code == 201, created.text
        made = created.json()["appointment"]
        assert made["status"] == "active" and made["call_type"] == "web" and made["label"] == "walk-in"
        assert created.json()["message"].startswith("Booked for ")
        stored = await service.get(made["id"])
        assert stored.call_type == "web" and stored.booking_uid is not None

        fetched = (await client.get(f"/app/appointments/{made['id']}")).json()["appointment"]
        assert fetched["event_type"] == "Consultation" and fetched["history"][0]["action"] == "created"
        assert (await client.get("/app/appointments/apt_nope")).status_code == 404

        url = f"/app/appointments/{made['id']}"
        locked = await client.post(url, json={"to_number": "+14155550199"}, headers=_json(token))
        assert locked.status_code == 422 and locked.json()["error"]["code"] == "locked_field"
        renamed = await client.post(url, json={"title": "Renamed", "attendee_name": "Wen Li"}, headers=_json(token))
        assert renamed.status_code == 200 and renamed.json()["message"] == "Saved."
        assert (await service.get(made["id"])).title == "Renamed"

        taken = (await Raw(service).book(**booking_args(slots[3]["start"], attendee_email="other@example.com"))).id
        busy = await client.post(url, json={"title": "Renamed again", "start": slots[3]["start"]}, headers=_json(token))
        assert busy.status_code == 409
        problem = busy.json()["error"]
        assert problem["field"] == "start" and problem["saved"] is True and problem["alternatives"]
        assert problem["message"].startswith("The details were saved, but the time was not changed.")

        moved = await client.post(url, json={"start": slots[5]["start"]}, headers=_json(token))
        assert moved.status_code == 200, moved.text
        assert moved.json()["appointment"]["status"] == "rescheduled"
        assert moved.json()["message"].startswith("Moved to ")

        cancelled = await client.post(f"{url}/cancel", json={}, headers=_json(token))
        assert cancelled.status_code == 200 and cancelled.json()["appointment"]["status"] == "cancelled"
        assert (await service.get(made["id"])).cancellation_reason == "Cancelled by the business from the dashboard."
        again = await client.post(f"{url}/cancel", json={}, headers=_json(token))
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_cancelled"

        table = (await client.get("/app/table")).text
        assert made["id"] in _rows(table)
        calendar = (await client.get(f"/app/calendar?month={day:%Y-%m}")).text
        assert made["id"] not in calendar and taken in calendar


async def test_bodies_that_are_not_json_objects_are_refused(service: AppointmentService) -> None:
    async with browsing(service) as client:
        _, token = await _page(client)
        as_form = await client.post("/app/appointments", data={"title": "x"}, headers=_json(token))
        assert as_form.status_code == 415
        array = await client.post(
            "/app/appointments", content=b"[1]", headers={**_json(token), "Content-Type": "application/json"}
        )
        assert array.status_code == 400
        huge = await client.post("/app/appointments", json={"title": "x" * 70_000}, headers=_json(token))
        assert huge.status_code == 413
        wrong_type = await client.post("/app/appointments", json={"title": 5, "start": "x"}, headers=_json(token))
        assert wrong_type.status_code == 422 and wrong_type.json()["error"]["field"] == "title"


# --- CSRF and origin ---------------------------------------------------------------------------


async def test_changes_need_the_csrf_token_and_this_origin(service: AppointmentService) -> None:
    appointment = await _book(service, next_weekday())
    url = f"/app/appointments/{appointment}"
    async with browsing(service) as client:
        _, token = await _page(client)
        no_token = await client.post(url, json={"title": "x"})
        assert no_token.status_code == 403 and "out of date" in no_token.json()["error"]["message"]
        wrong = await client.post(
            url, json={"title": "x"}, headers={"X-CSRF-Token": token[:-1] + ("B" if token.endswith("A") else "A")}
        )
        assert wrong.status_code == 403
        foreign = await client.post(
            url, json={"title": "x"}, headers={**_json(token), "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "another web site" in foreign.json()["error"]["message"]
        cross = await client.post(url, json={"title": "x"}, headers={**_json(token), "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        base = str(client.base_url).rstrip("/")
        same = await client.post(
            url,
            json={"title": "Same origin"},
            headers={**_json(token), "Origin": base, "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200
        # another browser's (session's) token does not work with this cookie
        async with httpx2.AsyncClient(base_url=client.base_url) as other:
            other_token = csrf_of((await other.get("/?view=table")).text)
        assert other_token != token
        assert (await client.post(url, json={"title": "x"}, headers=_json(other_token))).status_code == 403
        # without any session cookie, even the right-looking token is refused
        client.cookies.clear()
        assert (await client.post(url, json={"title": "x"}, headers=_json(token))).status_code == 403
    assert (await service.get(appointment)).title == "Same origin"


# --- signing in with the HTTP API keys -----------------------------------------------------------


def _keys(*keys: str) -> Credentials:
    return Credentials(tuple(SecretStr(k) for k in keys))


async def test_with_keys_the_dashboard_needs_a_sign_in(service: AppointmentService) -> None:
    current = [_keys(KEY, OTHER)]

    async def reload() -> Credentials:
        return current[0]

    settings = HttpSettings(credentials=current[0], reload_credentials=reload, credentials_ttl=0.0)
    async with browsing(service, settings) as client:
        start = await client.get("/calendar?month=2026-01", follow_redirects=False)
        assert start.status_code == 303 and start.headers["location"] == "/login?next=%2Fcalendar%3Fmonth%3D2026-01"
        assert (await client.get("/app/table")).status_code == 401
        assert (await client.get("/app/slots?date=2030-01-07")).status_code == 401
        login = await client.get("/login")
        assert login.status_code == 200 and 'name="api_key"' in login.text
        token = csrf_of_form(login.text)

        no_csrf = await client.post("/login", data={"api_key": KEY})
        assert no_csrf.status_code == 403
        token = csrf_of_form(no_csrf.text)
        wrong = await client.post("/login", data={"api_key": "k_live_wrong_wrong_wrong_wrong", "csrf": token})
        assert wrong.status_code == 401 and "not one of this server&#39;s API keys" in wrong.text
        foreign = await client.post(
            "/login", data={"api_key": KEY, "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        signed = await client.post(
            "/login", data={"api_key": f" {KEY} ", "csrf": token, "next": "/calendar"}, follow_redirects=False
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/calendar"
        cookie = client.cookies.get("appt_session")
        assert cookie is not None and KEY not in cookie
        page = await client.get("/?view=table")
        assert page.status_code == 200 and "Sign out" in page.text
        new_token = csrf_of(page.text)
        assert new_token != token  # a new session at sign-in

        # revoking the key that signed in ends the session (the CredentialChecker re-reads keys every ttl seconds)
        current[0] = _keys(OTHER)
        assert (await client.get("/?view=table", follow_redirects=False)).status_code == 303
        assert (await client.get("/app/table")).status_code == 401
        current[0] = _keys(KEY)
        assert (await client.get("/?view=table")).status_code == 200

        out = await client.post("/logout", data={"csrf": new_token}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await client.get("/?view=table", follow_redirects=False)).status_code == 303


async def test_a_session_works_on_every_instance_sharing_the_database(
    service: AppointmentService, sandbox: RunningSandbox, db_url: str
) -> None:
    settings = HttpSettings(credentials=_keys(KEY), host="0.0.0.0")
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with (
        served(service, settings) as first,
        open_service(database_url=db_url, calcom=target) as second_service,  # another process, same database
        served(second_service, settings) as second,
        httpx2.AsyncClient(timeout=20) as client,
    ):
        login = await client.get(f"{first}/login")
        signed = await client.post(
            f"{first}/login", data={"api_key": KEY, "csrf": csrf_of_form(login.text)}, follow_redirects=False
        )
        assert signed.status_code == 303
        page = await client.get(f"{second}/settings", follow_redirects=False)  # the load balancer's other pick
        assert page.status_code == 200 and "Sign out" in page.text
        token = csrf_of(page.text)
        saved = await client.post(f"{second}/app/settings", json={"business_name": "Acme"}, headers=_json(token))
        assert saved.status_code == 200, saved.text


async def test_signing_out_ends_the_session_on_every_instance_even_for_a_copied_cookie(
    service: AppointmentService, sandbox: RunningSandbox, db_url: str
) -> None:
    """Issue 13, finding 4: the old cookie used to keep reading and saving for up to 12 hours."""
    settings = HttpSettings(credentials=_keys(KEY), host="0.0.0.0")
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with (
        served(service, settings) as first,
        open_service(database_url=db_url, calcom=target) as second_service,  # another process, same database
        served(second_service, settings) as second,
        httpx2.AsyncClient(timeout=20) as client,
    ):
        login = await client.get(f"{first}/login")
        await client.post(f"{first}/login", data={"api_key": KEY, "csrf": csrf_of_form(login.text)})
        page = await client.get(f"{second}/settings")
        token, copied = csrf_of(page.text), client.cookies["appt_session"]
        out = await client.post(f"{first}/logout", data={"csrf": token}, follow_redirects=False)
        assert out.status_code == 303
        for base in (first, second):  # the copied cookie, with its CSRF token, is worthless everywhere
            stale = {"Cookie": f"appt_session={copied}"}
            assert (await client.get(f"{base}/app/table", headers=stale)).status_code == 401
            home = await client.get(f"{base}/", headers=stale, follow_redirects=False)
            assert home.status_code == 303 and home.headers["location"].startswith("/login")
            saved = await client.post(
                f"{base}/app/settings", json={"business_name": "Evil"}, headers={**_json(token), **stale}
            )
            assert saved.status_code == 401
        assert (await service.store.get_settings()).get("business_name") != "Evil"


async def test_a_public_server_without_keys_lets_nobody_in(service: AppointmentService) -> None:
    async with browsing(service, HttpSettings(host="0.0.0.0")) as client:
        assert (await client.get("/", follow_redirects=False)).status_code == 303
        login = await client.get("/login")
        refused = await client.post("/login", data={"api_key": KEY, "csrf": csrf_of_form(login.text)})
        assert refused.status_code == 401 and "no API key set" in refused.text


def csrf_of_form(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_sessions_are_signed_expire_and_carry_no_key() -> None:
    now = [1_000_000.0]
    sessions = Sessions(CredentialChecker(_keys(KEY), loopback=False), secret=b"s" * 32, clock=lambda: now[0])
    session = sessions.new(KEY)
    raw = sessions.encode(session)
    assert KEY not in raw and sessions.decode(raw) == session
    payload, stamp, signature = raw.rsplit(".", 2)
    assert sessions.decode(f"{payload}.{stamp}.{'A' * len(signature)}") is None  # forged signature
    assert sessions.decode(f"{payload[:-2]}.{stamp}.{signature}") is None  # changed payload
    assert sessions.decode(f"{payload}.{signature}") is None  # no timestamp
    assert sessions.decode("garbage") is None and sessions.decode(None) is None
    other = Sessions(CredentialChecker(_keys(KEY), loopback=False), secret=b"t" * 32, clock=lambda: now[0])
    assert other.decode(raw) is None  # another process (secret) does not accept it
    now[0] += 12 * 3600 + 1
    assert sessions.decode(raw) is None


def test_after_sign_in_only_local_paths() -> None:
    assert _next("/calendar?month=2026-11") == "/calendar?month=2026-11"
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example", "", None, "javascript:alert(1)"):
        assert _next(hostile) == "/"


# --- settings --------------------------------------------------------------------------------


@pytest.fixture
async def unconfigured(sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[AppointmentService]:
    """A service on the sandbox with nothing in the environment: settings come from the store only."""
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    async with open_service(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}", environ={}, calcom=target
    ) as svc:
        yield svc


async def test_settings_save_validate_and_apply_to_the_running_service(unconfigured: AppointmentService) -> None:
    service = unconfigured
    async with browsing(service) as client:
        _, token = await _page(client, "/settings")
        refreshed = await client.post("/app/event-types/refresh", json={}, headers=_json(token))
        assert refreshed.status_code == 200 and refreshed.json()["message"].startswith(
            "Synced 10 event types"
        )  # 8 own and the team's 2
        types = refreshed.json()["event_types"]
        assert service.timezone == "America/New_York"  # adopted from Cal.com on the first sync

        bad = await client.post(
            "/app/settings",
            json={"timezone": "Mars/Base", "duration_minutes": "abc", "event_type_id": "999999", "language": "tlh"},
            headers=_json(token),
        )
        assert bad.status_code == 422
        fields = bad.json()["error"]["fields"]
        assert set(fields) == {"timezone", "duration_minutes", "event_type_id", "language"}
        assert fields["language"].startswith("Invite language: 'tlh' is not a language Cal.com can write invites in")
        assert fields["timezone"].startswith("Time zone: unknown time zone 'Mars/Base'")
        assert await service.store.get_settings() == {"timezone": "America/New_York"}  # nothing stored

        good = await client.post(
            "/app/settings",
            json={
                "event_type_id": str(types[1]["id"]),
                "timezone": "Europe/Lisbon",
                "duration_minutes": "",
                "business_name": "Acme Dental",
                "calcom_api_key": "",
                "language": "pt_br",
            },
            headers=_json(token),
        )
        assert good.status_code == 200 and good.json()["message"] == "Saved."
        stored = await service.store.get_settings()
        assert stored == {
            "event_type_id": str(types[1]["id"]),
            "timezone": "Europe/Lisbon",
            "business_name": "Acme Dental",
            "language": "pt_br",
        }
        assert service.settings.language == "pt-BR"
        assert service.settings.timezone == "Europe/Lisbon" and service.settings.event_type_id == types[1]["id"]
        assert service.settings.sources["timezone"] == "stored"
        page = (await client.get("/settings")).text
        assert 'value="Europe/Lisbon"' in page and 'value="Acme Dental"' in page

        cleared = await client.post("/app/settings", json={"business_name": ""}, headers=_json(token))
        assert cleared.status_code == 200 and "business_name" not in await service.store.get_settings()
        assert service.settings.business_name == ""

        # a new Cal.com key: stored, in use at once, never sent back
        before = service.calcom
        saved = await client.post("/app/settings", json={"calcom_api_key": CALCOM_KEY}, headers=_json(token))
        assert saved.status_code == 200 and CALCOM_KEY not in saved.text
        assert saved.json()["key_shown"] == "cal_…cret" and saved.json()["stored_key_shown"] == "cal_…cret"
        assert (await service.store.get_settings())["calcom_api_key"] == CALCOM_KEY
        assert service.calcom is not before
        page = (await client.get("/settings")).text
        assert CALCOM_KEY not in page and "cal_…cret" in page
        test = (await client.post("/app/settings/test", json={}, headers=_json(token))).json()
        assert test["ok"] is False
        assert test["checks"][1]["text"].startswith("Cal.com refused the API key")
        assert CALCOM_KEY not in str(test)
        await service.calcom.aclose()


async def test_the_environment_wins_and_the_sandbox_keeps_its_key(service: AppointmentService) -> None:
    async with browsing(service, HttpSettings(sandbox=True)) as client:
        response, token = await _page(client, "/settings")
        assert "APPT_TOOLS_TIMEZONE" in response.text and service.settings.calcom_api_key is not None
        assert service.settings.calcom_api_key.get_secret_value() not in response.text
        before = service.calcom
        saved = await client.post(
            "/app/settings", json={"timezone": "Europe/Paris", "calcom_api_key": CALCOM_KEY}, headers=_json(token)
        )
        assert saved.status_code == 200 and CALCOM_KEY not in saved.text
        notes = " ".join(saved.json()["notes"])
        assert "set in the environment (APPT_TOOLS_TIMEZONE)" in notes and "sandbox" in notes
        assert service.timezone == "America/New_York" and service.calcom is before
        assert (await service.store.get_settings())["timezone"] == "Europe/Paris"
        test = (await client.post("/app/settings/test", json={}, headers=_json(token))).json()
        assert test["ok"] is True and test["summary"] == "Cal.com is connected and ready for bookings."
        assert test["checks"][-1]["text"].startswith("8 bookable event types")


async def test_connection_without_a_key_and_with_cal_com_down(sandbox: RunningSandbox, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    async with open_service(database_url=url, environ={}) as service, browsing(service) as client:
        response, token = await _page(client, "/settings")
        assert "Cal.com is not set up yet" in response.text
        test = (await client.post("/app/settings/test", json={}, headers=_json(token))).json()
        assert test["ok"] is False and test["checks"][0]["text"].startswith("No Cal.com API key is set")
        refresh = await client.post("/app/event-types/refresh", json={}, headers=_json(token))
        assert (
            refresh.status_code == 503 and "add your Cal.com API key in Settings" in refresh.json()["error"]["message"]
        )
        booking = await client.post("/app/appointments", json={"start": "x"}, headers=_json(token))
        assert booking.status_code in (422, 503)
    down = CalcomTarget(base_url="http://127.0.0.1:9", api_key="cal_live_unreachable_0000")
    env = {"APPT_TOOLS_CALCOM_TIMEOUT": "1"}
    async with open_service(database_url=url, environ=env, calcom=down) as service, browsing(service) as client:
        _, token = await _page(client, "/settings")
        started = time.monotonic()
        test = (await client.post("/app/settings/test", json={}, headers=_json(token))).json()
        assert time.monotonic() - started < 10
        assert test["ok"] is False and "could not be reached at http://127.0.0.1:9" in test["checks"][1]["text"]


async def test_questions_are_asked_answered_shown_and_pending_bookings_settled(service: AppointmentService) -> None:
    day = next_weekday()
    async with browsing(service) as client:
        page, token = await _page(client)
        questions = re.search(r'id="event-type-questions">(.*?)</script>', page.text, re.S)
        assert (
            questions is not None and '"topic"' in questions.group(1) and "What would you like to discuss?" in page.text
        )
        slots = (await client.get("/app/slots", params={"date": day.isoformat(), "event_type_id": 1007})).json()
        body = {
            "attendee_name": "Wen Li",
            "attendee_email": "wen@example.com",
            "to_number": "+14155550100",
            "from_number": "+14155550123",
            "event_type_id": "1007",
            "start": slots["slots"][0]["start"],
        }
        missing = await client.post("/app/appointments", json=body, headers=_json(token))
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "answers.topic"
        assert "What would you like to discuss?" in missing.json()["error"]["message"]
        answered = {**body, "answers": {"topic": "A new roof", "first-visit": True}}
        created = await client.post("/app/appointments", json=answered, headers=_json(token))
        assert created.status_code == 201, created.text
        drawer = (await client.get(f"/app/appointments/{created.json()['appointment']['id']}")).json()["appointment"]
        assert drawer["answers"] == [
            {"question": "What would you like to discuss?", "answer": "A new roof"},
            {"question": "Is this your first session with us?", "answer": "Yes"},
        ]
        assert drawer["pending"] is False

        intro = (await client.get("/app/slots", params={"date": day.isoformat(), "event_type_id": 1005})).json()
        requests = []
        for i, email in enumerate(("a@example.com", "b@example.com")):
            made = await client.post(
                "/app/appointments",
                json={
                    **body,
                    "attendee_email": email,
                    "event_type_id": "1005",
                    "start": intro["slots"][i * 2]["start"],
                },
                headers=_json(token),
            )
            assert made.status_code == 201, made.text
            requests.append(made.json()["appointment"])
        assert all(
            r["pending"] and r["where"] == "Online meeting: the link comes once the host confirms it." for r in requests
        )
        table = (await client.get("/app/table")).text
        for r in requests:
            assert f'data-decide="confirm" data-id="{r["id"]}"' in table
            assert f'data-decide="decline" data-id="{r["id"]}"' in table
        assert f'data-decide="confirm" data-id="{created.json()["appointment"]["id"]}"' not in table

        confirmed = await client.post(f"/app/appointments/{requests[0]['id']}/confirm", json={}, headers=_json(token))
        assert confirmed.status_code == 200, confirmed.text
        shown = confirmed.json()["appointment"]
        assert shown["status"] == "active" and shown["where_kind"] == "link" and not shown["pending"]
        declined = await client.post(
            f"/app/appointments/{requests[1]['id']}/decline", json={"reason": "Away"}, headers=_json(token)
        )
        assert declined.status_code == 200 and declined.json()["appointment"]["status"] == "cancelled"
        again = await client.post(f"/app/appointments/{requests[1]['id']}/decline", json={}, headers=_json(token))
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_pending"
        history = (await client.get(f"/app/appointments/{requests[0]['id']}")).json()["appointment"]["history"]
        assert history[-1]["action"] == "confirmed"
