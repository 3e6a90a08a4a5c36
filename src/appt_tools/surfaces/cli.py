"""`appt-tools`: serve, sandbox, demo, tenants, settings, event-types, appointments, webhooks, reconcile, db, schemas.

Everything a person reads goes to stderr while an MCP server speaks on stdout (stdio transport).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import os
import socket
import sys
import traceback
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from appt_tools import config
from appt_tools.errors import AppError
from appt_tools.surfaces.malloc_arenas import limit_malloc_arenas

if TYPE_CHECKING:
    from appt_tools.core.service import AppointmentService
    from appt_tools.models import EventType, Tenant
    from appt_tools.store import Store
    from appt_tools.surfaces.mcp_server import AppointmentServer, ServiceHandle


# How long `serve` waits, once its client has gone, for a service still being opened, to close it cleanly.
CLOSE_GRACE_SECONDS = 10.0


def _say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """Every option's default in `--help`; a usage error is one line naming the command to ask for help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _harness_options(parser: argparse.ArgumentParser, *, with_sandbox: bool = False) -> None:
    """--clock and --rate-limit: the sandbox as a tool-testing harness drives it (docs/testing.md)."""
    only = " (with --sandbox)" if with_sandbox else ""
    parser.add_argument(
        "--clock",
        type=_clock_start,
        default=None,
        metavar="ISO",
        help=f"start the sandbox's clock here, e.g. 2030-01-07T08:55:00-05:00; it then runs{only}",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=None,
        metavar="N",
        help=f"requests a minute per API key the sandbox allows (Cal.com's: 120){only}",
    )


