"""Which tenant an HTTP request acts for, decided in one place (docs/security.md, "Tenants and operator keys").

Who is calling, from its credential:

    a tenant's key or secret     its `http_api_keys`, `vapi_secret` or `retell_api_key` (stored settings;
                                 the default tenant's also from the environment, as always): that tenant only
    an operator's                APPT_TOOLS_OPERATOR_KEYS, APPT_TOOLS_OPERATOR_VAPI_SECRET,
                                 APPT_TOOLS_OPERATOR_RETELL_API_KEY: any tenant

and, for an operator, which tenant, in this order:

    X-Tenant: <slug>             wins (for a tenant's own credential it must name that tenant)
    the number dialled           voice routes: an inbound call's `to` number, an outbound call's `from`
    the only tenant              when the deployment has one

An unknown slug or number, or an operator's request that names no tenant while there are several, is
refused with what to do. Signatures are verified before the body is read for routing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from appt_tools.config import OperatorCredentials
from appt_tools.runtime import Directory, TenantEntry
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.auth import (
    BEARER,
    RETELL,
    VAPI,
    CredentialChecker,
    Scheme,
    bearer_token,
    error_response,
    key_matches,
    retell_signature_valid,
    unauthorized,
)

# Where the routed tenant's id is kept in the request's scope["state"] (read by `AppointmentServer`
# for MCP over HTTP, whose tool calls run apart from the request).
TENANT_STATE = "appt_tools.tenant"
TENANT_HEADER = "x-tenant"
SAY = "I can't reach the booking system right now."


@dataclass(frozen=True)
class Caller:
    """Who sent a request: an operator (`tenant` None) or one tenant's credential."""

    tenant: TenantEntry | None

    @property
    def operator(self) -> bool:
        return self.tenant is None


