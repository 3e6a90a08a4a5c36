"""Webhooks from the sandbox, received over real loopback HTTP by a tiny raw-asyncio receiver: the CRUD
endpoints against Cal.com's spec, each booking trigger's payload, the signature, redelivery, held
deliveries released out of order, and confirm/decline.

Same frozen clock as test_sandbox.py (Monday 2030-10-28 12:00Z).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from calcom_sandbox import SandboxState, sign
from test_sandbox import (
    BOOKINGS,
    CONSULTATION,
    INTRO,
    MON_0900,
    NOW,
    TUE_0900,
    TUE_1000,
    Clock,
    book,
    booking_body,
    opened,
    refused,
    success,
)

SECRET = "whsec_sandbox_test"
ALL_BOOKING_TRIGGERS = [
    "BOOKING_CREATED",
    "BOOKING_REQUESTED",
    "BOOKING_RESCHEDULED",
    "BOOKING_CANCELLED",
    "BOOKING_REJECTED",
]
# NOTES §8: always in a booking payload, whatever the trigger.
PAYLOAD_KEYS = {
    "type", "title", "description", "additionalNotes", "startTime", "endTime", "organizer", "attendees",
    "responses", "userFieldsResponses", "location", "uid", "bookingId", "eventTypeId", "status", "metadata",
    "eventTitle", "eventDescription", "price", "currency", "length", "requiresConfirmation",
}  # fmt: skip
RESCHEDULE_KEYS = {"rescheduleUid", "rescheduleId", "rescheduleStartTime", "rescheduleEndTime", "rescheduledBy"}


# --- a receiver -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP/1.1 endpoint on loopback that records each request and answers `status` (with
    `location` for a redirect); `gate`, while unset, holds every answer back."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    location: str | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body))
            self.arrived.set()
            await self.gate.wait()
            extra = f"Location: {self.location}\r\n" if self.location else ""
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()

    def bodies(self, trigger: str | None = None) -> list[Any]:
        return [r.json for r in self.received if trigger is None or r.json["triggerEvent"] == trigger]


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.gate.set()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/cal"
    async with server:
        yield receiver


@asynccontextmanager
async def wired(
    secret: str | None = SECRET, triggers: list[str] | None = None, state: SandboxState | None = None
) -> AsyncIterator[tuple[Any, httpx2.AsyncClient, Receiver]]:
    """A sandbox, its client, and a receiver subscribed to every booking trigger."""
    async with receiving() as receiver, opened(state) as (sandbox, client):
        body: dict[str, Any] = {
            "subscriberUrl": receiver.url,
            "active": True,
            "triggers": triggers or ALL_BOOKING_TRIGGERS,
        }
        if secret is not None:
            body["secret"] = secret
        success(await client.post("/v2/webhooks", json=body), "POST", "/v2/webhooks", 201)
        yield sandbox, client, receiver


def signed_right(received: Received, secret: str = SECRET) -> bool:
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return received.headers["x-cal-signature-256"] == expected


# --- CRUD -----------------------------------------------------------------------------------------


async def test_webhook_crud_answers_cal_coms_shapes_with_no_version_header() -> None:
    async with opened() as (sandbox, client):
        body = {
            "subscriberUrl": "https://example.com/hook",
            "active": True,
            "triggers": ["BOOKING_CREATED", "BOOKING_CANCELLED"],
            "payloadTemplate": '{"uid":"{{uid}}"}',
            "secret": "s3",
            "unknownField": "dropped, as the global pipe whitelists",
        }
        created = success(await client.post("/v2/webhooks", json=body), "POST", "/v2/webhooks", 201)
        assert created == {
            "payloadTemplate": '{"uid":"{{uid}}"}',
            "userId": sandbox.state.host.id,
            "id": created["id"],
            "triggers": ["BOOKING_CREATED", "BOOKING_CANCELLED"],
            "subscriberUrl": "https://example.com/hook",
            "active": True,
            "secret": "s3",
        }
        path = f"/v2/webhooks/{created['id']}"
        bare = success(
            await client.post(
                "/v2/webhooks", json={"subscriberUrl": "https://example.com/2", "active": False, "triggers": []}
            ),
            "POST",
            "/v2/webhooks",
            201,
        )
        assert (bare["payloadTemplate"], bare["secret"]) == (None, None)

        listed = success(await client.get("/v2/webhooks", headers=BOOKINGS), "GET", "/v2/webhooks")
        assert [w["id"] for w in listed] == [created["id"], bare["id"]]
        assert [
            w["id"]
            for w in success(await client.get("/v2/webhooks", params={"take": 1, "skip": 1}), "GET", "/v2/webhooks")
        ] == [bare["id"]]
        assert success(await client.get(path), "GET", "/v2/webhooks/{webhookId}") == created

        patched = success(
            await client.patch(path, json={"active": False, "triggers": ["BOOKING_REJECTED"]}),
            "PATCH",
            "/v2/webhooks/{webhookId}",
        )
        assert (patched["active"], patched["triggers"], patched["secret"]) == (False, ["BOOKING_REJECTED"], "s3")

        deleted = success(await client.delete(path), "DELETE", "/v2/webhooks/{webhookId}")
        assert deleted == patched
        assert refused(await client.get(path), 404, "NotFoundException") == f"Webhook ({created['id']}) not found"
        assert list(sandbox.state.webhooks.webhooks) == [bare["id"]]


async def test_webhook_endpoints_refuse_as_cal_com_does() -> None:
    async with opened() as (sandbox, client):
        good = {"subscriberUrl": "https://example.com/hook", "active": True, "triggers": ["BOOKING_CREATED"]}
        await client.post("/v2/webhooks", json=good)
        duplicate = await client.post("/v2/webhooks", json=good)
        assert refused(duplicate, 409, "ConflictException") == (
            "Webhook with this subscriber url already exists for this user"
        )

        bad = await client.post("/v2/webhooks", json={"active": "yes", "triggers": ["BOOKING_CONFIRMED"]})
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["message"] == "Bad Request Exception"
        assert [(e["property"], sorted(e["constraints"])) for e in error["details"]["errors"]] == [
            ("active", ["isBoolean"]),
            ("subscriberUrl", ["isString"]),
            ("triggers", ["isEnum"]),
        ]
        take = await client.get("/v2/webhooks", params={"take": 251})
        assert take.json()["error"]["details"]["errors"][0]["constraints"] == {
            "max": "take must not be greater than 250"
        }

        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            no_key = await anonymous.get("/v2/webhooks")
            assert refused(no_key, 401, "UnauthorizedException").startswith("ApiAuthStrategy - No authentication")
        assert refused(await client.delete("/v2/webhooks/nope"), 404, "NotFoundException") == "Webhook (nope) not found"


# --- what each trigger delivers -------------------------------------------------------------------


async def test_a_new_booking_is_delivered_as_booking_created_signed_with_the_secret() -> None:
    async with wired() as (sandbox, client, receiver):
        booking = await book(
            client,
            TUE_0900,
            guests=["bob@example.com"],
            metadata={"crmId": "42"},
            bookingFieldsResponses={"notes": "first visit"},
        )
        await sandbox.state.webhooks_settled()
        [received] = receiver.received
        assert (received.method, received.path) == ("POST", "/hooks/cal")
        assert received.headers["content-type"] == "application/json"
        assert signed_right(received)
        [delivery] = sandbox.state.deliveries
        assert received.body == delivery.body and received.headers["x-cal-signature-256"] == delivery.signature
        assert (delivery.trigger, delivery.url, delivery.status_code, delivery.error) == (
            "BOOKING_CREATED",
            receiver.url,
            200,
            None,
        )
        assert delivery.body == json.dumps(received.json, separators=(",", ":")).encode()  # JSON.stringify's bytes

        sent = received.json
        assert list(sent) == ["triggerEvent", "createdAt", "payload"]
        assert (sent["triggerEvent"], sent["createdAt"]) == ("BOOKING_CREATED", "2030-10-28T12:00:00.000Z")
        payload = sent["payload"]
        assert set(payload) == PAYLOAD_KEYS
        assert payload | {"organizer": None, "attendees": None, "responses": None} == {
            "type": "consultation",
            "title": "Consultation between Sandbox Host and Ana Ruiz",
            "description": "A 30-minute consultation on Cal Video.",
            "additionalNotes": "first visit",
            "startTime": "2030-10-29T13:00:00Z",
            "endTime": "2030-10-29T13:30:00Z",
            "organizer": None,
            "attendees": None,
            "responses": None,
            "userFieldsResponses": {},
            "location": "integrations:daily",
            "uid": booking["uid"],
            "bookingId": booking["id"],
            "eventTypeId": CONSULTATION,
            "status": "ACCEPTED",
            "metadata": {"videoCallUrl": booking["meetingUrl"], "crmId": "42"},
            "eventTitle": "Consultation",
            "eventDescription": "A 30-minute consultation on Cal Video.",
            "price": 0,
            "currency": "usd",
            "length": 30,
            "requiresConfirmation": False,
        }
        assert payload["organizer"] == {
            "id": 1,
            "name": "Sandbox Host",
            "email": "host@example.com",
            "username": "host",
            "timeZone": "America/New_York",
            "language": {"locale": "en"},
            "timeFormat": "h:mma",
            "utcOffset": -240,
        }
        assert payload["attendees"] == [
            {
                "email": "ana@example.com",
                "name": "Ana Ruiz",
                "timeZone": "Europe/Madrid",
                "language": {"locale": "en"},
                "utcOffset": 60,
            },
            {
                "email": "bob@example.com",
                "name": "",
                "timeZone": "Europe/Madrid",
                "language": {"locale": "en"},
                "utcOffset": 60,
            },
        ]
        assert payload["responses"]["name"] == {"label": "your_name", "value": "Ana Ruiz"}
        assert payload["responses"]["email"] == {"label": "email_address", "value": "ana@example.com"}
        assert payload["responses"]["notes"] == {"label": "additional_notes", "value": "first visit"}
        assert payload["responses"]["guests"] == {"label": "additional_guests", "value": ["bob@example.com"]}
        assert payload["responses"]["location"]["value"] == {"value": "integrations:daily", "optionValue": ""}
        assert payload["responses"]["rescheduleReason"] == {"label": "reschedule_reason"}


async def test_without_a_secret_the_signature_header_says_so() -> None:
    async with wired(secret=None) as (sandbox, client, receiver):
        await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        [received] = receiver.received
        assert received.headers["x-cal-signature-256"] == "no-secret-provided" == sign(None, received.body)


async def test_a_booking_that_needs_confirmation_is_requested_pending_without_a_meeting() -> None:
    async with wired() as (sandbox, client, receiver):
        booking = await book(client, TUE_0900, INTRO)
        await sandbox.state.webhooks_settled()
        [sent] = receiver.bodies()
        assert sent["triggerEvent"] == "BOOKING_REQUESTED"
        payload = sent["payload"]
        assert set(payload) == PAYLOAD_KEYS
        assert (payload["uid"], payload["status"], payload["requiresConfirmation"]) == (booking["uid"], "PENDING", True)
        assert payload["metadata"] == {}  # the meeting is made when the host confirms


async def test_a_reschedule_is_delivered_with_the_new_uid_and_the_old_bookings_details() -> None:
    async with wired() as (sandbox, client, receiver):
        old = await book(client, TUE_0900)
        moved = await client.post(
            f"/v2/bookings/{old['uid']}/reschedule",
            json={"start": MON_0900, "rescheduledBy": "ana@example.com", "reschedulingReason": "Clash"},
            headers=BOOKINGS,
        )
        new = success(moved, "POST", "/v2/bookings/{bookingUid}/reschedule", 201)
        await sandbox.state.webhooks_settled()
        [sent] = receiver.bodies("BOOKING_RESCHEDULED")
        payload = sent["payload"]
        assert set(payload) == PAYLOAD_KEYS | RESCHEDULE_KEYS
        assert (payload["uid"], payload["bookingId"], payload["status"]) == (new["uid"], new["id"], "ACCEPTED")
        assert {k: payload[k] for k in RESCHEDULE_KEYS} == {
            "rescheduleUid": old["uid"],
            "rescheduleId": old["id"],
            "rescheduleStartTime": "2030-10-29T13:00:00Z",
            "rescheduleEndTime": "2030-10-29T13:30:00Z",
            "rescheduledBy": "ana@example.com",
        }
        assert (payload["startTime"], payload["endTime"]) == ("2030-11-04T14:00:00Z", "2030-11-04T14:30:00Z")
        assert payload["responses"]["rescheduleReason"] == {"label": "reschedule_reason", "value": "Clash"}
        assert [b["triggerEvent"] for b in receiver.bodies()] == ["BOOKING_CREATED", "BOOKING_RESCHEDULED"]


async def test_a_reschedule_that_needs_confirmation_again_is_requested_with_the_reschedule_fields() -> None:
    async with wired() as (sandbox, client, receiver):
        old = await book(client, TUE_0900, INTRO)
        # Without the host's key: the host's own key would make the new booking accepted (NOTES §12.5).
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            moved = await anonymous.post(
                f"/v2/bookings/{old['uid']}/reschedule", json={"start": MON_0900}, headers=BOOKINGS
            )
        new = success(moved, "POST", "/v2/bookings/{bookingUid}/reschedule", 201)
        await sandbox.state.webhooks_settled()
        first, second = receiver.bodies()
        assert (first["triggerEvent"], second["triggerEvent"]) == ("BOOKING_REQUESTED", "BOOKING_REQUESTED")
        payload = second["payload"]
        assert set(payload) == PAYLOAD_KEYS | RESCHEDULE_KEYS
        assert (payload["uid"], payload["rescheduleUid"], payload["status"]) == (new["uid"], old["uid"], "PENDING")
        assert payload["rescheduledBy"] is None


async def test_a_cancellation_is_delivered_with_its_reason_and_who_cancelled() -> None:
    async with wired() as (sandbox, client, receiver):
        booking = await book(client, TUE_0900)
        await client.post(f"/v2/bookings/{booking['uid']}/cancel", json={"cancellationReason": "Ill"}, headers=BOOKINGS)
        await sandbox.state.webhooks_settled()
        [sent] = receiver.bodies("BOOKING_CANCELLED")
        payload = sent["payload"]
        # handleCancelBooking.ts: no `metadata`, and `requestReschedule: false` (NOTES §12.12).
        assert set(payload) == (PAYLOAD_KEYS - {"metadata"}) | {
            "cancellationReason",
            "cancelledBy",
            "requestReschedule",
        }
        assert (payload["uid"], payload["status"]) == (booking["uid"], "CANCELLED")
        assert (payload["cancellationReason"], payload["cancelledBy"]) == ("Ill", "host@example.com")
        assert payload["requestReschedule"] is False


async def test_only_active_subscriptions_to_the_trigger_are_delivered() -> None:
    async with wired(triggers=["BOOKING_CANCELLED"]) as (sandbox, client, receiver):
        other = await client.post(
            "/v2/webhooks",
            json={"subscriberUrl": receiver.url + "/off", "active": False, "triggers": ["BOOKING_CREATED"]},
        )
        assert other.status_code == 201
        booking = await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        assert receiver.received == [] and sandbox.state.deliveries == []
        await client.post(f"/v2/bookings/{booking['uid']}/cancel", json={"cancellationReason": "x"}, headers=BOOKINGS)
        await sandbox.state.webhooks_settled()
        assert [b["triggerEvent"] for b in receiver.bodies()] == ["BOOKING_CANCELLED"]


async def test_a_payload_template_replaces_the_body_with_its_variables_filled_in() -> None:
    async with receiving() as receiver, opened() as (sandbox, client):
        template = (
            '{"what":"{{triggerEvent}}","uid":"{{uid}}","who":"{{attendees.0.name}}","host":"{{organizer.name}}"}'
        )
        body = {
            "subscriberUrl": receiver.url,
            "active": True,
            "triggers": ["BOOKING_CREATED"],
            "payloadTemplate": template,
            "secret": SECRET,
        }
        await client.post("/v2/webhooks", json=body)
        booking = await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        [received] = receiver.received
        assert received.json == {
            "what": "BOOKING_CREATED",
            "uid": booking["uid"],
            "who": "Ana Ruiz",
            "host": "Sandbox Host",
        }
        assert received.headers["content-type"] == "application/json" and signed_right(received)


# --- delivery mechanics ---------------------------------------------------------------------------


async def test_a_slow_subscriber_never_delays_the_api_answer() -> None:
    async with wired() as (sandbox, client, receiver):
        receiver.gate.clear()  # the receiver takes the request and does not answer yet
        await book(client, TUE_0900)
        async with asyncio.timeout(5):
            await receiver.arrived.wait()
        [delivery] = sandbox.state.deliveries
        assert not delivery.finished
        with pytest.raises(TimeoutError):
            await sandbox.state.webhooks_settled(timeout=0.05)
        receiver.gate.set()
        await sandbox.state.webhooks_settled()
        assert (delivery.finished, delivery.status_code) == (True, 200)


async def test_redirects_are_not_followed_and_failures_are_recorded() -> None:
    async with wired() as (sandbox, client, receiver):
        receiver.status, receiver.location = 307, receiver.url + "/elsewhere"
        await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        assert len(receiver.received) == 1
        assert sandbox.state.deliveries[0].status_code == 307

        dead = await client.post(
            "/v2/webhooks",
            json={"subscriberUrl": "http://127.0.0.1:9/nobody", "active": True, "triggers": ["BOOKING_CREATED"]},
        )
        assert dead.status_code == 201
        await book(client, TUE_1000)
        await sandbox.state.webhooks_settled()
        failed = [d for d in sandbox.state.deliveries if d.url.endswith("/nobody")]
        assert [(d.status_code, d.finished) for d in failed] == [(None, True)]
        assert failed[0].error and failed[0].error.startswith("ConnectError")


async def test_a_redelivery_sends_the_exact_same_bytes_and_signature() -> None:
    async with wired() as (sandbox, client, receiver):
        await book(client, TUE_0900)
        await sandbox.state.webhooks_settled()
        [first] = sandbox.state.deliveries
        again = await client.post("/_sandbox/webhooks/redeliver", json={"deliveryId": first.id})
        assert again.status_code == 201
        assert again.json()["data"]["redeliveryOf"] == first.id
        await sandbox.state.webhooks_settled()
        original, repeat = receiver.received
        assert repeat.body == original.body
        assert repeat.headers["x-cal-signature-256"] == original.headers["x-cal-signature-256"]
        assert [d.redelivery_of for d in sandbox.state.deliveries] == [None, first.id]

        missing = await client.post("/_sandbox/webhooks/redeliver", json={"deliveryId": "dlv_99"})
        assert missing.status_code == 404


async def test_held_deliveries_go_out_in_the_order_released() -> None:
    async with wired() as (sandbox, client, receiver):
        state = sandbox.state
        state.webhook_hold = True
        booking = await book(client, TUE_0900)
        await client.post(f"/v2/bookings/{booking['uid']}/cancel", json={"cancellationReason": "x"}, headers=BOOKINGS)
        request = await book(client, TUE_1000, INTRO)
        await state.webhooks_settled()
        assert receiver.received == []
        created, cancelled, requested = state.deliveries
        assert [d.held for d in state.deliveries] == [True, True, True]

        released = await state.release_webhooks(order=[cancelled.id, requested.id])
        assert [d.id for d in released] == [cancelled.id, requested.id, created.id]
        assert [b["triggerEvent"] for b in receiver.bodies()] == [
            "BOOKING_CANCELLED",
            "BOOKING_REQUESTED",
            "BOOKING_CREATED",
        ]
        assert receiver.bodies()[1]["payload"]["uid"] == request["uid"]
        with pytest.raises(ValueError, match="not held"):
            await state.release_webhooks(order=[created.id])


async def test_hold_and_release_work_over_http_too() -> None:
    async with wired() as (_, client, receiver):
        assert (await client.post("/_sandbox/webhooks/hold", json={"hold": True})).json()["data"] == {"hold": True}
        await book(client, TUE_0900)
        await book(client, TUE_1000)
        held = (await client.get("/_sandbox/webhooks/deliveries")).json()["data"]
        assert [(d["trigger"], d["held"], d["finished"]) for d in held] == [("BOOKING_CREATED", True, False)] * 2
        assert json.loads(held[0]["body"])["payload"]["startTime"] == "2030-10-29T13:00:00Z"

        await client.post("/_sandbox/webhooks/hold", json={"hold": False})
        released = await client.post("/_sandbox/webhooks/release", json={"order": [held[1]["id"], held[0]["id"]]})
        assert [d["statusCode"] for d in released.json()["data"]] == [200, 200]
        assert [b["payload"]["startTime"] for b in receiver.bodies()] == [
            "2030-10-29T14:00:00Z",
            "2030-10-29T13:00:00Z",
        ]
        bad = await client.post("/_sandbox/webhooks/release", json={"order": ["dlv_1"]})
        assert bad.status_code == 400 and "not held" in bad.json()["error"]["message"]


# --- confirm and decline --------------------------------------------------------------------------


async def test_confirming_a_pending_booking_accepts_it_and_delivers_booking_created() -> None:
    async with wired() as (sandbox, client, receiver):
        pending = await book(client, TUE_0900, INTRO)
        response = await client.post(f"/v2/bookings/{pending['uid']}/confirm", headers=BOOKINGS)
        confirmed = success(response, "POST", "/v2/bookings/{bookingUid}/confirm")
        assert (confirmed["uid"], confirmed["status"]) == (pending["uid"], "accepted")
        await sandbox.state.webhooks_settled()
        requested, created = receiver.bodies()
        assert (requested["triggerEvent"], created["triggerEvent"]) == ("BOOKING_REQUESTED", "BOOKING_CREATED")
        payload = created["payload"]
        assert (payload["uid"], payload["status"]) == (pending["uid"], "ACCEPTED")
        assert payload["metadata"] == {"videoCallUrl": confirmed["meetingUrl"]}
        assert payload["startTime"] == "2030-10-29T13:00:00.000Z"  # the confirm path's toISOString()
        kinds = [m.kind for m in sandbox.state.outbox if m.booking_uid == pending["uid"]]
        assert kinds == ["requested", "awaiting_approval", "scheduled", "scheduled"]

        again = await client.post(f"/v2/bookings/{pending['uid']}/confirm", headers=BOOKINGS)
        assert again.status_code == 400
        assert again.json()["error"] == {
            "code": "TRPCError",
            "message": "Bad request: Please check your request data and try again",
        }


async def test_declining_a_pending_booking_rejects_it_frees_the_slot_and_delivers_booking_rejected() -> None:
    async with wired() as (sandbox, client, receiver):
        pending = await book(client, TUE_0900, INTRO)
        response = await client.post(
            f"/v2/bookings/{pending['uid']}/decline", json={"reason": "Fully booked"}, headers=BOOKINGS
        )
        declined = success(response, "POST", "/v2/bookings/{bookingUid}/decline")
        assert declined["status"] == "rejected"
        await sandbox.state.webhooks_settled()
        [rejected] = receiver.bodies("BOOKING_REJECTED")
        payload = rejected["payload"]
        assert set(payload) == PAYLOAD_KEYS | {"rejectionReason"}
        assert (payload["uid"], payload["status"], payload["rejectionReason"]) == (
            pending["uid"],
            "REJECTED",
            "Fully booked",
        )
        assert [(m.kind, m.to) for m in sandbox.state.outbox if m.kind == "declined"] == [
            ("declined", "ana@example.com")
        ]
        assert (await book(client, TUE_0900))["status"] == "accepted"  # the slot is free again
        listed = await client.get("/v2/bookings", params={"status": "cancelled"}, headers=BOOKINGS)
        assert [b["uid"] for b in success(listed, "GET", "/v2/bookings")] == [pending["uid"]]

        for action in ("confirm", "decline"):
            refused_again = await client.post(f"/v2/bookings/{pending['uid']}/{action}", json={}, headers=BOOKINGS)
            assert refused_again.json()["error"]["code"] == "TRPCError"


async def test_confirm_and_decline_need_the_key_the_version_and_a_known_uid() -> None:
    state = SandboxState(now=Clock(NOW))
    async with opened(state) as (sandbox, client):
        pending = await book(client, TUE_0900, INTRO)
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            no_key = await anonymous.post(f"/v2/bookings/{pending['uid']}/confirm", headers=BOOKINGS)
            assert refused(no_key, 401, "UnauthorizedException").startswith("ApiAuthStrategy")
        no_version = await client.post(f"/v2/bookings/{pending['uid']}/decline")
        assert refused(no_version, 404, "NotFoundException").startswith("Cannot POST")
        unknown = await client.post("/v2/bookings/nope/confirm", headers=BOOKINGS)
        assert refused(unknown, 404, "NotFoundException") == "Booking with uid=nope was not found in the database"
        bad_reason = await client.post(f"/v2/bookings/{pending['uid']}/decline", json={"reason": 5}, headers=BOOKINGS)
        assert bad_reason.json()["error"]["details"]["errors"][0]["constraints"] == {
            "isString": "reason must be a string"
        }
        assert state.bookings[pending["uid"]].status == "pending"
        body = booking_body(TUE_1000)
        assert (await client.post("/v2/bookings", json=body, headers=BOOKINGS)).status_code == 201
