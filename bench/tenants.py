"""Many businesses on one deployment (issue 16, item 7): `python -m bench --only tenants`.

Two `appt-tools serve --transport http` processes (the installed product, unchanged) share one PostgreSQL
database holding the default tenant and `--tenants` more (default 100), each with its own Cal.com account:
one sandbox process-local server serves them all, an account per API key (`run_sandbox(accounts=…)`), so
each tenant has its own key and so its own Cal.com client, connection pool and rate budget in each server.
Calls go over `POST /tools/<name>` with one operator key (`APPT_TOOLS_OPERATOR_KEYS`) and `X-Tenant`,
alternating between the two servers.

    single     every call for the default tenant: a single-business deployment's load, on the same servers
    spread     every call for a tenant drawn at random from the `--tenants`

Both run the same call mix at the same concurrency (half `find_slots` on one of three weekdays, half
`search_appointments`), interleaved over `--tenant-rounds` rounds, after a warm-up that opened every
tenant on both servers and filled their slot caches, so neither side pays a first call the other does not.
Printed: calls a second and p50/p95 for each, and their ratio; the first call to a tenant on a server
(its service opened: settings read, Cal.com client made) p50/p95; and the memory per idle tenant: each
server's RSS once every tenant is open and idle, minus its RSS with only the default tenant open (both
measured after the same single-tenant load), divided by the tenants opened.

The bench connects as PostgreSQL's superuser, to which row-level security does not apply: the policies'
cost (docs/architecture.md, "Row-level security") is not in these figures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2

from bench.common import Row, child_env, p50, p95, ratio, say, serve_http

OPERATOR_KEY = "bench-operator-key-0123456789abcdef"
DEFAULT_TENANTS = 100


@dataclass
class Phase:
    name: str
    latencies: list[float]
    elapsed: float
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _weekdays(count: int) -> list[date]:
    day, found = datetime.now(UTC).date() + timedelta(days=3), []
    while len(found) < count:
        if day.weekday() < 5:
            found.append(day)
        day += timedelta(days=1)
    return found


async def _populate(url: str, base_url: str, accounts: Sequence[Any]) -> list[str]:
    """The default tenant on accounts[0] and one tenant per further account; their slugs, default first."""
    from appt_tools.store import Store

    now = datetime.now(UTC)
    slugs = ["default"]
    async with Store.from_url(url) as store:
        for n, account in enumerate(accounts):
            if n == 0:
                tenant_store = store
            else:
                tenant = await store.tenants.add(f"t{n:03d}", f"Business {n}", numbers=[f"+1415555{n:04d}"], now=now)
                slugs.append(tenant.slug)
                tenant_store = store.for_tenant(tenant.id)
            await tenant_store.set_setting("calcom_api_key", account.api_key)
            await tenant_store.set_setting("calcom_base_url", base_url)
            await tenant_store.set_setting("event_type_id", str(account.default_event_type_id))
    return slugs


class Caller:
    def __init__(self, bases: Sequence[str], http: httpx2.AsyncClient, days: Sequence[date]) -> None:
        self.bases = bases
        self.http = http
        self.days = [d.isoformat() for d in days]
        self._turn = 0
        self.errors: list[str] = []

    async def call(self, slug: str, tool: str, arguments: dict[str, Any], base: str | None = None) -> float:
        if base is None:
            base = self.bases[self._turn % len(self.bases)]
            self._turn += 1
        started = time.perf_counter()
        response = await self.http.post(
            f"{base}/tools/{tool}",
            json=arguments,
            headers={"Authorization": f"Bearer {OPERATOR_KEY}", "X-Tenant": slug},
        )
        took = time.perf_counter() - started
        if response.status_code != 200:
            self.errors.append(f"{tool} for {slug}: {response.status_code} {response.text[:300]}")
            raise RuntimeError(self.errors[-1])
        return took

    async def mixed(self, slug: str, rng: random.Random) -> float:
        if rng.random() < 0.5:
            return await self.call(slug, "find_slots", {"date": rng.choice(self.days)})
        return await self.call(slug, "search_appointments", {"query": "Ana"})


async def _phase(name: str, caller: Caller, slugs: Sequence[str], requests: int, concurrency: int, seed: int) -> Phase:
    rng = random.Random(seed)
    picks = [rng.choice(slugs) for _ in range(requests)]
    latencies: list[float] = []
    failures = 0
    queue = iter(picks)

    async def worker(n: int) -> None:
        nonlocal failures
        mine = random.Random(seed * 1000 + n)
        for slug in queue:
            try:
                latencies.append(await caller.mixed(slug, mine))
            except Exception as exc:
                failures += 1
                if not isinstance(exc, RuntimeError):  # an answer that is not a 200 is recorded by `call`
                    caller.errors.append(f"{slug}: {exc!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return Phase(name, latencies, time.perf_counter() - started, failures)


async def run(
    *, tenants: int, requests: int, concurrency: int, rounds: int, pg_url: str
) -> tuple[list[Row], dict[str, Any]]:
    from bench.search import PostgresDatabase, postgres_reachable
    from calcom_sandbox import SandboxState, run_sandbox

    why = await postgres_reachable(pg_url)
    if why is not None:
        say(f"tenants: skipped, PostgreSQL is not reachable at {pg_url} ({why})")
        return [], {"skipped": why}
    database = PostgresDatabase(pg_url)
    await database.create()
    accounts = [SandboxState(rate_limit=100_000) for _ in range(tenants + 1)]
    try:
        async with run_sandbox(accounts[0], accounts=accounts[1:]) as sandbox:
            say(f"tenants: {tenants} tenants (+ the default one), each its own Cal.com account, on {database.name}")
            slugs = await _populate(database.url, sandbox.base_url, accounts)
            env = child_env(
                APPT_TOOLS_DATABASE_URL=database.url,
                APPT_TOOLS_OPERATOR_KEYS=OPERATOR_KEY,
                APPT_TOOLS_CALCOM_RATE_LIMIT="10000",
                APPT_TOOLS_RECONCILE_MINUTES="0",
                APPT_TOOLS_TENANT_IDLE_MINUTES="1440",
            )
            async with (
                serve_http(env, 2, seconds=120) as servers,
                httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=concurrency * 2)) as http,
            ):
                bases = [base for base, _ in servers]
                caller = Caller(bases, http, _weekdays(3))
                return await _measure(caller, servers, slugs, requests, concurrency, rounds)
    finally:
        await database.drop()


async def _measure(
    caller: Caller,
    servers: Sequence[tuple[str, int]],
    slugs: Sequence[str],
    requests: int,
    concurrency: int,
    rounds: int,
) -> tuple[list[Row], dict[str, Any]]:
    # The default tenant's service is open in every server from the start; warm it and its slot cache.
    for base, _ in servers:
        for day in caller.days:
            await caller.call("default", "find_slots", {"date": day}, base)
        await caller.call("default", "search_appointments", {"query": "Ana"}, base)
    single: list[Phase] = [await _phase("single", caller, ["default"], requests, concurrency, 1)]
    before = [_rss_mib(pid) for _, pid in servers]

    # Open every other tenant on every server: its first call there (timed), then its slot cache.
    say(f"tenants: opening {len(slugs) - 1} tenants on {len(servers)} servers")
    first_calls: list[float] = []
    others = list(slugs[1:])
    gate = asyncio.Semaphore(concurrency)

    async def open_one(slug: str, base: str) -> None:
        async with gate:
            first_calls.append(await caller.call(slug, "search_appointments", {"query": "Ana"}, base))
            for day in caller.days:
                await caller.call(slug, "find_slots", {"date": day}, base)

    await asyncio.gather(*(open_one(slug, base) for slug in others for base, _ in servers))
    await asyncio.sleep(2.0)  # idle: background start-up reads settle
    after = [_rss_mib(pid) for _, pid in servers]
    per_tenant = [(a - b) / len(others) for a, b in zip(after, before, strict=True)]

    spread: list[Phase] = []
    for n in range(rounds):
        spread.append(await _phase("spread", caller, others, requests, concurrency, 100 + n))
        if n + 1 < rounds:
            single.append(await _phase("single", caller, ["default"], requests, concurrency, 2 + n))
    failures = sum(p.failures for p in single + spread)

    def joined(phases: Sequence[Phase]) -> tuple[float, list[float]]:
        latencies = [x for p in phases for x in p.latencies]
        elapsed = sum(p.elapsed for p in phases)
        return (len(latencies) / elapsed if elapsed else 0.0), latencies

    single_rate, single_lat = joined(single)
    spread_rate, spread_lat = joined(spread)
    n_tenants = len(others)
    mib = sum(per_tenant) / len(per_tenant)
    section = f"tenants: {n_tenants} + default on 2 servers, 1 PostgreSQL, c={concurrency}"
    spread_p95, single_p95 = p95(spread_lat) * 1000, p95(single_lat) * 1000
    rows = [
        Row(
            section,
            "calls/s, every call for the default tenant",
            single_rate,
            "calls/s",
            shown=f"{single_rate:.0f}/s (p50 {p50(single_lat) * 1000:.1f} ms, p95 {single_p95:.1f} ms)",
        ),
        Row(
            section,
            f"calls/s spread over {n_tenants} tenants",
            spread_rate,
            "calls/s",
            reference=single_rate,
            reference_label="single",
            ratio=ratio(spread_rate, single_rate),
            target="≥80% of single",
            met=spread_rate >= 0.8 * single_rate,
            shown=f"{spread_rate:.0f}/s (p50 {p50(spread_lat) * 1000:.1f} ms, p95 {spread_p95:.1f} ms)",
        ),
        Row(
            section,
            "p95 spread",
            spread_p95,
            "ms",
            reference=single_p95,
            reference_label="single p95",
            ratio=ratio(spread_p95, single_p95),
            target="≤1.25× single",
            met=spread_p95 <= 1.25 * single_p95,
        ),
        Row(
            section,
            "first call to a tenant on a server (p95)",
            p95(first_calls) * 1000,
            "ms",
            reference=single_p95,
            reference_label="single p95",
            ratio=ratio(p95(first_calls) * 1000, single_p95),
            note="the tenant's service opened on that server: its settings read, its Cal.com client made",
        ),
        Row(
            section,
            "memory per idle tenant",
            mib,
            "MiB",
            shown=f"{mib:.2f} MiB",
            note=f"(RSS with {n_tenants} tenants open and idle besides the default − RSS with the default one) "
            f"÷ {n_tenants}, each server: "
            + ", ".join(f"{b:.0f} → {a:.0f} MiB" for b, a in zip(before, after, strict=True)),
        ),
    ]
    details = {
        "tenants": n_tenants,
        "servers": len(servers),
        "concurrency": concurrency,
        "requests_per_phase": len(single[0].latencies) + single[0].failures,
        "rounds": len(spread),
        "single": {"calls_per_s": single_rate, "p50_ms": p50(single_lat) * 1000, "p95_ms": p95(single_lat) * 1000},
        "spread": {"calls_per_s": spread_rate, "p50_ms": p50(spread_lat) * 1000, "p95_ms": p95(spread_lat) * 1000},
        "first_call_ms": {"p50": p50(first_calls) * 1000, "p95": p95(first_calls) * 1000},
        "rss_mib_before": before,
        "rss_mib_after": after,
        "mib_per_idle_tenant": per_tenant,
        "failures": failures,
        "errors": caller.errors[:5],
    }
    if failures:
        say(f"tenants: {failures} calls failed, e.g. {caller.errors[:2]}")
    return rows, details