def _clock_start(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a time with a UTC offset, e.g. 2030-01-07T08:55:00-05:00")
    return at


def _rate_limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100_000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of requests a minute from 1 to 100000")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="appt-tools", description="Appointment-booking tools for AI assistants.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server", description="Run the MCP server.")
    serve.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="stdio for one client; http for the rest"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (http)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (http); 0 picks a free one")
    serve.add_argument(
        "--sandbox", action="store_true", help="use a local Cal.com sandbox and a temporary database (no account)"
    )
    serve.add_argument(
        "--tenant",
        default=None,
        metavar="SLUG",
        help="stdio: the tenant (business) this server acts for (default: the default tenant); over HTTP every "
        "tenant is served, chosen per request by its key, X-Tenant or the number dialled",
    )
    _harness_options(serve, with_sandbox=True)

    sandbox = sub.add_parser("sandbox", help="run the Cal.com sandbox alone", description="Run the Cal.com sandbox.")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=5555, help="port to listen on; 0 picks a free one")
    _harness_options(sandbox)

    sub.add_parser(
        "demo",
        help="book, search, reschedule and cancel through a real MCP session on the sandbox",
        description="Book, search, reschedule and cancel through a real MCP session on the sandbox.",
    )

    _tenants_parser(sub)

    settings = sub.add_parser("settings", help="show or change settings", description="Show or change settings.")
    settings_sub = settings.add_subparsers(dest="action", required=True)
    shower = settings_sub.add_parser("show", help="every setting, where it comes from; secrets masked")
    setter = settings_sub.add_parser(
        "set", help="store a setting (the environment still wins)", description="Store a setting."
    )
    setter.add_argument("key", choices=config.SETTING_KEYS, help="the setting")
    setter.add_argument("value", nargs="?", help="omit for secrets (API keys): they are asked for without echo")
    unset = settings_sub.add_parser("unset", help="remove a stored setting", description="Remove a stored setting.")
    unset.add_argument("key", choices=config.SETTING_KEYS, help="the setting")
    for action in (shower, setter, unset):
        action.add_argument(
            "--tenant",
            default=None,
            metavar="SLUG",
            help="the business whose settings these are (default: the default tenant, the only one of a "
            "single-business deployment)",
        )

    events = sub.add_parser("event-types", help="Cal.com event types", description="Cal.com event types.")
    events_sub = events.add_subparsers(dest="action", required=True)
    for action in (
        events_sub.add_parser("refresh", help="sync from Cal.com"),
        events_sub.add_parser("list", help="show the synced list"),
    ):
        _tenant_option(action)

    reconcile = sub.add_parser(
        "reconcile",
        help="compare the store with Cal.com over a window and repair it",
        description="Compare the store with Cal.com over a window and repair it.",
    )
    reconcile.add_argument("--days-back", type=int, default=7, help="from this many days ago")
    reconcile.add_argument("--days-ahead", type=int, default=90, help="to this many days ahead")
    reconcile.add_argument(
        "--tenant", default=None, metavar="SLUG", help="only this tenant (default: every tenant, one after another)"
    )
    reconcile.add_argument(
        "--grace-seconds",
        type=int,
        default=120,
        help="leave bookings younger than this that are still being made alone (0 after a crash)",
    )

    appointments = sub.add_parser(
        "appointments",
        help="settle a pending booking as the host",
        description="Confirm or decline a booking waiting for the host (event types that need confirmation). "
        "Cal.com e-mails the attendee.",
    )
    appointments_sub = appointments.add_subparsers(dest="action", required=True)
    confirm = appointments_sub.add_parser("confirm", help="accept a pending booking")
    confirm.add_argument("appointment_id", metavar="ID", help="appointment id (apt_…) or Cal.com booking uid")
    decline = appointments_sub.add_parser("decline", help="turn down a pending booking")
    decline.add_argument("appointment_id", metavar="ID", help="appointment id (apt_…) or Cal.com booking uid")
    decline.add_argument("--reason", default=None, help="told to the attendee, e.g. 'Fully booked that week'")
    for action in (confirm, decline):
        _tenant_option(action)

    webhooks = sub.add_parser(
        "webhooks",
        help="the Cal.com webhook that keeps the store in step",
        description="Set up the Cal.com webhook that tells this server about bookings changed in Cal.com.",
    )
    webhooks.add_argument(
        "--tenant",
        default=None,
        metavar="SLUG",
        help="the tenant whose Cal.com account and secret to use (default: the default tenant); its route is "
        "/webhooks/calcom/SLUG",
    )
    webhooks_sub = webhooks.add_subparsers(dest="action", required=True)
    register = webhooks_sub.add_parser(
        "register",
        help="create or update it with a new secret, and store the secret",
        description="Create (or update) the Cal.com webhook to URL for the booking triggers this server handles, "
        "with a freshly generated secret, stored as calcom_webhook_secret.",
    )
    register.add_argument("--url", required=True, help="public URL of this server's route, https://…/webhooks/calcom")
    webhooks_sub.add_parser("list", help="the Cal.com webhooks of the API key's user")
    remove = webhooks_sub.add_parser("remove", help="delete a Cal.com webhook")
    remove.add_argument("target", metavar="ID_OR_URL", help="the webhook's id, or its subscriber URL")

    db = sub.add_parser("db", help="the local database", description="The local database.")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="migrate it to the newest schema (every start does this too)")

    schemas = sub.add_parser("schemas", help="tool JSON schemas", description="Tool JSON schemas.")
    schemas_sub = schemas.add_subparsers(dest="action", required=True)
    export = schemas_sub.add_parser(
        "export", help="write tool_schemas/*.json from the live tool list", description="Write the tool schemas."
    )
    export.add_argument("--dir", type=Path, default=Path("tool_schemas"), help="where the files go")
    export.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    export.add_argument(
        "--base-url",
        default=None,
        help="your server's public URL, e.g. https://appt.example.com: the Vapi, Retell and ElevenLabs "
        "definitions call it (default: a placeholder to replace)",
    )
    return parser


def _version() -> str:
    try:
        return metadata.version("appt-tools")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "serve":
            limit_malloc_arenas()  # before any thread starts (malloc_arenas.py: a flat memory line)
        return asyncio.run(_run(args))
    except AppError as exc:
        _say(f"error ({exc.code}): {exc.message}")
        return 2
    except CannotListen as exc:
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


class CannotListen(Exception):
    """The port cannot be listened on; the message says why and what to do, in one line."""


