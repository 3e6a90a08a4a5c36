"""`python -m bench.server --transport stdio|http [--port P] [--seed N]`: the product's server, served the way
`appt-tools serve --sandbox` serves it (sandbox in process, fresh database, `build_server`, and for HTTP the
product's `build_http_app` under uvicorn), plus the bench-only tools of `bench.harness`."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from appt_tools.surfaces.http.app import HttpSettings, build_http_app
from bench.harness import CalcomRecorder, bench_server, bench_service


async def serve(transport: str, port: int, seed_rows: int, database_url: str | None) -> None:
    recorder = CalcomRecorder()
    async with bench_service(recorder, database_url=database_url) as (service, _sandbox):
        if seed_rows:
            from appt_tools.store.seed import seed

            await seed(service.store, seed_rows, seed=42)
        server = bench_server(service, recorder)
        if transport == "stdio":
            await server.run_stdio_async()
            return
        app = build_http_app(server, settings=HttpSettings(host="127.0.0.1", sandbox=True))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0, help="appointments to generate before serving")
    parser.add_argument(
        "--database-url",
        default=None,
        help="where the store lives; the caller owns (and removes) it, since a terminated server cleans up nothing",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.transport, args.port, args.seed, args.database_url))


if __name__ == "__main__":
    main()
