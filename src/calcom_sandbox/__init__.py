"""A local stand-in for the Cal.com API v2 endpoints appt-tools uses, served over real HTTP.

What it models: one host with Cal.com's booking rules (slots, buffers, minimum notice, confirmation,
reschedule = new uid, the 400/409 of taken slots), Cal.com's error bodies, version routing, auth and
throttler (NOTES §2-§6); the e-mails and the signed webhooks Cal.com sends (§8); and, for tests, faults
that Cal.com or the network in front of it may cause: latency, 5xx, timeouts, dropped connections,
rate-limit blocks, garbled bodies, before or after the operation is carried out.

    records.py        the plain data: host, event types, bookings, e-mails, booking queries
    state.py          the world and Cal.com's booking rules; emits e-mails and webhooks on each change
    slots.py          working hours, the slot grid and busy intervals (pure)
    ratelimit.py      the throttler: per-credential windows and blocks
    inputs.py         request validation with Cal.com's messages (bookings, slots)
    webhook_inputs.py validation of the webhook and decline bodies (Cal.com's global pipe)
    problems.py       the error body shapes
    handlers.py       the v2 endpoints (bookings, confirm/decline, slots, event types, me, webhooks)
    shapes.py         the JSON shapes of the answers
    payloads.py       the `payload` of booking webhooks
    webhooks.py       subscriptions, signed background deliveries, hold/release/redeliver for tests
    faults.py         the fault model: Fault, the armed faults of a sandbox, the log of those that fired
    answers.py        what a fault looks like on the wire
    app.py            routes, guards (version, rate limit, auth) and fault injection, on Starlette
    control.py        the sandbox-only `/_sandbox/*` endpoints
    clock.py          the harness's clock: runs like the wall clock, from where it was started or set
    server.py         uvicorn in the caller's event loop; the webhook client; closing connections

It imports nothing from the product, and the product reaches it only over HTTP, like real Cal.com.

Sandbox-only endpoints (no version header, no auth, never faulted), listed in `control.py`:
`GET /_sandbox/info` (API key, host, event type ids), `GET /_sandbox/outbox[?bookingUid=…&to=…]`
(the e-mails Cal.com would have sent; `kind` is one of scheduled, requested, awaiting_approval,
rescheduled, cancelled, declined), `GET|POST|DELETE /_sandbox/faults`, and
`/_sandbox/webhooks/{deliveries,redeliver,hold,release}`; for harnesses, `POST /_sandbox/reset` and
`GET|POST /_sandbox/clock` (`clock.py`: a clock that runs from where it was started or set).

Faults from Python: `state.faults.add(Fault("status", "POST /v2/bookings", phase="after", status=503))`,
`state.faults.clear()`, `state.fault_log`; per request: header `X-Sandbox-Fault: drop;phase=after`.
Webhooks from Python: `state.deliveries`, `await state.webhooks_settled()`, `state.webhook_hold = True`,
`await state.release_webhooks(order=[…])`, `state.redeliver_webhook(id)`.
"""

from calcom_sandbox.app import create_app
from calcom_sandbox.clock import TravelClock
from calcom_sandbox.faults import Fault, FaultEvent
from calcom_sandbox.records import Attendee, BookingRecord, EventTypeDef, Location, OutboxMessage
from calcom_sandbox.server import RunningSandbox, harness_state, main, run_sandbox
from calcom_sandbox.state import SandboxState
from calcom_sandbox.webhooks import Delivery, Webhook, sign

__all__ = [
    "Attendee",
    "BookingRecord",
    "Delivery",
    "EventTypeDef",
    "Fault",
    "FaultEvent",
    "Location",
    "OutboxMessage",
    "RunningSandbox",
    "SandboxState",
    "TravelClock",
    "Webhook",
    "create_app",
    "harness_state",
    "main",
    "run_sandbox",
    "sign",
]