def _listen(host: str, port: int, command: str) -> socket.socket:
    """A TCP socket bound to host:port, so that a busy or invalid port is said before anything starts."""
    if not 0 <= port <= 65535:
        raise CannotListen(f"--port {port} is not a port: use 1-65535, or 0 for any free port.")
    try:
        family, _, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise CannotListen(
            f"--host {host} is not an address of this machine ({exc.strerror}): use 127.0.0.1, or 0.0.0.0 for all."
        ) from None
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not a busy port's: only one in TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"port {port} on {host} is already in use (another server is listening there): stop it, or "
                f"choose another port, e.g. {command} --port {port + 1 if port < 65535 else 8000}."
            ) from None
        if exc.errno == errno.EACCES:
            raise CannotListen(
                f"not allowed to listen on {where}: ports below 1024 need root; use one above, e.g. --port 8000."
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise CannotListen(
                f"{host} is not an address of this machine: use 127.0.0.1, or 0.0.0.0 for all."
            ) from None
        raise CannotListen(f"cannot listen on {where}: {exc.strerror or exc}.") from None
    return sock


def _sandbox(args: argparse.Namespace) -> int:
    from calcom_sandbox import main as sandbox_main

    _listen(args.host, args.port, "appt-tools sandbox").close()  # a busy port said in one line, before starting
    if args.rate_limit is None:
        sandbox_main(port=args.port, host=args.host, clock=args.clock)
    else:
        sandbox_main(port=args.port, host=args.host, clock=args.clock, rate_limit=args.rate_limit)
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        if not args.sandbox and (args.clock is not None or args.rate_limit is not None):
            _say("error: --clock and --rate-limit set the sandbox's clock and limit; add --sandbox to use them.")
            return 2
        if args.tenant is not None and (args.transport == "http" or args.sandbox):
            why = (
                "over HTTP every tenant is served, each request acting for the tenant of its key, its X-Tenant "
                "header or the number dialled (docs/security.md)"
                if args.transport == "http"
                else "--sandbox starts a fresh database whose only tenant is the default one"
            )
            _say(f"error: --tenant is for MCP over stdio on a database with tenants: {why}. Leave --tenant out.")
            return 2
        return await _serve(args)
    if args.command == "demo":
        from appt_tools.surfaces.demo import run_demo

        return await run_demo()
    if args.command == "tenants":
        return await _tenants(args)
    if args.command == "settings":
        return await _settings(args)
    if args.command == "event-types":
        return await _event_types(args)
    if args.command == "reconcile":
        return await _reconcile(args)
    if args.command == "schemas":
        return await _schemas(args)
    if args.command == "db":
        return await _db(args)
    if args.command == "appointments":
        return await _appointments(args)
    if args.command == "webhooks":
        return await _webhooks(args)
    raise AssertionError(args.command)


async def _serve(args: argparse.Namespace) -> int:
    """Over stdio the server answers at once (initialize and tools/list need no service) while the service
    opens in the background; each tool call waits for it. Over HTTP the service is open before serving
    (the dashboard and the keys need it)."""
    from appt_tools.surfaces.mcp_server import ServiceHandle, build_server

    if args.transport == "http":
        # Bound before anything opens, so that a busy port is one line and nothing else starts.
        sock = _listen(args.host, args.port, "appt-tools serve --transport http")
        try:
            async with AsyncExitStack() as stack:
                return await _serve_http(build_server(await _open_for_serving(stack, args)), args, sock)
        finally:
            sock.close()
    handle = ServiceHandle()
    server = build_server(handle)
    stop = asyncio.Event()
    opener = asyncio.create_task(_hold_open(args, handle, stop))
    try:
        await server.run_stdio_async()
    finally:
        # An open service closes now; one still opening closes as soon as it is open (cancelling it half
        # open would leave its database connections to the interpreter's exit), unless that takes long.
        stop.set()
        await asyncio.wait({opener}, timeout=CLOSE_GRACE_SECONDS)
        if not opener.done():
            opener.cancel()
            await asyncio.wait({opener})
    return 0


async def _hold_open(args: argparse.Namespace, handle: ServiceHandle, stop: asyncio.Event) -> None:
    """Open the service into `handle`, keep it open until `stop`, then close it. A failure to open is
    said on stderr and recorded in `handle`, so that every tool call answers with the reason."""
    try:
        async with AsyncExitStack() as stack:
            handle.set(await _open_for_serving(stack, args))
            await stop.wait()
    except Exception as exc:
        if handle.settled:  # it was open: closing failed
            _say(f"error while closing: {type(exc).__name__}: {exc}")
            return
        handle.fail(exc)
        if isinstance(exc, AppError):
            _say(f"error ({exc.code}): {exc.message}")
        else:
            traceback.print_exception(exc, file=sys.stderr)
        _say(
            "error: the server could not open its database and settings; every tool call will say so. Restart it once fixed."
        )


async def _open_for_serving(stack: AsyncExitStack, args: argparse.Namespace) -> AppointmentService:
    """The service `serve` runs on (entered into `stack`), with periodic reconciliation."""
    from appt_tools.core.reconcile import reconciling
    from appt_tools.runtime import Runtime, open_sandbox_service, open_service

    if args.sandbox:
        service, sandbox = await stack.enter_async_context(
            open_sandbox_service(clock=args.clock, rate_limit=args.rate_limit)
        )
        _say(
            f"SANDBOX MODE: bookings go to a local Cal.com sandbox at {sandbox.base_url} and a temporary "
            "database; nothing reaches real Cal.com."
        )
    else:
        service = await stack.enter_async_context(open_service(tenant=args.tenant))
        if service.settings.calcom_api_key is None:
            where = (
                config.ENV["calcom_api_key"]
                if args.tenant is None
                else f"tenant {args.tenant!r}'s calcom_api_key (appt-tools settings set calcom_api_key --tenant {args.tenant})"
            )
            _say(f"warning: {where} is not set; booking tools will say Cal.com is not configured.")
    # The Cal.com reads the first call would otherwise make (whose account, the event types) start now,
    # in the background: a call arriving first waits for them; a failure is logged and retried by a call.
    service.start_sync()
    # The free slots of the event types in use are kept warm from then on (core/warm.py): find_slots in
    # the next days answers from memory; stopped when the service closes.
    service.start_warm()
    await stack.enter_async_context(reconciling(service, service.settings.reconcile_minutes))
    if args.transport == "http":
        # Every other tenant's service opens on its first call, with its own start-up sync and reconciliation,
        # and closes when idle.
        Runtime.of(service).tenants.serve(reconcile_minutes=service.settings.reconcile_minutes)
    return service


async def _serve_http(server: AppointmentServer, args: argparse.Namespace, sock: socket.socket) -> int:
    """MCP, /tools, Vapi and Retell in one process. Keys come from the environment or the store, never
    from the command line, and are never printed."""
    import uvicorn

    from appt_tools.runtime import Runtime
    from appt_tools.surfaces.auth import Credentials, is_loopback
    from appt_tools.surfaces.http.app import HttpSettings, build_http_app

    service = server.service
    credentials = Credentials.of(service.settings)
    operator = config.OperatorCredentials.of()
    directory = await Runtime.of(service).tenants.directory()
    keyed = bool(credentials.api_keys or operator.api_keys or any(t.http_api_keys for t in directory.tenants))
    if not keyed and not is_loopback(args.host):
        _say(
            f"error: refusing to serve on {args.host} without an API key: anyone who can reach it could book and "
            f"cancel. Set one (at least {config.MIN_HTTP_KEY_LENGTH} characters), then start again:\n"
            f"  export {config.ENV['http_api_keys']}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\n"
            "or store it (asked for without echo): appt-tools settings set http_api_keys"
        )
        return 2

    async def reload() -> Credentials:
        # Stored keys are re-read while serving, so `settings set/unset http_api_keys` revokes without a restart.
        return Credentials.of(config.resolve(await Runtime.of(service).stored_settings()))

    settings = HttpSettings(
        host=args.host,
        credentials=credentials,
        reload_credentials=reload,
        sandbox=args.sandbox,
        stateless=service.settings.http_stateless,
        mcp_sessions_per_key=service.settings.mcp_sessions_per_key,
        mcp_session_idle_seconds=service.settings.mcp_session_idle_minutes * 60.0,
        read_timeout=service.settings.http_read_timeout,
        request_log=service.settings.request_log,
        operator=operator,
    )
    _request_log_to_stderr()
    port = sock.getsockname()[1]
    base = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{port}"
    app = build_http_app(server, settings=settings)
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    serving = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    # uvicorn has no "started" event: its flag turns true once the socket accepts connections.
    while not uvicorn_server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if uvicorn_server.started:
        _say(
            f"serving on {base}: / (dashboard), /mcp (MCP), /tools/<name>, /vapi/tool-calls, /retell/functions, "
            "/webhooks/calcom, /healthz"
        )
        count = len(credentials.api_keys)
        _say(
            f"auth: {count} API key{'s' if count != 1 else ''} (Authorization: Bearer)"
            if count
            else "auth: none (no API key configured; open on loopback only)"
            if not keyed
            else "auth: no key of the default tenant's; other tenants' and operator keys (Authorization: Bearer)"
        )
        if len(directory.tenants) > 1 or operator.api_keys:
            _say(
                f"tenants: {len(directory.tenants)}; {len(operator.api_keys)} operator key(s) "
                f"({config.OPERATOR_KEYS_ENV}): a call acts for its key's tenant, else X-Tenant or the number dialled"
            )
        if settings.stateless:
            _say("mcp: stateless (no MCP sessions: any instance behind a load balancer can answer any request)")
    await serving
    return 0


def _tenants_parser(sub: Any) -> None:
    tenants = sub.add_parser(
        "tenants",
        help="the businesses this deployment serves",
        description="The businesses (tenants) this deployment serves, each with its own Cal.com key, settings, "
        "appointments and phone numbers. A single business needs none of this: it is the default tenant.",
    )
    tenants_sub = tenants.add_subparsers(dest="action", required=True)
    numbers_help = "the E.164 numbers its calls are dialled to, comma-separated, e.g. +14155550100,+14155550101"
    add = tenants_sub.add_parser(
        "add",
        help="add a business",
        description="Add a business. Then store its Cal.com key (asked for without echo): "
        "appt-tools settings set --tenant SLUG calcom_api_key",
    )
    add.add_argument("slug", metavar="SLUG", help="lower-case letters, digits and '-', e.g. acme-dental")
    add.add_argument("--name", required=True, help="its display name, e.g. 'Acme Dental'")
    add.add_argument("--numbers", default="", help=numbers_help)
    tenants_sub.add_parser("list", help="every business: slug, name, numbers, whether its Cal.com key is set")
    show = tenants_sub.add_parser("show", help="one business and its settings (secrets masked)")
    show.add_argument("slug", metavar="SLUG")
    change = tenants_sub.add_parser(
        "set", help="rename a business or change its numbers", description="Rename a business or change its numbers."
    )
    change.add_argument("slug", metavar="SLUG")
    change.add_argument("--name", default=None, help="its new display name")
    change.add_argument(
        "--numbers", default=None, help=numbers_help + "; exactly these replace the old ones ('' for none)"
    )
    remove = tenants_sub.add_parser(
        "remove",
        help="stop serving a business (its data is kept unless --purge)",
        description="Stop serving a business: it is no longer listed and its numbers are freed, but its "
        "appointments and settings stay in the database. With --purge, delete all of it for good: you are "
        "asked to type the slug to confirm (piped: printf %%s SLUG | appt-tools tenants remove SLUG --purge).",
    )
    remove.add_argument("slug", metavar="SLUG")
    remove.add_argument(
        "--purge", action="store_true", help="also delete its appointments, history and settings (asks to confirm)"
    )


def _tenant_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant", default=None, metavar="SLUG", help="the business to act for (default: the default tenant)"
    )


