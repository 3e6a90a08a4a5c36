"""The settings page: the Cal.com key (write-only), default event type, time zone, duration and
business name, stored with `store.set_setting` under the same keys and rules as `appt-tools settings
set` (`config.parse_setting`), then applied to the running service. Plus "Refresh event types" and
"Test connection", which says plainly what works and what does not."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from appt_tools import config, validation
from appt_tools.config import Settings
from appt_tools.core.service import AppointmentService
from appt_tools.errors import (
    AppError,
    CalcomAuthError,
    CalcomError,
    CalcomRateLimited,
    CalcomUnavailable,
    InvalidArgument,
    NotConfigured,
)
from appt_tools.runtime import Runtime
from appt_tools.surfaces.web import render
from appt_tools.surfaces.web.gate import json_body
from appt_tools.surfaces.web.session import Session
from appt_tools.surfaces.web.tenancy import Acting

# What the page edits, in order, with what a person calls it.
FIELDS = {
    "calcom_api_key": "Cal.com API key",
    "event_type_id": "Default event type",
    "timezone": "Time zone",
    "duration_minutes": "Duration override",
    "business_name": "Business name",
    "language": "Invite language",
}


class SettingsPage:
    def __init__(self, acting: Acting, *, sandbox: bool) -> None:
        self._acting = acting
        self.sandbox = sandbox

    @property
    def service(self) -> AppointmentService:
        """The service of the tenant this request acts for (web/tenancy.py)."""
        return self._acting.service

    async def context(self) -> dict[str, Any]:
        settings = self.service.settings
        stored = await Runtime.of(self.service).stored_settings()
        return {
            "settings": settings,
            "fields": FIELDS,
            "key_shown": settings.shown("calcom_api_key"),
            "stored_key_shown": _stored_key_shown(stored),
            "from_environment": {k: config.ENV[k] for k in FIELDS if settings.sources.get(k) == "environment"},
            "event_types": await self.service.catalog.synced(),
            "timezones": sorted(available_timezones()),
            "languages": sorted(validation.LANGUAGES, key=str.casefold),
            "sandbox": self.sandbox,
        }

    # --- endpoints ----------------------------------------------------------------------------

    async def save(self, request: Request, session: Session) -> Response:
        body = await json_body(request)
        updates, errors = await self._validated(body)
        if errors:
            first = next(iter(errors))
            problem = {"code": "invalid_argument", "message": errors[first], "field": first, "fields": errors}
            return render.json({"error": problem}, 422)
        await Runtime.of(self.service).save_settings(updates)
        notes = await self._apply(updates)
        message = "Saved." if updates else "Nothing to save."
        return render.json(
            {
                "message": message,
                "notes": notes,
                "key_shown": self.service.settings.shown("calcom_api_key"),
                "stored_key_shown": _stored_key_shown(await Runtime.of(self.service).stored_settings()),
            }
        )

    async def refresh(self, request: Request, session: Session) -> Response:
        types = await self.service.refresh_event_types()
        default = self.service.settings.event_type_id
        return render.json(
            {
                "message": f"Synced {len(types)} event type{'s' if len(types) != 1 else ''} from Cal.com.",
                "event_types": [
                    {"id": t.id, "title": t.title, "length_minutes": t.length_minutes, "hidden": t.hidden}
                    for t in types
                ],
                "default": default,
            }
        )

    async def test(self, request: Request, session: Session) -> Response:
        checks = await connection_checks(self.service)
        ok = all(passed for passed, _ in checks)
        summary = "Cal.com is connected and ready for bookings." if ok else "Cal.com is not ready: see below."
        return render.json({"ok": ok, "summary": summary, "checks": [{"ok": p, "text": t} for p, t in checks]})

    # --- saving -------------------------------------------------------------------------------

    async def _validated(self, body: dict[str, Any]) -> tuple[dict[str, str | None], dict[str, str]]:
        """The values to store (None removes a stored value) and, per field, what is wrong."""
        updates: dict[str, str | None] = {}
        errors: dict[str, str] = {}
        for key, name in FIELDS.items():
            if key not in body:
                continue
            raw = body[key]
            if not isinstance(raw, str | None):
                errors[key] = f"{name} must be text."
                continue
            value = (raw or "").strip()
            if key == "calcom_api_key" and not value:
                continue  # write-only: an empty box keeps the stored key
            if not value:
                updates[key] = None
                continue
            try:
                config.parse_setting(key, value)
            except InvalidArgument as exc:
                detail = exc.message.removeprefix(f"{exc.field}: ")
                errors[key] = f"{name}: {detail}"
                continue
            updates[key] = value
        wanted = updates.get("event_type_id")
        known = await self.service.catalog.synced()
        if wanted is not None and known and int(wanted) not in {t.id for t in known}:
            errors["event_type_id"] = "Default event type: choose one of the synced event types (or refresh them)."
        return updates, errors

    async def _apply(self, updates: dict[str, str | None]) -> list[str]:
        """Use the saved values in the running service. The environment still wins, as at start-up."""
        current = self.service.settings
        values: dict[str, object] = {}
        sources: dict[str, config.Source] = {}
        notes: list[str] = []
        for key, raw in updates.items():
            if current.sources.get(key) == "environment":
                notes.append(
                    f"{FIELDS[key]} is set in the environment ({config.ENV[key]}), which wins over the stored "
                    "value; it stays as it is until that is removed and the server restarted."
                )
                continue
            if key == "calcom_api_key" and self.sandbox:
                notes.append(
                    "This server runs on the Cal.com sandbox: the key is stored, and used when the server is "
                    "started without --sandbox."
                )
                continue
            values[key] = Settings.model_fields[key].default if raw is None else config.parse_setting(key, raw)
            sources[key] = "default" if raw is None else "stored"
        Runtime.of(self.service).apply(values, sources)
        if isinstance(values.get("calcom_api_key"), SecretStr):
            notes.append("The new key is in use now. Use Test connection to check it.")
        return notes


def _stored_key_shown(stored: dict[str, str]) -> str:
    raw = stored.get("calcom_api_key")
    return Settings(calcom_api_key=SecretStr(raw) if raw else None).shown("calcom_api_key")


async def connection_checks(service: AppointmentService) -> list[tuple[bool, str]]:
    """What works and what does not, in order: a key, Cal.com reachable and accepting it, event types."""
    try:
        client = service.calcom
    except NotConfigured:
        return [(False, "No Cal.com API key is set. Paste one in the Cal.com API key box and save.")]
    checks = [(True, "A Cal.com API key is set.")]
    try:
        me = await client.me()
    except AppError as exc:
        return [*checks, (False, _calcom_problem(exc, service.settings.calcom_base_url))]
    checks.append((True, f"Cal.com accepted the key: signed in as {me.username} (time zone {me.time_zone})."))
    try:
        types = await client.event_types(me.username)
    except AppError as exc:
        return [
            *checks,
            (False, "Reading the event types failed. " + _calcom_problem(exc, service.settings.calcom_base_url)),
        ]
    bookable = [t for t in types if not t.hidden]
    if not bookable:
        return [*checks, (False, "Cal.com has no bookable event types for this account: create one in Cal.com.")]
    names = ", ".join(t.title for t in bookable[:5]) + (", …" if len(bookable) > 5 else ".")
    checks.append((True, f"{len(bookable)} bookable event type{'s' if len(bookable) != 1 else ''}: {names}"))
    return checks


def _calcom_problem(exc: AppError, base_url: str) -> str:
    if isinstance(exc, CalcomAuthError):
        return (
            "Cal.com refused the API key: it may be mistyped, expired or deleted. Create a new one in Cal.com "
            "(Settings → Developer → API keys), paste it here and save."
        )
    if isinstance(exc, CalcomRateLimited):
        return "Cal.com is limiting how often we may ask (too many requests). Wait a minute and test again."
    if isinstance(exc, CalcomUnavailable):
        return f"Cal.com could not be reached at {base_url}: check the internet connection, or try again later."
    if isinstance(exc, CalcomError):
        return f"Cal.com answered with an error: {exc.message}"
    return exc.message
