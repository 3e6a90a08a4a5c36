"""One HTTP application, one process: MCP, plain JSON function calls, Vapi and Retell webhooks.

    GET  /healthz                      status, version, whether Cal.com is configured   open
    GET  /openapi.json                 OpenAPI 3.1 for /tools/* and /healthz            open
    *    /mcp                          MCP streamable HTTP (the SDK's app)              bearer key
    POST /tools/{name}                 body = the arguments; 200 result, or an HTTP error status
                                       with {"error": ErrorView}                        bearer key
    POST /vapi/tool-calls              Vapi's tool-calls webhook                        X-Vapi-Secret, else bearer
    POST /retell/functions[/{name}]    Retell's custom function                         X-Retell-Signature, else bearer
    POST /elevenlabs/tools/{name}      ElevenLabs webhook (server) tool: body = arguments   bearer key (a secret header)
    POST /webhooks/calcom[/{tenant}]   Cal.com's booking webhooks (the default tenant's, or {tenant}'s)   X-Cal-Signature-256
    GET  /, /calendar, /settings, /app/*   the owner's dashboard (appt_tools.surfaces.web)   sign-in with a key, CSRF

Every surface runs a tool through `AppointmentServer.invoke`, so all of them accept and refuse
exactly the same calls as MCP does. Who may call what is decided in `appt_tools.surfaces.auth`, and for
which tenant in `appt_tools.surfaces.tenancy` (a tenant's key acts for it; an operator's key for the tenant
named by X-Tenant or by the number dialled).

    app.py       the application: settings, routes, the endpoints
    body.py      reading a POST's body: size, content type, browser forgery, one JSON object
    calls.py     one tool call run for a route, its error given an HTTP status
    voice.py     Vapi's, Retell's and ElevenLabs' request and answer shapes, and their call data
    openapi.py   the OpenAPI document, generated from the tool list
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from appt_tools import __version__, config
from appt_tools.core.reconcile import Reconciler
from appt_tools.runtime import Runtime, TenantServices
from appt_tools.surfaces.auth import (
    CALCOM,
    CredentialChecker,
    CredentialLoader,
    Credentials,
    calcom_signature_valid,
    error_response,
    is_loopback,
    unauthorized,
)
from appt_tools.surfaces.call_facts import CallFacts
from appt_tools.surfaces.http.body import HttpProblem, json_object, problem_response, read_body
from appt_tools.surfaces.http.calls import run_tool
from appt_tools.surfaces.http.guards import (
    LogFormat,
    OpenSessions,
    ReadTimeout,
    RequestLog,
    SecurityHeaders,
    SessionQuota,
    client_gone,
    note,
)
from appt_tools.surfaces.http.openapi import openapi_document
from appt_tools.surfaces.http.voice import (
    elevenlabs_call,
    retell_call,
    retell_facts,
    retell_status,
    vapi_answer,
    vapi_calls,
    vapi_facts,
)
from appt_tools.surfaces.mcp_server import AppointmentServer
from appt_tools.surfaces.request_notes import appointment_of
from appt_tools.surfaces.tenancy import CALLER_STATE, TENANT_STATE, Caller, Refusal, RequireCaller, Router
from appt_tools.surfaces.web import Keyring, dashboard_routes


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP application is exposed. Credentials are never taken from the command line."""

    host: str = "127.0.0.1"
    credentials: Credentials = field(default_factory=Credentials)
    # Re-reads stored credentials (see `auth.CredentialChecker`); None keeps `credentials` for the process's life.
    reload_credentials: CredentialLoader | None = None
    credentials_ttl: float = 5.0
    sandbox: bool = False
    max_body_bytes: int = 256 * 1024
    # MCP without sessions: every request stands alone, so any instance behind a load balancer can answer it.
    stateless: bool = False
    # Bounded resources and the request log (guards.py; the settings of the same names in config.py).
    mcp_sessions_per_key: int = config.DEFAULT_MCP_SESSIONS_PER_KEY
    mcp_session_idle_seconds: float = config.DEFAULT_MCP_SESSION_IDLE_MINUTES * 60.0
    read_timeout: float = config.DEFAULT_HTTP_READ_TIMEOUT
    request_log: LogFormat = "text"
    # Deployment-wide credentials that act for any tenant (APPT_TOOLS_OPERATOR_*; surfaces/tenancy.py).
    operator: config.OperatorCredentials = field(default_factory=config.OperatorCredentials)