def _numbers(value: str) -> list[str]:
    return [number.strip() for number in value.split(",") if number.strip()]


async def _tenant_store(root: Store, slug: str | None) -> tuple[Store, bool]:
    """The store of tenant `slug` (the default tenant's when None), and whether it is the default tenant's
    (whose settings the whole environment applies to; another's, only the deployment-wide part)."""
    if slug is None:
        return root, True
    tenant = await _tenant(root, slug)
    return root.for_tenant(tenant.id), _is_default(tenant.id)


def _is_default(tenant_id: int) -> bool:
    from appt_tools.store import DEFAULT_TENANT_ID

    return tenant_id == DEFAULT_TENANT_ID


async def _tenant(root: Store, slug: str) -> Tenant:
    """The tenant `slug`; NotFound naming the tenants there are."""
    from appt_tools.errors import NotFound

    tenant = await root.tenants.get(slug)
    if tenant is None:
        slugs = ", ".join(t.slug for t in await root.tenants.list())
        removed = await root.tenants.get(slug, include_removed=True)
        why = " (it was removed; its data is kept)" if removed is not None else ""
        raise NotFound(
            f"There is no tenant {slug!r}{why}. The tenants are: {slugs}. "
            "Add one with: appt-tools tenants add SLUG --name 'Business Name'"
        )
    return tenant


