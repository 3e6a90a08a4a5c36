"""Issue 16, items 3, 4 and 6: tenants served by one deployment, each with its own sandbox Cal.com account,
numbers, keys and secrets, over real loopback HTTP (and a real MCP client session), on SQLite and on
PostgreSQL as an ordinary role (row-level security applies).

- the same inbound call shape, routed by the number dialled, books with the right tenant's Cal.com;
- one tenant's credentials cannot read, search, change or cancel another's appointments through /tools,
  MCP, Vapi, Retell, ElevenLabs or Cal.com webhooks: always "not found", never a hint that it exists;
- a tenant whose Cal.com hangs does not hold up another's calls; tenants sharing a key share its client;
  an idle tenant's service is closed and opens again on the next call.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from appt_tools.config import OperatorCredentials
from appt_tools.core.service import AppointmentService
from appt_tools.runtime import Runtime, TenantServices, open_service
from appt_tools.store import Store
from appt_tools.surfaces.http.app import HttpSettings
from calcom_sandbox import Fault, RunningSandbox, SandboxState, run_sandbox
from dashboard_support import served
from helpers import HOST_TZ, next_weekday, ordinary_role

OPERATOR = "k_operator_0123456789abcdefghijOP"
OPERATOR_VAPI = "operator-vapi-secret-0123456789"
OPERATOR_RETELL = "key_operator_retell_0123456789ab"
CALLER = "+14155550123"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Business:
    slug: str
    name: str
    number: str
    key: str
    vapi: str
    retell: str
    webhook: str


ACME = Business(
    "acme",
    "Acme Dental",
    "+14155550100",
    "k_acme_0123456789abcdefghijklmnA",
    "vapi-acme-0123",
    "key_acme_retell_0123456789",
    "whsec_acme",
)
BOLT = Business(
    "bolt",
    "Bolt Physio",
    "+14155550200",
    "k_bolt_0123456789abcdefghijklmnB",
    "vapi-bolt-0123",
    "key_bolt_retell_0123456789",
    "whsec_bolt",
)


@dataclass
class Deployment:
    service: AppointmentService  # the default tenant's (no Cal.com key, no HTTP key)
    client: httpx2.AsyncClient
    sandboxes: dict[str, RunningSandbox]
    ids: dict[str, int]

    @property
    def tenants(self) -> TenantServices:
        return Runtime.of(self.service).tenants


async def _configure(store: Store, business: Business, sandbox: RunningSandbox) -> None:
    for key, value in {
        "calcom_api_key": sandbox.api_key,
        "calcom_base_url": sandbox.base_url,
        "event_type_id": str(sandbox.state.default_event_type_id),
        "timezone": HOST_TZ,
        "business_name": business.name,
        "http_api_keys": business.key,
        "vapi_secret": business.vapi,
        "retell_api_key": business.retell,
        "calcom_webhook_secret": business.webhook,
    }.items():
        await store.set_setting(key, value)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or PostgreSQL reached as an ordinary role (not superuser, not BYPASSRLS), so that
    row-level security applies."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tenants.db'}"
    url: str = request.getfixturevalue("ordinary_role_url")
    return url


@pytest.fixture
async def ordinary_role_url(postgres_url: str) -> AsyncIterator[str]:
    owner = Store.from_url(postgres_url)
    try:
        async with ordinary_role(owner.engine) as url:
            yield url
    finally:
        await owner.aclose()


@pytest.fixture
async def deployment(database: str) -> AsyncIterator[Deployment]:
    async with (
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_a,
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_b,
        open_service(database_url=database, environ={}) as service,
    ):
        ids = {}
        for business, sandbox in ((ACME, sandbox_a), (BOLT, sandbox_b)):
            tenant = await service.store.tenants.add(business.slug, business.name, numbers=[business.number], now=NOW)
            await _configure(service.store.for_tenant(tenant.id), business, sandbox)
            ids[business.slug] = tenant.id
        operator = OperatorCredentials((SecretStr(OPERATOR),), SecretStr(OPERATOR_VAPI), SecretStr(OPERATOR_RETELL))
        async with (
            served(service, HttpSettings(operator=operator)) as base,
            httpx2.AsyncClient(base_url=base, timeout=30) as client,
        ):
            yield Deployment(service, client, {"acme": sandbox_a, "bolt": sandbox_b}, ids)


# --- the platforms' request shapes ----------------------------------------------------------------


def _bearer(key: str, tenant: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **({"X-Tenant": tenant} if tenant else {})}


def _vapi(name: str, arguments: dict[str, Any], dialled: str) -> dict[str, Any]:
    """Vapi's tool-calls message of an inbound call to `dialled`."""
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {
        "message": {
            "type": "tool-calls",
            "toolCallList": [call],
            "call": {"id": "call-1", "type": "inboundPhoneCall", "customer": {"number": CALLER}},
            "phoneNumber": {"id": "pn-1", "number": dialled},
            "customer": {"number": CALLER},
        }
    }


