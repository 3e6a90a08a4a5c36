"""Who may call the HTTP application, decided in one place.

    /mcp, /tools/{name}        Authorization: Bearer <one of the configured HTTP API keys>
    /vapi/tool-calls           X-Vapi-Secret when a Vapi secret is configured, else as /tools
    /retell/functions[/name]   X-Retell-Signature when a Retell API key is configured, else as /tools
    /healthz, /openapi.json    anyone (they hold no secrets)

With no HTTP API key configured the bearer routes are open, but only on a loopback bind: the CLI
refuses to serve anywhere else without a key, and `CredentialChecker` fails closed if the keys are removed later.
Every comparison is constant-time, and a refusal never says which part of a credential was wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from appt_tools.config import Settings
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.replay import SeenSignatures

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Retell signs `v=<unix ms>,d=<hex HMAC-SHA256(api key, body + str(unix ms))>` and its SDK refuses a
# timestamp more than five minutes away from now. Source: RetellAI/retell-python-sdk
# src/retell/lib/webhook_auth.py (`verify` → `make_secure_webhooks(...).verify` with
# `symmetric_get_verifier`; FIVE_MINUTES = 5 * 60 * 1000), same in retell-typescript-sdk
# src/lib/webhook_auth.ts. We verify the raw body bytes: they are what Retell signed (the docs'
# examples re-serialize the parsed body only to get those bytes back).
RETELL_SIGNATURE = re.compile(r"v=(\d{1,16}),d=([0-9a-f]{64})")
RETELL_WINDOW_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class Credentials:
    api_keys: tuple[SecretStr, ...] = ()
    vapi_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None

    @classmethod
    def of(cls, settings: Settings) -> Credentials:
        return cls(
            settings.http_api_keys, settings.vapi_secret, settings.retell_api_key, settings.calcom_webhook_secret
        )


CredentialLoader = Callable[[], Awaitable[Credentials]]


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def asks_for_loopback(headers: Mapping[str, str]) -> bool:
    """Whether the request's Host names 127.0.0.1, localhost or [::1]: a page reaching a loopback
    server through a DNS-rebound name does not."""
    return is_loopback(urlsplit("//" + headers.get("host", "")).hostname or "")


def _digest(value: str) -> bytes:
    # Hashing first makes every comparison the same length, so not even a key's length leaks.
    return hashlib.sha256(value.encode()).digest()


def key_matches(given: str | None, keys: Iterable[SecretStr]) -> bool:
    """Whether `given` is one of `keys`, comparing against every key (no early exit on a match)."""
    offered = _digest(given or "")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(offered, _digest(key.get_secret_value()))
    return matched and given is not None


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def retell_signature_valid(body: bytes, signature: str | None, api_key: SecretStr, *, now_ms: int) -> bool:
    match = RETELL_SIGNATURE.fullmatch((signature or "").strip(), 0, 100)
    if match is None:
        return False
    stamp, digest = match.groups()
    if abs(now_ms - int(stamp)) > RETELL_WINDOW_MS:
        return False
    expected = hmac.new(api_key.get_secret_value().encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


def calcom_signature_valid(body: bytes, signature: str | None, secret: SecretStr) -> bool:
    """Cal.com's `X-Cal-Signature-256`: lowercase hex HMAC-SHA256 of the raw body, keyed with the
    webhook's secret (shared/calcom/NOTES.md §8)."""
    expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    # Bytes, not str: `compare_digest` refuses non-ASCII strings (a header of 'é's is just a wrong signature).
    return hmac.compare_digest(expected.encode(), (signature or "").strip().lower().encode())