def _print_settings(settings: config.Settings) -> None:
    print(f"database_url      {config.database_url()}")
    for key in config.SETTING_KEYS:
        print(f"{key:<17} {settings.shown(key)}  [{settings.sources.get(key, 'default')}]")


async def _tenants(args: argparse.Namespace) -> int:
    """Add, list, show, change and remove businesses; a Cal.com key is never printed, only whether it is set."""
    from appt_tools.store import Store

    async with Store.from_url(config.database_url()) as root:
        admin = root.tenants
        if args.action == "add":
            tenant = await admin.add(args.slug, args.name, numbers=_numbers(args.numbers), now=_now())
            _say(f"added tenant {tenant.slug!r} ({tenant.name}){_on(tenant.numbers)}.")
            _say(
                f"next: store its Cal.com key (asked for without echo): "
                f"appt-tools settings set --tenant {tenant.slug} calcom_api_key"
            )
            return 0
        if args.action == "list":
            print(f"{'slug':<24} {'name':<32} {'calcom key':<10} numbers")
            for tenant in await admin.list():
                stored = await root.for_tenant(tenant.id).get_settings()
                settings = config.resolve_for_tenant(stored, None, default=_is_default(tenant.id))
                key = "set" if settings.calcom_api_key is not None else "not set"
                numbers = ", ".join(tenant.numbers) or "-"
                print(f"{tenant.slug:<24} {tenant.name:<32} {key:<10} {numbers}")
            return 0
        if args.action == "show":
            tenant = await _tenant(root, args.slug)
            print(f"tenant            {tenant.slug}")
            print(f"name              {tenant.name}")
            print(f"numbers           {', '.join(tenant.numbers) or '(none)'}")
            print(f"created_at        {tenant.created_at.isoformat(timespec='seconds')}")
            stored = await root.for_tenant(tenant.id).get_settings()
            _print_settings(config.resolve_for_tenant(stored, None, default=_is_default(tenant.id)))
            return 0
        if args.action == "set":
            if args.name is None and args.numbers is None:
                _say(
                    f"error: say what to change, e.g. appt-tools tenants set {args.slug} --name 'Acme Dental' "
                    "or --numbers +14155550100,+14155550101"
                )
                return 2
            before = await _tenant(root, args.slug)
            after = before
            if args.name is not None:
                after = await admin.set_name(args.slug, args.name)
            if args.numbers is not None:
                after = await admin.set_numbers(args.slug, _numbers(args.numbers))
            if after.name != before.name:
                _say(f"tenant {after.slug!r}: name {before.name!r} → {after.name!r}")
            if after.numbers != before.numbers:
                _say(
                    f"tenant {after.slug!r}: numbers {', '.join(before.numbers) or '(none)'} → "
                    f"{', '.join(after.numbers) or '(none)'}"
                )
            if after == before:
                _say(f"tenant {after.slug!r}: unchanged")
            return 0
        return await _remove_tenant(root, args)


