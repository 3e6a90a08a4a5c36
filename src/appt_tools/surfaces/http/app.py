"""One HTTP application, one process: MCP, plain JSON function calls, Vapi and Retell webhooks.

    GET  /healthz                      status, version, whether Cal.com is configured   open
    GET  /openapi.json                 OpenAPI 3.1 for /tools/* and /healthz            open
    *    /mcp                          MCP streamable HTTP (the SDK's app)              bearer key
    POST /tools/{name}                 body = the arguments; 200 result, or an HTTP error status
                                       with {"error": ErrorView}                        bearer key
    POST /vapi/tool-calls              Vapi's tool-calls webhook                        X-Vapi-Secret, else bearer
    POST /retell/functions[/{name}]    Retell's custom function                         X-Retell-Signature, else bearer
    GET  /, /calendar, /settings, /app/*   the owner's dashboard (appt_tools.surfaces.web)   sign-in with a key, CSRF

Every surface runs a tool through `AppointmentServer.invoke`, so all of them accept and refuse
exactly the same calls as MCP does. Who may call what is decided in `appt_tools.surfaces.auth`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from mcp.types import Tool as MCPTool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appt_tools import __version__
from appt_tools.core.reconcile import Reconciler
from appt_tools.errors import (
    AppError,
    CalcomRateLimited,
    InvalidArgument,
)
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.auth import (
    CredentialLoader,
    Credentials,
    Guard,
    RequireBearer,
    error_response,
    is_loopback,
)
from appt_tools.surfaces.mcp_server import AppointmentServer
from appt_tools.surfaces.statuses import http_status
from appt_tools.surfaces.web import dashboard_routes

logger = logging.getLogger("appt_tools.http")

SORRY = "Sorry, something went wrong on my side."
INTERNAL_ERROR = ErrorView(
    code="internal_error",
    message="The server failed unexpectedly; nothing about the cause is shared. Try again later.",
    retryable=True,
    say=SORRY,
)


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP application is exposed. Credentials are never taken from the command line."""

    host: str = "127.0.0.1"
    credentials: Credentials = field(default_factory=Credentials)
    # Re-reads stored credentials (see `auth.Guard`); None keeps `credentials` for the process's life.
    reload_credentials: CredentialLoader | None = None
    credentials_ttl: float = 5.0
    sandbox: bool = False
    max_body_bytes: int = 256 * 1024
    # MCP without sessions: every request stands alone, so any instance behind a load balancer can answer it.
    stateless: bool = False


