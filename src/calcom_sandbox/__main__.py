"""`python -m calcom_sandbox [--host H] [--port N]`: the sandbox alone, as `appt-tools sandbox` runs it."""

from __future__ import annotations

import argparse
import errno

from calcom_sandbox.server import main


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calcom_sandbox",
        description="A local stand-in for the Cal.com API v2, over real HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5555, help="port to listen on; 0 picks a free one")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.exit(2, f"error: --port {args.port} is not a port: use 1-65535, or 0 for any free port.\n")
    try:
        main(port=args.port, host=args.host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        parser.exit(2, f"error: port {args.port} on {args.host} is already in use: choose another, e.g. --port 0.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