async def _through_vapi(
    client: httpx2.AsyncClient, secret: str, name: str, arguments: dict[str, Any], dialled: str
) -> dict[str, Any]:
    """The tool's result, or its error, from Vapi's answer (which is a 200 either way)."""
    answer = await client.post(
        "/vapi/tool-calls", json=_vapi(name, arguments, dialled), headers={"X-Vapi-Secret": secret}
    )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    return json.loads(result.get("result") or result["error"])  # type: ignore[no-any-return]


def _retell_signed(body: bytes, key: str) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    digest = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Retell-Signature": f"v={stamp},d={digest}"}


async def _through_retell(
    client: httpx2.AsyncClient, key: str, name: str, arguments: dict[str, Any], dialled: str
) -> dict[str, Any]:
    call = {"call_id": secrets.token_hex(4), "call_type": "phone_call", "direction": "inbound"}
    body = {"name": name, "call": {**call, "from_number": CALLER, "to_number": dialled}, "args": arguments}
    raw = json.dumps(body).encode()
    answer = await client.post("/retell/functions", content=raw, headers=_retell_signed(raw, key))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result.get("error", result)


async def _through_elevenlabs(
    client: httpx2.AsyncClient, key: str, name: str, arguments: dict[str, Any], dialled: str
) -> dict[str, Any]:
    body = {**arguments, "caller_id": CALLER, "called_number": dialled, "call_direction": "inbound"}
    answer = await client.post(f"/elevenlabs/tools/{name}", json=body, headers=_bearer(key))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result.get("error", result)


