"""The HTTP application over real loopback HTTP: uvicorn in-process on the real sandbox and SQLite,
plus two subprocess runs of `appt-tools serve --transport http` as a user starts it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from openapi_spec_validator import validate
from pydantic import SecretStr

from appt_tools import config
from appt_tools.core.service import AppointmentService
from appt_tools.errors import (
    AppError,
    CalcomAuthError,
    CalcomRateLimited,
    CalcomRejected,
    CalcomUnavailable,
    Conflict,
    InvalidArgument,
    LockedField,
    NotConfigured,
    NotFound,
    SlotHeld,
    SlotUnavailable,
)
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from appt_tools.surfaces.mcp_server import AppointmentServer, build_server
from appt_tools.surfaces.statuses import http_status
from calcom_sandbox import RunningSandbox
from dashboard_support import served
from helpers import Raw, booking_args, free_port, next_weekday, wait_for_port

KEY = "k_live_0123456789abcdefghijKEY1"
OTHER_KEY = "k_live_0123456789abcdefghijKEY2"
VAPI_SECRET = "vapi-secret-0123456789abcdef"
RETELL_KEY = "key_retell_0123456789abcdef"
ALL_STATUSES = "pending,active,rescheduled,cancelled,completed,failed"
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def _credentials(*keys: str, vapi: str | None = None, retell: str | None = None) -> Credentials:
    return Credentials(
        tuple(SecretStr(k) for k in keys),
        SecretStr(vapi) if vapi else None,
        SecretStr(retell) if retell else None,
    )


@asynccontextmanager
async def serving(
    service: AppointmentService, settings: HttpSettings | None = None, server: AppointmentServer | None = None
) -> AsyncIterator[httpx2.AsyncClient]:
    """The HTTP app served by uvicorn on a free loopback port; a client pointed at it."""
    async with (
        served(service, settings, server) as base,
        httpx2.AsyncClient(base_url=base, timeout=15) as client,
    ):
        yield client


def _url(client: httpx2.AsyncClient, path: str) -> str:
    return str(client.base_url).rstrip("/") + path


def _bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def retell_signature(body: bytes, key: str = RETELL_KEY, *, at_ms: int | None = None) -> str:
    """Retell's scheme (retell-python-sdk src/retell/lib/webhook_auth.py): v=<ms>,d=hex HMAC-SHA256(key, body + ms)."""
    stamp = str(int(time.time() * 1000) if at_ms is None else at_ms)
    return f"v={stamp},d={hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()}"


async def _retell_post(client: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> httpx2.Response:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Retell-Signature": retell_signature(raw)}
    return await client.post(path, content=raw, headers=headers)


def _vapi_message(*calls: tuple[str, str, Any], legacy: bool = False) -> dict[str, Any]:
    tool_calls = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in calls
    ]
    key = "toolCalls" if legacy else "toolCallList"
    return {"message": {"type": "tool-calls", key: tool_calls, "call": {"id": "call-vapi-1"}}}


# --- the same conversation through every surface ----------------------------------------------


def _through_tools(client: httpx2.AsyncClient) -> Call:
    async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(f"/tools/{name}", json=args, headers=_bearer())
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return call


def _through_vapi(client: httpx2.AsyncClient) -> Call:
    calls = 0

    async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        # Vapi sends the model's arguments as an object or as the JSON string it wrote: both, in turn.
        arguments = json.dumps(args) if calls % 2 else args
        response = await client.post(
            "/vapi/tool-calls",
            json=_vapi_message((f"call_{calls}", name, arguments)),
            headers={"X-Vapi-Secret": VAPI_SECRET},
        )
        assert response.status_code == 200, response.text
        [answer] = response.json()["results"]
        assert answer["toolCallId"] == f"call_{calls}" and "error" not in answer, answer
        assert len(answer["result"].splitlines()) == 1
        result: dict[str, Any] = json.loads(answer["result"])
        return result

    return call


