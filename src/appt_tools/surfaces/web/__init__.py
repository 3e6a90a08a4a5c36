"""The business owner's dashboard: server-rendered pages (Jinja2) with a little of our own script,
served by the HTTP application at `/` through the same `AppointmentService` as the tools.

    session.py       sign-in sessions, CSRF tokens, origin and host checks (the design is described there)
    gate.py          the doors every endpoint goes through: page, read, change
    pages.py         the pages, sign-in, and the route table
    appointments.py  table, calendar, slots, create / edit / move / cancel
    settings.py      settings, Refresh event types, Test connection
    present.py       appointments as shown: local times, badges, the month grid
    plain.py         the service's errors for a person at a screen, by field
    render.py        templates and security headers
    templates/, static/
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from appt_tools.core.service import AppointmentService
from appt_tools.surfaces.auth import CredentialChecker


def dashboard_routes(
    service: AppointmentService, checker: CredentialChecker, *, sandbox: bool = False
) -> list[BaseRoute]:
    from appt_tools.surfaces.web.pages import Dashboard

    return Dashboard(service, checker, sandbox=sandbox).routes()


__all__ = ["dashboard_routes"]