async def _through_tools(client: httpx2.AsyncClient, key: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(f"/tools/{name}", json=arguments, headers=_bearer(key))
    result: dict[str, Any] = answer.json()
    return result.get("error", result)


def _booking(start: str) -> dict[str, Any]:
    return {"start": start, "attendee_name": "Ana Ruiz", "attendee_email": "ana.ruiz@example.com", "title": "Check-up"}


# --- routing ----------------------------------------------------------------------------------------


async def test_the_same_inbound_call_routed_by_the_number_dialled_books_with_that_tenants_calcom(
    deployment: Deployment,
) -> None:
    client, day = deployment.client, next_weekday(3).isoformat()
    booked: dict[str, str] = {}
    for business in (ACME, BOLT):
        # The operator's one Vapi secret serves both businesses: the number dialled says which.
        slots = await _through_vapi(client, OPERATOR_VAPI, "find_slots", {"date": day}, business.number)
        result = await _through_vapi(
            client, OPERATOR_VAPI, "book_appointment", _booking(slots["slots"][0]["start"]), business.number
        )
        appointment = result["appointment"]
        assert (appointment["to_number"], appointment["business_name"]) == (business.number, business.name)
        booked[business.slug] = appointment["id"]
    for business in (ACME, BOLT):
        sandbox = deployment.sandboxes[business.slug]
        assert len(sandbox.state.bookings) == 1  # each booking reached its own tenant's Cal.com, once
        tenant = await deployment.tenants.service(deployment.ids[business.slug])
        assert (await tenant.get(booked[business.slug])).booking_uid in sandbox.state.bookings
    # Retell and ElevenLabs route the same way.
    for through, secret in ((_through_retell, OPERATOR_RETELL), (_through_elevenlabs, OPERATOR)):
        found = await through(client, secret, "search_appointments", {"mine": True}, BOLT.number)
        assert [item["id"] for item in found["items"]] == [booked["bolt"]]


async def test_an_unknown_number_or_slug_and_a_missing_tenant_are_refused_with_what_to_do(
    deployment: Deployment,
) -> None:
    client = deployment.client
    unknown = await client.post(
        "/vapi/tool-calls", json=_vapi("find_slots", {}, "+14155550999"), headers={"X-Vapi-Secret": OPERATOR_VAPI}
    )
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["code"] == "unknown_number"
    assert "+14155550999" in error["message"] and "appt-tools tenants set <slug> --numbers" in error["message"]
    # X-Tenant wins over the number.
    named = await client.post(
        "/vapi/tool-calls",
        json=_vapi("list_event_types", {}, "+14155550999"),
        headers={"X-Vapi-Secret": OPERATOR_VAPI, "X-Tenant": "acme"},
    )
    assert named.status_code == 200 and "error" not in named.json()["results"][0]
    no_such = await client.post("/tools/list_event_types", json={}, headers=_bearer(OPERATOR, "nope"))
    assert no_such.status_code == 404 and no_such.json()["error"]["code"] == "unknown_tenant"
    assert "'nope'" in no_such.json()["error"]["message"] and "tenants list" in no_such.json()["error"]["message"]
    empty = await client.post("/tools/list_event_types", json={}, headers={**_bearer(OPERATOR), "X-Tenant": ""})
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "x-tenant"
    assert "leave the header out" in empty.json()["error"]["message"]
    unnamed = await client.post("/tools/list_event_types", json={}, headers=_bearer(OPERATOR))
    assert unnamed.status_code == 400
    error = unnamed.json()["error"]
    assert (error["code"], error["field"]) == ("tenant_required", "x-tenant")
    assert "acme" in error["message"] and "bolt" in error["message"]
    # A tenant's own key needs no X-Tenant; with another tenant's slug it is refused.
    own = await client.post("/tools/list_event_types", json={}, headers=_bearer(ACME.key))
    assert own.status_code == 200
    foreign = await client.post("/tools/list_event_types", json={}, headers=_bearer(ACME.key, "bolt"))
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "wrong_tenant"
    # No credential at all is the same 401 as ever.
    assert (await client.post("/tools/list_event_types", json={})).status_code == 401


# --- isolation --------------------------------------------------------------------------------------


async def test_one_tenants_credentials_cannot_see_or_touch_anothers_appointments_through_any_surface(
    deployment: Deployment,
) -> None:
    client, day = deployment.client, next_weekday(3).isoformat()
    slots = await _through_tools(client, ACME.key, "find_slots", {"date": day})
    booked = await _through_tools(
        client,
        ACME.key,
        "book_appointment",
        {
            **_booking(slots["slots"][0]["start"]),
            "to_number": ACME.number,
            "from_number": CALLER,
            "call_type": "inbound",
        },
    )
    target = booked["appointment"]["id"]
    made_up = "apt_" + "0" * (len(target) - 4)
    later = slots["slots"][1]["start"]
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("get_appointment", {"appointment_id": target}),
        ("update_appointment", {"appointment_id": target, "title": "Hijacked"}),
        ("reschedule", {"appointment_id": target, "new_start": later}),
        ("cancel", {"appointment_id": target}),
    ]

    async def bolt_tools(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await _through_tools(client, BOLT.key, name, args)

    async def bolt_vapi(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await _through_vapi(client, BOLT.vapi, name, args, BOLT.number)

    async def bolt_retell(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await _through_retell(client, BOLT.retell, name, args, BOLT.number)

    async def bolt_elevenlabs(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await _through_elevenlabs(client, BOLT.key, name, args, BOLT.number)

    async def operator_as_bolt(name: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = await client.post(f"/tools/{name}", json=args, headers=_bearer(OPERATOR, "bolt"))
        result: dict[str, Any] = answer.json()
        return result.get("error", result)

    surfaces = [bolt_tools, bolt_vapi, bolt_retell, bolt_elevenlabs, operator_as_bolt]
    async with (
        httpx2.AsyncClient(headers=_bearer(BOLT.key), timeout=30) as http,
        Client(streamable_http_client(str(client.base_url).rstrip("/") + "/mcp", http_client=http)) as mcp,
    ):

        async def bolt_mcp(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await mcp.call_tool(name, args)
            if result.is_error:
                return json.loads(result.content[0].text)  # type: ignore[union-attr,no-any-return]
            return dict(result.structured_content or {})

        surfaces.append(bolt_mcp)
        for surface in surfaces:
            for name, args in attempts:
                refused = await surface(name, args)
                assert refused.get("code") == "appointment_not_found", (surface.__name__, name, refused)
                # Word for word what an id that never existed gets: nothing tells the two apart.
                never = await surface(name, {**args, "appointment_id": made_up})
                assert refused["message"].replace(target, made_up) == never["message"], (surface.__name__, name)
            for query in ({"query": "Ana Ruiz"}, {"phone": CALLER}, {"query": "ana.ruiz@example.com"}):
                found = await surface("search_appointments", query)
                assert found["total"] == 0 and found["items"] == [], (surface.__name__, query)

    # A Cal.com webhook about acme's booking, signed with bolt's secret: refused on acme's route, and on
    # bolt's route it finds nothing of acme's.
    acme = await deployment.tenants.service(deployment.ids["acme"])
    uid = (await acme.get(target)).booking_uid
    body = json.dumps(
        {
            "triggerEvent": "BOOKING_CANCELLED",
            "createdAt": NOW.isoformat(),
            "payload": {"uid": uid, "status": "CANCELLED"},
        }
    ).encode()
    signed_by_bolt = {
        "Content-Type": "application/json",
        "X-Cal-Signature-256": hmac.new(BOLT.webhook.encode(), body, hashlib.sha256).hexdigest(),
    }
    assert (await client.post("/webhooks/calcom/acme", content=body, headers=signed_by_bolt)).status_code == 401
    assert (await client.post("/webhooks/calcom/nope", content=body, headers=signed_by_bolt)).status_code == 401
    on_bolt = await client.post("/webhooks/calcom/bolt", content=body, headers=signed_by_bolt)
    assert on_bolt.status_code == 200 and on_bolt.json()["repaired"] == 0

    # Acme's appointment is as it was, in its store and in its Cal.com; bolt's Cal.com was never asked to act.
    kept = await acme.get(target)
    assert (kept.status.value, kept.title) == ("active", "Check-up")
    assert deployment.sandboxes["acme"].state.bookings[uid].status == "accepted"
    assert deployment.sandboxes["bolt"].state.bookings == {}
    own = await _through_tools(client, ACME.key, "search_appointments", {"query": "Ana Ruiz"})
    assert [item["id"] for item in own["items"]] == [target]


# --- per-tenant Cal.com -----------------------------------------------------------------------------


async def test_a_tenant_whose_calcom_hangs_or_fails_does_not_hold_up_another(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tenants.db'}"
    async with (
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_a,
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_b,
        open_service(database_url=url, environ={"APPT_TOOLS_CALCOM_TIMEOUT": "8"}) as service,
    ):
        for business, sandbox in ((ACME, sandbox_a), (BOLT, sandbox_b)):
            tenant = await service.store.tenants.add(business.slug, business.name, numbers=[business.number], now=NOW)
            await _configure(service.store.for_tenant(tenant.id), business, sandbox)
        async with served(service) as base, httpx2.AsyncClient(base_url=base, timeout=30) as client:
            day = next_weekday(3).isoformat()
            for business in (ACME, BOLT):  # both warm: event types synced, clients made
                assert (await _through_tools(client, business.key, "find_slots", {"date": day}))["slots"]

            # Acme's Cal.com stops answering: its call hangs until its own time budget runs out.
            sandbox_a.state.faults.add(Fault("timeout", "*", times=None, seconds=12))
            # (days not asked before: the slot cache would answer them without Cal.com)
            hanging = asyncio.create_task(
                _through_tools(client, ACME.key, "find_slots", {"date": next_weekday(6).isoformat()})
            )
            async with asyncio.timeout(10):
                while not sandbox_a.state.fault_log:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            # Meanwhile bolt's calls go through (its own client, pool, pacing and breaker).
            slots = await _through_tools(client, BOLT.key, "find_slots", {"date": next_weekday(7).isoformat()})
            booked = await _through_tools(
                client,
                BOLT.key,
                "book_appointment",
                {
                    **_booking(slots["slots"][0]["start"]),
                    "to_number": BOLT.number,
                    "from_number": CALLER,
                    "call_type": "inbound",
                },
            )
            assert booked["appointment"]["status"] == "active"
            assert not hanging.done(), "bolt's calls finished while acme's was still waiting on its Cal.com"
            assert (await hanging)["code"].startswith("calcom_")

            # 503s and a 429 on acme's account: acme is told, bolt is not touched.
            sandbox_a.state.faults.clear()
            sandbox_a.state.faults.add(Fault("status", "*", times=None, status=503))
            failed = await _through_tools(client, ACME.key, "find_slots", {"date": next_weekday(4).isoformat()})
            assert failed["code"].startswith("calcom_")
            sandbox_a.state.faults.clear()
            sandbox_a.state.faults.add(Fault("rate_limit", "*", times=None))
            limited = await _through_tools(client, ACME.key, "find_slots", {"date": next_weekday(5).isoformat()})
            assert limited["code"].startswith("calcom_")
            assert (await _through_tools(client, BOLT.key, "find_slots", {"date": next_weekday(5).isoformat()}))[
                "slots"
            ]
            sandbox_a.state.faults.clear()


async def test_tenants_sharing_a_calcom_key_share_one_client_and_an_idle_tenant_is_closed_and_reopened(
    sandbox: RunningSandbox, db_url: str
) -> None:
    clock = [0.0]
    async with open_service(database_url=db_url, environ={}) as service:
        ids = []
        for business in (ACME, BOLT):
            tenant = await service.store.tenants.add(business.slug, business.name, numbers=[business.number], now=NOW)
            await _configure(service.store.for_tenant(tenant.id), business, sandbox)  # one Cal.com key for both
            ids.append(tenant.id)
        clients = Runtime.of(service).clients
        assert clients is not None
        # the runtime's own, but with a clock the test moves
        tenants = TenantServices(service, clients=clients, environ={}, idle_seconds=60, monotonic=lambda: clock[0])
        acme, bolt = [await tenants.service(i) for i in ids]
        assert acme.calcom is bolt.calcom and len(tenants.clients) == 1
        assert (acme.settings.business_name, bolt.settings.business_name) == (ACME.name, BOLT.name)
        clock[0] = 30.0
        async with tenants.acting_for(ids[1]):
            clock[0] = 100.0
            assert await tenants.close_idle() == [ids[0]]  # bolt is in use: kept
        assert tenants.opened == [ids[1]] and len(tenants.clients) == 1  # bolt still holds the shared client
        clock[0] = 200.0
        assert await tenants.close_idle() == [ids[1]]
        assert tenants.opened == [] and len(tenants.clients) == 0
        reopened = await tenants.service(ids[0])
        assert reopened is not acme and reopened.settings.business_name == ACME.name
        assert await reopened.list_event_types()  # a working client again


# --- the commands: serve --tenant over stdio, reconcile every tenant ---------------------------------


async def _two_tenants_on_file(url: str, sandbox_a: RunningSandbox, sandbox_b: RunningSandbox) -> None:
    async with open_service(database_url=url, environ={}) as service:
        for business, sandbox in ((ACME, sandbox_a), (BOLT, sandbox_b)):
            tenant = await service.store.tenants.add(business.slug, business.name, numbers=[business.number], now=NOW)
            await _configure(service.store.for_tenant(tenant.id), business, sandbox)


async def test_serve_tenant_over_stdio_acts_for_that_tenant_and_reconcile_goes_through_every_tenant(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tenants.db'}"
    env = {"APPT_TOOLS_DATABASE_URL": url, "APPT_TOOLS_RECONCILE_MINUTES": "0", "PYTHONUNBUFFERED": "1"}
    async with (
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_a,
        run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox_b,
    ):
        await _two_tenants_on_file(url, sandbox_a, sandbox_b)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "appt_tools", "serve", "--tenant", "bolt"], env=env
        )
        async with Client(params) as mcp:
            found = await mcp.call_tool("find_slots", {"date": next_weekday(3).isoformat()})
            assert not found.is_error, found.content
            start = (found.structured_content or {})["slots"][0]["start"]
            booked = await mcp.call_tool(
                "book_appointment",
                {**_booking(start), "to_number": BOLT.number, "from_number": CALLER, "call_type": "inbound"},
            )
            assert not booked.is_error, booked.content
            assert (booked.structured_content or {})["appointment"]["business_name"] == BOLT.name
        assert len(sandbox_b.state.bookings) == 1 and sandbox_a.state.bookings == {}

        async def command(*args: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "appt_tools", *args, env=env, stdout=PIPE, stderr=PIPE
            )
            out, err = await process.communicate()
            return process.returncode or 0, out.decode(), err.decode()

        code, out, err = await command("reconcile")
        assert code == 0, err
        lines = out.splitlines()
        assert "acme: checked 0 appointment(s); repaired 0; unresolved 0" in lines
        assert "bolt: checked 1 appointment(s); repaired 0; unresolved 0" in lines
        assert "default: skipped (no Cal.com key)" in lines
        code, out, err = await command("reconcile", "--tenant", "bolt")
        assert (code, out.strip()) == (0, "checked 1 appointment(s); repaired 0; unresolved 0"), err
        code, out, err = await command("reconcile", "--tenant", "nope")
        assert code == 2 and "There is no tenant 'nope'" in err and "tenants list" in err
        code, out, err = await command("serve", "--transport", "http", "--tenant", "bolt")
        assert code == 2 and "--tenant is for MCP over stdio" in err
