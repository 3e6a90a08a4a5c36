"""What wraps every request to the HTTP application, whatever route it reaches (docs/security.md):

    RequestLog        one line per request: time, surface, method, path, tool, status, duration,
                      appointment id; never a body, a query string, a header, a key, an e-mail or a phone
    SecurityHeaders   nosniff, no framing, no referrer, a Content-Security-Policy, on every response
                      (the dashboard's own, stricter headers, and /static/, included)
    ReadTimeout       a client that stops sending its body for `seconds` gets a 408, and the request ends
    SessionQuota      at most `per_key` MCP sessions open at once for one API key; idle ones end after `idle`
    client_gone       a client that hangs up (or is timed out) mid-request: one log line, no traceback

Each is a plain ASGI wrapper (or a Starlette exception handler), so the SDK's /mcp is covered as much as our
own routes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appt_tools.surfaces import request_notes
from appt_tools.surfaces.auth import bearer_token
from appt_tools.surfaces.request_notes import LOG_APPOINTMENT, LOG_TOOL

request_logger = logging.getLogger("appt_tools.requests")
logger = logging.getLogger("appt_tools.http")

LogFormat = Literal["text", "json", "off"]
SLOW = "appt_tools.slow_client"
MAX_LOGGED_PATH = 120

# Every response; the dashboard's pages and /static/ carry the dashboard's own policy (web/render.py),
# which wins because a header a response already has is kept.
BASELINE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "cross-origin-resource-policy": "same-origin",
}
STATIC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def surface(path: str) -> str:
    """Which door a request came through, for the request log."""
    for prefix, name in (
        ("/mcp", "mcp"),
        ("/tools/", "tools"),
        ("/vapi/", "vapi"),
        ("/retell/", "retell"),
        ("/elevenlabs/", "elevenlabs"),
        ("/webhooks/", "webhook"),
        ("/static/", "static"),
        ("/healthz", "health"),
        ("/openapi.json", "openapi"),
    ):
        if path == prefix or path.startswith(prefix):
            return name
    return "dashboard"


def note(request: Request, *, tool: str | None = None, appointment_id: str | None = None) -> None:
    """Tell the request log which tool ran and which appointment it concerned."""
    request_notes.note(request.scope, tool=tool, appointment_id=appointment_id)


class RequestLog:
    def __init__(self, app: ASGIApp, *, fmt: LogFormat = "text", clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.fmt = fmt
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.fmt == "off":
            await self.app(scope, receive, send)
            return
        started, status = self.clock(), 0

        async def logged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            self._emit(scope, status, self.clock() - started)

    def _emit(self, scope: Scope, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        path = str(scope.get("path", ""))
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "surface": surface(path),
            "method": scope.get("method", ""),
            # The path only: a query string may hold a searched name, e-mail or phone number.
            "path": path[:MAX_LOGGED_PATH],
            "tool": state.get(LOG_TOOL),
            "status": status or None,  # None: the client left before any answer
            "duration_ms": round(seconds * 1000, 1),
            "appointment_id": state.get(LOG_APPOINTMENT),
        }
        if self.fmt == "json":
            request_logger.info(json.dumps(record, ensure_ascii=True))
            return
        words = [record["time"], record["surface"], record["method"], json.dumps(record["path"])[1:-1]]
        words += [f"tool={record['tool']}"] if record["tool"] else []
        words += [str(status or "-"), f"{record['duration_ms']}ms"]
        words += [f"appointment={record['appointment_id']}"] if record["appointment_id"] else []
        request_logger.info(" ".join(words))


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASELINE_HEADERS.items():
                    if name not in headers:
                        headers[name] = STATIC_POLICY if static and name == "content-security-policy" else value
                if scope.get("scheme") == "https" and "strict-transport-security" not in headers:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, secured)


class ReadTimeout:
    """A request whose body stops arriving for `seconds` is ended: its reader sees the client as gone
    (`client_gone` answers 408 and logs one line). Only the body is timed: a response that streams for long
    (MCP's event stream) waits on `receive` for the client's disconnect, which is never timed."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            with anyio.move_on_after(self.seconds) as waited:
                message = await receive()
            if waited.cancelled_caught:
                scope.setdefault("state", {})[SLOW] = True
                body_done = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed, send)


async def client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up mid-request, or sent its body too slowly: one line in the log, no traceback.
    The 408 reaches a slow client; a departed one never reads it."""
    slow = bool((request.scope.get("state") or {}).get(SLOW))
    what = "sent its body too slowly" if slow else "disconnected before its request was read"
    logger.warning("client %s: %s %s", what, request.method, request.url.path[:MAX_LOGGED_PATH])
    message = "The request body arrived too slowly; send it again at once." if slow else "The client disconnected."
    body = {
        "error": {
            "code": "request_timeout",
            "message": message,
            "retryable": True,
            "say": "Sorry, let me try that again.",
        }
    }
    return JSONResponse(body, 408, headers={"Connection": "close"})


@dataclass
class _Opened:
    last_seen: float
    owner: str


@dataclass
class OpenSessions:
    """The MCP sessions open now, by owner: at most `per_key` for one caller (its API key; its address while
    open on loopback). A session counts until it is closed (DELETE) or has been idle `idle` seconds, when
    the SDK ends it too (it is given the same idle timeout)."""

    per_key: int
    idle: float
    clock: Callable[[], float] = time.monotonic
    sessions: dict[str, _Opened] = field(default_factory=dict)

    def open_for(self, owner: str) -> int:
        now = self.clock()
        for sid in [s for s, opened in self.sessions.items() if now - opened.last_seen > self.idle]:
            del self.sessions[sid]
        return sum(1 for opened in self.sessions.values() if opened.owner == owner)


class SessionQuota:
    """ASGI middleware in front of /mcp enforcing `OpenSessions`: a refused opening gets 429 and a JSON-RPC
    error saying how to free a session."""

    def __init__(self, app: ASGIApp, *, sessions: OpenSessions) -> None:
        self.app = app
        self.open = sessions

    def _owner(self, scope: Scope) -> str:
        token = bearer_token(Headers(scope=scope).get("authorization"))
        if token is not None:
            return "key:" + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        client = scope.get("client") or ("?", 0)
        return f"client:{client[0]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        sid = headers.get("mcp-session-id")
        if sid is not None:
            opened = self.open.sessions.get(sid)
            if opened is not None:
                opened.last_seen = self.open.clock()
                if scope.get("method") == "DELETE":
                    del self.open.sessions[sid]
            await self.app(scope, receive, send)
            return
        owner = self._owner(scope)
        if scope.get("method") == "POST" and self.open.open_for(owner) >= self.open.per_key:
            await self._refuse(scope, receive, send)
            return

        async def recorded(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                made = Headers(raw=message.get("headers", [])).get("mcp-session-id")
                if made is not None:
                    self.open.sessions[made] = _Opened(self.open.clock(), owner)
            await send(message)

        await self.app(scope, receive, recorded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        minutes = max(1, round(self.open.idle / 60))
        message = (
            f"Too many open MCP sessions for this API key (the limit is {self.open.per_key}). Close one you no longer "
            f"use (HTTP DELETE /mcp with its Mcp-Session-Id), or wait: an idle session ends after {minutes} minutes."
        )
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": message}}
        await JSONResponse(body, 429, headers={"Retry-After": str(int(self.open.idle))})(scope, receive, send)
