"""POST /webhooks/calcom: signed by Cal.com, verified in constant time, and applied by re-reading Cal.com."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx2
from pydantic import SecretStr

from appt_tools.models import AppointmentStatus
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from helpers import Raw, booking_args, next_weekday
from test_http_app import serving

SECRET = "whsec-test-0123456789abcdef"
JSON = {"Content-Type": "application/json"}


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {**JSON, "X-Cal-Signature-256": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def _settings(secret: str | None = SECRET) -> HttpSettings:
    return HttpSettings(credentials=Credentials(calcom_webhook_secret=SecretStr(secret) if secret else None))


async def _cancelled_in_calcom(service: Any, sandbox: Any) -> tuple[Any, bytes]:
    slot = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0]
    booked = await Raw(service).book(**booking_args(slot.start.isoformat()))
    headers = {"Authorization": f"Bearer {sandbox.api_key}", "cal-api-version": "2024-08-13"}
    async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=headers) as http:
        answer = await http.post(f"/v2/bookings/{booked.booking_uid}/cancel", json={"cancellationReason": "Host away"})
        assert answer.status_code == 200
    body = {
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": datetime.now(UTC).isoformat(),
        "payload": {"uid": booked.booking_uid, "status": "CANCELLED", "cancellationReason": "Host away"},
    }
    return booked, json.dumps(body).encode()


async def test_a_signed_webhook_is_applied(service, sandbox):
    booked, body = await _cancelled_in_calcom(service, sandbox)
    async with serving(service, _settings()) as client:
        answer = await client.post("/webhooks/calcom", content=body, headers=_signed(body))
        again = await client.post("/webhooks/calcom", content=body, headers=_signed(body))  # redelivered
    assert answer.status_code == 200, answer.text
    assert answer.json()["repaired"] == 1 and again.json()["repaired"] == 0
    fixed = await service.get(booked.id)
    assert fixed.status is AppointmentStatus.CANCELLED and fixed.cancellation_reason == "Host away"


async def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(service, sandbox):
    booked, body = await _cancelled_in_calcom(service, sandbox)
    async with serving(service, _settings()) as client:
        wrong = await client.post("/webhooks/calcom", content=body, headers=_signed(body, "not-the-secret"))
        missing = await client.post("/webhooks/calcom", content=body, headers=JSON)
        tampered = await client.post("/webhooks/calcom", content=body + b" ", headers=_signed(body))
        literal = await client.post(
            "/webhooks/calcom", content=body, headers={**JSON, "X-Cal-Signature-256": "no-secret-provided"}
        )
    for answer in (wrong, missing, tampered, literal):
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert SECRET not in answer.text
    assert (await service.get(booked.id)).status is AppointmentStatus.ACTIVE


async def test_without_a_configured_secret_every_webhook_is_refused(service, sandbox):
    booked, body = await _cancelled_in_calcom(service, sandbox)
    async with serving(service, _settings(None)) as client:
        answer = await client.post("/webhooks/calcom", content=body, headers=_signed(body))
    assert answer.status_code == 401
    assert "APPT_TOOLS_CALCOM_WEBHOOK_SECRET" in answer.json()["error"]["message"]
    assert (await service.get(booked.id)).status is AppointmentStatus.ACTIVE


async def test_a_signed_body_that_is_not_json_is_a_400(service):
    body = b'{"triggerEvent": "BOOKING_CANCELLED", '
    async with serving(service, _settings()) as client:
        answer = await client.post("/webhooks/calcom", content=body, headers=_signed(body))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"


async def test_the_sandbox_delivers_signed_webhooks_that_keep_the_store_in_step(service, sandbox):
    slot = (await Raw(service).find_slots(day=next_weekday().isoformat())).slots[0]
    booked = await Raw(service).book(**booking_args(slot.start.isoformat()))
    headers = {"Authorization": f"Bearer {sandbox.api_key}", "cal-api-version": "2024-08-13"}
    async with serving(service, _settings()) as client:
        subscriber = str(client.base_url).rstrip("/") + "/webhooks/calcom"
        async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=headers) as calcom:
            created = await calcom.post(
                "/v2/webhooks",
                json={"subscriberUrl": subscriber, "active": True, "secret": SECRET, "triggers": ["BOOKING_CANCELLED"]},
            )
            assert created.status_code == 201, created.text
            cancelled = await calcom.post(
                f"/v2/bookings/{booked.booking_uid}/cancel", json={"cancellationReason": "Snow"}
            )
            assert cancelled.status_code == 200
        await sandbox.state.webhooks_settled(timeout=10)
    delivery = sandbox.state.deliveries[-1]
    assert delivery.status_code == 200, delivery
    fixed = await service.get(booked.id)
    assert fixed.status is AppointmentStatus.CANCELLED and fixed.cancellation_reason == "Snow"
