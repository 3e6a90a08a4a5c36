"""What an injected fault looks like on the wire (see `faults.py`): bodies of failing servers and
proxies, garbled JSON, and answers that never come.

Closing a connection without an answer needs the server's transport, which ASGI does not expose:
`FaultBook.connection_closer`, set by the running server, does it for a request's scope.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from calcom_sandbox.faults import Fault, FaultBook, Malformation
from calcom_sandbox.problems import MSG_INTERNAL

_DISCONNECT_GRACE: Final = 1.0

# What sits in front of Cal.com answers 502/503/504 itself, in its own formats.
_PROXY_BODIES: Final[Mapping[int, tuple[str, str]]] = {
    502: (
        "text/html",
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
        "</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
    ),
    503: ("text/plain", "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
    504: (
        "text/html",
        "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway "
        "Time-out</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
    ),
}
_NOT_JSON: Final = b"<!DOCTYPE html><html><head><title>Cal.com</title></head><body>Loading\xe2\x80\xa6</body></html>"
_WRONG_SHAPE: Final = b'{"status":"success","data":"ok"}'
_A_SUCCESS: Final = b'{"status":"success","data":{"id":1,"uid":"6Yq1pD3xbRq8vXcWPFkE2a","title":"Consultation"}}'


def status_answer(status: int) -> Response:
    """500 is Nest's own plain body; 502-504 come from the proxy, not as JSON."""
    if status == 500:
        return Response(b'{"statusCode":500,"message":"' + MSG_INTERNAL.encode() + b'"}', 500, media_type=_JSON)
    media_type, text = _PROXY_BODIES[status]
    return Response(text, status, media_type=media_type)


def malformed_answer(kind: Malformation, spoiled: Response | None) -> Response:
    """A 2xx whose body will not parse as the expected JSON: the real answer cut in half (or a canned
    success before the operation ran), HTML, or JSON of another shape. Labelled application/json."""
    status = spoiled.status_code if spoiled is not None and spoiled.status_code < 300 else 200
    headers = _kept_headers(spoiled)
    if kind == "not_json":
        return Response(_NOT_JSON, status, headers=headers, media_type=_JSON)
    if kind == "wrong_shape":
        return Response(_WRONG_SHAPE, status, headers=headers, media_type=_JSON)
    whole = bytes(spoiled.body) if spoiled is not None and spoiled.body else _A_SUCCESS
    return Response(whole[: max(1, len(whole) // 2)], status, headers=headers, media_type=_JSON)


class DroppedAnswer(Response):
    """No answer: after holding `seconds` (0 for a plain drop), close the connection.

    A hold ends early when the client hangs up or the sandbox stops.
    """

    def __init__(self, book: FaultBook, seconds: float = 0.0) -> None:
        super().__init__(status_code=500)
        self._book = book
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._seconds > 0:
            hung_up = asyncio.ensure_future(_until_disconnect(receive))
            try:
                await self._book.pause(self._seconds, hung_up)
            finally:
                hung_up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hung_up
        closer = self._book.connection_closer
        if closer is None or not closer(scope):
            # Not served by run_sandbox: the best left is to answer nothing and let the server cope.
            return
        # Wait for the server to notice, so it does not try to answer for us.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DISCONNECT_GRACE):
                await _until_disconnect(receive)


def fault_answer(fault: Fault, book: FaultBook, spoiled: Response | None) -> Response | None:
    """The answer for a fault that replaces the real one; None for `latency` and `rate_limit`,
    which the app handles itself."""
    if fault.kind == "status":
        return status_answer(fault.answer_status)
    if fault.kind == "malformed":
        return malformed_answer(fault.malformation, spoiled)
    if fault.kind == "drop":
        return DroppedAnswer(book)
    if fault.kind == "timeout":
        return DroppedAnswer(book, fault.hold_seconds)
    return None


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _kept_headers(spoiled: Response | None) -> dict[str, str]:
    if spoiled is None:
        return {}
    keep = ("x-request-id", "x-ratelimit-limit-default", "x-ratelimit-remaining-default", "x-ratelimit-reset-default")
    return {k: v for k, v in spoiled.headers.items() if k.lower() in keep}


_JSON: Final = "application/json"
