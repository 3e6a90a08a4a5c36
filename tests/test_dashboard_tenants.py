"""The dashboard with several businesses (issue 16, item 5), over real HTTP: a tenant's key sees and
touches its own business only (another's appointment by id is "not found", exactly like an id that never
existed); an operator key switches businesses with a CSRF-protected form kept in the session. Two
tenants, each with its own Cal.com account (one sandbox serving two accounts, told apart by API key)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from appt_tools.config import OperatorCredentials
from appt_tools.core.service import AppointmentService
from appt_tools.runtime import Runtime, open_service
from appt_tools.surfaces.http.app import HttpSettings
from calcom_sandbox import RunningSandbox, SandboxState, run_sandbox
from dashboard_support import csrf_of, served
from helpers import HOST_TZ, Raw, booking_args, next_weekday

OPERATOR = "k_operator_0123456789abcdefghijOP"
ACME_KEY = "k_acme_0123456789abcdefghijklmnA"
BOLT_KEY = "k_bolt_0123456789abcdefghijklmnB"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Deployment:
    base: str
    ids: dict[str, str]  # slug → the id of an appointment of that tenant
    services: dict[str, AppointmentService]


async def _book(service: AppointmentService, title: str, attendee: str) -> str:
    found = await Raw(service).find_slots(day=next_weekday().isoformat())
    args: dict[str, Any] = booking_args(found.slots[0].start.isoformat(), title=title, attendee_name=attendee)
    return (await Raw(service).book(**args)).id


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    acme_account, bolt_account = SandboxState(host_time_zone=HOST_TZ), SandboxState(host_time_zone=HOST_TZ)
    async with (
        run_sandbox(acme_account, accounts=[bolt_account]) as sandbox,
        open_service(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", environ={}) as service,
    ):
        ids, services = {}, {}
        for slug, name, key, account, title, attendee in (
            ("acme", "Acme Dental", ACME_KEY, acme_account, "Acme cleaning", "Ana Acme"),
            ("bolt", "Bolt Physio", BOLT_KEY, bolt_account, "Bolt massage", "Bo Bolt"),
        ):
            tenant = await service.store.tenants.add(slug, name, now=NOW)
            store = service.store.for_tenant(tenant.id)
            for setting, value in {
                "calcom_api_key": account.api_key,
                "calcom_base_url": _base(sandbox),
                "event_type_id": str(account.default_event_type_id),
                "timezone": HOST_TZ,
                "business_name": name,
                "http_api_keys": key,
            }.items():
                await store.set_setting(setting, value)
            services[slug] = await Runtime.of(service).tenants.service(tenant.id)
            ids[slug] = await _book(services[slug], title, attendee)
        operator = OperatorCredentials((SecretStr(OPERATOR),))
        async with served(service, HttpSettings(operator=operator)) as base:
            yield Deployment(base, ids, services)


def _base(sandbox: RunningSandbox) -> str:
    return sandbox.base_url


@pytest.fixture
async def browser_like(deployment: Deployment) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=deployment.base, timeout=30) as client:
        yield client


async def _sign_in(client: httpx2.AsyncClient, key: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/login")).text).group(1)  # type: ignore[union-attr]
    signed = await client.post("/login", data={"api_key": key, "csrf": token}, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    page = await client.get("/?view=table")
    assert page.status_code == 200
    return csrf_of(page.text)


def _switcher(html: str) -> list[tuple[str, str]]:
    """The header's business switcher: (slug, ' selected' or '') for each option."""
    found = re.search(r'<select id="tenant-switch" name="tenant">(.*?)</select>', html, re.S)
    assert found is not None, "no business switcher"
    return re.findall(r'<option value="([^"]+)"( selected)?>', found.group(1))


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


