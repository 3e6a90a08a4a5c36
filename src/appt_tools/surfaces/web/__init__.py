"""The business owner's dashboard: server-rendered pages (Jinja2) with a little of our own script,
served by the HTTP application at `/` through the same `AppointmentService` as the tools.

    tenancy.py       which business a request shows: a tenant's key its own, an operator's the one chosen
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

from collections.abc import Awaitable, Callable

from starlette.routing import BaseRoute

from appt_tools.core.service import AppointmentService
from appt_tools.surfaces.auth import CredentialChecker
from appt_tools.surfaces.web.tenancy import Keyring


def dashboard_routes(
    service: AppointmentService,
    checker: CredentialChecker,
    *,
    sandbox: bool = False,
    keyring: Callable[[], Awaitable[Keyring]] | None = None,
) -> list[BaseRoute]:
    """`keyring`: every key that may sign in and whose it is (the HTTP app's router makes it); None: the
    checker's keys only, all the default tenant's."""
    from appt_tools.surfaces.web.pages import Dashboard

    return Dashboard(service, checker, sandbox=sandbox, keyring=keyring).routes()


__all__ = ["Keyring", "dashboard_routes"]
