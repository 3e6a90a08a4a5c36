"""The JSON shapes the sandbox answers with: Cal.com's outputs (bookings, event types, webhooks) and
the sandbox-only records (outbox, webhook deliveries, faults)."""

from __future__ import annotations

import base64
from typing import Final

from calcom_sandbox.faults import FaultEvent
from calcom_sandbox.records import BookingField, BookingRecord, EventTypeDef, OutboxMessage, Reservation
from calcom_sandbox.slots import iso_z
from calcom_sandbox.state import SandboxState
from calcom_sandbox.webhooks import Delivery, Webhook

Body = dict[str, object]


def booking_json(b: BookingRecord, state: SandboxState) -> Body:
    """BookingOutput_2024_08_13, keys in Cal.com's order; optional keys only when they have a value."""
    host = state.host
    et = state.event_type(b.event_type_id)
    attendee: Body = {
        "name": b.attendee.name,
        "email": b.attendee.email,
        "timeZone": b.attendee.time_zone,
        "language": b.attendee.language,
        "absent": False,
    }
    if b.attendee.phone_number:
        attendee["phoneNumber"] = b.attendee.phone_number
    responses: Body = {"name": b.attendee.name, "email": b.attendee.email}
    if b.attendee.phone_number:
        responses["attendeePhoneNumber"] = b.attendee.phone_number
    if b.guests:
        responses["guests"] = list(b.guests)
    responses.update(b.responses)
    # Since PR #25413 (output.service.ts) both are always present, "" when unset (NOTES §12.6).
    cancelled = b.status in ("cancelled", "rejected")
    always: Body = {
        "cancellationReason": (b.cancellation_reason or "") if cancelled else "",
        "cancelledByEmail": (b.cancelled_by_email or "") if cancelled else "",
    }
    optional: Body = {
        "reschedulingReason": b.rescheduling_reason,
        "rescheduledByEmail": b.rescheduled_by_email,
        "rescheduledFromUid": b.rescheduled_from_uid,
        "rescheduledToUid": b.rescheduled_to_uid,
    }
    out: Body = {
        "id": b.id,
        "uid": b.uid,
        "title": b.title,
        "description": b.description,
        "hosts": [
            {
                "id": host.id,
                "name": host.name,
                "email": host.email,
                "username": host.username,
                "timeZone": host.time_zone,
            }
        ],
        "status": b.status,
        **always,
        **{key: value for key, value in optional.items() if value is not None},
        "start": iso_z(b.start),
        "end": iso_z(b.end),
        "duration": b.duration,
        "eventTypeId": b.event_type_id,
        "eventType": {"id": b.event_type_id, "slug": et.slug if et else ""},
        "meetingUrl": b.location,
        "location": b.location,
        "absentHost": False,
        "createdAt": iso_z(b.created_at),
        "updatedAt": iso_z(b.updated_at),
        "metadata": dict(b.metadata),
        "icsUid": f"{b.uid}@Cal.com",
        "attendees": [attendee],
    }
    if b.guests:
        out["guests"] = list(b.guests)
    out["bookingFieldsResponses"] = responses
    return out