async def test_a_tenants_key_sees_only_its_business(deployment: Deployment, browser_like: httpx2.AsyncClient) -> None:
    client, acme, bolt = browser_like, deployment.ids["acme"], deployment.ids["bolt"]
    token = await _sign_in(client, ACME_KEY)
    table = (await client.get("/?view=table")).text
    assert _rows(table) == [acme] and "Bolt massage" not in table
    assert 'id="tenant-switch"' not in table and 'id="tenant-name">Acme Dental<' in table
    assert _rows((await client.get("/app/table?when=all")).text) == [acme]
    calendar = (await client.get(f"/calendar?month={next_weekday():%Y-%m}")).text
    assert "Acme cleaning" in calendar and "Bolt massage" not in calendar
    assert (await client.get(f"/app/appointments/{acme}")).status_code == 200
    assert "Acme Dental" in (await client.get("/settings")).text

    # Another tenant's appointment is "not found", word for word as an id that never existed.
    never = "apt_" + "0" * len(bolt.removeprefix("apt_"))
    for path in (f"/app/appointments/{bolt}", f"/app/appointments/{never}"):
        assert (await client.get(path)).status_code == 404
    theirs, nothing = (await client.get(f"/app/appointments/{bolt}")), (await client.get(f"/app/appointments/{never}"))
    assert theirs.json()["error"]["message"].replace(bolt, "X") == nothing.json()["error"]["message"].replace(
        never, "X"
    )
    headers = {"X-CSRF-Token": token}
    cancel = await client.post(f"/app/appointments/{bolt}/cancel", json={}, headers=headers)
    edit = await client.post(f"/app/appointments/{bolt}", json={"label": "mine now"}, headers=headers)
    assert (cancel.status_code, edit.status_code) == (404, 404)
    still = await deployment.services["bolt"].get(bolt)
    assert still.status.value == "active" and still.label != "mine now"

    # And it cannot switch to another business.
    switch = await client.post("/app/tenant", data={"tenant": "bolt", "csrf": token}, follow_redirects=False)
    assert switch.status_code == 403 and "belongs to one business" in switch.json()["error"]["message"]
    assert _rows((await client.get("/app/table?when=all")).text) == [acme]


async def test_an_operator_key_switches_businesses_in_the_session(
    deployment: Deployment, browser_like: httpx2.AsyncClient
) -> None:
    client = browser_like
    token = await _sign_in(client, OPERATOR)
    page = (await client.get("/?view=table")).text
    options = _switcher(page)
    assert [slug for slug, _ in options] == ["acme", "bolt", "default"]
    assert [slug for slug, chosen in options if chosen] == ["default"]  # the default tenant until one is chosen
    assert _rows(page) == []

    # Without the CSRF token, from another site, or naming no business: refused, nothing switched.
    assert (await client.post("/app/tenant", data={"tenant": "bolt"})).status_code == 403
    foreign = await client.post(
        "/app/tenant", data={"tenant": "bolt", "csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    unknown = await client.post("/app/tenant", data={"tenant": "nope", "csrf": token})
    assert unknown.status_code == 404 and "acme, bolt, default" in unknown.json()["error"]["message"]
    assert _rows((await client.get("/app/table?when=all")).text) == []

    switched = await client.post(
        "/app/tenant", data={"tenant": "bolt", "csrf": token, "next": "/calendar"}, follow_redirects=False
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/calendar"
    bolt = deployment.ids["bolt"]
    assert _rows((await client.get("/app/table?when=all")).text) == [bolt]
    assert (await client.get(f"/app/appointments/{deployment.ids['acme']}")).status_code == 404
    page = (await client.get("/?view=table")).text
    assert [slug for slug, chosen in _switcher(page) if chosen] == ["bolt"] and "Bolt Physio" in (
        await client.get("/settings")
    ).text
    # It acts for the chosen business: cancelling there cancels in Bolt's Cal.com account.
    cancelled = await client.post(f"/app/appointments/{bolt}/cancel", json={}, headers={"X-CSRF-Token": token})
    assert cancelled.status_code == 200, cancelled.text
    assert (await deployment.services["bolt"].get(bolt)).status.value == "cancelled"

    # A redirect target elsewhere is not followed.
    away = await client.post(
        "/app/tenant", data={"tenant": "acme", "csrf": token, "next": "//evil.example/"}, follow_redirects=False
    )
    assert away.headers["location"] == "/"
    assert _rows((await client.get("/app/table?when=all")).text) == [deployment.ids["acme"]]