class HttpProblem(Exception):
    """The request itself is unusable (not JSON, too large, wrong content type...): refused before any tool runs."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.view = ErrorView(code=code, message=message, retryable=False, say=SORRY)
        self.status = status


async def _problem_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return error_response(exc.status, exc.view)


@dataclass(frozen=True)
class Outcome:
    """A tool call's result, or its error with the HTTP status and headers the plain route answers with."""

    result: dict[str, Any] | None = None
    error: ErrorView | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def build_http_app(server: AppointmentServer, *, settings: HttpSettings) -> Starlette:
    guard = Guard(
        settings.credentials,
        loopback=is_loopback(settings.host),
        reload=settings.reload_credentials,
        ttl=settings.credentials_ttl,
    )
    endpoints = _Endpoints(server, settings, guard)
    bearer = [Middleware(RequireBearer, guard=guard)]
    # The SDK turns on its DNS-rebinding protection (Host/Origin checks) for /mcp on a loopback host.
    mcp = server.streamable_http_app(host=settings.host, stateless_http=settings.stateless)
    routes: list[BaseRoute] = [
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
        *_guarded(mcp.routes, bearer),
        Route("/tools/{name}", endpoints.tool, methods=["POST"], middleware=bearer),
        Route("/vapi/tool-calls", endpoints.vapi, methods=["POST"]),
        Route("/retell/functions", endpoints.retell, methods=["POST"]),
        Route("/retell/functions/{name}", endpoints.retell, methods=["POST"]),
        Route("/webhooks/calcom", endpoints.calcom_webhook, methods=["POST"]),
        # The owner's dashboard at / (pages, /app/*, /static/*): same service, same keys (web/session.py).
        *dashboard_routes(server.service, guard, sandbox=settings.sandbox),
    ]
    # The SDK app's lifespan runs the MCP session manager; without it /mcp cannot serve.
    return Starlette(
        routes=routes,
        lifespan=mcp.router.lifespan_context,
        exception_handlers={HttpProblem: _problem_response},
    )


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
    def __init__(self, server: AppointmentServer, settings: HttpSettings, guard: Guard) -> None:
        self.server = server
        self.settings = settings
        self.guard = guard
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
        arguments = _json_object(await self._body(request))
        outcome = await self._call(request.path_params["name"], arguments)
        if outcome.error is None:
            return JSONResponse(outcome.result)
        return error_response(outcome.status, outcome.error, outcome.headers)

    async def vapi(self, request: Request) -> Response:
        body = await self._body(request)
        refusal = await self.guard.check_vapi(request.headers)
        if refusal is not None:
            return refusal
        calls = _vapi_calls(_json_object(body))
        # One message's calls are the model's parallel calls, independent of each other: each is
        # answered, in order, whether or not an earlier one failed.
        return JSONResponse({"results": [await self._vapi_result(call) for call in calls]})

    async def retell(self, request: Request) -> Response:
        body = await self._body(request)
        refusal = await self.guard.check_retell(request.headers, body)
        if refusal is not None:
            return refusal
        name, arguments = _retell_call(request.path_params.get("name"), _json_object(body))
        outcome = await self._call(name, arguments)
        if outcome.error is None:
            return JSONResponse(outcome.result)
        # Retell hands a 2xx body to the model as the function's result and treats anything else as a
        # failed request it retries. A domain error is an answer the model must read (alternatives,
        # `say`), so it is a 200; only an unexpected failure is a 500, which Retell may retry.
        return error_response(500 if outcome.status == 500 else 200, outcome.error)

    async def calcom_webhook(self, request: Request) -> Response:
        """A booking changed in Cal.com: re-read the appointment it names from Cal.com and repair the
        store. Redelivered or out-of-order webhooks converge, since Cal.com's state decides (sync.py)."""
        body = await self._body(request)
        refusal = await self.guard.check_calcom(request.headers, body)
        if refusal is not None:
            return refusal
        report = await Reconciler.of(self.server.service).apply_webhook(_json_object(body))
        return JSONResponse({"received": True, "checked": report.checked, "repaired": len(report.repaired)})

    async def _vapi_result(self, call: dict[str, Any]) -> dict[str, str]:
        answer = {"toolCallId": call["id"]}
        try:
            name, arguments = _vapi_function(call)
        except InvalidArgument as exc:
            outcome = self._failed(exc)
        else:
            answer["name"] = name
            outcome = await self._call(name, arguments)
        if outcome.result is not None:
            # `say` first: it is the part a voice assistant should read out.
            answer["result"] = one_line({"say": outcome.result.get("say"), **outcome.result})
        else:
            assert outcome.error is not None
            answer["error"] = one_line(outcome.error.model_dump(mode="json", exclude_none=True))
        return answer

    async def _call(self, name: str, arguments: dict[str, Any]) -> Outcome:
        try:
            return Outcome(result=await self.server.invoke(name, arguments))
        except AppError as exc:
            return self._failed(exc)
        except Exception:
            # The boundary of every route: the caller learns nothing about an unexpected failure,
            # the operator gets the traceback (never the request's headers, which carry credentials).
            logger.exception("tool %r failed unexpectedly", name)
            return Outcome(error=INTERNAL_ERROR, status=500)

    def _failed(self, error: AppError) -> Outcome:
        headers = {}
        if isinstance(error, CalcomRateLimited) and error.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(error.retry_after))
        return Outcome(error=self.server.render_error(error), status=http_status(error), headers=headers)

    async def _body(self, request: Request) -> bytes:
        """The body of a POST, refusing what a web page could have forged and what is too large."""
        if is_loopback(self.settings.host):
            _refuse_foreign_browser_request(request.headers)
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise HttpProblem(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json.")
        limit = self.settings.max_body_bytes
        too_large = HttpProblem(413, "payload_too_large", f"The body is larger than {limit} bytes.")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)


