"""Templates (Jinja2, autoescaped) and the headers every dashboard response carries."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, JSONResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
# No inline script or style anywhere, nothing from another origin, never inside a frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("appt_tools.surfaces.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset"] = asset
    return env


@cache
def asset(name: str) -> str:
    """/static/<name>?v=<content hash>, so a new version is never served from a stale cache."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def html(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(environment().get_template(template).render(**context), status, headers=SECURITY_HEADERS)


def json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status, headers=SECURITY_HEADERS)


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
