"""`appt-tools`: serve, sandbox, demo, settings, event-types, schemas.

Everything a person reads goes to stderr while an MCP server speaks on stdout (stdio transport).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from appt_tools import config
from appt_tools.errors import AppError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appt-tools", description="Appointment-booking tools for AI assistants.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", action="store_true", help="use a local Cal.com sandbox (no account needed)")

    sandbox = sub.add_parser("sandbox", help="run the Cal.com sandbox alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=5555)

    sub.add_parser("demo", help="book, search, reschedule and cancel through a real MCP session on the sandbox")

    settings = sub.add_parser("settings", help="show or change settings")
    settings_sub = settings.add_subparsers(dest="action", required=True)
    settings_sub.add_parser("show")
    setter = settings_sub.add_parser("set", help="store a setting (the environment still wins)")
    setter.add_argument("key", choices=config.SETTING_KEYS)
    setter.add_argument("value", nargs="?", help="omit for secrets (API keys): they are asked for without echo")
    unset = settings_sub.add_parser("unset", help="remove a stored setting")
    unset.add_argument("key", choices=config.SETTING_KEYS)

    events = sub.add_parser("event-types", help="Cal.com event types")
    events_sub = events.add_subparsers(dest="action", required=True)
    events_sub.add_parser("refresh", help="sync from Cal.com")
    events_sub.add_parser("list", help="show the synced list")

    schemas = sub.add_parser("schemas", help="tool JSON schemas")
    schemas_sub = schemas.add_subparsers(dest="action", required=True)
    export = schemas_sub.add_parser("export", help="write tool_schemas/*.json from the live tool list")
    export.add_argument("--dir", type=Path, default=Path("tool_schemas"))
    export.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        from appt_tools.sandbox import main as sandbox_main

        sandbox_main(port=args.port, host=args.host)
        return 0
    try:
        return asyncio.run(_run(args))
    except AppError as exc:
        _say(f"error ({exc.code}): {exc.message}")
        return 2
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return await _serve(args)
    if args.command == "demo":
        from appt_tools.demo import run_demo

        return await run_demo()
    if args.command == "settings":
        return await _settings(args)
    if args.command == "event-types":
        return await _event_types(args)
    if args.command == "schemas":
        return await _schemas(args)
    raise AssertionError(args.command)


async def _serve(args: argparse.Namespace) -> int:
    from appt_tools.mcp_server import build_server
    from appt_tools.runtime import open_sandbox_service, open_service

    async with AsyncExitStack() as stack:
        if args.sandbox:
            service, sandbox = await stack.enter_async_context(open_sandbox_service())
            _say(
                f"SANDBOX MODE: bookings go to a local Cal.com sandbox at {sandbox.base_url} and a temporary "
                "database; nothing reaches real Cal.com."
            )
        else:
            service = await stack.enter_async_context(open_service())
            if service.settings.calcom_api_key is None:
                _say(
                    f"warning: {config.ENV['calcom_api_key']} is not set; booking tools will say Cal.com is not configured."
                )
        server = build_server(service)
        if args.transport == "stdio":
            await server.run_stdio_async()
            return 0
        import uvicorn

        app = server.streamable_http_app(host=args.host)
        _say(f"MCP streamable HTTP on http://{args.host}:{args.port}/mcp")
        await uvicorn.Server(
            uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
        ).serve()
    return 0


async def _settings(args: argparse.Namespace) -> int:
    from appt_tools.store import Store

    async with Store.from_url(config.database_url()) as store:
        if args.action == "set":
            value = args.value
            secret = args.key in config.SECRET_KEYS
            if value is None:
                if not secret:
                    _say(f"error: {args.key} needs a value")
                    return 2
                value = getpass.getpass(f"{args.key} (input hidden): ")
            config.parse_setting(args.key, value)  # refuse a bad value before storing it
            await store.set_setting(args.key, value.strip())
            _say(f"stored {args.key}" + ("" if secret else f" = {value.strip()}"))
        elif args.action == "unset":
            await store.set_setting(args.key, None)
            _say(f"removed stored {args.key}")
        settings = config.resolve(await store.get_settings())
    print(f"database_url      {config.database_url()}")
    for key in config.SETTING_KEYS:
        print(f"{key:<17} {settings.shown(key)}  [{settings.sources.get(key, 'default')}]")
    return 0


async def _event_types(args: argparse.Namespace) -> int:
    from appt_tools.runtime import open_service

    async with open_service() as service:
        if args.action == "refresh":
            await service.refresh_event_types()
        types = await service.store.list_event_types()
        default = service.settings.event_type_id
    if not types:
        _say("no event types synced yet: run 'appt-tools event-types refresh'")
    for t in types:
        mark = "*" if t.id == default else " "
        lengths = "/".join(str(n) for n in (t.length_options or (t.length_minutes,)))
        where = t.location_integration or t.location_address or t.location_type or "-"
        print(f"{mark} {t.id:>8}  {t.title:<36} {lengths:>10} min  {where}")
    return 0


async def _schemas(args: argparse.Namespace) -> int:
    from appt_tools import schema_export

    files = await schema_export.current_files()
    if args.check:
        problems = schema_export.drift(args.dir, files)
        for problem in problems:
            _say(problem)
        return 1 if problems else 0
    for path in schema_export.write(args.dir, files):
        _say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