def _through_retell(client: httpx2.AsyncClient) -> Call:
    calls = 0

    async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        # Retell's default body names the function; with "args at root" the path does: both, in turn.
        if calls % 2:
            response = await _retell_post(client, "/retell/functions", {"name": name, "call": {}, "args": args})
        else:
            response = await _retell_post(client, f"/retell/functions/{name}", args)
        assert response.status_code == 200, response.text
        assert "error" not in response.json(), response.text
        result: dict[str, Any] = response.json()
        return result

    return call


async def _conversation(call: Call) -> None:
    slots = await call("find_slots", {"date": next_weekday().isoformat()})
    booked = await call("book_appointment", booking_args(slots["slots"][0]["start"]))
    appointment_id = booked["appointment"]["id"]
    assert booked["appointment"]["status"] == "active" and booked["say"]
    found = await call("search_appointments", {"query": "RUIZ"})
    assert [item["id"] for item in found["items"]] == [appointment_id]
    await call("reschedule", {"appointment_id": appointment_id, "new_start": slots["slots"][3]["start"]})
    cancelled = await call("cancel", {"appointment_id": appointment_id, "reason": "Caller no longer needs it"})
    assert cancelled["appointment"]["status"] == "cancelled"


async def _final_state(service: AppointmentService, sandbox: RunningSandbox) -> dict[str, Any]:
    """What the store and Cal.com hold, minus ids, uids and times."""
    page = await Raw(service).search(status=ALL_STATUSES, page_size=100)
    records = []
    for a in page.items:
        history = await service.history(a.id)
        records.append(
            {
                "status": a.status.value,
                "numbers": (a.to_number, a.from_number),
                "call_type": a.call_type,
                "title": a.title,
                "label": a.label,
                "attendee": (a.attendee_name, a.attendee_email),
                "business_name": a.business_name,
                "cancellation_reason": a.cancellation_reason,
                "earlier_uids": len(a.previous_booking_uids),
                "history": [h.action for h in history],
            }
        )
    return {
        "records": records,
        "calcom": sorted(str(b.status) for b in sandbox.state.bookings.values()),
        "emails": [m.kind for m in sandbox.state.outbox if m.to == "ana.ruiz@example.com"],
    }


EXPECTED_STATE = {
    "records": [
        {
            "status": "cancelled",
            "numbers": ("+14155550100", "+14155550123"),
            "call_type": "inbound",
            "title": "Teeth cleaning",
            "label": "new-client",
            "attendee": ("Ana Ruiz", "ana.ruiz@example.com"),
            "business_name": "Acme Dental",
            "cancellation_reason": "Caller no longer needs it",
            "earlier_uids": 1,
            "history": ["created", "booked", "rescheduled", "cancelled"],
        }
    ],
    "emails": ["scheduled", "rescheduled", "cancelled"],
}


@pytest.mark.parametrize("surface", ["tools", "vapi", "retell", "mcp"])
async def test_the_same_conversation_through_every_surface_ends_in_the_same_state(surface, service, sandbox):
    settings = HttpSettings(credentials=_credentials(KEY, vapi=VAPI_SECRET, retell=RETELL_KEY))
    async with serving(service, settings) as client:
        if surface == "mcp":
            async with (
                httpx2.AsyncClient(headers=_bearer(), timeout=15) as http,
                Client(streamable_http_client(_url(client, "/mcp"), http_client=http)) as mcp,
            ):

                async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
                    result = await mcp.call_tool(name, args)
                    assert not result.is_error and result.structured_content is not None, result.content
                    return dict(result.structured_content)

                await _conversation(call)
        else:
            await _conversation(
                {"tools": _through_tools, "vapi": _through_vapi, "retell": _through_retell}[surface](client)
            )
    state = await _final_state(service, sandbox)
    assert {k: v for k, v in state.items() if k != "calcom"} == EXPECTED_STATE
    assert len(state["calcom"]) == 2  # the first booking (replaced by the reschedule) and the cancelled one


# --- authentication ------------------------------------------------------------------------------


async def _untouched(service: AppointmentService, sandbox: RunningSandbox) -> tuple[int, int, int]:
    page = await Raw(service).search(status=ALL_STATUSES, page_size=100)
    return page.total, len(sandbox.state.bookings), len(sandbox.state.outbox)


