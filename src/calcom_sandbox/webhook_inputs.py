"""Request validation for the webhook endpoints and for decline, as Cal.com's global ValidationPipe does
it: unknown fields are dropped, not refused, and errors are the generic "Bad Request Exception" with the
class-validator errors under `details.errors` (NOTES §4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from calcom_sandbox.inputs import bounded_int
from calcom_sandbox.problems import bad_request, invalid_query
from calcom_sandbox.webhooks import TRIGGERS

Errors = list[tuple[str, dict[str, str]]]
_ENUM_MESSAGE: Final = "each value in triggers must be one of the following values: " + ", ".join(TRIGGERS)


@dataclass(frozen=True)
class WebhookInput:
    """CreateWebhookInputDto or UpdateWebhookInputDto after the pipe: only the fields that were given."""

    fields: dict[str, object]

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if isinstance(value, str) else None


def parse_webhook(raw: object, *, partial: bool) -> WebhookInput:
    """The body of POST /v2/webhooks (`partial=False`) or PATCH /v2/webhooks/{id} (`partial=True`)."""
    if not isinstance(raw, dict):
        raise bad_request("Bad Request Exception")
    errors: Errors = []
    fields: dict[str, object] = {}
    # In the DTO's declaration order, which is the order class-validator reports in.
    for name, check in (
        ("payloadTemplate", _string),
        ("active", _boolean),
        ("subscriberUrl", _string),
        ("triggers", _triggers),
        ("secret", _string),
    ):
        optional = partial or name in ("payloadTemplate", "secret")
        if name not in raw and optional:
            continue
        constraints = check(name, raw.get(name))
        if constraints:
            errors.append((name, constraints))
        else:
            fields[name] = raw[name]
    if errors:
        raise invalid_query(errors)
    return WebhookInput(fields)


def parse_decline(raw: object) -> str | None:
    """DeclineBookingInput_2024_08_13: an optional `reason`."""
    body = {} if raw is None else raw
    if not isinstance(body, dict):
        raise bad_request("Bad Request Exception")
    if "reason" in body and not isinstance(body["reason"], str):
        raise invalid_query([("reason", {"isString": "reason must be a string"})])
    reason = body.get("reason")
    return reason if isinstance(reason, str) else None


def parse_take_skip(params: Mapping[str, str]) -> tuple[int, int]:
    """SkipTakePagination of GET /v2/webhooks: take 1-250 (250), skip 0 or more (0)."""
    errors: Errors = []
    take = bounded_int(params, "take", 250, 1, 250, errors)
    skip = bounded_int(params, "skip", 0, 0, None, errors)
    if errors:
        raise invalid_query(errors)
    return take, skip


def _string(name: str, value: object) -> dict[str, str]:
    return {} if isinstance(value, str) else {"isString": f"{name} must be a string"}


def _boolean(name: str, value: object) -> dict[str, str]:
    return {} if isinstance(value, bool) else {"isBoolean": f"{name} must be a boolean value"}


def _triggers(name: str, value: object) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(value, list):
        out["isArray"] = f"{name} must be an array"
    if not isinstance(value, list) or any(item not in TRIGGERS for item in value):
        out["isEnum"] = _ENUM_MESSAGE
    return out
