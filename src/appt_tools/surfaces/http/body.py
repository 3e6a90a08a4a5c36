"""The request itself, before any tool runs: a POST's body read within a size limit, refused when a web
page could have forged it, and parsed as one JSON object. Each refusal is an `HttpProblem`, which the
app answers with its status and `{"error": ErrorView}`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from appt_tools import validation
from appt_tools.speech.results import ErrorView
from appt_tools.surfaces.auth import asks_for_loopback, error_response, is_loopback

SORRY = "Sorry, something went wrong on my side."


class HttpProblem(Exception):
    """The request itself is unusable (not JSON, too large, wrong content type...): refused before any tool runs."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.view = ErrorView(code=code, message=message, retryable=False, say=SORRY)
        self.status = status


def invalid_request(message: str) -> HttpProblem:
    return HttpProblem(400, "invalid_request", message)


async def problem_response(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for `HttpProblem`."""
    assert isinstance(exc, HttpProblem)
    return error_response(exc.status, exc.view)


async def read_body(request: Request, *, limit: int, loopback: bool) -> bytes:
    """The body of a POST, refusing what a web page could have forged and what is larger than `limit` bytes."""
    if loopback:
        _refuse_foreign_browser_request(request.headers)
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise HttpProblem(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json.")
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
    origin = headers.get("origin")
    if not asks_for_loopback(headers) or (origin is not None and not is_loopback(urlsplit(origin).hostname or "")):
        raise HttpProblem(
            403,
            "forbidden",
            "This server only answers requests for 127.0.0.1, localhost or [::1] from outside a browser.",
        )


def json_object(body: bytes) -> dict[str, Any]:
    """`body` parsed as one JSON object (no NaN or Infinity), or a 400 saying what it is instead."""
    if not body.strip():
        raise invalid_request("The body is empty; send a JSON object.")
    try:
        data = validation.json_document(body)
    except json.JSONDecodeError as exc:
        raise invalid_request(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except ValueError as exc:  # not UTF-8, NaN/Infinity, nested too deep
        raise invalid_request(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise invalid_request(f"The body must be a JSON object, not {kind}.")
    return data