async def _remove_tenant(root: Store, args: argparse.Namespace) -> int:
    """Remove (data kept), or with --purge delete everything once the slug is typed again."""
    tenant = await root.tenants.get(args.slug, include_removed=args.purge)
    if tenant is None:
        await _tenant(root, args.slug)  # raises, naming the tenants there are
    if not args.purge:
        await root.tenants.remove(args.slug, now=_now())
        _say(
            f"removed tenant {args.slug!r}: it no longer answers calls and its numbers are free; its appointments "
            f"and settings are kept. To delete them for good: appt-tools tenants remove {args.slug} --purge"
        )
        return 0
    prompt = f"This deletes every appointment, history entry and setting of {args.slug!r} for good. Type its slug to confirm: "
    if sys.stdin.isatty():
        typed = await asyncio.to_thread(input, prompt)
    else:
        _say(prompt)
        typed = sys.stdin.readline()
    if typed.strip() != args.slug:
        _say(f"error: the slug was not typed back, so nothing was deleted (type {args.slug!r} exactly).")
        return 2
    await root.tenants.remove(args.slug, now=_now(), purge=True)
    _say(f"purged tenant {args.slug!r}: it and all of its data are deleted.")
    return 0


def _on(numbers: Sequence[str]) -> str:
    return f", answering on {', '.join(numbers)}" if numbers else ", with no numbers yet (tenants set SLUG --numbers …)"


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


_SECRET_ON_COMMAND_LINE = (
    "error: {key} is a secret, so it is not taken from the command line (shell history and the process "
    "list would keep it); nothing was stored. Run 'appt-tools settings set {key}' and paste it when asked, "
    "pipe it in ('printf %s \"$KEY\" | appt-tools settings set {key}'), or set {env} in the environment."
)


