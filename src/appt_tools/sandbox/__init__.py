"""A local stand-in for the Cal.com API v2 endpoints appt-tools uses, served over real HTTP.

    state.py     the world: one host, its event types, bookings, outbox; Cal.com's booking rules
    slots.py     working hours, the slot grid and busy intervals (pure)
    inputs.py    request validation with Cal.com's messages
    problems.py  the two error body shapes
    app.py       routes, guards (version, rate limit, auth) and JSON shapes, on Starlette
    server.py    uvicorn in the caller's event loop

It imports nothing from the product, and the product reaches it only over HTTP, like real Cal.com.
Besides the v2 paths it serves two sandbox-only helpers, with no version header or auth:
`GET /_sandbox/outbox[?bookingUid=…&to=…]` (the e-mails Cal.com would have sent; `kind` is one of
scheduled, requested, awaiting_approval, rescheduled, cancelled) and `GET /_sandbox/info` (API key,
host, event type ids).
"""

from appt_tools.sandbox.app import create_app
from appt_tools.sandbox.server import RunningSandbox, main, run_sandbox
from appt_tools.sandbox.state import (
    Attendee,
    BookingRecord,
    EventTypeDef,
    Location,
    OutboxMessage,
    SandboxState,
)

__all__ = [
    "Attendee",
    "BookingRecord",
    "EventTypeDef",
    "Location",
    "OutboxMessage",
    "RunningSandbox",
    "SandboxState",
    "create_app",
    "main",
    "run_sandbox",
]