async def test_wrong_missing_and_revoked_keys_are_refused_alike_and_change_nothing(service, sandbox):
    await service.store.set_setting("http_api_keys", f"{KEY},{OTHER_KEY}")

    async def stored() -> Credentials:
        return Credentials.of(config.resolve(await service.store.get_settings(), {}))

    settings = HttpSettings(credentials=await stored(), reload_credentials=stored, credentials_ttl=0)
    async with serving(service, settings) as client:
        slots = await client.post("/tools/find_slots", json={"date": next_weekday().isoformat()}, headers=_bearer())
        assert slots.status_code == 200
        await service.store.set_setting("http_api_keys", OTHER_KEY)  # revokes KEY, no restart
        before = await _untouched(service, sandbox)
        book = booking_args(slots.json()["slots"][0]["start"])
        refusals = []
        for headers in [{}, _bearer(KEY), _bearer("k_live_wrong_wrong_wrong_wrong"), {"Authorization": KEY}]:
            refused = await client.post("/tools/book_appointment", json=book, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            refusals.append(refused.json())
        mcp = await client.post("/mcp", json={}, headers={"Accept": "application/json, text/event-stream"})
        assert mcp.status_code == 401
        assert await _untouched(service, sandbox) == before
        assert all(r == refusals[0] for r in refusals) and refusals[0]["error"]["code"] == "unauthorized"
        assert KEY not in json.dumps(refusals)
        assert (await client.post("/tools/book_appointment", json=book, headers=_bearer(OTHER_KEY))).status_code == 200


async def test_mcp_over_http_needs_a_key_and_lists_the_tools_with_one(service):
    async with serving(service, HttpSettings(credentials=_credentials(KEY))) as client:
        async with (
            httpx2.AsyncClient(headers=_bearer(), timeout=15) as http,
            Client(streamable_http_client(_url(client, "/mcp"), http_client=http)) as mcp,
        ):
            assert len((await mcp.list_tools()).tools) == 10
        refused = await client.post("/mcp", json={}, headers=_bearer(OTHER_KEY))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


async def test_a_bad_retell_signature_is_refused_and_changes_nothing(service, sandbox):
    async with serving(service, HttpSettings(credentials=_credentials(KEY, retell=RETELL_KEY))) as client:
        slots = await _retell_post(client, "/retell/functions/find_slots", {"date": next_weekday().isoformat()})
        body = json.dumps({"name": "book_appointment", "args": booking_args(slots.json()["slots"][0]["start"])})
        raw = body.encode()
        tampered = raw.replace(b"Ana Ruiz", b"Eve Ruiz")
        stale = int(time.time() * 1000) - 6 * 60 * 1000
        before = await _untouched(service, sandbox)
        for signature in [
            None,
            retell_signature(raw, "key_some_other_account"),
            retell_signature(raw, at_ms=stale),
            "v=1,d=abc",
            retell_signature(raw).replace("d=", "d=0"),
        ]:
            headers = {"Content-Type": "application/json", **({"X-Retell-Signature": signature} if signature else {})}
            refused = await client.post("/retell/functions", content=raw, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        forged = await client.post(
            "/retell/functions",
            content=tampered,
            headers={"Content-Type": "application/json", "X-Retell-Signature": retell_signature(raw)},
        )
        assert forged.status_code == 401
        # With a Retell key configured, an HTTP API key does not stand in for the signature.
        bearer_only = await client.post(
            "/retell/functions", content=raw, headers={**_bearer(), "Content-Type": "application/json"}
        )
        assert bearer_only.status_code == 401
        assert await _untouched(service, sandbox) == before


async def test_a_bad_vapi_secret_is_refused_and_without_a_secret_vapi_needs_a_bearer_key(service, sandbox):
    message = _vapi_message(("call_1", "search_appointments", {}))
    async with serving(service, HttpSettings(credentials=_credentials(KEY, vapi=VAPI_SECRET))) as client:
        for headers in [{}, {"X-Vapi-Secret": "wrong"}, {"X-Vapi-Secret": VAPI_SECRET[:-1]}, _bearer()]:
            refused = await client.post("/vapi/tool-calls", json=message, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert (
            await client.post("/vapi/tool-calls", json=message, headers={"X-Vapi-Secret": VAPI_SECRET})
        ).status_code == 200
    async with serving(service, HttpSettings(credentials=_credentials(KEY))) as client:
        assert (await client.post("/vapi/tool-calls", json=message)).status_code == 401
        assert (await client.post("/vapi/tool-calls", json=message, headers=_bearer())).status_code == 200


POST_ROUTES = ["/tools/find_slots", "/vapi/tool-calls", "/retell/functions", "/retell/functions/find_slots"]
NOT_AN_OBJECT = [b"{not json", b"", b"[1, 2]", b'"find_slots"', b'{"date": NaN}', b"\xff\xfe{"]


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_a_body_that_is_not_a_json_object_is_a_400_on_every_post_route(route, service):
    settings = HttpSettings(credentials=_credentials(KEY, vapi=VAPI_SECRET, retell=RETELL_KEY))
    async with serving(service, settings) as client:
        for body in NOT_AN_OBJECT:
            headers = {
                **_bearer(),
                "Content-Type": "application/json",
                "X-Vapi-Secret": VAPI_SECRET,
                "X-Retell-Signature": retell_signature(body),
            }
            response = await client.post(route, content=body, headers=headers)
            assert response.status_code == 400, body
            error = response.json()["error"]
            assert error["code"] == "invalid_request" and error["message"]


async def test_healthz_answers_anyone_and_shows_no_secret(service, sandbox):
    settings = HttpSettings(credentials=_credentials(KEY, vapi=VAPI_SECRET, retell=RETELL_KEY), sandbox=True)
    async with serving(service, settings) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0", "calcom_configured": True, "sandbox": True}
    for secret in (KEY, VAPI_SECRET, RETELL_KEY, sandbox.api_key):
        assert secret not in response.text


async def test_the_openapi_document_is_valid_and_describes_every_tool(service):
    async with serving(service, HttpSettings(credentials=_credentials(KEY))) as client:
        document = (await client.get("/openapi.json")).json()
    validate(document)
    tools = {path.removeprefix("/tools/") for path in document["paths"] if path.startswith("/tools/")}
    assert tools == {t.name for t in await build_server(service).list_tools()}
    book = document["paths"]["/tools/book_appointment"]["post"]
    arguments = book["requestBody"]["content"]["application/json"]["schema"]
    assert set(arguments["required"]) == {  # start: or a hold_id; attendee_email: or the caller's number
        "attendee_name",
        "to_number",
        "from_number",
        "call_type",
    }
    assert "say" in book["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"401", "404", "409", "422"} <= set(book["responses"])
    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "$defs" not in json.dumps(document)
    # A deployment serving several businesses: an operator key names the business by X-Tenant.
    assert book["parameters"] == [{"$ref": "#/components/parameters/XTenant"}]
    x_tenant = document["components"]["parameters"]["XTenant"]
    assert (x_tenant["name"], x_tenant["in"], x_tenant["required"]) == ("X-Tenant", "header", False)


# --- results and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidArgument("start", "bad"), 422),
        (LockedField("to_number", "fixed"), 422),
        (NotFound("no", code="appointment_not_found"), 404),
        (NotFound("no", code="unknown_tool"), 404),
        (SlotUnavailable("taken"), 409),
        (Conflict("done", code="already_cancelled"), 409),
        (Conflict("no", code="not_reschedulable"), 409),
        (NotConfigured("no key"), 503),
        (CalcomRateLimited("slow down", retry_after=2.5), 429),
        (CalcomUnavailable("down"), 503),
        (CalcomUnavailable("unknown outcome", retryable=False), 502),
        (CalcomUnavailable("unknown outcome", outcome_unknown=True), 502),
        (SlotHeld("apt_other"), 409),
        (CalcomAuthError("bad key", status=401), 502),
        (CalcomRejected("no", status=400), 502),
        (AppError("something else"), 400),
    ],
)
def test_each_error_has_its_http_status(error, status):
    assert http_status(error) == status


async def test_tool_errors_over_plain_http_carry_a_status_and_the_error_view(service):
    async with serving(service) as client:
        slots = (await client.post("/tools/find_slots", json={"date": next_weekday().isoformat()})).json()
        start = slots["slots"][0]["start"]
        assert (await client.post("/tools/book_appointment", json=booking_args(start))).status_code == 200
        cases = [
            (
                "book_appointment",
                booking_args(start, attendee_email="bob@example.com", from_number="+14155550124"),
                409,
                "slot_unavailable",
            ),
            ("search_appointments", {"page_size": "25"}, 422, "invalid_argument"),
            ("update_appointment", {"appointment_id": "apt_x", "call_type": "web"}, 422, "locked_field"),
            ("cancel", {"appointment_id": "apt_missing"}, 404, "appointment_not_found"),
            ("send_fax", {}, 404, "unknown_tool"),
        ]
        for name, args, status, code in cases:
            response = await client.post(f"/tools/{name}", json=args)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        taken = (
            await client.post(
                "/tools/book_appointment",
                json=booking_args(start, attendee_email="b@x.com", from_number="+14155550124"),
            )
        ).json()
    assert taken["error"]["alternatives"] and taken["error"]["say"]


async def test_without_cal_com_the_booking_tools_answer_503(db_url):
    from appt_tools.runtime import open_service

    async with open_service(database_url=db_url, environ={}) as unconfigured, serving(unconfigured) as client:
        response = await client.post("/tools/find_slots", json={})
        health = (await client.get("/healthz")).json()
    assert response.status_code == 503 and response.json()["error"]["code"] == "calcom_not_configured"
    assert health["calcom_configured"] is False


class _Broken(AppointmentServer):
    async def invoke(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("database password is hunter2")


async def test_an_unexpected_failure_is_a_generic_500_that_reveals_nothing(service):
    server = _Broken(service, name="broken")
    settings = HttpSettings(credentials=_credentials(KEY, retell=RETELL_KEY))
    async with serving(service, settings, server) as client:
        plain = await client.post("/tools/find_slots", json={}, headers=_bearer())
        vapi = await client.post("/vapi/tool-calls", json=_vapi_message(("c1", "find_slots", {})), headers=_bearer())
        retell = await _retell_post(client, "/retell/functions/find_slots", {})
    assert plain.status_code == 500 and plain.json()["error"]["code"] == "internal_error"
    assert retell.status_code == 500  # a failed request, which Retell retries
    assert json.loads(vapi.json()["results"][0]["error"])["code"] == "internal_error"
    for response in (plain, vapi, retell):
        assert "hunter2" not in response.text and "RuntimeError" not in response.text


async def test_vapi_answers_several_tool_calls_in_order_each_on_one_line(service):
    day = next_weekday().isoformat()
    message = _vapi_message(
        ("call_a", "find_slots", json.dumps({"date": day})),
        ("call_b", "book_appointment", '{"start": '),
        ("call_c", "search_appointments", {"qurey": "ruiz"}),
        ("call_d", "list_event_types", None),
        legacy=True,
    )
    async with serving(service) as client:
        response = await client.post("/vapi/tool-calls", json=message)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["toolCallId"] for r in results] == ["call_a", "call_b", "call_c", "call_d"]
    assert ["result" in r for r in results] == [True, False, False, True]
    for answer in results:
        assert len((answer.get("result") or answer["error"]).splitlines()) == 1
    slots = json.loads(results[0]["result"])
    assert next(iter(slots)) == "say" and slots["say"] and slots["slots"]  # the sentence to read comes first
    assert json.loads(results[1]["error"])["field"] == "arguments"
    assert json.loads(results[2]["error"])["field"] == "qurey"


async def test_a_retried_retell_booking_returns_the_first_appointment_and_books_once(service, sandbox):
    async with serving(service, HttpSettings(credentials=_credentials(retell=RETELL_KEY))) as client:
        slots = (
            await _retell_post(client, "/retell/functions/find_slots", {"date": next_weekday().isoformat()})
        ).json()
        body = {"name": "book_appointment", "call": {"call_id": "c1"}, "args": booking_args(slots["slots"][0]["start"])}
        first, retried = [(await _retell_post(client, "/retell/functions", body)).json() for _ in range(2)]
        taken = await _retell_post(
            client,
            "/retell/functions",
            {**body, "args": {**body["args"], "attendee_email": "bob@example.com", "from_number": "+14155550124"}},
        )
    assert retried["appointment"]["id"] == first["appointment"]["id"]
    assert len(sandbox.state.bookings) == 1
    recorded = (await Raw(service).search(status=ALL_STATUSES)).items
    # One booking; the refused attempt is kept as failed (Cal.com was asked, and said no).
    assert sorted(a.status.value for a in recorded) == ["active", "failed"]
    # A domain error is a 200 whose body the model reads: the code, the alternatives and `say`.
    assert taken.status_code == 200
    assert taken.json()["error"]["code"] == "slot_unavailable" and taken.json()["error"]["alternatives"]


async def test_an_open_loopback_server_refuses_what_a_web_page_could_send(service, sandbox):
    async with serving(service) as client:
        before = await _untouched(service, sandbox)
        rebound = await client.post("/tools/search_appointments", json={}, headers={"Host": "evil.example:8000"})
        cross_origin = await client.post(
            "/tools/search_appointments", json={}, headers={"Origin": "https://evil.example"}
        )
        form = await client.post("/tools/search_appointments", content=b"{}", headers={"Content-Type": "text/plain"})
        same_machine = await client.post(
            "/tools/search_appointments", json={}, headers={"Origin": "http://localhost:3000"}
        )
    assert (rebound.status_code, cross_origin.status_code, form.status_code) == (403, 403, 415)
    assert same_machine.status_code == 200
    assert await _untouched(service, sandbox) == before


# --- the command line ----------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    return {**base, "APPT_TOOLS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'http.db'}", **extra}


def test_serving_beyond_loopback_without_a_key_refuses_to_start(tmp_path):
    refused = subprocess.run(
        [sys.executable, "-m", "appt_tools", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0
    assert "APPT_TOOLS_HTTP_API_KEYS" in refused.stderr and "settings set http_api_keys" in refused.stderr


async def test_keys_never_appear_in_the_servers_output(tmp_path):
    port = free_port()
    wrong = "k_live_thisIsTheWrongKeyXYZ123"
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "appt_tools", "serve", "--sandbox", "--transport", "http", "--port", str(port)],
        env=_env(tmp_path, APPT_TOOLS_HTTP_API_KEYS=f"{KEY},{OTHER_KEY}", PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            await wait_for_port(port, process, seconds=20)
            day = next_weekday().isoformat()
            assert (await client.post("/tools/find_slots", json={"date": day}, headers=_bearer())).status_code == 200
            assert (
                await client.post("/tools/find_slots", json={"date": day}, headers=_bearer(wrong))
            ).status_code == 401
            assert (await client.post("/mcp", json={}, headers=_bearer(wrong))).status_code == 401
            broken = await client.post(
                "/tools/find_slots", content=b"{", headers={**_bearer(), "Content-Type": "application/json"}
            )
            assert broken.status_code == 400
    finally:
        process.terminate()
        stdout, stderr = await process.communicate()
    output = (stdout + stderr).decode()
    assert "auth: 2 API keys" in output
    for secret in (KEY, OTHER_KEY, wrong, KEY[-12:], wrong[-12:]):
        assert secret not in output


def test_stored_http_api_keys_are_asked_for_without_echo_and_shown_masked(tmp_path):
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appt_tools", *args],
            env=_env(tmp_path),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            start_new_session=True,  # no controlling terminal: getpass reads stdin
        )

    stored = run("settings", "set", "http_api_keys", stdin=f"{KEY},{OTHER_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    shown = run("settings", "show")
    assert re.search(r"http_api_keys\s+…KEY1, …KEY2\s+\[stored\]", shown.stdout)
    assert KEY not in stored.stdout + stored.stderr + shown.stdout + shown.stderr
    assert run("settings", "set", "http_api_keys", stdin="short\n").returncode == 2