class Refusal(Exception):
    """A request refused before any tool runs; `response` is what to answer."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def refusal(status: int, code: str, message: str, field: str | None = None) -> Refusal:
    view = ErrorView(code=code, message=message, retryable=False, field=field, say=SAY)
    return Refusal(error_response(status, view))


class Router:
    """Authenticates a request against every tenant's credentials and the operator's, and names the tenant
    it acts for. The directory of tenants is re-read at most every `ttl` seconds (as stored keys are:
    revoking or adding one, or a tenant's number, takes effect within that); the default tenant's
    credentials are the `checker`'s (the environment's, read once, or the stored ones, re-read)."""

    def __init__(
        self,
        checker: CredentialChecker,
        *,
        load: Callable[[], Awaitable[Directory]],
        operator: OperatorCredentials,
        default_tenant: int,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checker = checker
        self.operator = operator
        self._load = load
        self._default = default_tenant
        self._ttl = ttl
        self._clock = clock
        self._directory: Directory | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def directory(self) -> Directory:
        if self._directory is None or self._clock() - self._loaded_at >= self._ttl:
            async with self._lock:
                if self._directory is None or self._clock() - self._loaded_at >= self._ttl:
                    loaded = await self._load()
                    self._directory, self._loaded_at = loaded, self._clock()
        assert self._directory is not None
        credentials = await self.checker.credentials()
        return Directory(
            tuple(
                TenantEntry(
                    t.id,
                    t.slug,
                    t.name,
                    t.numbers,
                    credentials.api_keys,
                    credentials.vapi_secret,
                    credentials.retell_api_key,
                    credentials.calcom_webhook_secret,
                )
                if t.id == self._default
                else t
                for t in self._directory.tenants
            )
        )

    # --- who is calling -----------------------------------------------------------------------

    async def bearer(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a bearer route (`/mcp`, `/tools`, ElevenLabs). With no key configured anywhere,
        a loopback server is open (an operator's access, for local development)."""
        directory = await self.directory()
        token = bearer_token(headers.get("authorization"))
        if not self.operator.api_keys and not any(t.http_api_keys for t in directory.tenants):
            if self.checker.loopback:
                return Caller(None)
            raise Refusal(unauthorized(BEARER))
        return self._match(token, self.operator.api_keys, [(t, t.http_api_keys) for t in directory.tenants], BEARER)

    async def vapi(self, headers: Mapping[str, str]) -> Caller:
        """Vapi's `X-Vapi-Secret`, against the operator's and every tenant's Vapi secret; with none
        configured anywhere, a bearer key."""
        directory = await self.directory()
        secrets = [(t, (t.vapi_secret,)) for t in directory.tenants if t.vapi_secret is not None]
        operator = (self.operator.vapi_secret,) if self.operator.vapi_secret is not None else ()
        if not secrets and not operator:
            return await self.bearer(headers)
        return self._match(headers.get("x-vapi-secret"), operator, secrets, VAPI)

    async def retell(self, headers: Mapping[str, str], body: bytes) -> Caller:
        """Retell's `X-Retell-Signature`, verified with the operator's and every tenant's Retell API key
        (the one that verifies says who it is); accepted once. With no Retell key anywhere, a bearer key."""
        directory = await self.directory()
        keys: list[tuple[TenantEntry | None, SecretStr]] = [
            (t, t.retell_api_key) for t in directory.tenants if t.retell_api_key is not None
        ]
        if self.operator.retell_api_key is not None:
            keys.insert(0, (None, self.operator.retell_api_key))
        if not keys:
            return await self.bearer(headers)
        now_ms = int(time.time() * 1000)
        signature = headers.get("x-retell-signature")
        signers = [Caller(t) for t, key in keys if retell_signature_valid(body, signature, key, now_ms=now_ms)]
        if not signers or not self.checker.first_use(str(signature).strip(), now_ms):
            raise Refusal(unauthorized(RETELL))
        return signers[0]

    def _match(
        self,
        given: str | None,
        operator: tuple[SecretStr, ...],
        tenants: Sequence[tuple[TenantEntry, tuple[SecretStr, ...]]],
        scheme: Scheme,
    ) -> Caller:
        # Every list is compared (constant time within each), so which one matched takes no longer to say.
        as_operator = key_matches(given, operator)
        owners = [t for t, keys in tenants if key_matches(given, keys)]
        if as_operator:
            return Caller(None)
        if owners:
            return Caller(owners[0])
        raise Refusal(unauthorized(scheme))

    # --- which tenant -------------------------------------------------------------------------

    async def tenant(self, caller: Caller, headers: Mapping[str, str], number: str | None = None) -> int:
        """The id of the tenant the request acts for. `number`: on a voice route, the business's number in
        the call (inbound: the number dialled; outbound: the number calling out)."""
        directory = await self.directory()
        given = headers.get(TENANT_HEADER)
        slug = (given or "").strip()
        if given is not None and not slug:
            raise refusal(
                400,
                "invalid_argument",
                "X-Tenant is empty: send a tenant's slug (e.g. 'dr-lee-dental'), or leave the header out.",
                TENANT_HEADER,
            )
        if caller.tenant is not None:
            if slug and slug != caller.tenant.slug:
                raise refusal(
                    403,
                    "wrong_tenant",
                    f"X-Tenant: this credential belongs to tenant {caller.tenant.slug!r} and acts for it only; "
                    f"it cannot act for {slug[:63]!r}. Leave X-Tenant out, or use that tenant's own key or an "
                    "operator key (APPT_TOOLS_OPERATOR_KEYS).",
                    TENANT_HEADER,
                )
            return caller.tenant.id
        if slug:
            found = directory.by_slug(slug)
            if found is None:
                raise refusal(
                    404,
                    "unknown_tenant",
                    f"X-Tenant: there is no tenant {slug[:63]!r}. `appt-tools tenants list` shows the tenants' slugs.",
                    TENANT_HEADER,
                )
            return found.id
        if number is not None:
            owner = directory.by_number(number)
            if owner is None:
                raise refusal(
                    404,
                    "unknown_number",
                    f"No tenant answers on {number}, the business's number in this call. Attach it to its tenant "
                    f"with `appt-tools tenants set <slug> --numbers {number}` (with the tenant's other numbers), "
                    "or name the tenant with the X-Tenant header.",
                    "number",
                )
            return owner.id
        only = directory.only
        if only is not None:
            return only.id
        slugs = ", ".join(t.slug for t in directory.tenants[:10])
        more = ", …" if len(directory.tenants) > 10 else ""
        raise refusal(
            400,
            "tenant_required",
            f"X-Tenant: this operator credential serves {len(directory.tenants)} tenants and the request names none "
            f"(no X-Tenant header, and no number dialled in call data). Send "
            f"X-Tenant: <slug>, one of: {slugs}{more}.",
            TENANT_HEADER,
        )

    async def webhook_secret(self, slug: str | None) -> tuple[int, SecretStr | None] | None:
        """The tenant of `/webhooks/calcom[/{slug}]` (the default tenant without one) and its webhook secret;
        None for an unknown slug."""
        directory = await self.directory()
        found = directory.by_id(self._default) if slug is None else directory.by_slug(slug)
        return None if found is None else (found.id, found.calcom_webhook_secret)


CALLER_STATE = "appt_tools.caller"


class RequireCaller:
    """ASGI middleware in front of the bearer routes (/mcp, /tools, ElevenLabs): who is calling (one 401 for
    all of them), kept in scope["state"]; with `route`, also the tenant (by X-Tenant, or the only one),
    for routes whose body names no number (/mcp, /tools)."""

    def __init__(self, app: ASGIApp, *, router: Router, route: bool) -> None:
        self.app = app
        self.router = router
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            caller = await self.router.bearer(headers)
            state = scope.setdefault("state", {})
            state[CALLER_STATE] = caller
            if self.route:
                state[TENANT_STATE] = await self.router.tenant(caller, headers)
        except Refusal as refused:
            await refused.response(scope, receive, send)
            return
        await self.app(scope, receive, send)