class CredentialChecker:
    """Checks credentials against the ones in force. Keys stored with `appt-tools settings set` are
    re-read at most every `ttl` seconds, so revoking one takes effect without a restart and without a
    database read on every request."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        loopback: bool,
        reload: CredentialLoader | None = None,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loopback = loopback
        self._credentials = credentials
        self._reload = reload
        self._ttl = ttl
        self._clock = clock
        self._loaded_at = clock()
        self._lock = asyncio.Lock()
        # Retell signatures already accepted, until their timestamp leaves the window: a captured request
        # replayed within the window is refused (per process; see docs/security.md).
        self._retell_seen = SeenSignatures(RETELL_WINDOW_MS)

    async def credentials(self) -> Credentials:
        if self._reload is None or self._clock() - self._loaded_at < self._ttl:
            return self._credentials
        async with self._lock:  # one reader refreshes; the others wait for its answer
            if self._clock() - self._loaded_at >= self._ttl:
                self._credentials = await self._reload()
                self._loaded_at = self._clock()
        return self._credentials

    async def check_bearer(self, headers: Mapping[str, str]) -> JSONResponse | None:
        """None when the request may pass, else the 401 to answer with (as for the two checks below)."""
        keys = (await self.credentials()).api_keys
        allowed = key_matches(bearer_token(headers.get("authorization")), keys) if keys else self.loopback
        return None if allowed else unauthorized(BEARER)

    async def check_vapi(self, headers: Mapping[str, str]) -> JSONResponse | None:
        secret = (await self.credentials()).vapi_secret
        if secret is None:
            return await self.check_bearer(headers)
        return None if key_matches(headers.get("x-vapi-secret"), (secret,)) else unauthorized(VAPI)

    async def check_retell(self, headers: Mapping[str, str], body: bytes) -> JSONResponse | None:
        key = (await self.credentials()).retell_api_key
        if key is None:
            return await self.check_bearer(headers)
        now_ms = int(time.time() * 1000)
        signature = headers.get("x-retell-signature")
        if not retell_signature_valid(body, signature, key, now_ms=now_ms):
            return unauthorized(RETELL)
        return None if self.first_use(str(signature).strip(), now_ms) else unauthorized(RETELL)

    def first_use(self, signature: str, now_ms: int) -> bool:
        """True the first time a (valid) Retell signature is seen; False for its replays within the window."""
        match = RETELL_SIGNATURE.fullmatch(signature, 0, 100)
        return match is not None and self._retell_seen.first_use(int(match[1]), match[2], now_ms)

    async def check_calcom(self, headers: Mapping[str, str], body: bytes) -> JSONResponse | None:
        """Webhooks are refused unless a secret is configured and the body is signed with it."""
        secret = (await self.credentials()).calcom_webhook_secret
        signed = secret is not None and calcom_signature_valid(body, headers.get("x-cal-signature-256"), secret)
        return None if signed else unauthorized(CALCOM)


def error_response(status: int, view: ErrorView, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error body of every HTTP route: `{"error": ErrorView}`."""
    return JSONResponse({"error": view.model_dump(mode="json", exclude_none=True)}, status, headers=headers)


@dataclass(frozen=True)
class Scheme:
    challenge: str  # the WWW-Authenticate value
    wanted: str  # what the caller should send


BEARER = Scheme("Bearer", "API key: send Authorization: Bearer <key>")
VAPI = Scheme("X-Vapi-Secret", "Vapi secret: send the X-Vapi-Secret header configured in Vapi")
CALCOM = Scheme(
    "X-Cal-Signature-256",
    "Cal.com signature: X-Cal-Signature-256 must be signed with the webhook secret set in "
    "APPT_TOOLS_CALCOM_WEBHOOK_SECRET",
)
RETELL = Scheme("X-Retell-Signature", "Retell signature: X-Retell-Signature must be signed with the Retell API key")


def unauthorized(scheme: Scheme) -> JSONResponse:
    """The same 401 for a missing, wrong or revoked credential: it tells the caller nothing else."""
    view = ErrorView(
        code="unauthorized",
        message=f"Missing or invalid {scheme.wanted}.",
        retryable=False,
        say="I can't reach the booking system right now.",
    )
    return error_response(401, view, {"WWW-Authenticate": scheme.challenge})


class RequireBearer:
    """ASGI middleware in front of /mcp and /tools: one key list and one 401 for both.

    The SDK's own `TokenVerifier` + `AuthSettings` would guard only /mcp, and it is built for OAuth
    (it needs an issuer URL and serves resource metadata); static API keys for voice platforms and
    scripts need neither, and /tools must accept exactly the same keys.
    """

    def __init__(self, app: ASGIApp, *, checker: CredentialChecker) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = await self.checker.check_bearer(Headers(scope=scope)) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
