"""Search at 10k, 100k and 1M appointments, on SQLite and on PostgreSQL when one is reachable.

For each backend and size: a fresh database, seeded by `appt_tools.store.seed` in a child process; then a
second, fresh child process opens it through the product's `open_service` and times four searches through
`AppointmentService.search` (what every surface calls), and reports its own peak RSS: that process holds
only what serving searches over that many appointments takes, not what generating them took.

- text: free text (a surname, an e-mail, a caller's number, a business word, taken from the data itself)
- filter_sort: two statuses, a call type, a label and one year of dates, sorted by attendee name, 25 a page
- deep_page: no filter, by start, page 100 of 50 (rows 4,951–5,000; the same page at every size)
- count: every completed appointment: a page of 10 and the total over most of the history (exact up to
  1,000: past that the store says "more than 1,000", `total_exact` False, recorded beside each total)

Each query is timed `repeat` times, interleaved, or fewer (at least 5) when that would take longer than the
time budget: a linear scan at 1M can take seconds a query.

`python -m bench.search seed URL N` and `python -m bench.search measure URL REPEAT BUDGET` are the children.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, Row, child_env, p50, p95, ratio, say, summary

QUERIES = ("text", "filter_sort", "deep_page", "count")
P95_TARGET_MS = 20.0  # at 1M on SQLite
GROWTH_TARGET = 3.0  # p95 at 1M over p95 at 10k
MIN_ROUNDS = 5
MEMORY_TARGET_MB = 300.0
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ENV = {"APPT_TOOLS_TIMEZONE": "America/New_York"}


# --- children ---------------------------------------------------------------------------------------


async def seed_child(url: str, n: int) -> dict[str, Any]:
    from appt_tools.runtime import open_service
    from appt_tools.store.seed import seed

    async with open_service(database_url=url, environ=ENV) as service:
        started = time.perf_counter()
        await seed(service.store, n, seed=42)
        return {"rows": n, "seconds": round(time.perf_counter() - started, 2)}


async def measure_child(url: str, repeat: int, budget: float) -> dict[str, Any]:
    from appt_tools.runtime import open_service
    from appt_tools.surfaces import arguments

    async with open_service(database_url=url, environ=ENV) as service:

        def search(**raw: Any) -> Awaitable[Any]:  # parsed as the search tool parses its arguments
            return service.search(arguments.search_request(**raw))

        sample = await search(sort_by="created_at", page_size=100, page=3)
        terms: list[str] = []
        for i, item in enumerate(sample.items[:40]):
            kind = i % 4
            if kind == 0:
                terms.append(item.attendee_name.split()[-1])
            elif kind == 1:
                terms.append(item.attendee_email)
            elif kind == 2:
                terms.append(item.from_number)
            else:
                terms.append(item.business_name.split()[0] if item.business_name else item.title)
        labels = [item.label for item in sample.items if item.label]
        label = max(set(labels), key=labels.count) if labels else None
        today = date.today()
        year_ago = (today - timedelta(days=365)).isoformat()

        def text(i: int) -> Awaitable[Any]:
            return search(query=terms[i % len(terms)])

        def filter_sort(i: int) -> Awaitable[Any]:
            return search(
                status="active,completed",
                call_type="inbound",
                label=label,
                date_from=year_ago,
                date_to=today.isoformat(),
                sort_by="attendee_name",
                sort_order="desc",
                page_size=25,
            )

        def deep_page(i: int) -> Awaitable[Any]:
            return search(sort_by="start", page=100, page_size=50)

        def count(i: int) -> Awaitable[Any]:
            return search(status="completed")

        runs: dict[str, Callable[[int], Awaitable[Any]]] = {
            "text": text,
            "filter_sort": filter_sort,
            "deep_page": deep_page,
            "count": count,
        }
        timings: dict[str, list[float]] = {name: [] for name in runs}
        totals: dict[str, int] = {}
        exact: dict[str, bool] = {}  # False: more than `totals` matches (the count stops past a bound)
        started = time.perf_counter()
        for name, run in runs.items():  # warm-up: first-query costs (statement caches, page cache)
            for i in range(2):
                found = await run(i)
                totals[name], exact[name] = found.total, found.total_exact
        # Bounded: `repeat` rounds, or as many as `budget` seconds allow when fewer (but at least MIN_ROUNDS).
        per_round = (time.perf_counter() - started) / 2
        rounds = min(repeat, max(MIN_ROUNDS, int(budget / max(per_round, 1e-6))))
        anon_peak, file_peak = _status_mb("RssAnon"), _status_mb("RssFile")
        for i in range(rounds):  # interleaved, so a noisy moment hits every query alike
            for name, run in runs.items():
                started = time.perf_counter()
                await run(i)
                timings[name].append((time.perf_counter() - started) * 1000)
                anon_peak = max(anon_peak, _status_mb("RssAnon"))
                file_peak = max(file_peak, _status_mb("RssFile"))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ms": {name: summary(values) for name, values in timings.items()},
        "raw_ms": timings,
        "totals": totals,
        "totals_exact": exact,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        # Peak RSS counts the database file's pages mapped in by SQLite's mmap (file-backed, shared with
        # the page cache, reclaimable); the process's own memory is the anonymous part.
        "peak_anon_mb": round(anon_peak, 1),
        "peak_file_mb": round(file_peak, 1),
        "rounds": rounds,
        "terms": terms[:8],
    }


def _status_mb(field: str) -> float:
    """A `/proc/self/status` memory field in MB (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- databases --------------------------------------------------------------------------------------


class PostgresDatabase:
    """A database of our own on the PostgreSQL server, created here and dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin = make_url(admin_url)
        self.name = f"appt_bench_{uuid.uuid4().hex[:10]}"

    @property
    def url(self) -> str:
        return self.admin.set(database=self.name).render_as_string(hide_password=False)

    async def _execute(self, statement: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        dsn = self.admin.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def create(self) -> None:
        await self._execute(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def postgres_reachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers at `admin_url`, else why not."""
    try:
        database = PostgresDatabase(admin_url)
        async with asyncio.timeout(5):
            await database._execute("SELECT 1")
    except Exception as exc:  # any failure means: not reachable, skip it and say why
        return f"{type(exc).__name__}: {exc}"
    return None


async def _child(*args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.search",
        *args,
        cwd=ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench.search {args[0]} failed ({process.returncode}): {err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --- the run ----------------------------------------------------------------------------------------


async def run(
    sizes: Sequence[int], backends: Sequence[str], repeat: int, budget: float, pg_url: str = DEFAULT_PG_URL
) -> tuple[list[Row], dict[str, Any]]:
    details: dict[str, Any] = {"sizes": list(sizes), "repeat": repeat, "budget_seconds": budget, "backends": {}}
    wanted = list(backends)
    if "postgresql" in wanted:
        problem = await postgres_reachable(pg_url)
        if problem is not None:
            say(f"search: PostgreSQL not reachable at {pg_url} ({problem}); skipping it")
            details["postgresql_skipped"] = problem
            wanted.remove("postgresql")
    results: dict[str, dict[int, dict[str, Any]]] = {backend: {} for backend in wanted}
    with tempfile.TemporaryDirectory(prefix="appt-bench-search-") as tmp:
        for n in sorted(sizes):
            databases: dict[str, tuple[str, PostgresDatabase | None]] = {}
            for backend in wanted:
                if backend == "sqlite":
                    databases[backend] = (f"sqlite+aiosqlite:///{Path(tmp) / f'search-{n}.db'}", None)
                else:
                    created = PostgresDatabase(pg_url)
                    await created.create()
                    databases[backend] = (created.url, created)
            try:
                for backend, (url, _) in databases.items():
                    # One at a time: side by side on two cores they slow each other down several times over.
                    say(f"search: seeding {n:,} appointments ({backend})")
                    seeding = await _child("seed", url, str(n))
                    say(f"search: measuring {backend} at {n:,} (seeded in {seeding['seconds']} s)")
                    measured = await _child("measure", url, str(repeat), str(budget))
                    measured["seed_seconds"] = seeding["seconds"]
                    results[backend][n] = measured
            finally:
                for url, pg in databases.values():
                    if pg is not None:
                        await pg.drop()
                    else:
                        _remove_sqlite(url)
    for backend, by_size in results.items():
        details["backends"][backend] = {
            str(n): {k: v for k, v in m.items() if k != "raw_ms"} for n, m in by_size.items()
        }
    return _rows(results), details


def _remove_sqlite(url: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(url.removeprefix("sqlite+aiosqlite:///") + suffix).unlink(missing_ok=True)


def _rows(results: dict[str, dict[int, dict[str, Any]]]) -> list[Row]:
    rows: list[Row] = []
    for backend, by_size in results.items():
        if not by_size:
            continue
        smallest, largest = min(by_size), max(by_size)
        for query in QUERIES:
            base = p95(by_size[smallest]["raw_ms"][query])
            for n in sorted(by_size):
                values = by_size[n]["raw_ms"][query]
                value = p95(values)
                is_top = n == largest and n != smallest
                growth = ratio(value, base) if n != smallest else None
                target = ""
                met: bool | None = None
                if is_top:
                    target = f"≤{GROWTH_TARGET:g}× growth"
                    met = growth is not None and growth <= GROWTH_TARGET
                    if backend == "sqlite" and n >= 1_000_000:
                        target = f"≤{P95_TARGET_MS:g} ms, ≤{GROWTH_TARGET:g}× growth"
                        met = met and value <= P95_TARGET_MS
                rows.append(
                    Row(
                        f"search ({backend})",
                        f"{query} p95 @{_size(n)}",
                        value,
                        "ms",
                        reference=None if n == smallest else base,
                        reference_label="" if n == smallest else f"@{_size(smallest)}",
                        ratio=growth,
                        target=target,
                        met=met,
                        shown=f"{value:.2f} ms (p50 {p50(values):.2f})"
                        if value < 10
                        else f"{value:.1f} ms (p50 {p50(values):.1f})",
                        extra={
                            "p50": p50(values),
                            "total": by_size[n]["totals"][query],
                            "total_exact": by_size[n].get("totals_exact", {}).get(query, True),
                        },
                    )
                )
        rows.append(
            Row(
                f"search ({backend})",
                f"seeding @{_size(largest)} (appt_tools.store.seed)",
                by_size[largest]["seed_seconds"],
                "s",
                extra={"seed_seconds": {str(n): m["seed_seconds"] for n, m in by_size.items()}},
            )
        )
        first, last = by_size[smallest]["peak_rss_mb"], by_size[largest]["peak_rss_mb"]
        rows.append(
            Row(
                "memory",
                f"peak RSS, search run @{_size(largest)} ({backend})",
                last,
                "MB",
                reference=first if largest != smallest else None,
                reference_label=f"@{_size(smallest)}" if largest != smallest else "",
                ratio=ratio(last, first) if largest != smallest else None,
                target=f"<{MEMORY_TARGET_MB:g} MB",
                met=last < MEMORY_TARGET_MB,
                note=(
                    "a fresh process that opened the seeded database and ran the searches (the peak may come "
                    "from its start); while searching, its own (anonymous) memory stayed under "
                    f"{by_size[largest]['peak_anon_mb']:.0f} MB and file-backed pages (libraries, and the database "
                    f"file if SQLite maps it) under {by_size[largest]['peak_file_mb']:.0f} MB"
                ),
                extra={k: by_size[largest][k] for k in ("peak_rss_mb", "peak_anon_mb", "peak_file_mb")},
            )
        )
    return rows


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def main(argv: Sequence[str]) -> None:
    command, url, number, *rest = argv
    if command == "seed":
        result = asyncio.run(seed_child(url, int(number)))
    elif command == "measure":
        result = asyncio.run(measure_child(url, int(number), float(rest[0]) if rest else 60.0))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
