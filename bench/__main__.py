"""`python -m bench`: the appt-tools benchmark. Prints a table (metric, value, reference, ratio, target, met?)
and writes the same figures, with the raw details, as JSON. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import coldstart, conversation, latency, search, tenants, throughput
from bench.common import ROOT, Row, render_table, say

SECTIONS = ("conversation", "latency", "search", "throughput", "cold_start", "tenants")
FULL_SIZES = "10000,100000,1000000"


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds, e.g. 250") from None
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"{text} ms is out of range: use 0 to 60000, e.g. 250")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few iterations: proves it runs (seconds)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="where the JSON goes")
    parser.add_argument("--only", type=_names, default=list(SECTIONS), help=f"sections to run: {','.join(SECTIONS)}")
    parser.add_argument("--sizes", type=_ints, default=None, help=f"search sizes (default {FULL_SIZES})")
    parser.add_argument("--backends", type=_names, default=None, help="search backends: sqlite,postgresql")
    parser.add_argument(
        "--pg-url", default=search.DEFAULT_PG_URL, help="PostgreSQL server (a database is made and dropped)"
    )
    parser.add_argument(
        "--search-repeat", type=int, default=None, help="timed rounds of the four searches (default 40)"
    )
    parser.add_argument("--search-budget", type=float, default=None, help="seconds per size and backend (default 60)")
    parser.add_argument("--transports", type=_names, default=list(latency.TRANSPORTS), help="memory,stdio,http")
    parser.add_argument("--iterations", type=int, default=None, help="conversations per transport (default 40)")
    parser.add_argument("--concurrency", type=_ints, default=None, help="throughput levels (default 1,10,50)")
    parser.add_argument("--requests", type=int, default=None, help="calls per tool, level and round (default 200)")
    parser.add_argument("--rounds", type=int, default=None, help="throughput rounds per level (default 3)")
    parser.add_argument("--throughput-seed", type=int, default=None, help="appointments behind search (default 10000)")
    parser.add_argument("--launches", type=int, default=None, help="cold-start launches of each server (default 7)")
    parser.add_argument(
        "--calcom-latency",
        type=_milliseconds,
        default=conversation.DEFAULT_LATENCY_MS,
        metavar="MS",
        help="conversation: Cal.com latency injected per request, ms",
    )
    parser.add_argument("--warm-rounds", type=int, default=None, help="conversation: warm conversations (default 3)")
    parser.add_argument("--tenants", type=int, default=None, help="tenants besides the default one (default 100)")
    parser.add_argument(
        "--tenant-requests", type=int, default=None, help="tenants: calls per phase and round (default 200)"
    )
    parser.add_argument("--tenant-rounds", type=int, default=None, help="tenants: rounds of each phase (default 2)")
    parser.add_argument("--commits", type=int, default=None, help="durable SQLite commits timed (default 200)")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick

    def pick(value: Any, full: Any, fast: Any) -> Any:
        return value if value is not None else (fast if quick else full)

    return {
        "sections": [s for s in SECTIONS if s in args.only],
        "sizes": pick(args.sizes, _ints(FULL_SIZES), [500, 2000]),
        "backends": pick(args.backends, ["sqlite", "postgresql"], ["sqlite"]),
        "pg_url": args.pg_url,
        "search_repeat": pick(args.search_repeat, 40, 3),
        "search_budget": pick(args.search_budget, 60.0, 5.0),
        "transports": args.transports,
        "iterations": pick(args.iterations, 40, 2),
        "cold_rounds": 1 if quick else 5,
        "concurrency": pick(args.concurrency, [1, 10, 50], [1, 4]),
        "requests": pick(args.requests, 200, 12),
        "rounds": pick(args.rounds, 3, 1),
        "throughput_seed": pick(args.throughput_seed, 10_000, 500),
        "launches": pick(args.launches, 7, 1),
        "calcom_latency_ms": args.calcom_latency,
        "warm_rounds": pick(args.warm_rounds, 3, 1),
        "commits": pick(args.commits, 200, 30),
        "tenants": pick(args.tenants, tenants.DEFAULT_TENANTS, 4),
        "tenant_requests": pick(args.tenant_requests, 200, 24),
        "tenant_rounds": pick(args.tenant_rounds, 2, 1),
        "tenant_concurrency": pick(None, 20, 4),
    }


def _git() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return "unknown"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mcp": _version("mcp"),
        "sqlalchemy": _version("sqlalchemy"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


async def run(settings: dict[str, Any]) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    rows: dict[str, list[Row]] = {}
    details: dict[str, Any] = {}
    sections = settings["sections"]
    if "conversation" in sections:
        rows["conversation"], details["conversation"] = await conversation.run(
            settings["calcom_latency_ms"], settings["warm_rounds"], settings["commits"]
        )
    if "latency" in sections:
        rows["latency"], details["latency"] = await latency.run(
            settings["transports"], settings["iterations"], settings["cold_rounds"], settings["commits"]
        )
    if "throughput" in sections:
        rows["throughput"], details["throughput"] = await throughput.run(
            settings["concurrency"], settings["requests"], settings["rounds"], settings["throughput_seed"]
        )
    if "cold_start" in sections:
        rows["cold_start"], details["cold_start"] = await coldstart.run(settings["launches"])
    if "search" in sections:
        rows["search"], details["search"] = await search.run(
            settings["sizes"],
            settings["backends"],
            settings["search_repeat"],
            settings["search_budget"],
            settings["pg_url"],
        )
    if "tenants" in sections:
        rows["tenants"], details["tenants"] = await tenants.run(
            tenants=settings["tenants"],
            requests=settings["tenant_requests"],
            concurrency=settings["tenant_concurrency"],
            rounds=settings["tenant_rounds"],
            pg_url=settings["pg_url"],
        )
    return rows, details


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": _git(),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "settings": settings,
    }
    say(f"bench: {', '.join(settings['sections'])} on {meta['machine']['cores']} cores ({meta['machine']['cpu']})")
    by_section, details = asyncio.run(run(settings))
    rows = [row for section in SECTIONS for row in by_section.get(section, [])]
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    judged = [row for row in rows if row.met is not None]
    met = sum(1 for row in judged if row.met)
    meta["targets"] = {"met": met, "judged": len(judged)}
    load = meta["machine"]["load_average"]
    print(f"appt-tools bench · {meta['date']} · {meta['machine']['cores']} cores · {meta['machine']['cpu']}")
    print(f"commit {meta['commit']} · python {meta['machine']['python']} · mcp {meta['machine']['mcp']} · load {load}")
    print()
    print(render_table(rows))
    print()
    print(f"targets met: {met} of {len(judged)} · {meta['seconds']} s · JSON: {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "rows": [row.as_json() for row in rows], "details": details}
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