class _GuardedApp(Starlette):
    """The application inside the guards of every request (guards.py): outside Starlette's own error
    handling, so even its last-resort 500 is logged and carries the security headers."""

    def __init__(self, *args: Any, settings: HttpSettings, **kwargs: Any) -> None:
        self.http_settings = settings
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        inner = ReadTimeout(super().build_middleware_stack(), seconds=self.http_settings.read_timeout)
        return RequestLog(SecurityHeaders(inner), fmt=self.http_settings.request_log)


def build_http_app(server: AppointmentServer, *, settings: HttpSettings) -> Starlette:
    checker = CredentialChecker(
        settings.credentials,
        loopback=is_loopback(settings.host),
        reload=settings.reload_credentials,
        ttl=settings.credentials_ttl,
    )
    tenants = Runtime.of(server.service).tenants
    router = Router(
        checker,
        load=tenants.directory,
        operator=settings.operator,
        default_tenant=server.service.store.tenant_id,
        ttl=settings.credentials_ttl,
    )
    endpoints = _Endpoints(server, settings, router, tenants)
    bearer = [Middleware(RequireCaller, router=router, route=True)]
    quota = OpenSessions(per_key=settings.mcp_sessions_per_key, idle=settings.mcp_session_idle_seconds)
    # The SDK turns on its DNS-rebinding protection (Host/Origin checks) for /mcp on a loopback host.
    mcp = server.streamable_http_app(
        host=settings.host,
        stateless_http=settings.stateless,
        session_idle_timeout=settings.mcp_session_idle_seconds,
    )
    routes: list[BaseRoute] = [
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
        *_guarded(mcp.routes, [*bearer, Middleware(SessionQuota, sessions=quota)]),
        Route("/tools/{name}", endpoints.tool, methods=["POST"], middleware=bearer),
        Route("/vapi/tool-calls", endpoints.vapi, methods=["POST"]),
        Route("/retell/functions", endpoints.retell, methods=["POST"]),
        Route("/retell/functions/{name}", endpoints.retell, methods=["POST"]),
        Route(
            "/elevenlabs/tools/{name}",
            endpoints.elevenlabs,
            methods=["POST"],
            middleware=[Middleware(RequireCaller, router=router, route=False)],
        ),
        Route("/webhooks/calcom", endpoints.calcom_webhook, methods=["POST"]),
        Route("/webhooks/calcom/{tenant}", endpoints.calcom_webhook, methods=["POST"]),
        # The owner's dashboard at / (pages, /app/*, /static/*): same service, same keys (web/session.py).
        *dashboard_routes(server.service, checker, sandbox=settings.sandbox, keyring=_keyring(router, server)),
    ]
    # The SDK app's lifespan runs the MCP session manager; without it /mcp cannot serve.
    return _GuardedApp(
        routes=routes,
        lifespan=mcp.router.lifespan_context,
        exception_handlers={HttpProblem: problem_response, ClientDisconnect: client_gone},
        settings=settings,
    )


def _keyring(router: Router, server: AppointmentServer) -> Callable[[], Awaitable[Keyring]]:
    """The dashboard's sign-in keys: the operator's and every tenant's, from the router's directory."""
    default = server.service.store.tenant_id

    async def keyring() -> Keyring:
        return Keyring.of_directory(await router.directory(), router.operator.api_keys, default)

    return keyring


def _guarded(routes: Sequence[BaseRoute], middleware: list[Middleware]) -> list[BaseRoute]:
    """The SDK's routes behind the bearer check. Anything but a plain Route is refused rather than
    served unguarded."""
    guarded: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, Route):
            raise TypeError(f"unexpected MCP route {route!r}: it would be served without authentication")
        methods = sorted(route.methods) if route.methods else None
        guarded.append(Route(route.path, route.endpoint, methods=methods, name=route.name, middleware=middleware))
    return guarded


