"""Webhooks as Cal.com keeps and sends them (NOTES §8), plus the controls tests need.

    Webhook      a user-level subscription: subscriberUrl, active, triggers, secret?, payloadTemplate?
    Delivery     one POST of one event to one subscriber: the exact body bytes and signature, and how it went
    WebhookHub   the subscriptions (CRUD), and the deliveries: each sent by its own asyncio task, never
                 blocking the API answer, over an httpx2 client made (on first use) from the factory the
                 running sandbox gives `start`, and closed by `stop`

Sending is Cal.com's `sendPayload`: `POST subscriberUrl`, body `{"triggerEvent","createdAt","payload"}`
serialised like JSON.stringify, `Content-Type: application/json`, `X-Cal-Signature-256` = lowercase hex
HMAC-SHA256 of the body keyed with the secret (`no-secret-provided` without one), redirects not followed,
no retries. A `payloadTemplate` replaces the body with the template, its `{{path}}` variables filled in
(a JSON template is re-serialised; any other is sent as `application/x-www-form-urlencoded`).

For tests: `hold` keeps new deliveries back until `release(order)` sends them one after another in the
order asked; `redeliver(id)` sends a delivery's exact bytes and signature again; `settled()` waits until
nothing is in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import httpx2

from calcom_sandbox.problems import Problem, not_found
from calcom_sandbox.slots import iso_z

TRIGGERS: Final = (
    "BOOKING_CREATED",
    "BOOKING_PAYMENT_INITIATED",
    "BOOKING_PAID",
    "BOOKING_RESCHEDULED",
    "BOOKING_REQUESTED",
    "BOOKING_CANCELLED",
    "BOOKING_REJECTED",
    "BOOKING_NO_SHOW_UPDATED",
    "FORM_SUBMITTED",
    "MEETING_ENDED",
    "MEETING_STARTED",
    "RECORDING_READY",
    "INSTANT_MEETING",
    "RECORDING_TRANSCRIPTION_GENERATED",
    "OOO_CREATED",
    "AFTER_HOSTS_CAL_VIDEO_NO_SHOW",
    "AFTER_GUESTS_CAL_VIDEO_NO_SHOW",
    "FORM_SUBMITTED_NO_EVENT",
    "DELEGATION_CREDENTIAL_ERROR",
)  # fmt: skip  (DELEGATION_CREDENTIAL_ERROR: in Cal.com's enum, not in the published document; NOTES §12.12)
NO_SECRET: Final = "no-secret-provided"
SIGNATURE_HEADER: Final = "X-Cal-Signature-256"
# sendPayload.ts sends the payload version on every delivery (NOTES §12.12).
VERSION_HEADER: Final = "X-Cal-Webhook-Version"
PAYLOAD_VERSION: Final = "2021-10-20"
MSG_DUPLICATE_URL: Final = "Webhook with this subscriber url already exists for this user"
_VARIABLE: Final = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass
class Webhook:
    id: str
    user_id: int
    subscriber_url: str
    active: bool
    triggers: tuple[str, ...]
    secret: str | None = None
    payload_template: str | None = None


@dataclass
class Delivery:
    """One POST to a subscriber. `at` is when Cal.com made it (the sandbox clock); `status_code` or
    `error` says how it went once `finished`. A redelivery is a new Delivery with the same bytes."""

    id: str
    webhook_id: str
    trigger: str
    url: str
    body: bytes
    signature: str
    content_type: str
    at: datetime
    redelivery_of: str | None = None
    held: bool = False
    finished: bool = False
    status_code: int | None = None
    error: str | None = None

    @property
    def payload(self) -> object:
        """The body parsed as JSON (None for a non-JSON template body)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def sign(secret: str | None, body: bytes) -> str:
    """Cal.com's `createWebhookSignature`: hex HMAC-SHA256 of the body, or the no-secret marker."""
    if not secret:
        return NO_SECRET
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def js_json(value: object) -> bytes:
    """JSON.stringify's bytes: no spaces, non-ASCII kept as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class WebhookHub:
    now: Callable[[], datetime]
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    hold: bool = False
    _make_client: Callable[[], httpx2.AsyncClient] | None = None
    _client: httpx2.AsyncClient | None = None
    _unsent: list[Delivery] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _next_delivery: int = 1

    # --- subscriptions ----------------------------------------------------------------------------

    def create(
        self,
        user_id: int,
        *,
        subscriber_url: str,
        active: bool,
        triggers: Sequence[str],
        secret: str | None = None,
        payload_template: str | None = None,
    ) -> Webhook:
        if any(w.user_id == user_id and w.subscriber_url == subscriber_url for w in self.webhooks.values()):
            raise Problem(409, MSG_DUPLICATE_URL)
        hook = Webhook(str(uuid.uuid4()), user_id, subscriber_url, active, tuple(triggers), secret, payload_template)
        self.webhooks[hook.id] = hook
        return hook

    def get(self, webhook_id: str) -> Webhook:
        found = self.webhooks.get(webhook_id)
        if found is None:
            raise not_found(f"Webhook ({webhook_id}) not found")
        return found

    def update(self, webhook_id: str, changes: Mapping[str, object]) -> Webhook:
        """Apply the given fields of UpdateWebhookInputDto (already validated)."""
        hook = self.get(webhook_id)
        for name, value in changes.items():
            if name == "subscriberUrl" and isinstance(value, str):
                hook.subscriber_url = value
            elif name == "active" and isinstance(value, bool):
                hook.active = value
            elif name == "triggers" and isinstance(value, list | tuple):
                hook.triggers = tuple(str(t) for t in value)
            elif name == "secret" and isinstance(value, str):
                hook.secret = value
            elif name == "payloadTemplate" and isinstance(value, str):
                hook.payload_template = value
        return hook

    def delete(self, webhook_id: str) -> Webhook:
        return self.webhooks.pop(self.get(webhook_id).id)

    def of_user(self, user_id: int, skip: int = 0, take: int = 250) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.user_id == user_id][skip : skip + take]

    # --- deliveries -------------------------------------------------------------------------------

    def emit(self, trigger: str, payload: Mapping[str, object]) -> list[Delivery]:
        """One delivery per active subscription to `trigger`, sent in the background."""
        created_at = iso_z(self.now())
        out = []
        for hook in list(self.webhooks.values()):
            if not hook.active or trigger not in hook.triggers:
                continue
            body, content_type = render(hook.payload_template, trigger, created_at, payload)
            out.append(self._queue(hook.id, trigger, hook.subscriber_url, body, sign(hook.secret, body), content_type))
        return out

    def delivery(self, delivery_id: str) -> Delivery:
        found = next((d for d in self.deliveries if d.id == delivery_id), None)
        if found is None:
            raise KeyError(delivery_id)
        return found

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery's exact body and signature again, to the same URL, as a new Delivery."""
        first = self.delivery(delivery_id)
        original = first.redelivery_of or first.id
        return self._queue(
            first.webhook_id, first.trigger, first.url, first.body, first.signature, first.content_type, original
        )

    async def release(self, order: Sequence[str] = ()) -> list[Delivery]:
        """Send the held deliveries one after another, each finished before the next starts: those named
        in `order` first, in that order, then the rest as they were made. `hold` stays as it is."""
        held = [d for d in self.deliveries if d.held]
        by_id = {d.id: d for d in held}
        missing = [i for i in order if i not in by_id]
        if missing:
            raise ValueError(f"not held: {', '.join(missing)}")
        chosen = [by_id[i] for i in order] + [d for d in held if d.id not in order]
        for delivery in chosen:
            delivery.held = False
            await self._send(delivery)
        return chosen

    async def settled(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (bounded by default)
        """Wait until no delivery is in flight (held ones do not count). TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    def start(self, make_client: Callable[[], httpx2.AsyncClient]) -> None:
        """Send from now on, over a client from `make_client` made when first needed, starting with
        what was made while nothing could send."""
        self._make_client = make_client
        unsent, self._unsent = self._unsent, []
        for delivery in unsent:
            self._spawn(delivery)

    async def stop(self) -> None:
        """Stop sending: deliveries in flight are cancelled (their error says so); the client is closed."""
        self._make_client = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _queue(
        self,
        webhook_id: str,
        trigger: str,
        url: str,
        body: bytes,
        signature: str,
        content_type: str,
        redelivery_of: str | None = None,
    ) -> Delivery:
        delivery = Delivery(
            f"dlv_{self._next_delivery}", webhook_id, trigger, url, body, signature, content_type, self.now()
        )
        delivery.redelivery_of = redelivery_of
        self._next_delivery += 1
        self.deliveries.append(delivery)
        if self.hold:
            delivery.held = True
        elif self._make_client is None:
            self._unsent.append(delivery)
        else:
            self._spawn(delivery)
        return delivery

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._send(delivery), name=f"sandbox webhook {delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, delivery: Delivery) -> None:
        try:
            if self._make_client is None:
                raise RuntimeError("the sandbox is not serving, so nothing can be sent")
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            headers = {
                "Content-Type": delivery.content_type,
                SIGNATURE_HEADER: delivery.signature,
                VERSION_HEADER: PAYLOAD_VERSION,
            }
            response = await client.post(delivery.url, content=delivery.body, headers=headers)
            delivery.status_code = response.status_code
        except asyncio.CancelledError:
            delivery.error = "cancelled: the sandbox stopped"
            raise
        except Exception as exc:
            delivery.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        finally:
            delivery.finished = True


def render(template: str | None, trigger: str, created_at: str, payload: Mapping[str, object]) -> tuple[bytes, str]:
    """The body and content type Cal.com sends for one event to one subscription."""
    if template is None:
        return js_json({"triggerEvent": trigger, "createdAt": created_at, "payload": payload}), "application/json"
    data = {**payload, "triggerEvent": trigger, "createdAt": created_at}
    filled = _VARIABLE.sub(lambda m: _template_text(_lookup(data, m.group(1))), template)
    if _is_json(template):
        # Cal.com parses the filled template and re-serialises it; what does not parse becomes `false`.
        return js_json(json.loads(filled) if _is_json(filled) else False), "application/json"
    return filled.encode(), "application/x-www-form-urlencoded"


def _lookup(data: object, path: str) -> object:
    for part in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _template_text(value: object) -> str:
    """Handlebars' `{{x}}`: JavaScript's String(x), HTML-escaped (Cal.com turns &quot; back into ")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Mapping):
        text = "[object Object]"
    elif isinstance(value, list):
        text = ",".join(_template_text(item) for item in value)
    else:
        text = str(value)
    for raw, escaped in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("'", "&#x27;"),
        ("`", "&#x60;"),
        ("=", "&#x3D;"),
    ):
        text = text.replace(raw, escaped)
    return text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