async def _settings(args: argparse.Namespace) -> int:
    """`show` prints every setting; `set` and `unset` print only what changed. `--tenant` names the
    business (default: the default tenant); a business's own settings come from the environment for the
    default tenant only (`config.resolve_for_tenant`)."""
    from appt_tools.store import Store

    async with Store.from_url(config.database_url()) as root:
        store, default = await _tenant_store(root, args.tenant)
        stored = await store.get_settings()
        if args.action == "show":
            _print_settings(config.resolve_for_tenant(stored, None, default=default))
            return 0
        if args.action == "set":
            value = args.value
            if value is not None and args.key in config.SECRET_KEYS:
                message = _SECRET_ON_COMMAND_LINE.format(key=args.key, env=config.ENV[args.key])
                if not default:  # another tenant's: the environment is not an option, --tenant is needed
                    message = message.replace(
                        f"settings set {args.key}", f"settings set --tenant {args.tenant} {args.key}"
                    ).replace(f", or set {config.ENV[args.key]} in the environment", "")
                _say(message)
                return 2
            if value is None and args.key in config.SECRET_KEYS and not sys.stdin.isatty():
                value = sys.stdin.readline().rstrip("\r\n")  # piped: printf %s "$KEY" | appt-tools settings set …
            elif value is None:
                if args.key not in config.SECRET_KEYS:
                    _say(
                        f"error: {args.key} needs a value, e.g. appt-tools settings set {args.key} {_EXAMPLES[args.key]}"
                    )
                    return 2
                value = getpass.getpass(f"{args.key} (input hidden): ")
            parsed = config.parse_setting(args.key, value)  # refuse a bad value before storing it
            if args.key == "event_type_id":
                refusal = _unknown_event_type(parsed, await store.list_event_types())
                if refusal:
                    _say(refusal)
                    return 2
            await store.set_setting(args.key, value.strip())
        else:
            await store.set_setting(args.key, None)
        # The stored values alone (the environment left out), so the change shows even where it wins.
        old = config.resolve(stored, environ={}).shown(args.key)
        new = config.resolve(await store.get_settings(), environ={}).shown(args.key)
    verb = "stored" if args.action == "set" else "removed stored"
    whose = "" if args.tenant is None else f" for tenant {args.tenant!r}"
    if old != new:
        _say(f"{verb} {args.key}{whose}: {old} → {new}")
    elif args.key in config.SECRET_KEYS and args.action == "set":
        _say(f"{verb} {args.key}{whose}: {new} (masked; a new value may look the same)")
    else:
        _say(f"{verb} {args.key}{whose}: {new} (unchanged)")
    if os.environ.get(config.ENV[args.key]) and (default or args.key in config.DEPLOYMENT_KEYS):
        _say(f"note: {config.ENV[args.key]} is set in the environment and wins over the stored value.")
    return 0


