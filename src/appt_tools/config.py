"""Settings: declared once (`Settings`, a pydantic-settings model), read once at the entry point and
passed down. Two sources feed it, the environment (`APPT_TOOLS_<KEY>`, which wins) and the values stored
in the database (`appt-tools settings set`, the dashboard); `resolve` merges them and records where each
value came from.

Every raw string, from either source or typed by a person, is parsed by `parse_setting`, which refuses a
bad value with a message naming the key and a valid example; the limits it checks are the `Field`
constraints declared on `Settings`.

Secrets (the Cal.com API key, the HTTP API keys, the Vapi secret, the Retell API key and the Cal.com
webhook secret) are `SecretStr`: they print as '**********', are shown masked by `settings show`, and are
only unwrapped where they are used (the Cal.com client's constructor, the HTTP app's credential checks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from appt_tools import validation
from appt_tools.errors import InvalidArgument

DEFAULT_BASE_URL = "https://api.cal.com"
# Seconds one Cal.com write may take in all, retries and waits included (reads get 80% of it): a
# caller on the phone waits in silence, so a slow Cal.com must give up well before half a minute.
DEFAULT_CALCOM_TIMEOUT = 10.0
# A running server compares the store with Cal.com this often (0 turns it off); see core/reconcile.py.
DEFAULT_RECONCILE_MINUTES = 15
DEFAULT_HOLD_MINUTES = 5  # how long hold_slot holds a time (Cal.com's own reservation default)
# Cal.com allows 120 requests a minute per API key; each server process paces itself to this. Several
# instances sharing one key should split it (see docs/deployment.md).
DEFAULT_CALCOM_RATE_LIMIT = 120
DEFAULT_MCP_SESSIONS_PER_KEY = 50
DEFAULT_MCP_SESSION_IDLE_MINUTES = 10
DEFAULT_HTTP_READ_TIMEOUT = 30.0
ENV_PREFIX = "APPT_TOOLS_"
DATABASE_ENV = "APPT_TOOLS_DATABASE_URL"
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


class Settings(BaseSettings):
    """Every setting, its type, default and limits. Values come in only through `resolve` (the
    environment and the store) or from code; `sources` says where each one came from."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    calcom_api_key: SecretStr | None = None
    calcom_base_url: str = DEFAULT_BASE_URL
    event_type_id: int | None = Field(None, ge=1)
    timezone: str | None = None
    duration_minutes: int | None = Field(None, ge=5, le=24 * 60)
    business_name: str = Field("", max_length=validation.MAX_TEXT["business_name"])
    # The attendee's language for Cal.com's invite and e-mails unless a booking names another one.
    language: str = "en"
    calcom_timeout: float = Field(DEFAULT_CALCOM_TIMEOUT, ge=1.0, le=60.0)
    http_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    vapi_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None
    reconcile_minutes: int = Field(DEFAULT_RECONCILE_MINUTES, ge=0, le=24 * 60)
    calcom_rate_limit: int = Field(DEFAULT_CALCOM_RATE_LIMIT, ge=1, le=10_000)
    http_stateless: bool = False
    # Bounded resources on the HTTP server (docs/security.md): MCP sessions open at once per API key (per
    # client while open on loopback), minutes an MCP session may sit idle before it is closed, and seconds
    # a client may take to send the next part of a request body.
    mcp_sessions_per_key: int = Field(DEFAULT_MCP_SESSIONS_PER_KEY, ge=1, le=10_000)
    mcp_session_idle_minutes: int = Field(DEFAULT_MCP_SESSION_IDLE_MINUTES, ge=1, le=24 * 60)
    http_read_timeout: float = Field(DEFAULT_HTTP_READ_TIMEOUT, ge=1.0, le=600.0)
    # One line per HTTP request on stderr (docs/security.md): text, json (JSON lines) or off.
    request_log: Literal["text", "json", "off"] = "text"
    hold_minutes: int = Field(DEFAULT_HOLD_MINUTES, ge=1, le=30)
    sources: dict[str, Source] = Field(default_factory=dict, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what it is given: `resolve` reads the environment (a mapping it is handed, for tests and
        # for the dashboard's re-reads) and the store, in that order of precedence.
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _parse_raw(cls, value: Any, info: ValidationInfo) -> Any:
        """A raw string from a source is parsed as a person's input, with a message naming the key."""
        if isinstance(value, str) and info.field_name in SETTING_KEYS:
            return parse_setting(info.field_name, value)
        return value

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


SETTING_KEYS = tuple(name for name in Settings.model_fields if name != "sources")
ENV = {key: ENV_PREFIX + key.upper() for key in SETTING_KEYS}


class EnvironmentSource(EnvSettingsSource):
    """`APPT_TOOLS_<KEY>` variables, from the process's environment or a mapping standing in for it;
    an empty variable counts as unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Names are matched without regard to case, as pydantic-settings does by default.
        return {name.lower(): value for name, value in self._environ.items() if value or not self.env_ignore_empty}


class StoredSource(PydanticBaseSettingsSource):
    """The values saved in the database, by key, as `settings set` and the dashboard stored them."""

    def __init__(self, stored: Mapping[str, str]) -> None:
        super().__init__(Settings)
        self._stored = stored

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._stored.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {key: self._stored[key] for key in SETTING_KEYS if self._stored.get(key) is not None}


# What belongs to one business (tenant): a tenant other than the default one takes these from its stored
# settings only; an APPT_TOOLS_<KEY> of one of them is the default tenant's. The rest is deployment-wide:
# the environment applies to every tenant (and wins, as always).
TENANT_KEYS = (
    "calcom_api_key",
    "calcom_base_url",
    "event_type_id",
    "timezone",
    "duration_minutes",
    "business_name",
    "language",
    "http_api_keys",
    "vapi_secret",
    "retell_api_key",
    "calcom_webhook_secret",
    "hold_minutes",
)
DEPLOYMENT_KEYS = tuple(key for key in SETTING_KEYS if key not in TENANT_KEYS)

# Deployment-wide, in the environment only (docs/security.md, "Tenants and operator keys"): bearer keys that
# act for any tenant (the tenant named by X-Tenant or by the number dialled), and the Vapi secret and Retell
# API key of an operator whose one Vapi or Retell account serves several tenants.
OPERATOR_KEYS_ENV = "APPT_TOOLS_OPERATOR_KEYS"
OPERATOR_VAPI_SECRET_ENV = "APPT_TOOLS_OPERATOR_VAPI_SECRET"
OPERATOR_RETELL_API_KEY_ENV = "APPT_TOOLS_OPERATOR_RETELL_API_KEY"
# Minutes a tenant other than the default one may go without a call before its service (Cal.com client,
# background work) is closed; it opens again on the next call.
TENANT_IDLE_ENV = "APPT_TOOLS_TENANT_IDLE_MINUTES"
DEFAULT_TENANT_IDLE_MINUTES = 15.0


def deployment_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment as a tenant other than the default one sees it: without the business's own
    variables (`TENANT_KEYS`), which are the default tenant's."""
    env = os.environ if environ is None else environ
    own = {ENV[key].lower() for key in TENANT_KEYS}
    return {name: value for name, value in env.items() if name.lower() not in own}


def resolve_for_tenant(stored: Mapping[str, str], environ: Mapping[str, str] | None, *, default: bool) -> Settings:
    """A tenant's settings: the default tenant's as `resolve` (the environment wins over everything);
    another tenant's from its stored values, with only the deployment-wide environment over them."""
    return resolve(stored, environ if default else deployment_environ(environ))


@dataclass(frozen=True)
class OperatorCredentials:
    """The operator's credentials, from the environment only (`OPERATOR_*_ENV`), parsed like the settings
    they resemble (a key of at least 24 characters, printable secrets)."""

    api_keys: tuple[SecretStr, ...] = ()
    vapi_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None

    @classmethod
    def of(cls, environ: Mapping[str, str] | None = None) -> OperatorCredentials:
        env = os.environ if environ is None else environ
        keys = _operator(env, OPERATOR_KEYS_ENV, "http_api_keys")
        vapi = _operator(env, OPERATOR_VAPI_SECRET_ENV, "vapi_secret")
        retell = _operator(env, OPERATOR_RETELL_API_KEY_ENV, "retell_api_key")
        return cls(
            keys if isinstance(keys, tuple) else (),
            vapi if isinstance(vapi, SecretStr) else None,
            retell if isinstance(retell, SecretStr) else None,
        )


def _operator(env: Mapping[str, str], variable: str, like: str) -> object:
    value = env.get(variable, "").strip()
    if not value:
        return None
    try:
        return parse_setting(like, value)
    except InvalidArgument as exc:
        raise InvalidArgument(variable, exc.errors[0]["message"]) from None


def tenant_idle_seconds(environ: Mapping[str, str] | None = None) -> float:
    """`APPT_TOOLS_TENANT_IDLE_MINUTES` (0.1 to 1440, default 15) in seconds."""
    env = os.environ if environ is None else environ
    raw = env.get(TENANT_IDLE_ENV, "").strip()
    if not raw:
        return DEFAULT_TENANT_IDLE_MINUTES * 60
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0.1 <= minutes <= 1440:
        raise InvalidArgument(TENANT_IDLE_ENV, f"must be a number of minutes from 0.1 to 1440, e.g. 15, not {raw!r}.")
    return minutes * 60


def resolve(stored: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge stored settings with the environment, which wins."""
    from_store, from_env = StoredSource(stored)(), EnvironmentSource(environ)()
    sources: dict[str, Source] = {
        key: "environment" if key in from_env else "stored" if key in from_store else "default" for key in SETTING_KEYS
    }
    return Settings(**{**from_store, **from_env}, sources=sources)


def parse_setting(key: str, value: str) -> object:
    """Validate one setting as typed by a person; raises InvalidArgument naming the key."""
    value = value.strip()
    if key in ("calcom_api_key", "vapi_secret", "retell_api_key", "calcom_webhook_secret"):
        if not value:
            raise InvalidArgument(key, "must not be empty.")
        if not value.isascii() or not value.isprintable():
            # The message never repeats the secret, not even a bad one.
            raise InvalidArgument(
                key, "must be printable ASCII (no spaces, line breaks or control characters); paste the key again."
            )
        return SecretStr(value)
    if key == "http_api_keys":
        return _http_api_keys(value)
    if key == "calcom_base_url":
        if not value.startswith(("http://", "https://")):
            raise InvalidArgument(key, f"{value!r} is not an http(s) URL; e.g. 'https://api.cal.com'.")
        return value.rstrip("/")
    if key in ("event_type_id", "duration_minutes"):
        if not (value.isascii() and value.isdigit()) or int(value) <= 0:
            raise InvalidArgument(key, f"{value!r} is not a positive whole number.")
        return validation.duration(key, int(value)) if key == "duration_minutes" else int(value)
    if key == "timezone":
        return validation.zone_name(key, value)
    if key == "business_name":
        return validation.text(key, value)
    if key == "language":
        return validation.language(key, value)
    if key == "reconcile_minutes":
        lo, hi = _bounds(key)
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            raise InvalidArgument(key, f"{value!r} is not a whole number of minutes from {lo} (off) to {hi}, e.g. 15.")
        return int(value)
    if key == "calcom_rate_limit":
        lo, hi = _bounds(key)
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            raise InvalidArgument(
                key, f"{value!r} is not a whole number of requests a minute from {lo} to {hi}, e.g. 60."
            )
        return int(value)
    if key in ("mcp_sessions_per_key", "mcp_session_idle_minutes"):
        lo, hi = _bounds(key)
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            unit = "sessions" if key == "mcp_sessions_per_key" else "minutes"
            raise InvalidArgument(
                key,
                f"{value!r} is not a whole number of {unit} from {lo} to {hi}, e.g. {Settings.model_fields[key].default}.",
            )
        return int(value)
    if key == "request_log":
        if value.lower() not in ("text", "json", "off"):
            raise InvalidArgument(key, f"{value!r} is not a request log format; use text, json or off.")
        return value.lower()
    if key == "hold_minutes":
        lo, hi = _bounds(key)
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            raise InvalidArgument(key, f"{value!r} is not a whole number of minutes from {lo} to {hi}, e.g. 5.")
        return int(value)
    if key == "http_stateless":
        if value.lower() not in BOOLEAN_WORDS:
            raise InvalidArgument(key, f"{value!r} is not on or off; use true or false.")
        return BOOLEAN_WORDS[value.lower()]
    if key in ("calcom_timeout", "http_read_timeout"):
        lo, hi = _bounds(key)
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if not lo <= seconds <= hi:  # NaN fails this too
            example = Settings.model_fields[key].default
            raise InvalidArgument(key, f"{value!r} is not a number of seconds from {lo:g} to {hi:g}, e.g. {example:g}.")
        return seconds
    raise InvalidArgument("key", f"unknown setting {key!r}; use one of {', '.join(SETTING_KEYS)}.")


def _bounds(key: str) -> tuple[Any, Any]:
    """The limits `Settings` declares for a numeric setting (its Field constraints)."""
    metadata = Settings.model_fields[key].metadata
    lo = next(m.ge for m in metadata if isinstance(m, Ge))
    hi = next(m.le for m in metadata if isinstance(m, Le))
    return lo, hi


def _http_api_keys(value: str) -> tuple[SecretStr, ...]:
    """Comma-separated bearer keys. The messages never repeat a key, not even a bad one."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise InvalidArgument("http_api_keys", "must list at least one key (several are separated by commas).")
    for number, key in enumerate(keys, 1):
        if len(key) < MIN_HTTP_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
            raise InvalidArgument(
                "http_api_keys",
                f"key {number} is too short or contains spaces; use at least {MIN_HTTP_KEY_LENGTH} characters, "
                'e.g. from: python -c "import secrets; print(secrets.token_urlsafe(32))".',
            )
    return tuple(SecretStr(key) for key in keys)
