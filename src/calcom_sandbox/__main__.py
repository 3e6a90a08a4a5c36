"""`python -m calcom_sandbox [--host H] [--port N] [--rate-limit N]`: the sandbox alone, as `appt-tools sandbox` runs it."""

from __future__ import annotations

import argparse
import errno

from calcom_sandbox.ratelimit import DEFAULT_LIMIT as RATE_LIMIT
from calcom_sandbox.server import main


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calcom_sandbox",
        description="A local stand-in for the Cal.com API v2, over real HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5555, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=RATE_LIMIT,
        metavar="N",
        help="requests a minute per API key before a 429 (Cal.com's own limit is 120; raise it for load tests)",
    )
    args = parser.parse_args(argv)
    if args.rate_limit < 1:
        parser.exit(2, f"error: --rate-limit {args.rate_limit} must be at least 1 request a minute, e.g. 6000.\n")
    if not 0 <= args.port <= 65535:
        parser.exit(2, f"error: --port {args.port} is not a port: use 1-65535, or 0 for any free port.\n")
    try:
        main(port=args.port, host=args.host, rate_limit=args.rate_limit)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        parser.exit(2, f"error: port {args.port} on {args.host} is already in use: choose another, e.g. --port 0.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