# A value to show in "needs a value" for each setting that is not a secret.
def _request_log_to_stderr() -> None:
    """The request log (surfaces/http/guards.py) as plain lines on stderr, each already formatted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    request_log = logging.getLogger("appt_tools.requests")
    request_log.handlers[:] = [handler]
    request_log.setLevel(logging.INFO)
    request_log.propagate = False


_EXAMPLES = {
    "calcom_base_url": "https://api.cal.com",
    "event_type_id": "123",
    "timezone": "America/New_York",
    "duration_minutes": "30",
    "business_name": "'Acme Dental'",
    "language": "es",
    "calcom_timeout": "10",
    "reconcile_minutes": "15",
    "calcom_rate_limit": "120",
    "http_stateless": "true",
    "mcp_sessions_per_key": "50",
    "mcp_session_idle_minutes": "10",
    "http_read_timeout": "30",
    "request_log": "json",
    "hold_minutes": "5",
    "slots_warm_days": "14",
    "slots_fresh_seconds": "60",
}


def _unknown_event_type(event_type_id: object, synced: Sequence[EventType]) -> str | None:
    """Why `event_type_id` cannot be the default (not in the synced list), or None if it can."""
    if any(t.id == event_type_id for t in synced):
        return None
    if not synced:
        return (
            f"error: event type {event_type_id} is not known here: no event types are synced yet. "
            "Run 'appt-tools event-types refresh' (needs the Cal.com key), then choose one from 'appt-tools event-types list'."
        )
    known = "; ".join(f"{t.id} {t.title} ({t.length_minutes} min)" for t in synced)
    return f"error: event type {event_type_id} is not in the synced list; choose one of: {known}. (New in Cal.com? Run 'appt-tools event-types refresh'.)"


async def _event_types(args: argparse.Namespace) -> int:
    from appt_tools.runtime import open_service

    async with open_service(tenant=args.tenant) as service:
        if args.action == "refresh":
            await service.refresh_event_types()
        types = await service.catalog.synced()
        default = service.settings.event_type_id
    if not types:
        _say("no event types synced yet: run 'appt-tools event-types refresh'")
    for t in types:
        mark = "*" if t.id == default else " "
        lengths = "/".join(str(n) for n in (t.length_options or (t.length_minutes,)))
        where = t.location_integration or t.location_address or t.location_type or "-"
        print(f"{mark} {t.id:>8}  {t.title:<36} {lengths:>10} min  {where}")
    return 0


async def _reconcile(args: argparse.Namespace) -> int:
    """Every tenant, one after another (or the one named): a single-business database prints as it always did."""
    from datetime import timedelta

    from appt_tools.core.reconcile import Reconciler
    from appt_tools.runtime import Runtime, open_service

    unresolved = False
    async with open_service(tenant=args.tenant) as opened:
        tenants = Runtime.of(opened).tenants
        ids = [opened.store.tenant_id] if args.tenant else [t.id for t in await opened.store.tenants.list()]
        slugs = {t.id: t.slug for t in await opened.store.tenants.list()} if len(ids) > 1 else {}
        for tenant_id in ids:
            async with tenants.acting_for(tenant_id) as service:
                if not service.calcom_configured and len(ids) > 1:
                    print(f"{slugs[tenant_id]}: skipped (no Cal.com key)")
                    continue
                now = service.now()
                report = await Reconciler.of(service, grace=timedelta(seconds=args.grace_seconds)).reconcile(
                    now - timedelta(days=args.days_back), now + timedelta(days=args.days_ahead)
                )
            prefix = f"{slugs[tenant_id]}: " if slugs else ""
            print(
                f"{prefix}checked {report.checked} appointment(s); repaired {len(report.repaired)}; "
                f"unresolved {len(report.unresolved)}"
            )
            for line in report.repaired:
                print(f"  repaired   {line}")
            for line in report.unresolved:
                print(f"  unresolved {line}")
            unresolved = unresolved or bool(report.unresolved)
    return 1 if unresolved else 0


async def _appointments(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from appt_tools.runtime import open_service

    async with open_service(tenant=args.tenant) as service:
        if args.action == "confirm":
            done = await service.confirm(args.appointment_id)
            verb = "confirmed"
        else:
            done = await service.decline(args.appointment_id, args.reason)
            verb = "declined"
        when = done.start.astimezone(ZoneInfo(service.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    print(f"{verb} {done.id} ({done.attendee_name}, {when}): now {done.status.value}; Cal.com e-mails the attendee")
    return 0


async def _webhooks(args: argparse.Namespace) -> int:
    from appt_tools.core import webhook_setup
    from appt_tools.runtime import open_service

    async with open_service(tenant=args.tenant) as service:
        if args.action == "register":
            done = await webhook_setup.register(service.calcom, service.store, args.url)
            hook = done.webhook
            print(f"{'created' if done.created else 'updated'} webhook {hook.id} → {hook.subscriber_url}")
            print(f"  triggers: {', '.join(hook.triggers)}")
            _say("stored a new calcom_webhook_secret; Cal.com signs every delivery with it")
            if args.tenant is not None and not args.url.rstrip("/").endswith(f"/webhooks/calcom/{args.tenant}"):
                _say(
                    f"warning: tenant {args.tenant!r}'s deliveries are checked with its own secret at "
                    f"/webhooks/calcom/{args.tenant}; {args.url} does not end so."
                )
            if args.tenant is None and os.environ.get(config.ENV["calcom_webhook_secret"]):
                _say(
                    f"warning: {config.ENV['calcom_webhook_secret']} is set in the environment and wins over the "
                    "stored secret: unset it, or deliveries will be refused as badly signed."
                )
        elif args.action == "list":
            hooks = await service.calcom.webhooks()
            if not hooks:
                _say("no Cal.com webhooks: run 'appt-tools webhooks register --url https://…/webhooks/calcom'")
            for hook in hooks:
                state = "active" if hook.active else "inactive"
                print(f"{hook.id}  {hook.subscriber_url}  [{state}]  {', '.join(hook.triggers)}")
        else:
            for hook in await webhook_setup.remove(service.calcom, args.target):
                print(f"removed webhook {hook.id} → {hook.subscriber_url}")
    return 0


async def _schemas(args: argparse.Namespace) -> int:
    from appt_tools.surfaces import schema_export
    from appt_tools.surfaces.schema_formats import PLACEHOLDER_URL

    base_url = args.base_url or PLACEHOLDER_URL
    if not base_url.startswith(("https://", "http://")) or "?" in base_url or "#" in base_url:
        _say(f"--base-url: {base_url!r} is not an http(s) URL without query; use e.g. https://appt.example.com")
        return 2
    files = await schema_export.current_files(base_url)
    if args.check:
        problems = schema_export.drift(args.dir, files)
        for problem in problems:
            _say(problem)
        return 1 if problems else 0
    for path in schema_export.write(args.dir, files):
        _say(f"wrote {path}")
    return 0


async def _db(args: argparse.Namespace) -> int:
    from appt_tools.store import Store

    store = Store.from_url(config.database_url())
    try:
        before = await store.schema_revision()
        await store.create_schema()
        after = await store.schema_revision()
    finally:
        await store.aclose()
    if before == after:
        _say(f"the database is already at schema revision {after}, the newest")
    else:
        was = before or "no revision (a new database, or one made before migrations)"
        _say(f"upgraded the database from {was} to schema revision {after}, the newest")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