def _refuse_foreign_browser_request(headers: Mapping[str, str]) -> None:
    """On loopback the routes may be open (no keys), so a web page must not reach them: not through a
    DNS-rebound host name (Host) nor cross-origin (Origin). The SDK applies the same rule to /mcp."""
    host = urlsplit("//" + headers.get("host", "")).hostname or ""
    origin = headers.get("origin")
    if not is_loopback(host) or (origin is not None and not is_loopback(urlsplit(origin).hostname or "")):
        raise HttpProblem(
            403,
            "forbidden",
            "This server only answers requests for 127.0.0.1, localhost or [::1] from outside a browser.",
        )


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise HttpProblem(400, "invalid_request", "The body is empty; send a JSON object.")
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise HttpProblem(
            400, "invalid_request", f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except ValueError as exc:  # not UTF-8, or NaN/Infinity
        raise HttpProblem(400, "invalid_request", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise HttpProblem(400, "invalid_request", f"The body must be a JSON object, not {kind}.")
    return data


def one_line(data: Mapping[str, Any]) -> str:
    """Compact JSON on one line, as Vapi wants a tool's result: JSON already escapes control
    characters; these three are line breaks too for some readers."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _vapi_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of a Vapi `tool-calls` message, all checked before any runs."""
    message = body.get("message")
    if not isinstance(message, dict) or message.get("type") != "tool-calls":
        raise HttpProblem(
            400,
            "invalid_request",
            'Expected a Vapi tool-calls message: {"message": {"type": "tool-calls", "toolCallList": [...]}}. '
            "Point a function tool's server URL here, not the assistant's server URL.",
        )
    calls = message.get("toolCallList", message.get("toolCalls"))  # toolCalls: Vapi's older name
    if not isinstance(calls, list):
        raise HttpProblem(400, "invalid_request", "message.toolCallList must be a list of tool calls.")
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            raise HttpProblem(400, "invalid_request", "Every tool call needs a string id to answer it by.")
    return calls


def _vapi_function(call: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    function = call.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise InvalidArgument("function.name", "the tool call names no function.")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    if isinstance(arguments, str):  # Vapi may send the model's arguments as the JSON string it wrote
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise InvalidArgument("arguments", "is not valid JSON; send a JSON object of the arguments.") from None
    if not isinstance(arguments, dict):
        raise InvalidArgument("arguments", "must be a JSON object of the tool's arguments.")
    return name, arguments


def _retell_call(path_name: str | None, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Retell posts `{"name", "call", "args"}`, or with "args at root" the arguments alone (then the
    function is named by the path)."""
    wrapped = "args" in body and ("name" in body or "call" in body)
    arguments = body["args"] if wrapped else body
    body_name = body.get("name") if wrapped else None
    if not isinstance(arguments, dict):
        raise HttpProblem(400, "invalid_request", "args must be a JSON object of the function's arguments.")
    if path_name and body_name and body_name != path_name:
        raise HttpProblem(400, "invalid_request", f"The path names {path_name!r} but the body names {body_name!r}.")
    name = path_name or body_name
    if not isinstance(name, str) or not name:
        raise HttpProblem(
            400, "invalid_request", "Name the function in the path (/retell/functions/<name>) or in the body's name."
        )
    return name, arguments


# --- OpenAPI ------------------------------------------------------------------------------------

ERROR_STATUSES = {
    "400": "The body is not a JSON object.",
    "401": "Missing or invalid API key.",
    "403": "A browser request to a loopback server (refused).",
    "404": "No such appointment, event type or tool.",
    "409": "The slot is taken (see `alternatives`), or the appointment cannot change any more.",
    "413": "The body is too large.",
    "415": "The body is not sent as application/json.",
    "422": "An argument is wrong; `field` names it.",
    "429": "Cal.com's rate limit; see Retry-After.",
    "500": "Unexpected failure (nothing about it is shared).",
    "502": "Cal.com refused us, or did not confirm a booking (do not retry it blindly).",
    "503": "Cal.com is not configured or not answering; retry later.",
}


def openapi_document(tools: Sequence[MCPTool]) -> dict[str, Any]:
    """OpenAPI 3.1 for the plain endpoints, generated from the live tool list."""
    schemas: dict[str, Any] = {}
    error_view = _hoist(ErrorView.model_json_schema(), "ErrorView", schemas)
    schemas["ErrorView"] = error_view
    schemas["Error"] = {
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorView"}},
        "required": ["error"],
    }
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    errors = {status: {"description": text, "content": error_content} for status, text in ERROR_STATUSES.items()}
    paths: dict[str, Any] = {"/healthz": _healthz_path()}
    for tool in tools:
        output = _hoist(tool.output_schema or {"type": "object"}, tool.name, schemas)
        paths[f"/tools/{tool.name}"] = {
            "post": {
                "operationId": tool.name,
                "summary": tool.title or tool.name,
                "description": tool.description or "",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _arguments(_hoist(tool.input_schema, tool.name, schemas))}
                    },
                },
                "responses": {
                    "200": {
                        "description": "The tool's result; `say` is a sentence to read aloud.",
                        "content": {"application/json": {"schema": output}},
                    },
                    **errors,
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "appt-tools",
            "version": __version__,
            "description": "Appointment-booking tools as plain JSON function calls: POST the arguments as a JSON "
            'object, get the tool\'s result (with `say`, a sentence to read aloud) or {"error": ErrorView}.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _healthz_path() -> dict[str, Any]:
    health = {
        "type": "object",
        "properties": {
            "status": {"const": "ok"},
            "version": {"type": "string"},
            "calcom_configured": {"type": "boolean"},
            "sandbox": {"type": "boolean"},
        },
        "required": ["status", "version", "calcom_configured", "sandbox"],
    }
    return {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness and configuration flags (no secrets)",
            "security": [],
            "responses": {"200": {"description": "Serving.", "content": {"application/json": {"schema": health}}}},
        }
    }


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict input schema lists every argument as required and makes optional ones nullable
    (what OpenAI and Anthropic need). Over plain HTTP an optional argument may also be left out."""
    result = dict(schema)
    properties: dict[str, Any] = schema.get("properties", {})
    result["required"] = [name for name, prop in properties.items() if not _nullable(prop)]
    return result


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(option.get("type") == "null" for option in prop.get("anyOf", ()))


def _hoist(schema: dict[str, Any], owner: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved into the document's components (a `#/$defs/...` reference would
    resolve against the OpenAPI document's root); a name already taken by a different schema is
    prefixed with `owner`."""
    result = dict(schema)
    definitions: dict[str, Any] = result.pop("$defs", {})
    # All or none of one schema's definitions are renamed, so their references to each other hold.
    clash = any(schemas.get(name, _with_refs(d, {})) != _with_refs(d, {}) for name, d in definitions.items())
    renamed = {name: f"{owner}.{name}" if clash else name for name in definitions}
    for name, definition in definitions.items():
        schemas[renamed[name]] = _with_refs(definition, renamed)
    rewritten: dict[str, Any] = _with_refs(result, renamed)  # a copy: the tool's own schema is left alone
    return rewritten


def _with_refs(node: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_with_refs(item, renamed) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _with_refs(value, renamed) for key, value in node.items()}
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        result["$ref"] = f"#/components/schemas/{renamed.get(name, name)}"
    return result
