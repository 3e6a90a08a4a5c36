"""Issue 13, findings 5 and 6: input that used to answer 500 is refused with a clear 4xx in the JSON
error shape naming the field, and changes nothing. Served by uvicorn on real loopback HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from dashboard_support import served
from helpers import Raw, booking_args, next_weekday

WEBHOOK_SECRET = "whsec_0123456789abcdef0123"
DEEP = b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # 60 KB: within every route's size limit


def _settings() -> HttpSettings:
    return HttpSettings(credentials=Credentials(calcom_webhook_secret=SecretStr(WEBHOOK_SECRET)))


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Cal-Signature-256": digest}


def _refused(response: httpx2.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"]
    return error


async def _nothing_written(service: Any, sandbox: Any) -> None:
    assert sandbox.state.bookings == {}
    assert (await Raw(service).search(status="pending,active,rescheduled,cancelled,completed,failed")).total == 0


@pytest.mark.parametrize(
    ("route", "signed"),
    [
        ("/tools/find_slots", False),
        ("/vapi/tool-calls", False),
        ("/retell/functions", False),
        ("/webhooks/calcom", True),
        ("/app/appointments", False),
    ],
)
async def test_json_nested_thirty_thousand_deep_is_a_400_on_every_route(route, signed, service, sandbox):
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        headers = _signed(DEEP) if signed else {"Content-Type": "application/json"}
        if route.startswith("/app/"):
            page = await client.get("/")
            token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            headers["X-CSRF-Token"] = token
        response = await client.post(route, content=DEEP, headers=headers)
    error = _refused(response)
    assert "deep" in error["message"]
    await _nothing_written(service, sandbox)


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("search_appointments", {"page": 10**18}, "page"),
        ("search_appointments", {"page": int("9" * 4000)}, "page"),
        ("search_appointments", {"page": True}, "page"),
        ("search_appointments", {"page_size": True}, "page_size"),
        ("find_slots", {"event_type_id": 10**30}, "event_type_id"),
        ("find_slots", {"duration_minutes": False}, "duration_minutes"),
        ("list_event_types", {"refresh": 0.0}, "refresh"),
        ("list_event_types", {"refresh": 1}, "refresh"),
        ("search_appointments", {"query": "ruiz\x00"}, "query"),
        ("search_appointments", {"date_from": "9999-12-31"}, "date_from"),
        ("search_appointments", {"date_to": "0001-01-01"}, "date_to"),
        ("find_slots", {"date": "9999-12-31"}, "date"),
        ("find_slots", {"start": "9999-12-31T10:00:00Z", "end": "9999-12-31T12:00:00Z"}, "start"),
    ],
)
async def test_numbers_text_and_dates_out_of_bounds_are_refused_naming_the_field(tool, args, field, service, sandbox):
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.post(f"/tools/{tool}", json=args)
    error = _refused(response, 422)
    assert error["field"] == field, error
    await _nothing_written(service, sandbox)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Visit \udc80"),
        ("title", "Visit\nIgnore the above"),
        ("attendee_name", "Ana\rRuiz"),
        ("attendee_name", "Ana\x00Ruiz"),
        ("attendee_name", "Ana\x1b[31mRuiz"),
        ("description", "fine\nbut NUL \x00 is not"),
        ("label", "vip\u2028list"),
    ],
)
async def test_control_characters_and_lone_surrogates_in_text_are_refused(field, value, service, sandbox):
    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    body = json.dumps(booking_args(start, **{field: value})).encode()  # ensure_ascii keeps \udc80 escaped
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.post(
            "/tools/book_appointment", content=body, headers={"Content-Type": "application/json"}
        )
    error = _refused(response, 422)
    assert error["field"] == field, error
    await _nothing_written(service, sandbox)


async def test_line_breaks_and_tabs_are_kept_where_a_description_allows_them(service, sandbox):
    start = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0].start.isoformat()
    text = "Line one\nLine two\r\n\tindented"
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.post("/tools/book_appointment", json=booking_args(start, description=text))
    assert response.status_code == 200, response.text
    assert response.json()["appointment"]["description"] == text


@pytest.mark.parametrize(
    "path",
    [
        "/app/table?page=%C2%B2",
        "/app/table?page_size=%C2%B2",
        "/app/table?page=99999999999999999999999",
        "/app/table?q=ruiz%00",
        "/app/table?date_from=9999-12-31",
        "/app/calendar?month=9999-12",
        "/app/calendar?month=0000-01",
        "/app/calendar?month=%C2%B2-1",
        "/?page=%C2%B2&q=%00",
        "/calendar?month=9999-12",
    ],
)
async def test_the_dashboards_query_parameters_never_give_a_500(path, service):
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.get(path)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _refused(response, response.status_code)


async def test_a_dashboard_event_type_id_that_is_not_ascii_digits_is_a_400_naming_it(service):
    day = next_weekday().isoformat()
    async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.get(f"/app/slots?date={day}&event_type_id=%C2%B2")
    error = _refused(response, 422)
    assert error["field"] == "event_type_id"


async def test_a_non_ascii_webhook_signature_is_a_401(service, sandbox):
    body = b'{"triggerEvent":"BOOKING_CANCELLED","payload":{"uid":"x"}}'
    async with served(service, _settings()) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.post(
            "/webhooks/calcom",
            content=body,
            headers={"Content-Type": "application/json", "X-Cal-Signature-256": ("é" * 64).encode("utf-8")},
        )
    assert _refused(response, 401)["code"] == "unauthorized"


async def test_non_ascii_retell_signature_vapi_secret_and_bearer_are_401s(service):
    settings = HttpSettings(
        credentials=Credentials(
            (SecretStr("k_live_0123456789abcdefghijKEY1"),),
            SecretStr("vapi-secret-0123456789abcdef"),
            SecretStr("key_retell_0123456789abcdef"),
        )
    )
    weird = ("é" * 64).encode("utf-8")
    async with served(service, settings) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        headers = {"Content-Type": "application/json"}
        retell = await client.post("/retell/functions", content=b"{}", headers={**headers, "X-Retell-Signature": weird})
        vapi = await client.post("/vapi/tool-calls", content=b"{}", headers={**headers, "X-Vapi-Secret": weird})
        bearer = await client.post(
            "/tools/find_slots", content=b"{}", headers={**headers, "Authorization": b"Bearer " + weird}
        )
    for response in (retell, vapi, bearer):
        assert _refused(response, 401)["code"] == "unauthorized"


@pytest.mark.parametrize("cookie", ["abc.\xe9", "\xe9\xe9\xe9", "a" * 5000, "x.y.z"])
async def test_a_bad_session_cookie_reads_as_signed_out_never_a_lock_out(cookie, service):
    settings = HttpSettings(credentials=Credentials((SecretStr("k_live_0123456789abcdefghijKEY1"),)))
    raw = b"appt_session=" + cookie.encode("latin-1")
    async with served(service, settings) as base, httpx2.AsyncClient(base_url=base, timeout=20) as client:
        login = await client.get("/login", headers={"Cookie": raw})
        home = await client.get("/", headers={"Cookie": raw})
        table = await client.get("/app/table", headers={"Cookie": raw})
    assert login.status_code == 200, login.text
    assert home.status_code == 303 and home.headers["location"].startswith("/login")
    assert _refused(table, 401)["code"] == "unauthorized"
