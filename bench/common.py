"""What every part of the bench shares: percentiles, the table's rows, paths and small process helpers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


async def stop_all(processes: Sequence[asyncio.subprocess.Process]) -> None:
    """Terminate the server processes a bench started, together; kill any that outlives 15 s."""
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def serve_http(
    env: dict[str, str], count: int, *, logs: Path | None = None, seconds: float = 60
) -> AsyncIterator[list[tuple[str, int]]]:
    """`count` `appt-tools serve --transport http` processes with `env`, each once it accepts connections
    (within `seconds`): their base URLs and pids. Each writes its output to `logs`/server<n>.log, or
    nowhere; all are stopped together on the way out."""
    processes: list[asyncio.subprocess.Process] = []
    bases: list[tuple[str, int]] = []
    try:
        for n in range(count):
            port = free_port()
            log: Any = (logs / f"server{n}.log").open("wb") if logs is not None else asyncio.subprocess.DEVNULL
            process = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "appt_tools", "serve", "--transport", "http", "--port", str(port),
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )  # fmt: skip
            processes.append(process)
            await wait_for_port(port, process, seconds=seconds)
            bases.append((f"http://127.0.0.1:{port}", process.pid))
        yield bases
    finally:
        await stop_all(processes)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def p50(values: Sequence[float]) -> float:
    return percentile(values, 50)


def p95(values: Sequence[float]) -> float:
    return percentile(values, 95)


def p99(values: Sequence[float]) -> float:
    return percentile(values, 99)


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/min/max in ms (values are ms), and how many there were."""
    return {
        "n": len(values),
        "p50": round(p50(values), 3),
        "p95": round(p95(values), 3),
        "p99": round(p99(values), 3),
        "min": round(min(values), 3) if values else math.nan,
        "max": round(max(values), 3) if values else math.nan,
    }


@dataclass
class Row:
    """One line of the table: a figure, what it is measured beside, and whether it meets its target.

    `met` is None when the figure has no target (a reference figure, or informational)."""

    section: str
    metric: str
    value: float
    unit: str
    reference: float | None = None
    reference_label: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    shown: str = ""  # how the value is printed, when more than the bare value (e.g. "1.20 ms (p95 1.90)")
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(value: float, reference: float) -> float | None:
    if reference <= 0 or math.isnan(reference) or math.isnan(value):
        return None
    return value / reference


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "calls/s":
        return f"{value:.0f}/s"
    if unit == "req":
        return f"{value:g}"
    if unit == "x":
        return f"{value:.2f}×"
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:g} {unit}".strip()


def render_table(rows: Sequence[Row]) -> str:
    """The table printed at the end: metric, value, reference, ratio, target, met?"""
    header = ("metric", "value", "reference", "ratio", "target", "met?")
    lines: list[tuple[str, ...]] = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append((f"[{section}]", "", "", "", "", ""))
        reference = fmt(row.reference, row.unit) if row.reference is not None else ""
        if row.reference_label:
            reference = f"{row.reference_label} {reference}".strip()
        shown_ratio = (
            "" if row.ratio is None else (f"{row.ratio * 100:.0f}%" if row.unit == "calls/s" else f"{row.ratio:.2f}×")
        )
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append((row.metric, row.shown or fmt(row.value, row.unit), reference, shown_ratio, row.target, met))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    for line in lines:
        if line[0].startswith("[") and not any(line[1:]):
            out.append(line[0])
            continue
        out.append(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    notes = [f"  * {row.metric}: {row.note}" for row in rows if row.note]
    if notes:
        out.append("")
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a bench child process: ours, with the repository importable and no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def http_server_process(args: Sequence[str], port: int, env: dict[str, str]) -> AsyncIterator[int]:
    """Run `python -m bench.server ... --port` and wait (bounded) until it accepts connections; yield its pid."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.server",
        *args,
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_port(port, process, seconds=120)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A SQLite URL in a temporary directory this process removes, whatever happens to the server using it."""
    with tempfile.TemporaryDirectory(prefix="appt-bench-") as tmp:
        yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"


def say(*parts: object) -> None:
    """Progress goes to stderr; the table and nothing else goes to stdout."""
    print(*parts, file=sys.stderr, flush=True)