class _Endpoints:
    def __init__(
        self, server: AppointmentServer, settings: HttpSettings, router: Router, tenants: TenantServices
    ) -> None:
        self.server = server
        self.settings = settings
        self.router = router
        self.tenants = tenants
        self._openapi: dict[str, Any] | None = None

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "calcom_configured": self.server.service.settings.calcom_api_key is not None,
                "sandbox": self.settings.sandbox,
            }
        )

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = openapi_document(await self.server.list_tools())
        return JSONResponse(self._openapi)

    async def tool(self, request: Request) -> Response:
        arguments = json_object(await self._body(request))
        async with self.tenants.acting_for(request.scope["state"][TENANT_STATE]):
            outcome = await run_tool(self.server, request.path_params["name"], arguments)
        note(request, tool=request.path_params["name"][:60], appointment_id=appointment_of(outcome.result, arguments))
        if outcome.error is None:
            return JSONResponse(outcome.result)
        return error_response(outcome.status, outcome.error, outcome.headers)

    async def vapi(self, request: Request) -> Response:
        body = await self._body(request)
        try:
            caller = await self.router.vapi(request.headers)
            message = json_object(body)
            calls = vapi_calls(message)
            facts = vapi_facts(message)
            tenant = await self._tenant(caller, request, facts)
        except Refusal as refused:
            return refused.response
        names = [call.get("function", {}).get("name") for call in calls if isinstance(call.get("function"), dict)]
        note(request, tool=",".join(str(n)[:60] for n in names[:5]) or None)
        # One message's calls are the model's parallel calls, independent of each other: each is
        # answered, in order, whether or not an earlier one failed.
        async with self.tenants.acting_for(tenant):
            return JSONResponse({"results": [await vapi_answer(self.server, call, facts) for call in calls]})

    async def retell(self, request: Request) -> Response:
        body = await self._body(request)
        try:
            caller = await self.router.retell(request.headers, body)
            data = json_object(body)
            name, arguments = retell_call(request.path_params.get("name"), data)
            facts = retell_facts(data)
            tenant = await self._tenant(caller, request, facts)
        except Refusal as refused:
            return refused.response
        async with self.tenants.acting_for(tenant):
            outcome = await run_tool(self.server, name, arguments, facts)
        note(request, tool=name[:60], appointment_id=appointment_of(outcome.result, arguments))
        if outcome.error is None:
            return JSONResponse(outcome.result)
        return error_response(retell_status(outcome), outcome.error)

    async def elevenlabs(self, request: Request) -> Response:
        """An ElevenLabs webhook tool: the body is the arguments plus the call's numbers; any JSON answer
        reaches the model, so a refused call is a 200 with `{"error": ...}` it can read (500 only for a fault)."""
        arguments, facts = elevenlabs_call(json_object(await self._body(request)))
        try:
            tenant = await self._tenant(request.scope["state"][CALLER_STATE], request, facts)
        except Refusal as refused:
            return refused.response
        async with self.tenants.acting_for(tenant):
            outcome = await run_tool(self.server, request.path_params["name"], arguments, facts)
        note(request, tool=request.path_params["name"][:60], appointment_id=appointment_of(outcome.result, arguments))
        if outcome.error is None:
            return JSONResponse(outcome.result)
        return error_response(retell_status(outcome), outcome.error)

    async def _tenant(self, caller: Caller, request: Request, facts: CallFacts | None) -> int:
        """A voice call's tenant: X-Tenant, else the business's number in the call (inbound: the number
        dialled; outbound: the number calling out), else the only tenant."""
        number = None
        if facts is not None:
            number = facts.from_number if facts.call_type == "outbound" else facts.to_number
        return await self.router.tenant(caller, request.headers, number)

    async def calcom_webhook(self, request: Request) -> Response:
        """A booking changed in Cal.com: re-read the appointment it names from Cal.com and repair the
        store. Redelivered or out-of-order webhooks converge, since Cal.com's state decides (core/reconcile.py).
        `/webhooks/calcom/{tenant}` is that tenant's, checked with its secret; `/webhooks/calcom` the default
        tenant's. An unknown tenant gets the same 401 as a bad signature (nothing to learn from guessing)."""
        body = await self._body(request)
        found = await self.router.webhook_secret(request.path_params.get("tenant"))
        secret = found[1] if found is not None else None
        if (
            found is None
            or secret is None
            or not calcom_signature_valid(body, request.headers.get("x-cal-signature-256"), secret)
        ):
            return unauthorized(CALCOM)
        async with self.tenants.acting_for(found[0]) as service:
            service.slots_changed()  # Cal.com changed the calendar: warm slots are read again, on every instance
            report = await Reconciler.of(service).apply_webhook(json_object(body))
        return JSONResponse({"received": True, "checked": report.checked, "repaired": len(report.repaired)})

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, limit=self.settings.max_body_bytes, loopback=is_loopback(self.settings.host))
