"""Settings: read once at the entry point and passed down. The environment wins over stored values.

The Cal.com API key is a `SecretStr`: it prints as '**********' and is only unwrapped by the
Cal.com client's constructor.
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
ENV = {
    "calcom_api_key": "APPT_TOOLS_CALCOM_API_KEY",
    "calcom_base_url": "APPT_TOOLS_CALCOM_BASE_URL",
    "event_type_id": "APPT_TOOLS_EVENT_TYPE_ID",
    "timezone": "APPT_TOOLS_TIMEZONE",
    "duration_minutes": "APPT_TOOLS_DURATION_MINUTES",
    "business_name": "APPT_TOOLS_BUSINESS_NAME",
}
DATABASE_ENV = "APPT_TOOLS_DATABASE_URL"
SETTING_KEYS = tuple(ENV)
Source = Literal["environment", "stored", "default"]


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
    sources: dict[str, Source] = {}

    def masked_key(self) -> str:
        if self.calcom_api_key is None:
            return "(not set)"
        raw = self.calcom_api_key.get_secret_value()
        return f"{raw[:4]}…{raw[-4:]}" if len(raw) > 12 else "****"


def parse_setting(key: str, value: str) -> object:
    """Validate one setting as typed by a person; raises InvalidArgument naming the key."""
    value = value.strip()
    if key == "calcom_api_key":
        if not value:
            raise InvalidArgument(key, "must not be empty.")
        return SecretStr(value)
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
    raise InvalidArgument("key", f"unknown setting {key!r}; use one of {', '.join(SETTING_KEYS)}.")


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