def event_type_json(et: EventTypeDef, state: SandboxState) -> Body:
    """EventTypeOutput_2024_06_14 with the fields a Cal.com account's own event type carries."""
    host = state.host
    locations: list[Body] = []
    for location in et.locations:
        if location.type == "address":
            locations.append({"type": "address", "address": location.address, "public": True})
        elif location.type == "attendeePhone":
            locations.append({"type": "attendeePhone"})
        else:
            locations.append({"type": "integration", "integration": location.integration})
    out: Body = {"id": et.id, "lengthInMinutes": et.length}
    if et.length_options:
        out["lengthInMinutesOptions"] = list(et.length_options)
    out |= {
        "title": et.title,
        "slug": et.slug,
        "description": et.description,
        "locations": locations,
        "bookingFields": [{**f, "required": et.email_required} if f["slug"] == "email" else f for f in BOOKING_FIELDS]
        + [_field_json(field) for field in et.booking_fields],
        "disableGuests": False,
        "slotInterval": et.slot_interval,
        "minimumBookingNotice": et.minimum_notice,
        "beforeEventBuffer": et.before_buffer,
        "afterEventBuffer": et.after_buffer,
        "recurrence": None,
        "metadata": {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": False,
        "seatsPerTimeSlot": None,
        "forwardParamsSuccessRedirect": None,
        "successRedirectUrl": None,
        "isInstantEvent": False,
        "seatsShowAvailabilityCount": None,
        "scheduleId": None,
        # output-event-types.service.ts has no `requiresConfirmation`, only `confirmationPolicy` (§12.8).
        "confirmationPolicy": _confirmation_policy(et),
        "hidden": et.hidden,
        "bookingRequiresAuthentication": et.requires_authentication,
        "ownerId": host.id,
        "users": [
            {
                "id": host.id,
                "name": host.name,
                "username": host.username,
                "avatarUrl": None,
                "brandColor": "#292929",
                "darkBrandColor": "#fafafa",
                "weekStart": "Sunday",
                "metadata": {},
            }
        ],
    }
    return out


def _confirmation_policy(et: EventTypeDef) -> Body:
    if not et.requires_confirmation:
        return {"disabled": True}
    return {"type": "always", "blockUnconfirmedBookingsInBooker": et.block_unconfirmed}


def _field_json(field: BookingField) -> Body:
    """A custom booking field as output-event-types.service.ts writes it (`slug`, not `name`)."""
    out: Body = {
        "isDefault": False,
        "type": field.type,
        "slug": field.slug,
        "label": field.label,
        "required": field.required,
        "hidden": field.hidden,
    }
    if field.type in _WITH_PLACEHOLDER:
        out["placeholder"] = ""
    if field.options:
        out["options"] = list(field.options)
    return out


# The field types whose output carries a `placeholder` (the *FieldOutput_2024_06_14 schemas).
_WITH_PLACEHOLDER: Final = frozenset({"address", "multiemail", "number", "phone", "select", "text", "textarea", "url"})

# Cal.com's default booking fields as GET /v2/event-types returns them.
BOOKING_FIELDS: Final[list[Body]] = [
    {
        "isDefault": True,
        "type": "name",
        "slug": "name",
        "label": "Your name",
        "placeholder": "",
        "required": True,
        "disableOnPrefill": False,
    },
    {
        "isDefault": True,
        "type": "email",
        "slug": "email",
        "label": "Email address",
        "placeholder": "",
        "required": True,
        "hidden": False,
        "disableOnPrefill": False,
    },
    {"isDefault": True, "type": "text", "slug": "title", "required": True, "hidden": True},
    {"isDefault": True, "type": "textarea", "slug": "notes", "required": False, "hidden": False},
    {"isDefault": True, "type": "multiemail", "slug": "guests", "required": False, "hidden": False},
    {"isDefault": True, "type": "textarea", "slug": "rescheduleReason", "required": False, "hidden": False},
]


def reservation_json(reservation: Reservation) -> Body:
    """ReserveSlotOutput_2024_09_04."""
    return {
        "eventTypeId": reservation.event_type_id,
        "slotStart": iso_z(reservation.start),
        "slotEnd": iso_z(reservation.end),
        "slotDuration": round((reservation.end - reservation.start).total_seconds() / 60),
        "reservationUid": reservation.uid,
        "reservationDuration": reservation.minutes,
        "reservationUntil": iso_z(reservation.until),
    }


def outbox_json(message: OutboxMessage) -> Body:
    return {
        "to": message.to,
        "kind": message.kind,
        "subject": message.subject,
        "bookingUid": message.booking_uid,
        "at": iso_z(message.at),
    }


def webhook_json(hook: Webhook) -> Body:
    """UserWebhookOutputDto as Cal.com really sends it: a string id (a uuid), trigger names, and null
    for a missing payloadTemplate or secret (the spec says number, objects and strings)."""
    return {
        "payloadTemplate": hook.payload_template,
        "userId": hook.user_id,
        "id": hook.id,
        "triggers": list(hook.triggers),
        "subscriberUrl": hook.subscriber_url,
        "active": hook.active,
        "secret": hook.secret,
    }


def delivery_json(delivery: Delivery) -> Body:
    """A webhook delivery for `/_sandbox/webhooks/deliveries`: the body as text and as base64 bytes."""
    return {
        "id": delivery.id,
        "webhookId": delivery.webhook_id,
        "trigger": delivery.trigger,
        "url": delivery.url,
        "signature": delivery.signature,
        "contentType": delivery.content_type,
        "body": delivery.body.decode("utf-8", "replace"),
        "bodyBase64": base64.b64encode(delivery.body).decode(),
        "at": iso_z(delivery.at),
        "redeliveryOf": delivery.redelivery_of,
        "held": delivery.held,
        "finished": delivery.finished,
        "statusCode": delivery.status_code,
        "error": delivery.error,
    }


def fault_event_json(event: FaultEvent) -> Body:
    return {
        "faultId": event.fault_id,
        "source": event.source,
        "kind": event.kind,
        "phase": event.phase,
        "method": event.method,
        "path": event.path,
        "at": iso_z(event.at),
    }
