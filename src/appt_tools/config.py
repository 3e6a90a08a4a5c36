"""Settings: read once at the entry point and passed down. The environment wins over stored values.

Secrets (the Cal.com API key, the HTTP API keys, the Vapi secret and the Retell API key) are
`SecretStr`: they print as '**********', are shown masked by `settings show`, and are only unwrapped
where they are used (the Cal.com client's constructor, the HTTP app's credential checks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr

from appt_tools import validation
from appt_tools.errors import InvalidArgument

DEFAULT_BASE_URL = "https://api.cal.com"
# Seconds one Cal.com write may take in all, retries and waits included (reads get 80% of it): a
# caller on the phone waits in silence, so a slow Cal.com must give up well before half a minute.
DEFAULT_CALCOM_TIMEOUT = 10.0
# A running server compares the store with Cal.com this often (0 turns it off); see sync.py.
DEFAULT_RECONCILE_MINUTES = 15
# Cal.com allows 120 requests a minute per API key; each server process paces itself to this. Several
# instances sharing one key should split it (see README, "Deploying at scale").
DEFAULT_CALCOM_RATE_LIMIT = 120
ENV = {
    "calcom_api_key": "APPT_TOOLS_CALCOM_API_KEY",
    "calcom_base_url": "APPT_TOOLS_CALCOM_BASE_URL",
    "event_type_id": "APPT_TOOLS_EVENT_TYPE_ID",
    "timezone": "APPT_TOOLS_TIMEZONE",
    "duration_minutes": "APPT_TOOLS_DURATION_MINUTES",
    "business_name": "APPT_TOOLS_BUSINESS_NAME",
    "calcom_timeout": "APPT_TOOLS_CALCOM_TIMEOUT",
    "http_api_keys": "APPT_TOOLS_HTTP_API_KEYS",
    "vapi_secret": "APPT_TOOLS_VAPI_SECRET",
    "retell_api_key": "APPT_TOOLS_RETELL_API_KEY",
    "calcom_webhook_secret": "APPT_TOOLS_CALCOM_WEBHOOK_SECRET",
    "reconcile_minutes": "APPT_TOOLS_RECONCILE_MINUTES",
    "calcom_rate_limit": "APPT_TOOLS_CALCOM_RATE_LIMIT",
    "http_stateless": "APPT_TOOLS_HTTP_STATELESS",
}
DATABASE_ENV = "APPT_TOOLS_DATABASE_URL"
SETTING_KEYS = tuple(ENV)
# Asked for without echo when `settings set` gets no value, and shown masked.
SECRET_KEYS = ("calcom_api_key", "http_api_keys", "vapi_secret", "retell_api_key", "calcom_webhook_secret")
# Long enough that guessing is hopeless; `python -c "import secrets; print(secrets.token_urlsafe(32))"` makes one.
MIN_HTTP_KEY_LENGTH = 24
Source = Literal["environment", "stored", "default"]
BOOLEAN_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def default_database_url() -> str:
    from platformdirs import user_data_dir

    return f"sqlite+aiosqlite:///{Path(user_data_dir('appt-tools')) / 'appointments.db'}"


def database_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(DATABASE_ENV) or default_database_url()


class Settings(BaseModel):
    calcom_api_key: SecretStr | None = None
    calcom_base_url: str = DEFAULT_BASE_URL
    event_type_id: int | None = None
    timezone: str | None = None
    duration_minutes: int | None = None
    business_name: str = ""
    calcom_timeout: float = DEFAULT_CALCOM_TIMEOUT
    http_api_keys: tuple[SecretStr, ...] = ()
    vapi_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None
    reconcile_minutes: int = DEFAULT_RECONCILE_MINUTES
    calcom_rate_limit: int = DEFAULT_CALCOM_RATE_LIMIT
    http_stateless: bool = False
    sources: dict[str, Source] = {}

    def masked_key(self) -> str:
        if self.calcom_api_key is None:
            return "(not set)"
        raw = self.calcom_api_key.get_secret_value()
        return f"{raw[:4]}…{raw[-4:]}" if len(raw) > 12 else "****"

    def shown(self, key: str) -> str:
        """A setting as `settings show` prints it: secrets masked, HTTP keys by their last four characters
        only (enough to tell which one to revoke)."""
        if key == "calcom_api_key":
            return self.masked_key()
        value = getattr(self, key)
        if key == "http_api_keys":
            return ", ".join(f"…{k.get_secret_value()[-4:]}" for k in value) or "(not set)"
        if isinstance(value, SecretStr):
            return "****"
        return "(not set)" if value in (None, "") else str(value)


def parse_setting(key: str, value: str) -> object:
    """Validate one setting as typed by a person; raises InvalidArgument naming the key."""
    value = value.strip()
    if key in ("calcom_api_key", "vapi_secret", "retell_api_key", "calcom_webhook_secret"):
        if not value:
            raise InvalidArgument(key, "must not be empty.")
        return SecretStr(value)
    if key == "http_api_keys":
        return _http_api_keys(value)
    if key == "calcom_base_url":
        if not value.startswith(("http://", "https://")):
            raise InvalidArgument(key, f"{value!r} is not an http(s) URL; e.g. 'https://api.cal.com'.")
        return value.rstrip("/")
    if key in ("event_type_id", "duration_minutes"):
        if not value.isdigit() or int(value) <= 0:
            raise InvalidArgument(key, f"{value!r} is not a positive whole number.")
        return validation.duration(key, int(value)) if key == "duration_minutes" else int(value)
    if key == "timezone":
        validation.zone(key, value)
        return value
    if key == "business_name":
        return validation.text(key, value)
    if key == "reconcile_minutes":
        if not value.isdigit() or int(value) > 24 * 60:
            raise InvalidArgument(key, f"{value!r} is not a whole number of minutes from 0 (off) to 1440, e.g. 15.")
        return int(value)
    if key == "calcom_rate_limit":
        if not value.isdigit() or not 1 <= int(value) <= 10_000:
            raise InvalidArgument(
                key, f"{value!r} is not a whole number of requests a minute from 1 to 10000, e.g. 60."
            )
        return int(value)
    if key == "http_stateless":
        if value.lower() not in BOOLEAN_WORDS:
            raise InvalidArgument(key, f"{value!r} is not on or off; use true or false.")
        return BOOLEAN_WORDS[value.lower()]
    if key == "calcom_timeout":
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if not 1.0 <= seconds <= 60.0:
            raise InvalidArgument(key, f"{value!r} is not a number of seconds from 1 to 60, e.g. 10.")
        return seconds
    raise InvalidArgument("key", f"unknown setting {key!r}; use one of {', '.join(SETTING_KEYS)}.")


def _http_api_keys(value: str) -> tuple[SecretStr, ...]:
    """Comma-separated bearer keys. The messages never repeat a key, not even a bad one."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise InvalidArgument("http_api_keys", "must list at least one key (several are separated by commas).")
    for number, key in enumerate(keys, 1):
        if len(key) < MIN_HTTP_KEY_LENGTH or any(c.isspace() for c in key):
            raise InvalidArgument(
                "http_api_keys",
                f"key {number} is too short or contains spaces; use at least {MIN_HTTP_KEY_LENGTH} characters, "
                'e.g. from: python -c "import secrets; print(secrets.token_urlsafe(32))".',
            )
    return tuple(SecretStr(key) for key in keys)


def resolve(stored: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge stored settings with the environment (which wins)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    for key, env_name in ENV.items():
        raw, source = (env[env_name], "environment") if env.get(env_name) else (stored.get(key), "stored")
        if raw is None:
            sources[key] = "default"
            continue
        values[key] = parse_setting(key, raw)
        sources[key] = source  # type: ignore[assignment]
    return Settings.model_validate({**values, "sources": sources})
